runbook "whawty-sync" {
  description = "Mirror a whawty.auth master store to its slaves: check the master, sync every slave in parallel, check every slave."
  lock        = "whawty-sync"
}

variable "master" {
  type        = string
  description = "Master store location: /var/lib/whawty/auth/store or ssh://user@host:port/var/lib/whawty/auth/store."
}

variable "slaves" {
  type        = list(string)
  description = "Slave store locations."
  validation {
    condition     = length(var.slaves) > 0
    error_message = "Name at least one slave store."
  }
}

variable "slave_configs" {
  type        = map(string)
  description = "For every slave store location (as in slaves): that slave's auth-store.yaml (a path or ssh://user@host:port/etc/whawty/auth-store.yaml). The sync refuses, before writing, hashes the slave's config cannot verify."
  validation {
    condition     = length(setsubtract(var.slaves, keys(var.slave_configs))) == 0
    error_message = "Name the config of every slave store in slave_configs (keyed by the store location)."
  }
}

variable "known_hosts" {
  type        = string
  default     = null
  description = "known_hosts file for ssh:// locations (default ~/.ssh/known_hosts)."
}

variable "identity_file" {
  type        = string
  default     = null
  description = "Private key for ssh:// locations (default: ssh agent, then ~/.ssh/id_*)."
}

locals {
  ssh = { known_hosts = var.known_hosts, identity_file = var.identity_file }
}

step "whawty.check" "master" {
  with = merge(local.ssh, { store = var.master, strict = false })
}

step "whawty.sync" "sync" {
  for_each   = toset(var.slaves)
  with       = merge(local.ssh, { source = var.master, destination = each.key, destination_config = var.slave_configs[each.key] })
  depends_on = [step.master]
  rollback   = native
  retry {
    attempts = 3
    backoff  = "exponential"
    delay    = "5s"
  }
}

step "whawty.check" "slave_check" {
  for_each   = toset(var.slaves)
  with       = merge(local.ssh, { store = each.key, config = var.slave_configs[each.key] })
  depends_on = [step.sync]
}

output "synced" {
  value = { for k, s in step.sync : k => {
    added   = s.outputs.added
    updated = s.outputs.updated
    deleted = s.outputs.deleted
  } }
}

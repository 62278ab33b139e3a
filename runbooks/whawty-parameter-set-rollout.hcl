runbook "whawty-parameter-set-rollout" {
  description = "Roll out a new hashing parameter-set to a whawty.auth master and its slaves in the safe order, wait for users to be upgraded, then retire the old set."
  lock        = "whawty-params"
}

variable "master_config" {
  type        = string
  description = "Master's auth-store.yaml: a path or ssh://user@host:port/etc/whawty/auth-store.yaml."
}

variable "slave_configs" {
  type        = list(string)
  description = "Every slave's auth-store.yaml location."
}

variable "new_id" {
  type        = number
  description = "Id of the new parameter-set (not in any config yet)."
}

variable "old_id" {
  type        = number
  description = "Id of the set to retire once no user is left on it."
}

variable "algorithm" {
  type    = string
  default = "scrypt"
  validation {
    condition     = contains(["scrypt", "argon2id"], var.algorithm)
    error_message = "algorithm is \"scrypt\" or \"argon2id\"."
  }
}

variable "cost" {
  type        = number
  default     = null
  description = "scrypt: log2(N), 1..31 (plugin default 14)."
}

variable "argon2" {
  type = object({
    time    = optional(number)
    memory  = optional(number)
    threads = optional(number)
    length  = optional(number)
  })
  default     = {}
  description = "argon2id settings (memory in KiB)."
}

variable "reload_commands" {
  type        = map(list(string))
  description = "For each config location (master and slaves): the command that reloads whawty there, as argv, e.g. [\"ssh\", \"slave1\", \"systemctl\", \"reload\", \"whawty-auth\"]."
}

variable "target_percent" {
  type        = number
  default     = 100
  description = "Share of hashes on the new set to wait for before retiring the old set."
}

variable "upgrade_timeout" {
  type    = string
  default = "168h"
}

variable "upgrade_interval" {
  type        = string
  default     = "1m"
  description = "Time between counts while waiting for the upgrades."
}

variable "known_hosts" {
  type    = string
  default = null
}

variable "identity_file" {
  type    = string
  default = null
}

locals {
  ssh = { known_hosts = var.known_hosts, identity_file = var.identity_file }
  # Every host's config: an undo keeps any set a hash in any of their
  # stores uses, and a removal is refused while any of them needs the set.
  peers = { peer_configs = concat([var.master_config], var.slave_configs) }
  set   = var.algorithm == "scrypt" ? { algorithm = "scrypt", cost = var.cost } : merge({ algorithm = "argon2id" }, var.argon2)
}

# 0. On the way back each host reloads whawty once every config undo on
#    that host is done (these steps come first, so their rollback comes
#    last), and the rollback waits for the reload: a reload that fails
#    fails the rollback. Going forward they do nothing.
step "core.noop" "master_reload_on_rollback" {
  rollback {
    action = core.exec
    with = {
      command = var.reload_commands[var.master_config][0]
      args    = slice(var.reload_commands[var.master_config], 1, length(var.reload_commands[var.master_config]))
      timeout = "1m"
    }
  }
}

step "core.noop" "slave_reload_on_rollback" {
  for_each = toset(var.slave_configs)
  rollback {
    action = core.exec
    with = {
      command = var.reload_commands[each.key][0]
      args    = slice(var.reload_commands[each.key], 1, length(var.reload_commands[each.key]))
      timeout = "1m"
    }
  }
}

# 1. The set goes into the master's config first, NOT as default: this
#    generates the hmac key every host must share, and changes nothing for
#    whawty on the master until the default moves. Undoing it never removes
#    the set while a hash on any host uses it (a partial undo, warned).
step "whawty.param_set_add" "master_add" {
  with       = merge(local.ssh, local.set, local.peers, { config = var.master_config, id = var.new_id })
  depends_on = [step.master_reload_on_rollback]
  rollback   = native
}

# 2. Every slave learns the set (same key) and makes it the default.
step "whawty.param_set_add" "slave_add" {
  for_each = toset(var.slave_configs)
  with = merge(local.ssh, local.set, local.peers, {
    config  = each.key
    id      = var.new_id
    hmackey = step.master_add.outputs.hmackey
  })
  depends_on = [step.slave_reload_on_rollback]
  rollback   = native
}

step "whawty.param_set_default" "slave_default" {
  for_each   = toset(var.slave_configs)
  with       = merge(local.ssh, local.peers, { config = each.key, id = var.new_id })
  depends_on = [step.slave_add]
  rollback   = native
}

step "core.exec" "slave_reload" {
  for_each = toset(var.slave_configs)
  with = {
    command = var.reload_commands[each.key][0]
    args    = slice(var.reload_commands[each.key], 1, length(var.reload_commands[each.key]))
    timeout = "1m"
  }
  depends_on = [step.slave_default]
  # On the way back the config is restored after this (reverse order):
  # slave_reload_on_rollback reloads then.
  rollback {
    action = core.noop
  }
}

# 3. Only when every slave knows the set does the master start using it.
step "whawty.param_set_default" "master_default" {
  with       = merge(local.ssh, local.peers, { config = var.master_config, id = var.new_id })
  depends_on = [step.slave_reload, step.master_add]
  rollback   = native
}

step "core.exec" "master_reload" {
  with = {
    command = var.reload_commands[var.master_config][0]
    args    = slice(var.reload_commands[var.master_config], 1, length(var.reload_commands[var.master_config]))
    timeout = "1m"
  }
  depends_on = [step.master_default]
  # master_reload_on_rollback reloads once the config is restored.
  rollback {
    action = core.noop
  }
}

# 4. Users move to the new set as they log in (whawty --do-upgrades local).
step "whawty.upgrade_status" "upgraded" {
  with = merge(local.ssh, {
    config           = var.master_config
    wait_for_percent = var.target_percent
    timeout          = var.upgrade_timeout
    interval         = var.upgrade_interval
  })
  depends_on = [step.master_reload]
}

# 5. Retire the old set only when no hash on the master uses it any more
#    (otherwise the run ends here, keeping the old set). The plugin refuses
#    anyway while a user is left on it, and always when no admin would be
#    left with a supported hash, on the master or on any slave (each slave's
#    own store against its own config: a slave not yet synced stops the
#    removal here, before anything is retired).
step "whawty.param_set_remove" "master_retire" {
  when       = lookup(step.upgraded.outputs.per_param_set, tostring(var.old_id), 0) == 0
  with       = merge(local.ssh, local.peers, { config = var.master_config, id = var.old_id })
  depends_on = [step.upgraded]
  rollback   = native
}

step "whawty.param_set_remove" "slave_retire" {
  for_each   = toset(var.slave_configs)
  when       = lookup(step.upgraded.outputs.per_param_set, tostring(var.old_id), 0) == 0
  with       = merge(local.ssh, local.peers, { config = each.key, id = var.old_id })
  depends_on = [step.master_retire]
  rollback   = native
}

step "core.exec" "final_reload" {
  for_each = toset(concat(var.slave_configs, [var.master_config]))
  when     = lookup(step.upgraded.outputs.per_param_set, tostring(var.old_id), 0) == 0
  with = {
    command = var.reload_commands[each.key][0]
    args    = slice(var.reload_commands[each.key], 1, length(var.reload_commands[each.key]))
    timeout = "1m"
  }
  depends_on = [step.slave_retire]
}

output "upgraded_percent" {
  value = step.upgraded.outputs.percent_on_default
}

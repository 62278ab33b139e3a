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
  set = var.algorithm == "scrypt" ? { algorithm = "scrypt", cost = var.cost } : merge({ algorithm = "argon2id" }, var.argon2)
}

# 1. The set goes into the master's config first, NOT as default: this
#    generates the hmac key every host must share, and changes nothing for
#    whawty on the master until the default moves.
step "whawty.param_set_add" "master_add" {
  with     = merge(local.ssh, local.set, { config = var.master_config, id = var.new_id })
  rollback = native
}

# 2. Every slave learns the set (same key) and makes it the default.
step "whawty.param_set_add" "slave_add" {
  for_each = toset(var.slave_configs)
  with = merge(local.ssh, local.set, {
    config  = each.key
    id      = var.new_id
    hmackey = step.master_add.outputs.hmackey
  })
  rollback = native
}

step "whawty.param_set_default" "slave_default" {
  for_each   = toset(var.slave_configs)
  with       = merge(local.ssh, { config = each.key, id = var.new_id })
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
  # On the way back the config is restored after this rollback runs
  # (reverse order), so the reload is deferred a few seconds, detached.
  rollback {
    action = core.exec
    with = {
      command = "sh"
      args    = concat(["-c", "(sleep 15; \"$@\") >/dev/null 2>&1 &", "reload"], var.reload_commands[each.key])
      timeout = "1m"
    }
  }
}

# 3. Only when every slave knows the set does the master start using it.
step "whawty.param_set_default" "master_default" {
  with       = merge(local.ssh, { config = var.master_config, id = var.new_id })
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
  rollback {
    action = core.exec
    with = {
      command = "sh"
      args    = concat(["-c", "(sleep 15; \"$@\") >/dev/null 2>&1 &", "reload"], var.reload_commands[var.master_config])
      timeout = "1m"
    }
  }
}

# 4. Users move to the new set as they log in (whawty --do-upgrades local).
step "whawty.upgrade_status" "upgraded" {
  with = merge(local.ssh, {
    config           = var.master_config
    wait_for_percent = var.target_percent
    timeout          = var.upgrade_timeout
    interval         = "1m"
  })
  depends_on = [step.master_reload]
}

# 5. Retire the old set only when no hash on the master uses it any more
#    (otherwise the run ends here, keeping the old set). The plugin refuses
#    anyway while a user is left on it, and always when no admin would be
#    left with a supported hash.
step "whawty.param_set_remove" "master_retire" {
  when       = lookup(step.upgraded.outputs.per_param_set, tostring(var.old_id), 0) == 0
  with       = merge(local.ssh, { config = var.master_config, id = var.old_id })
  depends_on = [step.upgraded]
  rollback   = native
}

step "whawty.param_set_remove" "slave_retire" {
  for_each   = toset(var.slave_configs)
  when       = lookup(step.upgraded.outputs.per_param_set, tostring(var.old_id), 0) == 0
  with       = merge(local.ssh, { config = each.key, id = var.old_id })
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

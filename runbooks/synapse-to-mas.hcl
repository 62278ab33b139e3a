runbook "synapse-to-mas" {
  description = "Move a Synapse homeserver's accounts into Matrix Authentication Service and switch Synapse to MAS"
  lock        = "synapse-to-mas/${var.server_name}"
}

variable "server_name" {
  type        = string
  description = "The homeserver's server_name (also MAS matrix.homeserver); names the run lock."
}

variable "synapse_config" {
  type        = list(string)
  description = "Synapse config files, merged at the top level (later files win)."
  default     = ["/etc/matrix-synapse/homeserver.yaml"]
}

variable "mas_config" {
  type        = string
  description = "MAS config file."
  default     = "/etc/mas/config.yaml"
}

variable "synapse_database_url" {
  type        = string
  sensitive   = true
  description = "PostgreSQL URL of the Synapse database (used by the migration and pg_dump)."
}

variable "mas_database_url" {
  type        = string
  sensitive   = true
  description = "PostgreSQL URL of the MAS database (used by the migration and pg_dump)."
}

variable "ignore_missing_providers" {
  type        = bool
  description = "Report IdPs in use that the Synapse config does not define as warnings instead of errors (their links still need a MAS provider)."
  default     = false
}

variable "drop_links_without_mas_provider" {
  type        = bool
  description = "Drop external IdP links whose IdP no MAS provider maps (synapse_idp_id), with a count, instead of refusing to migrate."
  default     = false
}

variable "backup_dir" {
  type        = string
  description = "Directory for the pg_dump backups and the saved homeserver config."
  default     = "/var/backups/synapse-to-mas"
}

variable "homeserver_config" {
  type        = string
  description = "The Synapse config file that is switched to MAS (one of synapse_config)."
  default     = "/etc/matrix-synapse/homeserver.yaml"
}

variable "homeserver_config_with_mas" {
  type        = string
  description = "Full content of homeserver_config once Synapse delegates authentication to MAS (e.g. file(\"homeserver.mas.yaml\"))."
}

variable "mas_cli" {
  type        = string
  description = "Path of the mas-cli binary."
  default     = "mas-cli"
}

variable "stop_synapse" {
  type        = list(string)
  description = "Command (and arguments) that stops Synapse and all its workers."
  default     = ["systemctl", "stop", "matrix-synapse.target"]
}

variable "start_synapse" {
  type        = list(string)
  description = "Command (and arguments) that starts Synapse; must succeed when it already runs."
  default     = ["systemctl", "start", "matrix-synapse.target"]
}

variable "stop_mas" {
  type        = list(string)
  description = "Command that stops MAS."
  default     = ["systemctl", "stop", "mas"]
}

variable "start_mas" {
  type        = list(string)
  description = "Command that starts MAS."
  default     = ["systemctl", "start", "mas"]
}

variable "verify_url" {
  type        = string
  description = "URL that answers 200 once Synapse serves clients through MAS (e.g. https://matrix.example.com/_matrix/client/v3/login)."
}

variable "verify_retry_for" {
  type        = string
  description = "How long the verify step retries verify_url before the run fails and rolls back."
  default     = "3m"
}

locals {
  migrate_with = {
    synapse_config           = var.synapse_config
    mas_config               = var.mas_config
    synapse_database_url     = var.synapse_database_url
    mas_database_url         = var.mas_database_url
    ignore_missing_providers = var.ignore_missing_providers

    drop_links_without_mas_provider = var.drop_links_without_mas_provider
  }
  saved_config = "${var.backup_dir}/homeserver.yaml.${run.id}"
  done_marker  = "${var.backup_dir}/done.${run.id}"
}

# 1. Configs and databases are fit for a migration (reads only).
step "synapse.check" "preflight" {
  with = local.migrate_with
}

# 2. Backups of both databases and of the homeserver config.
step "core.exec" "backup" {
  with = {
    command = "sh"
    args = ["-c", <<-EOT
      set -eu
      mkdir -p "$BACKUP_DIR"
      pg_dump --format=custom --file="$BACKUP_DIR/synapse.$RUN.dump" --dbname="$SYNAPSE_DB"
      pg_dump --format=custom --file="$BACKUP_DIR/mas.$RUN.dump" --dbname="$MAS_DB"
      cp -p "$HOMESERVER" "$SAVED"
    EOT
    ]
    env = {
      BACKUP_DIR = var.backup_dir
      RUN        = run.id
      SYNAPSE_DB = var.synapse_database_url
      MAS_DB     = var.mas_database_url
      HOMESERVER = var.homeserver_config
      SAVED      = local.saved_config
    }
    timeout = "2h"
  }
  depends_on = [step.preflight]
  rollback {
    action = core.noop
    with   = { values = "backups are kept in ${var.backup_dir}" }
  }
}

# 3. A human says go: Synapse goes down from here.
step "core.approve" "go" {
  with = {
    prompt = "Check passed with ${length(step.preflight.outputs.warnings)} warnings (~${lookup(step.preflight.outputs.counts, "users", 0)} users). Backups are in ${var.backup_dir}. Stop Synapse and migrate?"
  }
  depends_on = [step.backup]
}

# 4. Stop Synapse; undo starts it again.
step "core.exec" "stop_synapse" {
  with = {
    command = var.stop_synapse[0]
    args    = slice(var.stop_synapse, 1, length(var.stop_synapse))
    timeout = "5m"
  }
  depends_on = [step.go]
  rollback {
    action = core.exec
    with = {
      command = var.start_synapse[0]
      args    = slice(var.start_synapse, 1, length(var.start_synapse))
      timeout = "5m"
    }
  }
}

# 5. MAS creates its upstream providers (the links point at them).
step "core.exec" "mas_config_sync" {
  with = {
    command = var.mas_cli
    args    = ["config", "sync", "--config", var.mas_config]
    timeout = "5m"
  }
  depends_on = [step.stop_synapse]
  rollback {
    action = core.noop
    with   = { values = "upstream providers synced into MAS are kept" }
  }
}

# 6. Dry run: the whole migration, rolled back. Same counts and timing.
step "synapse.migrate" "dry_run" {
  with       = merge(local.migrate_with, { dry_run = true })
  depends_on = [step.mas_config_sync]
  rollback   = native
}

# 7. The migration.
step "synapse.migrate" "migrate" {
  with       = local.migrate_with
  depends_on = [step.dry_run]
  timeout    = "6h"
  rollback   = native
}

# 8. Synapse delegates authentication to MAS; undo restores the old file.
step "core.file" "homeserver_mas" {
  with = {
    path    = var.homeserver_config
    content = var.homeserver_config_with_mas
  }
  depends_on = [step.migrate]
  rollback   = native
}

# 9. Start MAS, then Synapse.
step "core.exec" "start_mas" {
  with = {
    command = var.start_mas[0]
    args    = slice(var.start_mas, 1, length(var.start_mas))
    timeout = "5m"
  }
  depends_on = [step.homeserver_mas]
  rollback {
    action = core.exec
    with = {
      command = var.stop_mas[0]
      args    = slice(var.stop_mas, 1, length(var.stop_mas))
      timeout = "5m"
    }
  }
}

step "core.exec" "start_synapse" {
  with = {
    command = var.start_synapse[0]
    args    = slice(var.start_synapse, 1, length(var.start_synapse))
    timeout = "5m"
  }
  depends_on = [step.start_mas]
  rollback {
    action = core.exec
    with = {
      command = var.stop_synapse[0]
      args    = slice(var.stop_synapse, 1, length(var.stop_synapse))
      timeout = "5m"
    }
  }
}

# 10. Clients get through.
step "core.http" "verify" {
  with = {
    url           = var.verify_url
    expect_status = [200]
    retry_for     = var.verify_retry_for
  }
  depends_on = [step.start_synapse]
}

step "core.file" "done" {
  with = {
    path    = local.done_marker
    content = "migrated ${step.migrate.outputs.migrated["users"]} users in run ${run.id}\n"
  }
  depends_on = [step.verify]
  rollback   = native
}

# Always: unless the run got to the end, put the original homeserver config
# back and make sure Synapse runs (before the rollback undoes the rest).
step "core.exec" "ensure_synapse" {
  always = true
  with = {
    command = "sh"
    args = concat(["-c", <<-EOT
      set -eu
      if [ -e "$DONE" ]; then echo "migration completed; Synapse keeps the MAS config"; exit 0; fi
      if [ -e "$SAVED" ]; then cp -p "$SAVED" "$HOMESERVER"; echo "restored $HOMESERVER"; fi
      exec "$@"
    EOT
    , "ensure_synapse"], var.start_synapse)
    env = {
      DONE       = local.done_marker
      SAVED      = local.saved_config
      HOMESERVER = var.homeserver_config
    }
    timeout = "5m"
  }
  depends_on = [step.done]
  rollback {
    action = core.noop
    with   = { values = "nothing to undo" }
  }
}

output "migrated" {
  value = step.migrate.outputs.migrated
}

output "skipped" {
  value = step.migrate.outputs.skipped
}

output "dry_run_seconds" {
  value = step.dry_run.outputs.duration_seconds
}

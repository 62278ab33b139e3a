runbook "cozy-v2-move" {
  description = "Move a Cozy v2 instance's CouchDB database to a new server: back up the target, replicate with checkpoints, remove the duplicates the copy creates, verify."
  lock        = "cozy-v2-move"
}

variable "source_url" {
  type        = string
  description = "Old server's CouchDB, e.g. http://127.0.0.1:5984 (through an SSH tunnel; no proxy patch needed)."
  sensitive   = true
}

variable "source_username" {
  type        = string
  default     = "admin"
  description = "CouchDB admin of the old server (/etc/cozy/couchdb.login, first line)."
}

variable "source_password" {
  type        = string
  sensitive   = true
  description = "Its password (/etc/cozy/couchdb.login, second line)."
}

variable "target_url" {
  type        = string
  description = "New server's CouchDB."
  sensitive   = true
}

variable "target_username" {
  type    = string
  default = "admin"
}

variable "target_password" {
  type      = string
  sensitive = true
}

variable "database" {
  type        = string
  default     = "cozy"
  description = "Cozy v2 keeps everything in one database."
}

variable "target_placeholder_email" {
  type        = string
  description = "Email of the owner created on the new server to finish its setup; that User document is removed after the copy."
}

variable "backup_path" {
  type        = string
  description = "Where to dump the target's database before it is changed (gzip); the copy's rollback restores it."
}

variable "target_local_ids" {
  type        = list(string)
  default     = []
  description = "_local documents of the target's database to keep in the backup (ids without \"_local/\"), for servers that cannot list them (CouchDB 1.x, pouchdb-server); CouchDB 2.2 and later list them all."
}

variable "batch_size" {
  type    = number
  default = 500
}

variable "workers" {
  type    = number
  default = 4
}

locals {
  source = { url = var.source_url, username = var.source_username, password = var.source_password }
  target = { url = var.target_url, username = var.target_username, password = var.target_password }
  pair = {
    source_url      = var.source_url
    source_username = var.source_username
    source_password = var.source_password
    target_url      = var.target_url
    target_username = var.target_username
    target_password = var.target_password
    databases       = [var.database]
  }
}

step "couchdb.check" "source" {
  with = merge(local.source, { databases = [var.database] })
}

step "couchdb.check" "target" {
  with = merge(local.target, { databases = [var.database] })
}

# Everything below changes the target: keep a copy of it first (documents,
# _security and _local documents).
step "couchdb.dump" "target_backup" {
  with       = merge(local.target, { database = var.database, path = var.backup_path, local_ids = var.target_local_ids })
  depends_on = [step.target]
}

# Cozy v2 compares docTypes case-insensitively (its data-system lowercases
# both sides), so every selection below goes through doc_type.

# The target's own StackApplication rows describe the code it runs; the
# copied rows with a version lower or equal are the duplicates to remove.
step "couchdb.find" "target_stack" {
  with = merge(local.target, {
    database = var.database
    doc_type = "StackApplication"
    fields   = ["_id", "name", "version"]
  })
  depends_on = [step.target]
}

# The source's own CozyInstance document is the one to keep (with or
# without a domain); the target's is the duplicate.
step "couchdb.find" "source_instance" {
  with = merge(local.source, {
    database = var.database
    doc_type = "CozyInstance"
    fields   = ["_id", "domain"]
  })
  depends_on = [step.source]
}

step "couchdb.replicate" "copy" {
  with = merge(local.pair, {
    create_target = false
    batch_size    = var.batch_size
    workers       = var.workers
  })
  depends_on = [step.source, step.target_backup, step.target_stack, step.source_instance]
  timeout    = "24h"
  retry {
    attempts = 5
    backoff  = "exponential"
    delay    = "10s"
  }
  # Undoing the copy means putting the target back as it was.
  rollback {
    action = couchdb.restore
    with = merge(local.target, {
      database         = var.database
      path             = var.backup_path
      replace          = true
      restore_security = true
    })
  }
}

# Replication does not carry _security.
step "couchdb.copy_security" "security" {
  with       = local.pair
  depends_on = [step.copy]
  rollback   = native
}

# The counts cover the whole copy, every attempt included (a resumed run
# counts what the interrupted one wrote).
step "core.approve" "cleanup" {
  with = {
    prompt = "Copied ${step.copy.outputs.documents_written} documents (${step.copy.outputs.revisions_written} revisions) into ${var.database}. Delete the duplicated CozyInstance, StackApplication and Application documents and the placeholder user ${var.target_placeholder_email} on the target?"
  }
  depends_on = [step.security]
}

# Every CozyInstance document but the source's: the target's own.
step "couchdb.delete_docs" "target_instance" {
  with = merge(local.target, {
    database     = var.database
    doc_type     = "CozyInstance"
    exclude_ids  = step.source_instance.outputs.ids
    expect_count = 1
  })
  depends_on = [step.cleanup]
  rollback   = native
}

step "couchdb.delete_docs" "old_stack_apps" {
  with = merge(local.target, {
    database     = var.database
    doc_type     = "StackApplication"
    exclude_ids  = [for d in step.target_stack.outputs.docs : d._id]
    max_versions = { for d in step.target_stack.outputs.docs : d.name => d.version }
  })
  depends_on = [step.cleanup]
  rollback   = native
}

step "couchdb.delete_docs" "applications" {
  with = merge(local.target, {
    database = var.database
    doc_type = "Application"
    selector = { slug = { "$ne" = "data-browser" } }
  })
  depends_on = [step.cleanup]
  rollback   = native
}

step "couchdb.delete_docs" "placeholder_user" {
  with = merge(local.target, {
    database     = var.database
    doc_type     = "User"
    selector     = { email = var.target_placeholder_email }
    expect_count = 1
  })
  depends_on = [step.cleanup]
  rollback   = native
}

# Every source revision is on the target (deleted duplicates count: their
# deletion descends from the copied revision). Counts differ on purpose.
step "couchdb.verify" "verify" {
  with       = merge(local.pair, { compare_counts = false })
  depends_on = [step.target_instance, step.old_stack_apps, step.applications, step.placeholder_user]
}

output "documents_written" {
  value = step.copy.outputs.documents_written
}

output "revisions_written" {
  value = step.copy.outputs.revisions_written
}

output "deleted" {
  value = concat(
    step.target_instance.outputs.deleted,
    step.old_stack_apps.outputs.deleted,
    step.applications.outputs.deleted,
    step.placeholder_user.outputs.deleted,
  )
}

output "backup" {
  value = step.target_backup.outputs.path
}

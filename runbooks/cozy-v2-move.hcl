runbook "cozy-v2-move" {
  description = "Move a Cozy v2 instance's CouchDB database to a new server: back up the target, replicate with checkpoints, remove the duplicates the copy creates, verify."
  lock        = "cozy-v2-move"
}

variable "source_url" {
  type        = string
  description = "Old server's CouchDB, e.g. http://127.0.0.1:5984 (through an SSH tunnel; no proxy patch needed)."
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

# Everything below changes the target: keep a copy of it first.
step "couchdb.dump" "target_backup" {
  with       = merge(local.target, { database = var.database, path = var.backup_path })
  depends_on = [step.target]
}

# The target's own StackApplication rows describe the code it runs; the
# copied rows with a version lower or equal are the duplicates to remove.
step "couchdb.find" "target_stack" {
  with = merge(local.target, {
    database = var.database
    selector = { docType = "StackApplication" }
    fields   = ["_id", "name", "version"]
  })
  depends_on = [step.target]
}

step "couchdb.replicate" "copy" {
  with = merge(local.pair, {
    create_target = false
    batch_size    = var.batch_size
    workers       = var.workers
  })
  depends_on = [step.source, step.target_backup, step.target_stack]
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

step "core.approve" "cleanup" {
  with = {
    prompt = "Copied ${step.copy.outputs.docs_written} documents into ${var.database}. Delete the duplicated CozyInstance, StackApplication and Application documents and the placeholder user ${var.target_placeholder_email} on the target?"
  }
}

step "couchdb.delete_docs" "instance_without_domain" {
  with = merge(local.target, {
    database     = var.database
    selector     = { docType = "CozyInstance", domain = { "$exists" = false } }
    expect_count = 1
  })
  depends_on = [step.cleanup]
  rollback   = native
}

step "couchdb.delete_docs" "old_stack_apps" {
  with = merge(local.target, {
    database     = var.database
    selector     = { docType = "StackApplication" }
    exclude_ids  = [for d in step.target_stack.outputs.docs : d._id]
    max_versions = { for d in step.target_stack.outputs.docs : d.name => d.version }
  })
  depends_on = [step.cleanup]
  rollback   = native
}

step "couchdb.delete_docs" "applications" {
  with = merge(local.target, {
    database = var.database
    selector = { docType = "Application", slug = { "$ne" = "data-browser" } }
  })
  depends_on = [step.cleanup]
  rollback   = native
}

step "couchdb.delete_docs" "placeholder_user" {
  with = merge(local.target, {
    database     = var.database
    selector     = { docType = "User", email = var.target_placeholder_email }
    expect_count = 1
  })
  depends_on = [step.cleanup]
  rollback   = native
}

# Every source revision is on the target (deleted duplicates count: their
# deletion descends from the copied revision). Counts differ on purpose.
step "couchdb.verify" "verify" {
  with       = merge(local.pair, { compare_counts = false })
  depends_on = [step.instance_without_domain, step.old_stack_apps, step.applications, step.placeholder_user]
}

output "docs_written" {
  value = step.copy.outputs.docs_written
}

output "deleted" {
  value = concat(
    step.instance_without_domain.outputs.deleted,
    step.old_stack_apps.outputs.deleted,
    step.applications.outputs.deleted,
    step.placeholder_user.outputs.deleted,
  )
}

output "backup" {
  value = step.target_backup.outputs.path
}

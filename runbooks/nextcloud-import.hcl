runbook "nextcloud-import" {
  description = "Import a user's files from Nextcloud: probe the credentials, take an inventory, copy after an approval showing the totals (resumable, verified file by file, undone on rollback), check the counts, then optionally delete the source after a second approval. Keeps the migration's tracking document up to date when one is given."
  lock        = "nextcloud-import/${var.nextcloud_url}/${var.login}"
}

variable "nextcloud_url" {
  type        = string
  description = "Root URL of the Nextcloud server, e.g. https://cloud.example.net."
}

variable "login" {
  type = string
}

variable "password" {
  type        = string
  sensitive   = true
  description = "An app password (Settings → Security)."
}

variable "source_path" {
  type    = string
  default = "/"
}

variable "target_dir" {
  type        = string
  default     = ""
  description = "Local directory the files go to (unless cozy_url is set)."
}

variable "cozy_url" {
  type        = string
  default     = ""
  description = "A Cozy instance to copy into through its files API instead of target_dir, e.g. https://alice.cozy.example."
}

variable "cozy_token" {
  type        = string
  default     = ""
  sensitive   = true
  description = "A token of the Cozy instance allowed to write io.cozy.files."
}

variable "cozy_dir" {
  type        = string
  default     = "/Nextcloud"
  description = "Folder of the Cozy instance the files go to."
}

variable "work_dir" {
  type        = string
  description = "Where the inventory's manifest and the copy's ledger are kept."
}

variable "delete_source" {
  type        = bool
  default     = false
  description = "After a verified copy and a second approval, delete the source's top-level children (irreversible)."
}

variable "empty_trash" {
  type    = bool
  default = false
}

variable "tracking_dir" {
  type        = string
  default     = ""
  description = "Tracking documents (nextcloud.request_migration); with migration_id and instance, the document follows the run."
}

variable "couchdb_url" {
  type        = string
  default     = ""
  sensitive   = true
  description = "CouchDB keeping the tracking documents instead of tracking_dir (as runbook consume -tracking couchdb://… gives it), credentials in the URL."
}

variable "instance" {
  type    = string
  default = ""
}

variable "migration_id" {
  type    = string
  default = ""
}

locals {
  nc       = { url = var.nextcloud_url, login = var.login, password = var.password }
  tracking = var.migration_id != ""
  doc = merge({ instance = var.instance, migration_id = var.migration_id },
  var.couchdb_url != "" ? { couchdb_url = var.couchdb_url } : { tracking_dir = var.tracking_dir })
  cozy = var.cozy_url != ""
  # Where the copy goes: a local directory or a Cozy instance.
  target = local.cozy ? {
    target_url    = var.cozy_url
    target_token  = var.cozy_token
    target_vendor = "cozy"
    target_path   = var.cozy_dir
    } : {
    target_dir = var.target_dir
  }
  destination = local.cozy ? "${var.cozy_url}${var.cozy_dir}" : var.target_dir
}

step "nextcloud.probe" "probe" {
  with = local.nc
  retry {
    attempts = 3
    delay    = "30s"
  }
}

# On a rollback the document says the migration failed.
step "nextcloud.update_migration" "running" {
  when       = local.tracking
  with       = merge(local.doc, { status = "running" })
  depends_on = [step.probe]
  rollback {
    action = nextcloud.update_migration
    with   = merge(local.doc, { status = "failed", failure_reason = "the import failed and was rolled back" })
  }
}

step "nextcloud.inventory" "inventory" {
  with = merge(local.nc, {
    user_id  = step.probe.outputs.user_id
    path     = var.source_path
    manifest = "${var.work_dir}/manifest-${step.probe.outputs.user_id}.jsonl"
  })
  depends_on = [step.running]
}

step "nextcloud.update_migration" "totals" {
  when = local.tracking
  with = merge(local.doc, {
    files_total = step.inventory.outputs.files
    bytes_total = step.inventory.outputs.bytes
  })
  rollback {
    action = core.noop
    with   = { values = "the running step's rollback marks the document failed" }
  }
}

step "core.approve" "copy_ok" {
  with = {
    prompt = "Copy ${step.inventory.outputs.files} files in ${step.inventory.outputs.folders} folders (${step.inventory.outputs.bytes} bytes) of ${step.probe.outputs.user_id} (${step.probe.outputs.display_name}) from ${var.nextcloud_url}${var.source_path} to ${local.destination}?"
  }
  depends_on = [step.totals]
}

step "nextcloud.copy" "copy" {
  with = merge(local.nc, local.target, {
    user_id   = step.probe.outputs.user_id
    path      = var.source_path
    state_dir = var.work_dir
  })
  depends_on = [step.copy_ok]
  timeout    = "48h"
  rollback   = native
  retry {
    attempts  = 5
    delay     = "30s"
    backoff   = "exponential"
    max_delay = "10m"
  }
}

step "core.assert" "verify" {
  with = {
    condition = step.copy.outputs.error_count == 0 && step.copy.outputs.files + step.copy.outputs.skipped_count == step.inventory.outputs.files
    message   = "copied ${step.copy.outputs.files} + skipped ${step.copy.outputs.skipped_count} files, with ${step.copy.outputs.error_count} errors, but the inventory found ${step.inventory.outputs.files}"
  }
}

step "nextcloud.update_migration" "completed" {
  when = local.tracking
  with = merge(local.doc, {
    status         = "completed"
    files_imported = step.copy.outputs.files
    bytes_imported = step.copy.outputs.bytes
    errors         = step.copy.outputs.errors
    skipped        = step.copy.outputs.skipped
  })
  depends_on = [step.verify]
  rollback {
    action = nextcloud.update_migration
    with   = merge(local.doc, { status = "failed", failure_reason = "the import was rolled back after it completed" })
  }
}

step "core.approve" "delete_ok" {
  when = var.delete_source
  with = {
    prompt = "The copy is verified (${step.copy.outputs.files} files). Delete every top-level entry of ${var.nextcloud_url}${var.source_path} for ${step.probe.outputs.user_id}? This cannot be undone${var.empty_trash ? ", and the trash bin is emptied" : ""}."
  }
  depends_on = [step.completed]
  # Saying no keeps the copy and the source: only the deletion is skipped.
  on_failure = "continue"
}

# Irreversible: the point of no return. A failure here must not undo the
# copy (part of the source may be gone): the run stops for an operator.
step "nextcloud.delete_source" "delete_source" {
  when = var.delete_source
  with = merge(local.nc, {
    user_id     = step.probe.outputs.user_id
    path        = var.source_path
    empty_trash = var.empty_trash
  })
  depends_on = [step.delete_ok]
  on_failure = "abort"
}

step "nextcloud.update_migration" "source_deleted" {
  when       = local.tracking && var.delete_source
  with       = merge(local.doc, { source_deleted = true })
  depends_on = [step.delete_source]
}

output "files" {
  value = step.copy.outputs.files
}

output "bytes" {
  value = step.copy.outputs.bytes
}

output "skipped" {
  value = step.copy.outputs.skipped
}

output "errors" {
  value = step.copy.outputs.errors
}

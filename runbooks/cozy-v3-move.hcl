runbook "cozy-v3-move" {
  description = "Move one Cozy v3 instance's CouchDB data to another CouchDB: every PREFIX/... database (or the databases named), their _security, and its global/instances record. The files themselves live on disk or in Swift and move separately."
  lock        = "cozy-v3-move"
}

variable "source_url" {
  type      = string
  sensitive = true
}

variable "source_username" {
  type    = string
  default = "admin"
}

variable "source_password" {
  type      = string
  sensitive = true
}

variable "target_url" {
  type      = string
  sensitive = true
}

variable "target_username" {
  type    = string
  default = "admin"
}

variable "target_password" {
  type      = string
  sensitive = true
}

variable "domain" {
  type        = string
  description = "The instance's domain, e.g. alice.example.net."
}

variable "prefix" {
  type        = string
  default     = ""
  description = "Its database prefix (cozy-stack instances show DOMAIN: the db_prefix, or the domain with . and : as -); every PREFIX/... database of the source moves. Set this or databases."
}

variable "databases" {
  type        = list(string)
  default     = []
  description = "The instance's databases, named one by one (e.g. [\"alice-example-net/io-cozy-files\", ...]), for a source that cannot list them by prefix (pouchdb-server's _all_dbs drops the slash). When given, prefix is not used to find them."
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
    # Named databases win over the prefix.
    databases = length(var.databases) > 0 ? var.databases : null
    prefix    = length(var.databases) > 0 ? null : var.prefix
  }
}

step "couchdb.check" "source" {
  with = merge(local.source, {
    prefix    = length(var.databases) > 0 ? null : var.prefix
    databases = concat(["global/instances"], var.databases)
  })
}

step "couchdb.check" "target" {
  with = local.target
}

step "couchdb.find" "instance" {
  with = merge(local.source, {
    database = "global/instances"
    selector = { domain = var.domain }
  })
  depends_on = [step.source]
}

step "core.assert" "one_instance" {
  with = {
    condition = step.instance.outputs.count == 1
    message   = "expected exactly one global/instances record for ${var.domain}, found ${step.instance.outputs.count}"
  }
}

# Creates the missing databases. Native undo deletes those it created and,
# in databases that existed on the target, the revisions it wrote (it says
# what it leaves: revisions written over since stop it without -force).
step "couchdb.replicate" "databases" {
  with       = merge(local.pair, { create_target = true, workers = var.workers })
  depends_on = [step.one_instance, step.target]
  timeout    = "24h"
  rollback   = native
  retry {
    attempts = 5
    backoff  = "exponential"
    delay    = "10s"
  }
}

# Replication does not carry _security.
step "couchdb.copy_security" "security" {
  with       = local.pair
  depends_on = [step.databases]
  rollback   = native
}

step "couchdb.verify" "verify" {
  with       = local.pair
  depends_on = [step.security]
}

# Last: the instance only exists on the target once its data is there.
step "couchdb.put_doc" "instance_record" {
  with = merge(local.target, {
    database        = "global/instances"
    doc             = step.instance.outputs.docs[0]
    create_database = true
  })
  depends_on = [step.verify]
  rollback   = native
}

output "databases" {
  value = step.databases.outputs.databases
}

output "documents_written" {
  value = step.databases.outputs.documents_written
}

output "revisions_written" {
  value = step.databases.outputs.revisions_written
}

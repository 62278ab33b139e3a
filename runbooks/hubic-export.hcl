runbook "hubic-export" {
  description = "Move every container of a HubiC account (OAuth2 API handing out OpenStack Swift credentials) to another Swift account, verify counts, bytes and ETags, and optionally empty the source after a second approval."
  lock        = "hubic-export"
}

variable "hubic_client_id" {
  type        = string
  description = "OAuth client id of the application registered with HubiC."
}

variable "hubic_client_secret" {
  type      = string
  sensitive = true
}

variable "hubic_refresh_token" {
  type        = string
  sensitive   = true
  description = "Refresh token from hubic.authorize (a one-step runbook, or `runbook plugins schema hubic`)."
}

variable "hubic_api_url" {
  type    = string
  default = "https://api.hubic.com"
}

variable "target_auth_url" {
  type        = string
  description = "Swift v1.0 auth URL of the target account (tempauth, or a gateway)."
}

variable "target_user" {
  type        = string
  description = "Target X-Auth-User, e.g. account:user."
}

variable "target_key" {
  type      = string
  sensitive = true
}

variable "containers" {
  type        = list(string)
  default     = []
  description = "Containers to move; empty moves every container (HubiC keeps data in `default` and its segments in `default_segments`)."
}

variable "workers" {
  type    = number
  default = 12
}

variable "delete_source" {
  type        = bool
  default     = false
  description = "After a verified copy and a second approval, delete the copied containers from the source."
}

locals {
  hubic = {
    api_url       = var.hubic_api_url
    client_id     = var.hubic_client_id
    client_secret = var.hubic_client_secret
    refresh_token = var.hubic_refresh_token
  }
  # The swift actions get their source credentials from HubiC themselves,
  # so a Swift token refused in the middle of a long copy is renewed.
  pair = {
    source_hubic_api_url       = var.hubic_api_url
    source_hubic_client_id     = var.hubic_client_id
    source_hubic_client_secret = var.hubic_client_secret
    source_hubic_refresh_token = var.hubic_refresh_token
    target_auth_url            = var.target_auth_url
    target_user                = var.target_user
    target_key                 = var.target_key
  }
}

step "hubic.credentials" "credentials" {
  with = local.hubic
}

step "hubic.usage" "usage" {
  with = local.hubic
}

step "swift.list" "source" {
  with = {
    storage_url = step.credentials.outputs.storage_url
    token       = step.credentials.outputs.token
    limit       = 100000
  }
}

locals {
  containers = length(var.containers) > 0 ? var.containers : step.source.outputs.names
}

step "core.approve" "approve_copy" {
  with = {
    prompt = "The HubiC account holds ${step.source.outputs.objects} objects, ${step.source.outputs.bytes} bytes in ${step.source.outputs.count} containers (HubiC reports ${step.usage.outputs.used_human} used). Copy ${join(", ", local.containers)} to ${var.target_user} at ${var.target_auth_url}?"
  }
}

step "swift.copy" "copy" {
  with = merge(local.pair, {
    containers = local.containers
    workers    = var.workers
  })
  depends_on = [step.approve_copy]
  timeout    = "72h"
  retry {
    attempts = 5
    backoff  = "exponential"
    delay    = "30s"
  }
  # Deletes only what the copy created, and only if unchanged since.
  rollback = native
}

step "swift.verify" "verify" {
  with       = merge(local.pair, { containers = local.containers })
  depends_on = [step.copy]
}

step "core.approve" "approve_delete" {
  when = var.delete_source
  with = {
    prompt = "Verified: ${step.verify.outputs.objects} objects, ${step.verify.outputs.bytes} bytes are identical at the target. Delete ${join(", ", local.containers)} from HubiC? This cannot be undone."
  }
}

step "swift.delete" "delete_source" {
  when = var.delete_source
  with = {
    hubic_api_url       = var.hubic_api_url
    hubic_client_id     = var.hubic_client_id
    hubic_client_secret = var.hubic_client_secret
    hubic_refresh_token = var.hubic_refresh_token
    containers          = local.containers
  }
  depends_on = [step.approve_delete]
}

output "copied" {
  value = step.copy.outputs.copied
}

output "objects" {
  value = step.verify.outputs.objects
}

output "bytes" {
  value = step.verify.outputs.bytes
}

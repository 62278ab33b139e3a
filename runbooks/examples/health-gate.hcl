# Wait for a service to be healthy, ask an operator, then flip a switch file.
# Shows retry, timeout, core.http checks, core.approve, always and on_failure.
#
#   runbook plan runbooks/examples/health-gate.hcl -var url=http://127.0.0.1:8080

runbook "health-gate" {
  description = "Switch traffic to the new backend once it is healthy and approved"
  lock        = "health-gate"
}

variable "url" {
  type        = string
  description = "Base URL of the new backend."
}

variable "switch_file" {
  type    = string
  default = "/tmp/runbook-health-gate.active"
}

variable "checks" {
  type = object({
    path   = optional(string, "/health")
    status = optional(list(number), [200])
    wait   = optional(string, "30s")
  })
  default = {}
}

step "core.http" "healthy" {
  with = {
    url           = "${var.url}${var.checks.path}"
    expect_status = var.checks.status
    retry_for     = var.checks.wait
  }
  timeout = "2m"
}

step "core.approve" "go" {
  with = {
    prompt  = "${var.url} answered ${step.healthy.outputs.status}. Switch traffic to it?"
    timeout = "1h"
  }
}

step "core.file" "switch" {
  with = {
    path    = var.switch_file
    content = "${var.url}\n"
  }
  depends_on = [step.go]
  rollback   = native
}

step "core.http" "after" {
  with = {
    url       = "${var.url}${var.checks.path}"
    retry_for = "10s"
  }
  depends_on = [step.switch]
  retry {
    attempts = 3
    delay    = "2s"
    backoff  = "exponential"
  }
}

step "core.exec" "notify" {
  with = {
    command = "logger"
    args    = ["-t", "runbook", "health-gate finished for ${var.url}"]
  }
  depends_on = [step.after]
  always     = true
  on_failure = "continue"
}

output "approved_by" {
  value = step.go.outputs.approved_by
}

# The smallest useful runbook: write a file, check it, undo on failure.
#
#   runbook plan  runbooks/examples/hello.hcl -var name=ops
#   runbook apply runbooks/examples/hello.hcl -var name=ops

runbook "hello" {
  description = "Write a greeting file and check its content"
  lock        = "hello/${var.name}"
}

variable "name" {
  type        = string
  description = "Who to greet."
  default     = "world"
  validation {
    condition     = can(regex("^[a-z0-9-]+$", var.name))
    error_message = "Use lowercase letters, digits and dashes only: the name becomes part of a file name."
  }
}

variable "dir" {
  type        = string
  description = "Directory to write the greeting into."
  default     = "/tmp"
}

locals {
  path    = "${var.dir}/runbook-hello-${var.name}.txt"
  content = "Hello, ${var.name}!\n"
}

step "core.file" "greeting" {
  with = {
    path    = local.path
    content = local.content
    mode    = "0644"
  }
  rollback = native # restores the previous content, or removes the file
}

step "core.assert" "written" {
  with = {
    condition = step.greeting.outputs.sha256 == sha256(local.content)
    message   = "${local.path} does not hold the greeting"
  }
}

output "path" {
  value = local.path
}

output "sha256" {
  value = step.greeting.outputs.sha256
}

runbook "hello" {
  description = "Write a greeting file, check it, and undo it if anything fails"
  lock        = "hello/${var.name}"
}

variable "name" {
  type        = string
  description = "Who to greet."
  default     = "world"
  validation {
    condition     = length(var.name) > 0
    error_message = "The name must not be empty."
  }
}

variable "dir" {
  type        = string
  description = "Directory to write the greeting into."
  default     = "/tmp"
}

locals {
  path = "${var.dir}/runbook-hello-${var.name}.txt"
}

step "core.exec" "who" {
  with = { command = "id", args = ["-un"] }
  rollback {
    action = core.noop
    with   = { values = "nothing to undo for ${self.outputs.stdout}" }
  }
}

step "core.file" "greeting" {
  with = {
    path    = local.path
    content = "Hello, ${var.name}! Written by ${trimspace(step.who.outputs.stdout)} in run ${run.id}.\n"
    mode    = "0644"
  }
  rollback = native
}

step "core.exec" "check" {
  with = { command = "cat", args = [step.greeting.inputs.path] }
}

step "core.assert" "content" {
  with = {
    condition = strcontains(step.check.outputs.stdout, var.name)
    message   = "the greeting file does not mention ${var.name}"
  }
}

output "greeting_sha256" {
  value = step.greeting.outputs.sha256
}

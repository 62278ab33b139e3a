# Quick start: roll out a configuration to three "services", check each one,
# and keep everything reversible. Needs no server.
#
#   runbook plan     runbooks/examples/quickstart.hcl
#   runbook apply    runbooks/examples/quickstart.hcl -auto-approve
#   runbook rollback            # puts every file back as it was
#
# Make a step fail to watch the automatic rollback:
#   runbook apply runbooks/examples/quickstart.hcl -auto-approve -var fail=true

runbook "quickstart" {
  description = "Write a config for each service, check it, undo on failure"
  lock        = "quickstart"
}

variable "dir" {
  type        = string
  description = "Where the demo writes its files."
  default     = "/tmp/runbook-quickstart"
}

variable "services" {
  type    = list(string)
  default = ["api", "worker", "scheduler"]
  validation {
    condition     = length(var.services) > 0
    error_message = "Name at least one service."
  }
}

variable "fail" {
  type        = bool
  description = "Make the final check fail, to see the rollback."
  default     = false
}

step "core.exec" "prepare" {
  with = {
    command = "mkdir"
    args    = ["-p", var.dir]
  }
  rollback {
    action = core.exec
    with = {
      command = "rmdir"
      args    = ["--ignore-fail-on-non-empty", var.dir]
    }
  }
}

step "core.file" "config" {
  for_each = toset(var.services)
  with = {
    path    = "${var.dir}/${each.key}.conf"
    content = "service = \"${each.key}\"\nlisten  = \"127.0.0.1\"\n"
    mode    = "0644"
  }
  depends_on = [step.prepare]
  rollback   = native # restores the previous content, or removes the file
}

step "core.exec" "check" {
  for_each = toset(var.services)
  with = {
    command = "grep"
    args    = ["-q", "service = \"${each.key}\"", "${var.dir}/${each.key}.conf"]
  }
  depends_on = [step.config]
}

step "core.assert" "done" {
  with = {
    condition = !var.fail
    message   = "asked to fail (fail = true): every config written above is now rolled back"
  }
  depends_on = [step.check]
}

output "configs" {
  value = { for k, s in step.config : k => s.outputs.sha256 }
}

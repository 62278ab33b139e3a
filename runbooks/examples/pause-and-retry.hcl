# A flaky command retried with backoff, a pause, and a command-based rollback.
#
#   runbook plan runbooks/examples/pause-and-retry.hcl

runbook "pause-and-retry" {
  description = "Create a work directory, wait, fill it, remove it on failure"
}

variable "workdir" {
  type    = string
  default = "/tmp/runbook-pause-and-retry"
}

step "core.exec" "mkdir" {
  with = {
    command = "mkdir"
    args    = ["-p", var.workdir]
  }
  rollback {
    action = core.exec
    with = {
      command = "rm"
      args    = ["-rf", self.inputs.args[1]]
    }
  }
}

step "core.sleep" "settle" {
  with       = { duration = "1s" }
  depends_on = [step.mkdir]
}

step "core.exec" "fill" {
  with = {
    command = "sh"
    args    = ["-c", "date -u > ${var.workdir}/created && cat ${var.workdir}/created"]
    timeout = "30s"
  }
  depends_on = [step.settle]
  retry {
    attempts  = 4
    delay     = "500ms"
    backoff   = "exponential"
    max_delay = "5s"
  }
  rollback {
    action = core.exec
    with = {
      command = "rm"
      args    = ["-f", "${var.workdir}/created"]
    }
  }
}

step "core.assert" "filled" {
  with = {
    condition = length(trimspace(step.fill.outputs.stdout)) > 0
    message   = "the work directory is empty"
  }
}

output "created" {
  value = trimspace(step.fill.outputs.stdout)
}

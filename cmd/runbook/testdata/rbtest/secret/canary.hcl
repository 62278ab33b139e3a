variable "token" {
  type      = string
  sensitive = true
}

variable "dir" {
  type = string
}

step "core.file" "token" {
  with     = { path = "${var.dir}/token", content = var.token }
  rollback = native
}

step "core.assert" "check" {
  with = {
    condition = fileexists("${var.dir}/nothing")
    message   = "no ${var.token} here"
  }
  depends_on = [step.token]
}

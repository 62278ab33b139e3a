variable "dir" {
  type = string
}

step "core.file" "config" {
  with     = { path = "${var.dir}/config", content = "on\n" }
  rollback = native
}

# Writes a file no rollback removes.
step "core.exec" "cache" {
  with       = { command = "touch", args = ["${var.dir}/cache"] }
  depends_on = [step.config]
}

step "core.assert" "done" {
  with       = { condition = true }
  depends_on = [step.cache]
}

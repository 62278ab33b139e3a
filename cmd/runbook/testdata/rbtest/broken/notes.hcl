variable "dir" {
  type = string
}

step "core.file" "first" {
  with     = { path = "${var.dir}/first", content = "1\n" }
  rollback = native
}

# No rollback: what it writes stays when a later step fails.
step "core.file" "second" {
  with       = { path = "${var.dir}/second", content = "2\n" }
  depends_on = [step.first]
}

step "core.assert" "last" {
  with       = { condition = true }
  depends_on = [step.second]
}

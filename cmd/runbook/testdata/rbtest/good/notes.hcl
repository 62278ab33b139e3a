variable "dir" {
  type = string
}

step "core.file" "first" {
  with     = { path = "${var.dir}/first", content = "1\n" }
  rollback = native
}

step "core.file" "second" {
  with       = { path = "${var.dir}/second", content = "2\n" }
  depends_on = [step.first]
  rollback   = native
}

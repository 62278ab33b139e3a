variable "prefix" {
  type    = string
  default = "n"
}

step "demo.put" "first" {
  with     = { name = "${var.prefix}-1" }
  rollback = native
}

# Forgot `rollback = native`.
step "demo.put" "second" {
  with       = { name = "${var.prefix}-2" }
  depends_on = [step.first]
}

step "demo.check" "last" {
  depends_on = [step.second]
}

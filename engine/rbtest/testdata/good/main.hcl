runbook "demo" {
  description = "A runbook of every kind of step"
}

variable "prefix" {
  type = string
}

step "demo.put" "a" {
  with     = { name = "${var.prefix}-a" }
  rollback = native
}

step "demo.check" "check" {
  depends_on = [step.a]
}

step "demo.put" "b" {
  for_each   = toset(["x", "y"])
  with       = { name = "${step.a.outputs.id}-${each.key}" }
  depends_on = [step.check]
  rollback   = native
}

step "demo.note" "note" {
  with       = { text = "done" }
  depends_on = [step.b]
}

step "demo.put" "c" {
  with       = { name = "${var.prefix}-c" }
  depends_on = [step.note]
  rollback {
    action = demo.remove
    with   = { id = self.inputs.name }
  }
}

step "demo.note" "cleanup" {
  with       = { text = "bye" }
  depends_on = [step.c]
  always     = true
}

output "a" {
  value = step.a.outputs.id
}

runbook "graph-demo" {}

variable "dbs" {
  type    = set(string)
  default = ["a", "b"]
}

step "core.http" "check" {
  with = { url = "http://x" }
}

step "core.exec" "copy" {
  for_each = var.dbs
  with     = { command = "copy", args = [each.key, step.check.outputs.body] }
  rollback {
    action = core.exec
    with   = { command = "drop", args = [each.key] }
  }
}

step "core.exec" "reindex" {
  with       = { command = "reindex" }
  depends_on = [step.copy]
}

step "core.file" "switch" {
  with     = { path = "/x", content = step.reindex.outputs.stdout }
  rollback = native
}

step "core.exec" "unlock" {
  with       = { command = "unlock" }
  depends_on = [step.switch]
  always     = true
}

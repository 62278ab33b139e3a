runbook   = "../good/main.hcl"
variables = { prefix = "t" }
sweep     = "fail"

# The undo of b["y"] fails: the sweep must say so.
mock "demo.put" {
  step         = "b[\"y\"]"
  outputs      = { id = "mocked" }
  undo_error   = "conflict"
  undo_message = "someone changed it since"
}

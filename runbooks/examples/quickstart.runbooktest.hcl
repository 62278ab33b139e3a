# Tests of quickstart.hcl: real core.exec and core.file in a temporary
# directory.
variables = { dir = "${tempdir()}/quickstart", services = ["api", "worker"] }
sweep     = "fail"

restored {
  condition     = !fileexists("${var.dir}/api.conf") && !fileexists("${var.dir}/worker.conf")
  error_message = "a config file survived the rollback"
}

run "writes_every_config" {
  assert {
    condition = file("${var.dir}/api.conf") == "service = \"api\"\nlisten  = \"127.0.0.1\"\n"
  }
  assert {
    condition = keys(step.config) == ["api", "worker"]
  }
}

run "asked_to_fail" {
  variables = { fail = true }
  expect    = "rolled_back"
  assert {
    condition     = !fileexists("${var.dir}/api.conf") && !fileexists("${var.dir}/worker.conf")
    error_message = "a config file survived the rollback"
  }
  assert {
    condition     = run.undo_order[length(run.undo_order) - 1] == "prepare"
    error_message = "the directory is removed last, once empty"
  }
}

# Tests of health-gate.hcl: the backend's health checks and the approval are
# mocked; core.file writes the switch file into a temporary directory.
variables = {
  url         = "http://backend.test"
  switch_file = "${tempdir()}/active"
}
sweep = ["fail", "crash"]

# After every rollback of a sweep: traffic is not switched.
restored {
  condition     = !fileexists(var.switch_file)
  error_message = "the switch file survived the rollback"
}

mock "core.http" {
  outputs = { status = 200 }
}

mock "core.approve" {
  outputs = { approved_by = "alice" }
}

mock "core.exec" {
  step    = "notify"
  outputs = { exit_code = 0 }
}

run "switches" {
  assert {
    condition = file(var.switch_file) == "http://backend.test\n" && run.outputs.approved_by == "alice"
  }
}

run "unhealthy_after_switch" {
  expect = "rolled_back"
  mock "core.http" {
    step  = "after"
    error = "unreachable"
  }
  assert {
    condition     = !fileexists(var.switch_file)
    error_message = "the switch was not undone"
  }
  assert {
    condition     = step.notify.state == "succeeded"
    error_message = "notify is an always step"
  }
}

run "rejected" {
  expect = "rolled_back"
  mock "core.approve" {
    error = "rejected"
  }
  assert {
    condition = step.switch.state == "pending" && !fileexists(var.switch_file)
  }
}

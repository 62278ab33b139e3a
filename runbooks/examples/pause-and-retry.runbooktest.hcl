# Tests of pause-and-retry.hcl: real core.exec in a temporary directory; the
# pause is mocked away.
variables = { workdir = "${tempdir()}/work" }
sweep     = ["fail", "crash"]

restored {
  condition = !fileexists("${var.workdir}/created")
}

mock "core.sleep" {}

run "fills_the_directory" {
  assert {
    condition = length(trimspace(file("${var.workdir}/created"))) > 0
  }
}

run "flaky_fill_is_rolled_back" {
  expect = "rolled_back"
  mock "core.exec" {
    step      = "fill"
    error     = "unreachable"
    retryable = true
  }
  assert {
    condition     = step.fill.attempts == 4
    error_message = "fill is tried four times"
  }
  assert {
    condition = run.undo_order == ["fill", "mkdir"] || run.undo_order == ["mkdir"]
  }
}

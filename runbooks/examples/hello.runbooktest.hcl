# Tests of hello.hcl (see docs/testing.md). Nothing is mocked: core.file
# writes into a temporary directory of this file's own.
variables = { name = "test", dir = tempdir() }

# Fail each step in turn, then crash the engine at each step, resume and
# roll back: the greeting file must be gone every time.
sweep = ["fail", "crash"]

# After every rollback of a sweep: the greeting file is gone.
restored {
  condition     = !fileexists("${var.dir}/runbook-hello-test.txt")
  error_message = "the greeting file survived the rollback"
}

run "greets" {
  assert {
    condition     = file(run.outputs.path) == "Hello, test!\n"
    error_message = "the greeting file does not hold the greeting"
  }
  assert {
    condition = step.greeting.state == "succeeded" && step.written.state == "succeeded"
  }
}

run "failed_check_removes_the_file" {
  expect = "rolled_back"
  mock "core.assert" {
    error   = "assertion"
    message = "the file does not hold the greeting"
  }
  assert {
    condition     = !fileexists(step.greeting.inputs.path)
    error_message = "the rollback left the greeting file"
  }
  assert {
    condition = run.undo_order == ["greeting"]
  }
}

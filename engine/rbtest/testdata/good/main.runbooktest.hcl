variables = { prefix = "t" }

sweep = ["fail", "crash"]

mock "demo.check" {
  outputs = { ok = true }
}

run "happy" {
  assert {
    condition     = step.a.outputs.id == "t-a"
    error_message = "a's id is its name"
  }
  assert {
    condition = step.b["x"].outputs.id == "t-a-x" && step.b["y"].state == "succeeded"
  }
  assert {
    condition = run.outputs.a == "t-a" && length(run.undo_order) == 0
  }
}

run "c_fails" {
  expect = "rolled_back"
  mock "demo.put" {
    step    = "c"
    error   = "unreachable"
    message = "the server is gone"
  }
  assert {
    condition     = run.undo_order[length(run.undo_order) - 1] == "a"
    error_message = "a is undone last"
  }
  assert {
    condition = contains(run.undo_order, "b[\"x\"]") && !contains(run.undo_order, "c")
  }
  assert {
    condition = contains([for e in run.events : e.type if e.step == "cleanup"], "step_succeeded")
  }
}

run "checkpoints" {
  mock "demo.put" {
    step        = "c"
    outputs     = { id = "mocked-c" }
    checkpoints = ["one", "two"]
    delay       = "10ms"
  }
  assert {
    condition = length([for e in run.events : e if e.type == "step_checkpoint" && e.step == "c"]) == 2
  }
  assert {
    condition = [for e in run.effects : e.mocked if e.step == "c"] == [true] && step.c.outputs.id == "mocked-c"
  }
}

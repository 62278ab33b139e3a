runbook   = "../good/main.hcl"
variables = { prefx = "t" }

mock "demo.put" {
  step    = "bb"
  outputs = { idd = "x" }
}

mock "demo.nope" {}

mock "nodot" {}

run "x" {
  expect = "done"
  mock "demo.check" {
    error = "oops"
  }
}

run "x" {}

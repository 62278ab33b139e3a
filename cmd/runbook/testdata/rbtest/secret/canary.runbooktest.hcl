variables = { token = "canary-s3cr3t-7731", dir = tempdir() }
sweep     = ["fail", "crash"]

run "fails" {
  expect = "succeeded"
  assert {
    condition     = false
    error_message = "the token is ${step.token.inputs.content}"
  }
}

sweep = "fail"

run "approved" {
  mock "core.approve" {
    outputs = { approved_by = "test" }
  }
}

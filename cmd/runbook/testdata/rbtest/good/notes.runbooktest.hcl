variables = { dir = tempdir() }
sweep     = "fail"

run "writes" {
  assert {
    condition = file("${var.dir}/second") == "2\n"
  }
}

variables = { dir = tempdir() }
sweep     = "fail"

run "writes" {
  assert {
    condition = file("${var.dir}/second") == "2\n"
  }
}

restored {
  condition = !fileexists("${var.dir}/first") && !fileexists("${var.dir}/second")
}

variables = { dir = tempdir() }
sweep     = "fail"

restored {
  condition     = !fileexists("${var.dir}/config") && !fileexists("${var.dir}/cache")
  error_message = "a file survived the rollback"
}

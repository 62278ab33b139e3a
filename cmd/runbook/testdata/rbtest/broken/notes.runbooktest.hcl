variables = { dir = tempdir() }
sweep     = "fail"

sweep = "fail"

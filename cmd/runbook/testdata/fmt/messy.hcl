runbook "messy" {
description="badly formatted"
    lock = "x"
}
variable "n" {
  type=number
  default =   1
}
step "core.exec" "a" {
  with = {
    command = "echo"
      args = ["a","b"]
    env = {A="1", LONGER_NAME="2"}
  }
  timeout="5m"
}

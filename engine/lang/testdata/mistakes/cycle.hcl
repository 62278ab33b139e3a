# Two steps that wait for each other, and a type error in `with`.
variable "replicas" {
  type    = number
  default = 2
}

step "core.exec" "stop_old" {
  with = {
    command = "systemctl"
    args    = ["stop", "app@${step.start_new.outputs.stdout}"]
  }
}

step "core.exec" "start_new" {
  with = {
    command = "systemctl"
    args    = "start app --replicas ${var.replicas}"
  }
  depends_on = [step.stop_old]
}

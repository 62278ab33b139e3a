# An unknown input, a wrong type from a variable, a missing required input,
# a for_each over a list, and variables nobody set.
variable "hosts" {
  type = list(string)
}

variable "token" {
  type      = string
  sensitive = true
}

step "core.http" "ping" {
  for_each = var.hosts
  with = {
    url           = "https://${each.key}/health"
    expect_status = 200
    tokn          = var.token
  }
}

step "core.file" "marker" {
  with = {
    path = "/var/run/migrated"
  }
  rollback = native
}

# A new user's first runbook: a typo in a variable reference and in a step
# output, and a required variable they forgot to set.
variable "domain" {
  type        = string
  description = "The instance to back up, e.g. alice.example.org."
}

step "core.exec" "dump" {
  with = {
    command = "pg_dump"
    args    = ["--dbname", "cozy_${var.domian}"]
  }
}

step "core.file" "save" {
  with = {
    path    = "/backups/${var.domain}.sql"
    content = step.dump.outputs.stdot
  }
  rollback = native
}

runbook   = "notes.hcl"
variables = { dri = "/tmp" }

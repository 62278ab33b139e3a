# Tests of synapse-to-mas.hcl (see docs/testing.md). Synapse, MAS, the
# databases, the approval and the final HTTP check are mocked; the service
# commands are `true`, and core.file and core.exec run for real in a
# temporary directory.
variables = {
  server_name                = "matrix.test"
  synapse_database_url       = "postgres://synapse:secret@db.test/synapse"
  mas_database_url           = "postgres://mas:secret@db.test/mas"
  backup_dir                 = tempdir()
  homeserver_config          = "${tempdir()}/homeserver.yaml"
  homeserver_config_with_mas = "server_name: matrix.test\nmatrix_authentication_service:\n  enabled: true\n"
  mas_cli                    = "true"
  stop_synapse               = ["true"]
  start_synapse              = ["true"]
  stop_mas                   = ["true"]
  start_mas                  = ["true"]
  verify_url                 = "http://matrix.test/_matrix/client/versions"
}

sweep = ["fail", "crash"]

# After every rollback of a sweep: Synapse is not configured for MAS.
restored {
  condition     = !fileexists(var.homeserver_config)
  error_message = "the MAS homeserver config survived the rollback"
}

mock "synapse.check" {
  outputs = { errors = [], warnings = ["one provider has no icon"], counts = { users = 1200 } }
}

# pg_dump and the copy of the config.
mock "core.exec" {
  step    = "backup"
  outputs = { exit_code = 0 }
}

mock "core.approve" {
  outputs = { approved_by = "operator" }
}

mock "synapse.migrate" {
  outputs = {
    migrated         = { users = 1200, devices = 3400 }
    skipped          = { users = 0 }
    dry_run          = false
    duration_seconds = 42
  }
}

mock "core.http" {
  outputs = { status = 200 }
}

run "migrates" {
  assert {
    condition = run.outputs.migrated.users == 1200 && run.outputs.dry_run_seconds == 42
  }
  assert {
    condition     = file(var.homeserver_config) == var.homeserver_config_with_mas
    error_message = "Synapse is not configured for MAS"
  }
  assert {
    condition     = trimspace(step.ensure_synapse.outputs.stdout) == "migration completed; Synapse keeps the MAS config"
    error_message = "ensure_synapse must leave a completed migration alone"
  }
}

run "clients_cannot_log_in" {
  expect = "rolled_back"
  mock "core.http" {
    error   = "unreachable"
    message = "502 from the reverse proxy"
  }
  assert {
    condition     = !fileexists(var.homeserver_config)
    error_message = "the MAS homeserver config was not undone"
  }
  assert {
    condition     = step.ensure_synapse.state == "undone"
    error_message = "ensure_synapse is an always step: it runs, then is undone"
  }
  assert {
    condition     = [for s in run.undo_order : s if contains(["start_synapse", "start_mas", "migrate", "stop_synapse"], s)] == ["start_synapse", "start_mas", "migrate", "stop_synapse"]
    error_message = "undo goes in reverse order: Synapse stops before MAS, the migration is undone before Synapse starts again"
  }
}

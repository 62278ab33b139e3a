# Tests of nextcloud-import.hcl (see docs/testing.md). Nextcloud is mocked;
# runbooks/nextcloud_test.go runs it against Apache mod_dav.
variables = {
  nextcloud_url = "https://cloud.test"
  login         = "alice@example.test"
  password      = "app-password-secret"
  target_dir    = "/srv/import/alice"
  work_dir      = "/var/lib/runbook/nextcloud"
  delete_source = true
  tracking_dir  = "/var/lib/runbook/tracking"
  instance      = "alice.cozy.test"
  migration_id  = "m1"
}

sweep = ["fail", "crash"]

mock "nextcloud.probe" {
  outputs = { user_id = "alice", display_name = "Alice", quota_used = 4096, quota_total = 10737418240 }
}

mock "nextcloud.inventory" {
  outputs = { user_id = "alice", files = 4, folders = 3, bytes = 4106, with_checksums = 0, manifest = "/var/lib/runbook/nextcloud/manifest-alice.jsonl" }
}

mock "nextcloud.copy" {
  outputs = { files = 4, bytes = 4106, folders_created = 4, resumed = 0, verified_with_server_checksum = 0, skipped = [], skipped_count = 0, errors = [], error_count = 0, changed = [] }
}

mock "nextcloud.update_migration" {
  outputs = { status = "running" }
}

mock "nextcloud.delete_source" {
  outputs = { deleted = 3, deleted_paths = ["a.txt", "Docs", "Photos"], errors = [] }
}

mock "core.approve" {
  outputs = { approved_by = "ops", at = "2026-12-04T10:00:00Z" }
}

run "imports_then_deletes_the_source_after_two_approvals" {
  assert {
    condition = run.outputs.files == 4 && step.delete_source.state == "succeeded" && step.source_deleted.inputs.source_deleted
  }
  assert {
    condition     = step.completed.inputs.status == "completed" && step.completed.inputs.files_imported == 4
    error_message = "the tracking document is completed with the copy's counts"
  }
}

run "imports_into_a_cozy_instance" {
  variables = { cozy_url = "https://alice.cozy.test", cozy_token = "cozy-token-secret", target_dir = "" }
  assert {
    condition     = step.copy.inputs.target_vendor == "cozy" && step.copy.inputs.target_url == "https://alice.cozy.test" && step.copy.inputs.target_path == "/Nextcloud"
    error_message = "the copy goes to the Cozy files API"
  }
  assert {
    condition     = step.copy.inputs.target_dir == null
    error_message = "no local target with a Cozy one"
  }
}

run "keeps_the_source_unless_asked" {
  variables = { delete_source = false }
  assert {
    condition = step.delete_ok.state == "skipped" && step.delete_source.state == "skipped"
  }
}

run "a_failed_verification_undoes_the_copy_and_fails_the_migration" {
  expect = "rolled_back"
  mock "nextcloud.copy" {
    outputs = { files = 3, bytes = 100, skipped = [], skipped_count = 0, errors = [{ path = "a.txt", message = "HTTP 500" }], error_count = 1, changed = [] }
  }
  assert {
    condition     = contains(run.undo_order, "copy") && step.delete_source.state == "pending"
    error_message = "the copy is undone and nothing is deleted"
  }
  assert {
    condition     = [for e in run.effects : e.inputs.status if e.op == "undo" && e.step == "running"] == ["failed"]
    error_message = "the tracking document says failed"
  }
}

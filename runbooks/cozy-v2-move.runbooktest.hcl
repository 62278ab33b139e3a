# Tests of cozy-v2-move.hcl (see docs/testing.md). CouchDB is mocked: the
# servers below are never contacted.
variables = {
  source_url               = "http://old.test:5984"
  source_password          = "old-secret"
  target_url               = "http://new.test:5984"
  target_password          = "new-secret"
  target_placeholder_email = "placeholder@example.test"
  backup_path              = "/backups/cozy.json.gz"
}

sweep = ["fail", "crash"]

mock "couchdb.check" {
  outputs = { version = "2.3.1", admin = true }
}

mock "couchdb.dump" {
  outputs = { path = "/backups/cozy.json.gz", docs = 120 }
}

mock "couchdb.find" {
  outputs = {
    docs  = [{ _id = "stack-drive", name = "drive", version = "3.0.0" }]
    count = 1
  }
}

mock "couchdb.replicate" {
  outputs = { databases = ["cozy"], documents_written = 118, revisions_written = 130 }
}

mock "couchdb.copy_security" {
  outputs = { databases = ["cozy"], changed = ["cozy"] }
}

# The copy's rollback restores the backup.
mock "couchdb.restore" {
  outputs = { database = "cozy", docs_written = 120 }
}

mock "core.approve" {
  outputs = { approved_by = "operator" }
}

mock "couchdb.delete_docs" {
  outputs = { deleted = ["doc-1"], count = 1 }
}

mock "couchdb.verify" {
  outputs = { ok = true, missing_revisions = 0 }
}

run "moves" {
  assert {
    condition = run.outputs.documents_written == 118 && run.outputs.revisions_written == 130 && run.outputs.backup == "/backups/cozy.json.gz"
  }
  assert {
    condition     = contains(step.old_stack_apps.inputs.exclude_ids, "stack-drive")
    error_message = "the target's own StackApplication documents are kept"
  }
  assert {
    condition = length(run.outputs.deleted) == 4
  }
}

run "verify_fails_restores_the_backup" {
  expect = "rolled_back"
  mock "couchdb.verify" {
    error   = "conflict"
    message = "12 revisions are missing on the target"
  }
  assert {
    condition     = run.undo_order[length(run.undo_order) - 1] == "copy"
    error_message = "the copy is undone last, after every deletion"
  }
  assert {
    condition     = [for e in run.effects : e.action if e.op == "undo" && e.step == "copy"] == ["couchdb.restore"]
    error_message = "the copy is undone by restoring the backup"
  }
}

run "cleanup_refused" {
  expect = "rolled_back"
  mock "core.approve" {
    error = "rejected"
  }
  assert {
    condition = step.applications.state == "pending" && run.undo_order == ["security", "copy"]
  }
}

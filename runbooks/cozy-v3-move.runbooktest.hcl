# Tests of cozy-v3-move.hcl (see docs/testing.md). CouchDB is mocked.
variables = {
  source_url      = "http://old.test:5984"
  source_password = "old-secret"
  target_url      = "http://new.test:5984"
  target_password = "new-secret"
  domain          = "alice.cozy.test"
  prefix          = "cozy4f3a"
}

sweep = ["fail", "crash"]

mock "couchdb.check" {
  outputs = { version = "3.3.3", admin = true }
}

mock "couchdb.find" {
  outputs = {
    docs  = [{ _id = "inst-1", domain = "alice.cozy.test", prefix = "cozy4f3a" }]
    count = 1
  }
}

mock "couchdb.replicate" {
  outputs = { databases = ["cozy4f3a/io-cozy-files", "cozy4f3a/io-cozy-settings"], documents_written = 3000, revisions_written = 3100 }
}

mock "couchdb.copy_security" {
  outputs = { databases = ["cozy4f3a/io-cozy-files"], changed = ["cozy4f3a/io-cozy-files"] }
}

mock "couchdb.verify" {
  outputs = { ok = true }
}

mock "couchdb.put_doc" {
  outputs = { id = "inst-1", rev = "1-abc", changed = true }
}

run "moves" {
  assert {
    condition = run.outputs.documents_written == 3000 && run.outputs.revisions_written == 3100 && length(run.outputs.databases) == 2
  }
  assert {
    condition     = step.instance_record.inputs.doc._id == "inst-1"
    error_message = "the instance record copied is the one found on the source"
  }
}

run "two_instances_stop_before_any_change" {
  expect = "rolled_back"
  mock "couchdb.find" {
    outputs = { docs = [{ _id = "a" }, { _id = "b" }], count = 2 }
  }
  assert {
    condition = step.databases.state == "pending" && length(run.undo_order) == 0
  }
}

run "record_refused_undoes_the_copy" {
  expect = "rolled_back"
  mock "couchdb.put_doc" {
    error = "conflict"
  }
  assert {
    condition = run.undo_order == ["security", "databases"]
  }
}

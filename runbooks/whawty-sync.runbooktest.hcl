# Tests of whawty-sync.hcl (see docs/testing.md). The stores are mocked.
variables = {
  master = "ssh://auth-master.test/var/lib/whawty/store"
  slaves = ["ssh://auth-1.test/var/lib/whawty/store", "ssh://auth-2.test/var/lib/whawty/store"]
  slave_configs = {
    "ssh://auth-1.test/var/lib/whawty/store" = "ssh://auth-1.test/etc/whawty/auth-store.yaml"
    "ssh://auth-2.test/var/lib/whawty/store" = "ssh://auth-2.test/etc/whawty/auth-store.yaml"
  }
}

sweep = ["fail", "crash"]

mock "whawty.check" {
  outputs = { ok = true, whawty_ok = true, users = 50, admins = 2 }
}

mock "whawty.sync" {
  outputs = { added = 1, updated = 2, deleted = 0, unchanged = 47, files = 50 }
}

run "syncs_every_slave" {
  assert {
    condition = length(run.outputs.synced) == 2 && run.outputs.synced["ssh://auth-1.test/var/lib/whawty/store"].updated == 2
  }
}

run "each_sync_judges_with_its_slaves_config" {
  assert {
    condition     = step.sync["ssh://auth-2.test/var/lib/whawty/store"].inputs.destination_config == "ssh://auth-2.test/etc/whawty/auth-store.yaml"
    error_message = "the sync gets the slave's own config"
  }
}

run "a_slave_lacking_the_masters_set_undoes_every_sync" {
  expect = "rolled_back"
  mock "whawty.sync" {
    step  = "sync[\"ssh://auth-2.test/var/lib/whawty/store\"]"
    error = "conflict"
  }
}

run "a_broken_slave_undoes_every_sync" {
  expect = "rolled_back"
  mock "whawty.check" {
    step  = "slave_check[\"ssh://auth-2.test/var/lib/whawty/store\"]"
    error = "conflict"
  }
  assert {
    condition     = length(run.undo_order) == 2
    error_message = "both slaves' syncs are undone"
  }
}

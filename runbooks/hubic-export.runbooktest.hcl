# Tests of hubic-export.hcl (see docs/testing.md). HubiC and Swift are mocked;
# runbooks/hubic_test.go runs it against a real Swift and the OAuth stand-in.
variables = {
  hubic_client_id     = "api_hubic_test"
  hubic_client_secret = "client-secret-canary"
  hubic_refresh_token = "refresh-token-canary"
  target_auth_url     = "http://swift.test:8080/auth/v1.0"
  target_user         = "test2:tester2"
  target_key          = "target-key-canary"
  delete_source       = true
}

sweep = ["fail", "crash"]

mock "hubic.credentials" {
  outputs = { storage_url = "http://swift.test:8080/v1/AUTH_test", token = "AUTH_tk_canary", expires = "2026-12-05T10:00:00Z" }
}

mock "hubic.usage" {
  outputs = { used = 36864, quota = 26843545600, free = 26843508736, used_human = "36.9 kB" }
}

mock "swift.list" {
  outputs = { names = ["default", "default_segments"], count = 2, objects = 36, bytes = 36864, truncated = false }
}

mock "swift.copy" {
  outputs = { containers = ["default", "default_segments"], copied = 36 }
}

mock "swift.verify" {
  outputs = { equal = true, objects = 36, bytes = 36864 }
}

mock "swift.delete" {
  outputs = { deleted = 36, bytes = 36864, containers_deleted = ["default", "default_segments"] }
}

mock "core.approve" {
  outputs = { approved_by = "ops", at = "2026-12-04T10:00:00Z" }
}

run "copies_verifies_then_deletes_after_two_approvals" {
  assert {
    condition     = run.outputs.objects == 36 && step.delete_source.state == "succeeded"
    error_message = "the verified copy is followed by the deletion of the source"
  }
  assert {
    condition     = length(step.copy.inputs.containers) == 2 && contains(step.copy.inputs.containers, "default_segments")
    error_message = "every listed container is copied"
  }
}

run "keeps_the_source_unless_asked" {
  variables = { delete_source = false }
  assert {
    condition = step.approve_delete.state == "skipped" && step.delete_source.state == "skipped"
  }
}

run "a_failed_verification_undoes_the_copy" {
  expect = "rolled_back"
  mock "swift.verify" {
    error   = "assertion"
    message = "default: 1 object differs"
  }
  assert {
    condition     = run.undo_order == ["copy"] && step.delete_source.state == "pending"
    error_message = "the copy is undone and nothing is deleted"
  }
}

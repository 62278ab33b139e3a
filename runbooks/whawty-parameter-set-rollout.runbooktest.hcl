# Tests of whawty-parameter-set-rollout.hcl (see docs/testing.md). The
# whawty stores and the reload commands are mocked.
variables = {
  master_config = "/etc/whawty/master.yaml"
  slave_configs = ["/etc/whawty/slave-1.yaml", "/etc/whawty/slave-2.yaml"]
  new_id        = 3
  old_id        = 2
  cost          = 16
  reload_commands = {
    "/etc/whawty/master.yaml"  = ["systemctl", "reload", "whawty-auth"]
    "/etc/whawty/slave-1.yaml" = ["ssh", "auth-1", "systemctl", "reload", "whawty-auth"]
    "/etc/whawty/slave-2.yaml" = ["ssh", "auth-2", "systemctl", "reload", "whawty-auth"]
  }
}

sweep = ["fail", "crash"]

mock "whawty.param_set_add" {
  outputs = { id = 3, algorithm = "scrypt", hmackey = "c2VjcmV0LWhtYWMta2V5", changed = true }
}

mock "whawty.param_set_default" {
  outputs = { previous = 2, changed = true }
}

mock "core.exec" {
  outputs = { exit_code = 0 }
}

mock "whawty.upgrade_status" {
  outputs = { total = 50, default_id = 3, on_default = 50, percent_on_default = 100, per_param_set = { "3" = 50 } }
}

mock "whawty.param_set_remove" {
  outputs = { users_on_set = 0, changed = true }
}

run "rolls_out_and_retires_the_old_set" {
  assert {
    condition = run.outputs.upgraded_percent == 100 && step.master_retire.state == "succeeded"
  }
  assert {
    condition     = step.slave_add["/etc/whawty/slave-1.yaml"].inputs.hmackey == "c2VjcmV0LWhtYWMta2V5"
    error_message = "every slave gets the master's hmac key"
  }
}

run "users_left_on_the_old_set_keep_it" {
  mock "whawty.upgrade_status" {
    outputs = { total = 50, percent_on_default = 96, per_param_set = { "2" = 2, "3" = 48 } }
  }
  assert {
    condition = step.master_retire.state == "skipped" && step.final_reload["/etc/whawty/master.yaml"].state == "skipped"
  }
}

run "master_refuses_the_default" {
  expect = "rolled_back"
  mock "whawty.param_set_default" {
    step  = "master_default"
    error = "conflict"
  }
  assert {
    condition = ([for i, a in run.undo_order : i if a == "master_add"][0] > [for i, a in run.undo_order : i if a == "slave_add[\"/etc/whawty/slave-1.yaml\"]"][0] &&
    [for i, a in run.undo_order : i if a == "master_add"][0] > [for i, a in run.undo_order : i if a == "slave_add[\"/etc/whawty/slave-2.yaml\"]"][0])
    error_message = "the master's new set is removed after the slaves'"
  }
  assert {
    condition = ([for i, a in run.undo_order : i if a == "master_reload_on_rollback"][0] > [for i, a in run.undo_order : i if a == "master_add"][0] &&
    [for i, a in run.undo_order : i if a == "slave_reload_on_rollback[\"/etc/whawty/slave-1.yaml\"]"][0] > [for i, a in run.undo_order : i if a == "slave_add[\"/etc/whawty/slave-1.yaml\"]"][0])
    error_message = "each host reloads once its configs are restored"
  }
}

run "a_failed_reload_fails_the_rollback" {
  expect = "rollback_failed"
  mock "whawty.param_set_default" {
    step  = "master_default"
    error = "conflict"
  }
  mock "core.exec" {
    step  = "slave_reload_on_rollback[\"/etc/whawty/slave-2.yaml\"]"
    error = "conflict"
  }
}

run "every_config_step_names_every_host" {
  assert {
    condition     = length(step.slave_retire["/etc/whawty/slave-1.yaml"].inputs.peer_configs) == 3 && contains(step.master_retire.inputs.peer_configs, "/etc/whawty/slave-2.yaml")
    error_message = "the retire steps check every host's store"
  }
}

runbook   = "../good/main.hcl"
variables = { prefix = "s" }
timeout   = "300ms"

run "hangs" {
  mock "demo.put" {
    step  = "c"
    delay = "1m"
  }
}

step "core.approve" "go" {
  with = { prompt = "Go?" }
}

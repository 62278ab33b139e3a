package session

import (
	"testing"

	"github.com/runbookdev/runbook/engine/lang"
)

func TestRedactVarArgs(t *testing.T) {
	cfg, diags := lang.LoadSources(map[string][]byte{"main.hcl": []byte(`
variable "n" {
  type      = number
  sensitive = true
}
variable "region" {
  type = string
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tests := []struct{ in, want string }{
		{"runbook apply -var n=42 -var region=eu main.hcl", "runbook apply -var n=*** -var region=eu main.hcl"},
		{"runbook apply --var=n=7 main.hcl", "runbook apply --var=n=*** main.hcl"},
		{"runbook apply -var=region=n=42 main.hcl", "runbook apply -var=region=n=42 main.hcl"},
		{"runbook apply main.hcl", "runbook apply main.hcl"},
	}
	for _, tt := range tests {
		if got := redactVarArgs(tt.in, cfg); got != tt.want {
			t.Errorf("redactVarArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

package builtin

import (
	"strings"
	"testing"
)

func TestRegistry(t *testing.T) {
	for _, name := range []string{"core", "couchdb", "synapse", "whawty"} {
		if p, ok := Get(name); !ok || p.Name != name {
			t.Errorf("Get(%q) = %v, %v", name, p, ok)
		}
	}
	if Procs("core") != 1 {
		t.Errorf("core should run on one thread, got %d", Procs("core"))
	}
	if Procs("couchdb") != 0 {
		t.Errorf("couchdb should use every core, got %d", Procs("couchdb"))
	}
	if err := Serve("nope"); err == nil || !strings.Contains(err.Error(), "builtins: [") {
		t.Errorf("Serve(nope) = %v", err)
	}
}

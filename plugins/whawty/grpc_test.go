package whawty

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
)

// TestOverGRPC drives sync, verify_password and upgrade_status through the
// real plugin protocol as well as in-process.
func TestOverGRPC(t *testing.T) {
	for name, prov := range sdktest.Providers(t, New()) {
		t.Run(name, func(t *testing.T) {
			master, slave := syncFixture(t)
			before := snapshot(t, slave)
			in := sdktest.Object(map[string]any{"source": master, "destination": slave})
			res, rec := sdktest.ApplyAndUndo(t, prov, "sync", in)
			sdktest.AssertOutput(t, res, "added", cty.NumberIntVal(2))
			if len(rec.Logs()) == 0 {
				t.Error("undo sent no log event")
			}
			if d := cmp.Diff(before, snapshot(t, slave)); d != "" {
				t.Fatalf("undo over %s did not restore the slave:\n%s", name, d)
			}

			f := newFixture(t, map[string]string{"root.admin": hashFor(t, fastScrypt, "pw"), "a.user": hashFor(t, fastArgon, "pw")})
			_, _, err := sdktest.Apply(t, prov, "verify_password", sdktest.Object(map[string]any{"config": f.config, "username": "a", "password": "nope"}))
			sdktest.AssertKind(t, err, sdk.KindAuth)
			if sdk.Classify(err).Hint == "" {
				t.Error("hint lost")
			}

			// A long wait is cancelled promptly.
			sdktest.ApplyCancelled(t, prov, "upgrade_status", sdktest.Object(map[string]any{
				"config": f.config, "wait_for_percent": 100, "interval": "1h", "timeout": "2h"}), 2*time.Second)
		})
	}
}

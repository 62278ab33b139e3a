package whawty

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runbookdev/runbook/plugins/whawty/whawtytest"
	"github.com/runbookdev/runbook/sdk"
)

// fixture is a config file and its store, both local.
type fixture struct {
	dir, store, config string
}

func newFixture(t *testing.T, files map[string]string) fixture {
	t.Helper()
	dir := t.TempDir()
	f := fixture{dir: dir, store: filepath.Join(dir, "store"), config: filepath.Join(dir, "auth-store.yaml")}
	newStore(t, f.store, files)
	if err := os.WriteFile(f.config, []byte(whawtytest.Config(f.store)), 0o400); err != nil {
		t.Fatal(err)
	}
	return f
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheck(t *testing.T) {
	f := newFixture(t, map[string]string{
		"root.admin":      hashFor(t, fastScrypt, "pw"),
		"alice.user":      hashFor(t, fastArgon, "pw"),
		"bob.user":        hashFor(t, fastScrypt, "pw"),
		"bob.admin":       hashFor(t, fastScrypt, "pw"),
		"carol.user":      "",
		"old.user":        "17:QUFB:QkJC\n",
		"dave.user":       "argon2id:1:9:QUFB:QkJC\n",
		".bob.user.Xa1b2": "x",
	})
	_ = os.Chmod(filepath.Join(f.store, "alice.user"), 0o644)
	res, rec, err := apply(t, "check", map[string]any{"config": f.config})
	if kindOf(err) != sdk.KindConflict {
		t.Fatalf("err = %v, want conflict (whawty's check fails)", err)
	}
	perProblem := map[string]int64{}
	for k, v := range res.Outputs.GetAttr("per_problem").AsValueMap() {
		n, _ := v.AsBigFloat().Int64()
		perProblem[k] = n
	}
	want := map[string]int64{probBothUserAdmin: 1, probEmpty: 1, probLegacy: 1, probUnknownSet: 1, probPermissions: 1, probStrayTemp: 1}
	if d := cmp.Diff(want, perProblem); d != "" {
		t.Errorf("per_problem (-want +got):\n%s", d)
	}
	if outNum(t, res, "users") != 7 || outNum(t, res, "admins") != 2 {
		t.Errorf("users/admins = %d/%d", outNum(t, res, "users"), outNum(t, res, "admins"))
	}
	if !strings.Contains(rec.all(), "bob.admin: both_user_and_admin") {
		t.Errorf("logs lack the problem:\n%s", rec.all())
	}

	// A clean store passes; without a config the set checks are skipped.
	g := newFixture(t, map[string]string{"root.admin": hashFor(t, fastScrypt, "pw"), "u.user": hashFor(t, fastArgon, "pw")})
	res = mustApplyRes(t, "check", map[string]any{"config": g.config, "strict": true})
	if !res.Outputs.GetAttr("ok").True() {
		t.Fatalf("clean store not ok: %v", res.Outputs.GetAttr("problems").GoString())
	}
	res = mustApplyRes(t, "check", map[string]any{"store": g.store})
	if got := res.Outputs.GetAttr("per_param_set").GoString(); !strings.Contains(got, `"1"`) || !strings.Contains(got, `"2"`) {
		t.Errorf("per_param_set = %s", got)
	}
	// No admin left with a supported hash: whawty refuses to start.
	h := newFixture(t, map[string]string{"root.admin": "argon2id:1:9:QUFB:QkJC\n", "u.user": hashFor(t, fastArgon, "pw")})
	if _, _, err := apply(t, "check", map[string]any{"config": h.config}); err == nil || !strings.Contains(err.Error(), probNoAdmin) {
		t.Fatalf("err = %v, want %s", err, probNoAdmin)
	}
}

func mustApplyRes(t testing.TB, action string, in map[string]any) *sdk.Result {
	t.Helper()
	res, _ := mustApply(t, action, in)
	return res
}

func TestParamSetRollout(t *testing.T) {
	f := newFixture(t, map[string]string{
		"root.admin": hashFor(t, fastScrypt, "pw"),
		"u1.user":    hashFor(t, fastScrypt, "pw"),
		"u2.user":    hashFor(t, fastArgon, "pw"),
	})
	orig := readFile(t, f.config)

	// Add an scrypt set with a generated key.
	addIn := map[string]any{"config": f.config, "id": 3, "cost": 5}
	addRes := mustApplyRes(t, "param_set_add", addIn)
	key := addRes.Outputs.GetAttr("hmackey").AsString()
	afterAdd := readFile(t, f.config)
	if !strings.Contains(afterAdd, key) || !strings.Contains(afterAdd, "# the old scrypt set") {
		t.Fatalf("config after add:\n%s", afterAdd)
	}
	if strings.Contains(string(addRes.UndoState), key) {
		t.Fatal("undo state holds the new key")
	}
	if fi, _ := os.Stat(f.config); fi.Mode().Perm() != 0o400 {
		t.Errorf("config mode = %v, want 0400 kept", fi.Mode().Perm())
	}
	if _, _, err := apply(t, "param_set_add", addIn); kindOf(err) != sdk.KindConflict {
		t.Fatalf("duplicate id: err = %v, want conflict", err)
	}
	for _, bad := range []map[string]any{
		{"config": f.config, "id": 4, "cost": 32},
		{"config": f.config, "id": 4, "algorithm": "argon2id", "threads": 0, "time": 1, "memory": 0, "length": 8},
		{"config": f.config, "id": 4, "hmackey": "QUFB"},
		{"config": f.config, "id": 0},
	} {
		if _, _, err := apply(t, "param_set_add", bad); kindOf(err) != sdk.KindInvalid {
			t.Errorf("%v: err = %v, want invalid", bad, err)
		}
	}

	// Switch the default.
	defIn := map[string]any{"config": f.config, "id": 3}
	defRes := mustApplyRes(t, "param_set_default", defIn)
	if outNum(t, defRes, "previous") != 1 {
		t.Errorf("previous = %d", outNum(t, defRes, "previous"))
	}
	if _, _, err := apply(t, "param_set_default", map[string]any{"config": f.config, "id": 42}); kindOf(err) != sdk.KindConflict {
		t.Fatalf("unknown set: err = %v, want conflict", err)
	}

	// Removing set 1 is refused: root and u1 still use it; and since root is
	// the only admin, even force is refused.
	rmIn := map[string]any{"config": f.config, "id": 1}
	_, _, err := apply(t, "param_set_remove", rmIn)
	if kindOf(err) != sdk.KindConflict || !strings.Contains(err.Error(), "no admin") {
		t.Fatalf("remove with only admin on the set: err = %v", err)
	}
	rmForce := map[string]any{"config": f.config, "id": 1, "force": true}
	if _, _, err := apply(t, "param_set_remove", rmForce); err == nil {
		t.Fatal("force removal leaving no supported admin accepted")
	}
	// Move root to the new set: now the users block it, force allows it.
	newSet := &paramSet{ID: 3, Scrypt: &scryptParams{Cost: 5, R: 8, P: 1}}
	newSet.Scrypt.HMACKey = mustB64(t, key)
	if err := os.WriteFile(filepath.Join(f.store, "root.admin"), []byte(hashFor(t, newSet, "pw")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = apply(t, "param_set_remove", rmIn)
	if kindOf(err) != sdk.KindConflict || !strings.Contains(err.Error(), "u1") {
		t.Fatalf("remove with users: err = %v", err)
	}
	// verify_password works with the generated key.
	vr := mustApplyRes(t, "verify_password", map[string]any{"config": f.config, "username": "root", "password": "pw"})
	if !vr.Outputs.GetAttr("valid").True() || !vr.Outputs.GetAttr("admin").True() || vr.Outputs.GetAttr("upgradeable").True() {
		t.Fatalf("verify root: %v", vr.Outputs.GoString())
	}
	beforeRm := readFile(t, f.config)
	rmRes := mustApplyRes(t, "param_set_remove", rmForce)
	if outNum(t, rmRes, "users_on_set") != 1 {
		t.Errorf("users_on_set = %d", outNum(t, rmRes, "users_on_set"))
	}
	if strings.Contains(readFile(t, f.config), "cost: 4") {
		t.Fatal("set 1 still in config")
	}

	// Undo in reverse order restores every byte.
	if err := undo(t, "param_set_remove", rmForce, rmRes); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, f.config); got != beforeRm {
		t.Fatalf("after remove undo:\n%s\nwant:\n%s", got, beforeRm)
	}
	if err := undo(t, "param_set_default", defIn, defRes); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, f.config); got != afterAdd {
		t.Fatalf("after default undo:\n%s", got)
	}
	// root's hash is on set 3 now: undoing the add keeps set 3 (with the
	// old default) and says so, so that root can still log in.
	rec, err := undoWith(t, "param_set_add", addIn, addRes, false)
	if err != nil {
		t.Fatal(err)
	}
	partial := readFile(t, f.config)
	if def, ids := setsOf(t, partial); def != 1 || !cmp.Equal(ids, []uint64{1, 2, 3}) {
		t.Fatalf("after add undo: default %d, sets %v; want default 1 and set 3 kept:\n%s", def, ids, partial)
	}
	if !strings.Contains(partial, key) || !strings.Contains(partial, "# the old scrypt set") {
		t.Fatalf("partial undo lost the key or the comments:\n%s", partial)
	}
	if logs := rec.all(); !strings.Contains(logs, "warn: partial undo") || !strings.Contains(logs, "1 hash(es): 1 in "+f.store) {
		t.Fatalf("partial undo not reported at warn level with the count:\n%s", logs)
	}
	vr = mustApplyRes(t, "verify_password", map[string]any{"config": f.config, "username": "root", "password": "pw"})
	if !vr.Outputs.GetAttr("valid").True() {
		t.Fatal("root locked out after the undo")
	}
	// Undo again is a no-op; with force (rollback -force) the set goes.
	if _, err := undoWith(t, "param_set_add", addIn, addRes, false); err != nil || readFile(t, f.config) != partial {
		t.Fatalf("second undo: %v", err)
	}
	if rec, err = undoWith(t, "param_set_add", addIn, addRes, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.all(), "warn: force: config "+f.config+" restored as it was, removing parameter-set(s) 3 although they are in use") {
		t.Errorf("forced undo not warned:\n%s", rec.all())
	}
	if got := readFile(t, f.config); got != orig {
		t.Fatalf("after forced add undo:\n%s\nwant:\n%s", got, orig)
	}
	// Undo after a foreign edit is refused.
	res2 := mustApplyRes(t, "param_set_default", map[string]any{"config": f.config, "id": 2})
	if err := os.WriteFile(f.config, []byte(readFile(t, f.config)+"# edited\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := undo(t, "param_set_default", map[string]any{"config": f.config, "id": 2}, res2); kindOf(err) != sdk.KindConflict {
		t.Fatalf("undo over a foreign edit: %v", err)
	}
}

func TestParamSetAddArgon2AndPlan(t *testing.T) {
	f := newFixture(t, map[string]string{"root.admin": hashFor(t, fastScrypt, "pw")})
	in := map[string]any{"config": f.config, "id": 7, "algorithm": "argon2id", "memory": 1024, "threads": 2}
	p, err := provider.Plan(t.Context(), "param_set_add", &sdk.PlanRequest{Inputs: obj(in)})
	if err != nil || !strings.Contains(p.Summary, "argon2id time=1 memory=1024KiB threads=2 length=32") {
		t.Fatalf("plan = %+v, %v", p, err)
	}
	before := readFile(t, f.config)
	if readFile(t, f.config) != before {
		t.Fatal("plan wrote")
	}
	mustApply(t, "param_set_add", in)
	c, err := parseConfig([]byte(readFile(t, f.config)))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&argon2Params{Time: 1, Memory: 1024, Threads: 2, Length: 32}, c.Sets[7].Argon2); d != "" {
		t.Fatal(d)
	}
}

func TestVerifyPassword(t *testing.T) {
	f := newFixture(t, map[string]string{"root.admin": hashFor(t, fastScrypt, "s3cret"), "a.user": hashFor(t, fastArgon, "s3cret")})
	res := mustApplyRes(t, "verify_password", map[string]any{"config": f.config, "username": "a", "password": "s3cret"})
	if !res.Outputs.GetAttr("valid").True() || !res.Outputs.GetAttr("upgradeable").True() || outNum(t, res, "param_set") != 2 {
		t.Fatalf("outputs = %s", res.Outputs.GoString())
	}
	_, rec, err := apply(t, "verify_password", map[string]any{"config": f.config, "username": "a", "password": "hunter2"})
	if kindOf(err) != sdk.KindAuth {
		t.Fatalf("wrong password: err = %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") || strings.Contains(rec.all(), "hunter2") {
		t.Fatal("password leaked")
	}
	res = mustApplyRes(t, "verify_password", map[string]any{"config": f.config, "username": "a", "password": "hunter2", "allow_mismatch": true})
	if res.Outputs.GetAttr("valid").True() {
		t.Fatal("wrong password valid")
	}
	if _, _, err := apply(t, "verify_password", map[string]any{"config": f.config, "username": "nobody", "password": "x"}); kindOf(err) != sdk.KindNotFound {
		t.Fatalf("unknown user: %v", err)
	}
	sch, _ := provider.Schema(t.Context())
	a, _ := sch.Action("verify_password")
	if !a.Input("password").Sensitive {
		t.Fatal("password not sensitive")
	}
}

func TestUpgradeStatusWaits(t *testing.T) {
	f := newFixture(t, map[string]string{
		"root.admin": hashFor(t, fastScrypt, "pw"),
		"a.user":     hashFor(t, fastArgon, "pw"),
		"b.user":     hashFor(t, fastArgon, "pw"),
		"c.user":     hashFor(t, fastArgon, "pw"),
	})
	res := mustApplyRes(t, "upgrade_status", map[string]any{"config": f.config})
	if outNum(t, res, "total") != 4 || outNum(t, res, "on_default") != 1 {
		t.Fatalf("outputs = %s", res.Outputs.GoString())
	}
	// Users "log in" and move to the default set while the step waits.
	go func() {
		for _, u := range []string{"a", "b"} {
			time.Sleep(60 * time.Millisecond)
			_ = os.WriteFile(filepath.Join(f.store, u+".user"), []byte(hashFor(t, fastScrypt, "pw")), 0o600)
		}
	}()
	res, rec := mustApply(t, "upgrade_status", map[string]any{"config": f.config, "wait_for_percent": 75, "interval": "20ms", "timeout": "10s"})
	if outNum(t, res, "on_default") < 3 {
		t.Fatalf("returned before 75%%: %s", res.Outputs.GoString())
	}
	if len(rec.progress) < 2 {
		t.Fatalf("progress events = %v", rec.progress)
	}
	_, _, err := apply(t, "upgrade_status", map[string]any{"config": f.config, "wait_for_percent": 100, "interval": "10ms", "timeout": "50ms"})
	if kindOf(err) != sdk.KindConflict || !sdk.Classify(err).Retryable {
		t.Fatalf("timeout: err = %v", err)
	}
	// A timeout that is not a multiple of the interval: counts at 0, 1s
	// and at the deadline (1.5s), not giving up at 1s.
	t0 := time.Now()
	_, rec, err = apply(t, "upgrade_status", map[string]any{"config": f.config, "wait_for_percent": 100, "interval": "1s", "timeout": "1500ms"})
	if took := time.Since(t0); kindOf(err) != sdk.KindConflict || took < 1500*time.Millisecond || len(rec.progress) != 3 {
		t.Fatalf("timeout 1.5s, interval 1s: gave up after %s with %d counts: %v", took, len(rec.progress), err)
	}
	if !strings.Contains(err.Error(), "after 2s") {
		t.Errorf("err = %v, want the time waited (1.5s rounded)", err)
	}
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	c, err := parseConfig([]byte("basedir: /s\ndefault: 1\nparams:\n  - id: 1\n    scryptauth: {hmackey: \"" + s + "\", cost: 4}\n"))
	if err != nil {
		t.Fatal(err)
	}
	return c.Sets[1].Scrypt.HMACKey
}

func TestValidate(t *testing.T) {
	tests := []struct {
		action string
		in     map[string]any
		errs   int
	}{
		{"check", map[string]any{}, 1},
		{"check", map[string]any{"store": "relative"}, 1},
		{"check", map[string]any{"store": "/s"}, 0},
		{"sync", map[string]any{"source": "/a", "destination": "ftp://x/y"}, 1},
		{"param_set_add", map[string]any{"config": "/c", "id": 3, "cost": 40}, 1},
		{"param_set_add", map[string]any{"config": "/c", "id": 3, "algorithm": "argon2id", "cost": 4}, 1},
		{"param_set_add", map[string]any{"config": "/c", "id": 3}, 0},
		{"param_set_default", map[string]any{"config": "/c", "id": -1}, 1},
		{"param_set_remove", map[string]any{"config": "/c", "id": 2, "store": "x"}, 1},
		{"upgrade_status", map[string]any{"config": "/c", "timeout": "soon"}, 1},
		{"upgrade_status", map[string]any{"config": "/c", "wait_for_percent": 101}, 1},
		{"verify_password", map[string]any{"config": "/c", "username": "-bad", "password": "x"}, 1},
	}
	for _, tt := range tests {
		d, err := provider.Validate(t.Context(), tt.action, obj(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(d); n != tt.errs {
			t.Errorf("%s %v: %d diagnostics, want %d: %v", tt.action, tt.in, n, tt.errs, d)
		}
	}
}

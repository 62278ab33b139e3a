package runbooks_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/scrypt"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/plugins/whawty"
	"github.com/runbookdev/runbook/plugins/whawty/whawtytest"
	"github.com/runbookdev/runbook/sdk"
)

// faultProviders hands out the whawty plugin and a fake core plugin, and
// fails the first Apply of one step.
type faultProviders struct {
	runID  string
	failAt string // step name whose first apply fails ("" = none)
	// onExec, when set, runs for every core.exec (apply and rollback) with
	// the step's address, the command line and how many times that command
	// ran before; an error fails the exec.
	onExec func(addr, cmd string, n int) error

	mu       sync.Mutex // guards the fields below
	failed   bool
	applied  []string // step addresses applied, in order
	execs    []string // core.exec commands run (apply and rollback)
	undoLogs []string // "level: message" of every native undo's log events
}

func (f *faultProviders) Provider(_ context.Context, name string) (sdk.Provider, error) {
	switch name {
	case "whawty":
		return &faultProvider{Provider: sdk.Local(whawty.New()), f: f}, nil
	case "core":
		return &faultProvider{Provider: sdk.Local(&sdk.Plugin{Name: "core", Version: "0", Actions: []sdk.Action{execAction{f}, noopAction{}}}), f: f}, nil
	}
	return nil, fmt.Errorf("no plugin %q", name)
}

// address extracts `slave_add["/x"]` from `<run>/slave_add["/x"]/1`.
func (f *faultProviders) address(key string) string {
	a := strings.TrimPrefix(key, f.runID+"/")
	if i := strings.LastIndex(a, "/"); i >= 0 {
		a = a[:i]
	}
	return strings.TrimPrefix(a, "step.")
}

type faultProvider struct {
	sdk.Provider
	f *faultProviders
}

func (p *faultProvider) Apply(ctx context.Context, action string, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	addr := p.f.address(req.IdempotencyKey)
	p.f.mu.Lock()
	p.f.applied = append(p.f.applied, addr)
	fail := stepName(addr) == p.f.failAt && !p.f.failed
	if fail {
		p.f.failed = true
	}
	p.f.mu.Unlock()
	if fail {
		return nil, sdk.Errorf(sdk.KindConflict, false, "injected", "injected failure in %s", addr)
	}
	return p.Provider.Apply(ctx, action, req, ev)
}

func (p *faultProvider) Undo(ctx context.Context, action string, req *sdk.UndoRequest, ev sdk.Events) error {
	return p.Provider.Undo(ctx, action, req, &logTap{Events: ev, f: p.f})
}

// logTap records an undo's log events.
type logTap struct {
	sdk.Events
	f *faultProviders
}

func (l *logTap) Log(level sdk.Level, msg string) {
	l.f.mu.Lock()
	l.f.undoLogs = append(l.f.undoLogs, level.String()+": "+msg)
	l.f.mu.Unlock()
	l.Events.Log(level, msg)
}

// stepName is an address without its instance key.
func stepName(addr string) string {
	if i := strings.IndexByte(addr, '['); i >= 0 {
		return addr[:i]
	}
	return addr
}

// execAction is a stand-in core.exec that records its command line.
type execAction struct{ f *faultProviders }

func (execAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "exec", Inputs: []sdk.Attribute{
		{Name: "command", Type: cty.String, Required: true},
		{Name: "args", Type: cty.List(cty.String)},
		{Name: "timeout", Type: cty.String},
	}}
}

func (a execAction) Apply(_ context.Context, req *sdk.ApplyRequest, _ sdk.Events) (*sdk.Result, error) {
	var in struct {
		Command string   `cty:"command"`
		Args    []string `cty:"args"`
		Timeout string   `cty:"timeout"`
	}
	if err := sdk.Decode(req.Inputs, &in); err != nil {
		return nil, err
	}
	cmd := strings.Join(append([]string{in.Command}, in.Args...), " ")
	a.f.mu.Lock()
	n := 0
	for _, c := range a.f.execs {
		if c == cmd {
			n++
		}
	}
	a.f.execs = append(a.f.execs, cmd)
	a.f.mu.Unlock()
	if a.f.onExec != nil {
		if err := a.f.onExec(a.f.address(req.IdempotencyKey), cmd, n); err != nil {
			return nil, sdk.Errorf(sdk.KindConflict, false, "", "%s: %v", cmd, err)
		}
	}
	return &sdk.Result{}, nil
}

// noopAction is core.noop.
type noopAction struct{}

func (noopAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{Name: "noop", Inputs: []sdk.Attribute{
		{Name: "values", Type: cty.DynamicPseudoType},
		{Name: "fail", Type: cty.String},
	}}
}

func (noopAction) Apply(_ context.Context, req *sdk.ApplyRequest, _ sdk.Events) (*sdk.Result, error) {
	if f := req.Inputs.GetAttr("fail"); !f.IsNull() && f.AsString() != "" {
		return nil, sdk.Errorf(sdk.KindConflict, false, "", "%s", f.AsString())
	}
	return &sdk.Result{}, nil
}

// whawtyHash is a whawty.auth hash file for password: on argon2id set
// argonID (time 1, memory 64, one thread, 32 bytes) or, when argonID is 0,
// on scrypt set 1 (cost 4, whawtytest.HMACKey).
func whawtyHash(t *testing.T, argonID int, password string) string {
	t.Helper()
	b64 := base64.URLEncoding.EncodeToString
	if argonID > 0 {
		salt := make([]byte, 16)
		_, _ = rand.Read(salt)
		tag := argon2.IDKey([]byte(password), salt, 1, 64, 1, 32)
		return fmt.Sprintf("argon2id:1700000000:%d:%s:%s\n", argonID, b64(salt), b64(tag))
	}
	salt := make([]byte, 32)
	_, _ = rand.Read(salt)
	s, err := scrypt.Key([]byte(password), salt, 1<<4, 8, 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, whawtytest.HMACKey)
	m.Write(s)
	return fmt.Sprintf("hmac_sha256_scrypt:1700000000:1:%s:%s\n", b64(salt), b64(m.Sum(nil)))
}

// configSets reads a store config's default set and its set ids.
func configSets(t *testing.T, file string) (def int, ids []int) {
	t.Helper()
	var c struct {
		Default int `yaml:"default"`
		Params  []struct {
			ID int `yaml:"id"`
		} `yaml:"params"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, file)), &c); err != nil {
		t.Fatal(err)
	}
	for _, p := range c.Params {
		ids = append(ids, p.ID)
	}
	sort.Ints(ids)
	return c.Default, ids
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rollout is a master and two slaves, each with its own config and store,
// every user on scrypt set 1 with the password "pw-<user>".
type rollout struct {
	varFile string
	hosts   []string          // master, slave1, slave2
	configs map[string]string // by host
	stores  map[string]string // by host
	users   []string          // file names
	before  map[string]string // config contents before the run, by host
}

// newRollout builds the fixture; with sshd, the slaves' configs are given
// to the runbook as ssh locations (their stores are then read over ssh too).
func newRollout(t *testing.T, nUsers int, extraVars string, sshd *testenv.SSHD) *rollout {
	t.Helper()
	r := &rollout{hosts: []string{"master", "slave1", "slave2"}, configs: map[string]string{}, stores: map[string]string{}, before: map[string]string{}}
	files := map[string]string{"root.admin": whawtyHash(t, 0, "pw-root")}
	for i := range nUsers {
		u := fmt.Sprintf("u%02d", i)
		files[u+".user"] = whawtyHash(t, 0, "pw-"+u)
	}
	r.users = slices.Sorted(maps.Keys(files))
	dir := t.TempDir()
	var reload []string
	locs := map[string]string{}
	for _, host := range r.hosts {
		store := filepath.Join(dir, host, "store")
		if err := os.MkdirAll(filepath.Join(store, ".tmp"), 0o700); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(store, 0o700)
		for n, c := range files {
			if err := os.WriteFile(filepath.Join(store, n), []byte(c), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cfg := filepath.Join(dir, host, "auth-store.yaml")
		if err := os.WriteFile(cfg, []byte(whawtytest.Config(store)), 0o400); err != nil {
			t.Fatal(err)
		}
		r.configs[host], r.stores[host], r.before[host] = cfg, store, whawtytest.Config(store)
		locs[host] = cfg
		if sshd != nil && host != "master" {
			locs[host] = sshd.URL(cfg)
		}
		reload = append(reload, fmt.Sprintf(`%q = ["reload-%s", "whawty-auth"]`, locs[host], host))
	}
	if sshd != nil {
		extraVars += fmt.Sprintf("\nknown_hosts = %q\nidentity_file = %q\n", sshd.KnownHosts, sshd.IdentityFile)
	}
	sort.Strings(reload)
	vars := fmt.Sprintf(`master_config = %q
slave_configs = [%q, %q]
new_id = 5
old_id = 1
algorithm = "argon2id"
argon2 = { time = 1, memory = 64, threads = 1, length = 32 }
upgrade_interval = "1s"
reload_commands = { %s }
%s
`, locs["master"], locs["slave1"], locs["slave2"], strings.Join(reload, ", "), extraVars)
	r.varFile = filepath.Join(t.TempDir(), "vars.hcl")
	if err := os.WriteFile(r.varFile, []byte(vars), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// login re-hashes the users onto argon2id set 5 in host's store, as whawty
// --do-upgrades local does when they log in after the master's reload.
func (r *rollout) login(t *testing.T, host string, users []string) {
	t.Helper()
	for _, n := range users {
		user := strings.TrimSuffix(strings.TrimSuffix(n, ".admin"), ".user")
		if err := os.WriteFile(filepath.Join(r.stores[host], n), []byte(whawtyHash(t, 5, "pw-"+user)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// syncTo copies the master's store to a slave as a sync would.
func (r *rollout) syncTo(t *testing.T, host string) {
	t.Helper()
	for _, n := range r.users {
		b, err := os.ReadFile(filepath.Join(r.stores["master"], n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(r.stores[host], n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// onMasterReload runs fn when the master reloads for the first time (the
// rollout's master_reload).
func onMasterReload(fn func()) func(string, string, int) error {
	return func(addr, _ string, n int) error {
		if stepName(addr) == "master_reload" && n == 0 {
			fn()
		}
		return nil
	}
}

// run applies the rollout runbook, failing the first apply of step failAt.
func (r *rollout) run(t *testing.T, failAt string, onExec func(string, string, int) error) (*run.Result, *faultProviders) {
	t.Helper()
	rb := loadRunbook(t, "whawty-parameter-set-rollout.hcl", nil, r.varFile)
	var f *faultProviders
	res := rb.apply(t, context.Background(), "", func(id string) run.Providers {
		f = &faultProviders{runID: id, failAt: failAt, onExec: onExec}
		return f
	})
	return res, f
}

// whawtyPlugin runs the plugin's own actions to judge the stores.
var whawtyPlugin = sdk.Local(whawty.New())

// assertLogins checks each host's store with whawty's rules (the plugin's
// check follows whawty's Check) and that every user can still log in
// there: its password verifies against the host's config.
func (r *rollout) assertLogins(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, host := range r.hosts {
		res, err := whawtyPlugin.Apply(ctx, "check", &sdk.ApplyRequest{Inputs: cty.ObjectVal(map[string]cty.Value{
			"store": cty.NullVal(cty.String), "config": cty.StringVal(r.configs[host]), "strict": cty.False,
			"known_hosts": cty.NullVal(cty.String), "identity_file": cty.NullVal(cty.String)})}, sdk.NopEvents{})
		if err != nil {
			t.Errorf("%s: whawty's check fails: %v", host, err)
		} else if !res.Outputs.GetAttr("whawty_ok").True() {
			t.Errorf("%s: whawty_ok false", host)
		}
		locked := 0
		for _, n := range r.users {
			user := strings.TrimSuffix(strings.TrimSuffix(n, ".admin"), ".user")
			_, err := whawtyPlugin.Apply(ctx, "verify_password", &sdk.ApplyRequest{Inputs: cty.ObjectVal(map[string]cty.Value{
				"config": cty.StringVal(r.configs[host]), "store": cty.NullVal(cty.String),
				"username": cty.StringVal(user), "password": cty.StringVal("pw-" + user), "allow_mismatch": cty.False,
				"known_hosts": cty.NullVal(cty.String), "identity_file": cty.NullVal(cty.String)})}, sdk.NopEvents{})
			if err != nil {
				locked++
				if locked <= 3 {
					t.Errorf("%s: %s cannot log in: %v", host, user, err)
				}
			}
		}
		if locked > 0 {
			t.Errorf("%s: %d of %d users locked out", host, locked, len(r.users))
		}
	}
}

// assertKept checks that every config is back on default 1 and keeps set 5.
func (r *rollout) assertKept(t *testing.T) {
	t.Helper()
	for _, host := range r.hosts {
		if def, ids := configSets(t, r.configs[host]); def != 1 || !slices.Equal(ids, []int{1, 2, 5}) {
			t.Errorf("%s after rollback: default %d, sets %v; want default 1 and sets [1 2 5] (5 is in use)", host, def, ids)
		}
	}
}

// TestRolloutRunbook runs whawty-parameter-set-rollout.hcl through the
// engine: once to the end, then failing at each step in turn. Before any
// user was re-hashed every config comes back byte for byte; after, the
// new set stays (partial undo) and every user can still log in.
func TestRolloutRunbook(t *testing.T) {
	r := newRollout(t, 3, `upgrade_timeout = "10s"`, nil)
	res, f := r.run(t, "", onMasterReload(func() {
		r.login(t, "master", r.users)
		r.syncTo(t, "slave1")
		r.syncTo(t, "slave2")
	}))
	if res.State != journal.RunSucceeded {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	for _, host := range r.hosts {
		if def, ids := configSets(t, r.configs[host]); def != 5 || slices.Contains(ids, 1) || !slices.Contains(ids, 5) {
			t.Errorf("%s after rollout: default %d, sets %v", host, def, ids)
		}
	}
	// Slaves took the new default before the master.
	pos := map[string]int{}
	steps := map[string]bool{}
	for i, a := range f.applied {
		name := stepName(a)
		if _, seen := pos[name]; !seen || name == "slave_reload" {
			pos[name] = i
		}
		steps[name] = true
	}
	if !(pos["slave_reload"] < pos["master_default"]) {
		t.Errorf("master default before every slave reloaded: %v", f.applied)
	}
	if len(steps) < 12 {
		t.Fatalf("only %d distinct steps ran: %v", len(steps), f.applied)
	}
	rehashedFrom := pos["upgraded"] // the users log in after master_reload
	for _, name := range slices.Sorted(maps.Keys(steps)) {
		t.Run("fail at "+name, func(t *testing.T) {
			r := newRollout(t, 3, `upgrade_timeout = "10s"`, nil)
			res, f := r.run(t, name, onMasterReload(func() {
				r.login(t, "master", r.users)
				r.syncTo(t, "slave1")
				r.syncTo(t, "slave2")
			}))
			if !f.failed {
				t.Fatalf("step %s never ran", name)
			}
			if res.State != journal.RunRolledBack {
				t.Fatalf("state = %s, err = %v", res.State, res.Err)
			}
			if pos[name] < rehashedFrom {
				for _, host := range r.hosts {
					if got := readFile(t, r.configs[host]); got != r.before[host] {
						t.Errorf("%s not restored:\n%s\nwant:\n%s", host, got, r.before[host])
					}
				}
			} else {
				r.assertKept(t)
			}
			r.assertLogins(t)
			// Every host reloaded after its config was restored.
			for _, host := range r.hosts {
				if last := slices.Index(f.execs, "reload-"+host+" whawty-auth"); last < 0 && pos[name] > pos["slave_add"] {
					t.Errorf("%s never reloaded: %v", host, f.execs)
				}
			}
		})
	}
}

// TestRolloutRunbookKeepsUsedSet: with a user still on the old set the run
// succeeds at the target share and keeps the old set everywhere.
func TestRolloutRunbookKeepsUsedSet(t *testing.T) {
	r := newRollout(t, 3, "target_percent = 50\nupgrade_timeout = \"10s\"", nil)
	res, f := r.run(t, "", onMasterReload(func() {
		r.login(t, "master", r.users[:3])
		r.syncTo(t, "slave1")
		r.syncTo(t, "slave2")
	}))
	if res.State != journal.RunSucceeded {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	for _, host := range r.hosts {
		if def, ids := configSets(t, r.configs[host]); def != 5 || !slices.Contains(ids, 1) {
			t.Errorf("%s: default %d, sets %v; want default 5 and set 1 kept", host, def, ids)
		}
	}
	for _, a := range f.applied {
		if strings.Contains(a, "retire") {
			t.Errorf("%s ran although a user is left on the old set", a)
		}
	}
	r.assertLogins(t)
}

// TestRolloutTimeoutRollbackKeepsLogins is the first lock-out of issue 15:
// upgrade_status times out with part of the users already re-hashed on
// the new set (on the master and one synced slave; the runbook reaches the
// slaves over ssh); the rollback keeps
// the set on every host (the master's store uses it, and a slave gets the
// master's hashes at its next sync), reports a partial undo with the count
// and reloads every host once its config is restored.
func TestRolloutTimeoutRollbackKeepsLogins(t *testing.T) {
	r := newRollout(t, 7, `upgrade_timeout = "1s"`, testenv.StartSSHD(t))
	res, f := r.run(t, "", onMasterReload(func() {
		r.login(t, "master", r.users[:3]) // root and two users of eight
		r.syncTo(t, "slave2")
	}))
	if res.State != journal.RunRolledBack {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	if !strings.Contains(res.Err.Error(), "upgraded") {
		t.Fatalf("err = %v, want the upgrade wait to fail", res.Err)
	}
	r.assertKept(t)
	r.assertLogins(t)
	logs := strings.Join(f.undoLogs, "\n")
	if !strings.Contains(logs, "warn: partial undo of config "+r.configs["master"]) || !strings.Contains(logs, "6 hash(es): 3 in "+r.stores["master"]) {
		t.Errorf("no partial undo reported at warn level with the count:\n%s", logs)
	}
	// The rollback reloaded each host after its config undos, and waited.
	for _, host := range r.hosts {
		if n := countOf(f.execs, "reload-"+host+" whawty-auth"); n != 2 {
			t.Errorf("%s reloaded %d times, want 2 (apply and rollback): %v", host, n, f.execs)
		}
	}
}

// TestRolloutLaggingSlaveRefusedEarly is the second lock-out of issue 15:
// every master user is re-hashed but slave1 (over ssh) was not synced yet. Retiring
// the old set is refused before anything is retired (slave1's own store
// still needs it), and the rollback leaves every host with a config
// whawty accepts and every user able to log in.
func TestRolloutLaggingSlaveRefusedEarly(t *testing.T) {
	r := newRollout(t, 5, `upgrade_timeout = "10s"`, testenv.StartSSHD(t))
	res, f := r.run(t, "", onMasterReload(func() {
		r.login(t, "master", r.users)
		r.syncTo(t, "slave2")
	}))
	if res.State != journal.RunRolledBack {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	if !strings.Contains(res.Err.Error(), "master_retire") || !strings.Contains(res.Err.Error(), r.stores["slave1"]) {
		t.Errorf("err = %v, want master_retire refused naming slave1's store", res.Err)
	}
	for _, a := range f.applied {
		if strings.HasPrefix(a, "slave_retire") {
			t.Errorf("%s ran after the master's retire was refused", a)
		}
	}
	r.assertKept(t)
	r.assertLogins(t)
}

// TestRolloutRollbackReloadFails: a reload that fails during the rollback
// fails the rollback instead of being discarded.
func TestRolloutRollbackReloadFails(t *testing.T) {
	r := newRollout(t, 1, `upgrade_timeout = "10s"`, nil)
	res, _ := r.run(t, "master_default", func(_, cmd string, n int) error {
		if strings.HasPrefix(cmd, "reload-slave1") && n == 1 {
			return fmt.Errorf("whawty-auth: reload refused")
		}
		return nil
	})
	if res.State != journal.RunRollbackFailed {
		t.Fatalf("state = %s, want rollback_failed", res.State)
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// TestSyncRunbookRefusesSetUnknownToSlave: whawty-sync.hcl gives each sync
// its slave's config; a slave whose config lacks the set the master's
// hashes use is refused before anything is written there, and the run
// rolls back the other slave's sync.
func TestSyncRunbookRefusesSetUnknownToSlave(t *testing.T) {
	dir := t.TempDir()
	stores, configs := map[string]string{}, map[string]string{}
	for _, host := range []string{"master", "slave1", "slave2"} {
		store := filepath.Join(dir, host, "store")
		if err := os.MkdirAll(filepath.Join(store, ".tmp"), 0o700); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{"root.admin": whawtyHash(t, 0, "pw-root"), "u.user": whawtyHash(t, 0, "pw-u")}
		if host == "master" {
			files["u.user"] = whawtyHash(t, 5, "pw-u") // u logged in after the rollout
		}
		for n, c := range files {
			if err := os.WriteFile(filepath.Join(store, n), []byte(c), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cfg := whawtytest.Config(store)
		if host != "slave2" {
			cfg += "  - id: 5\n    argon2id: {time: 1, memory: 64, threads: 1, length: 32}\n"
		}
		configs[host] = filepath.Join(dir, host, "auth-store.yaml")
		if err := os.WriteFile(configs[host], []byte(cfg), 0o400); err != nil {
			t.Fatal(err)
		}
		stores[host] = store
	}
	varFile := filepath.Join(dir, "vars.hcl")
	vars := fmt.Sprintf("master = %q\nslaves = [%q, %q]\nslave_configs = { %q = %q, %q = %q }\n",
		stores["master"], stores["slave1"], stores["slave2"], stores["slave1"], configs["slave1"], stores["slave2"], configs["slave2"])
	if err := os.WriteFile(varFile, []byte(vars), 0o600); err != nil {
		t.Fatal(err)
	}
	before1, before2 := readFile(t, filepath.Join(stores["slave1"], "u.user")), readFile(t, filepath.Join(stores["slave2"], "u.user"))
	rb := loadRunbook(t, "whawty-sync.hcl", nil, varFile)
	res := rb.apply(t, context.Background(), "", func(id string) run.Providers { return &faultProviders{runID: id} })
	if res.State != journal.RunRolledBack {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	if err := res.Err.Error(); !strings.Contains(err, configs["slave2"]) || !strings.Contains(err, "parameter-set 5") {
		t.Errorf("err = %v, want slave2's config named with set 5", err)
	}
	if readFile(t, filepath.Join(stores["slave2"], "u.user")) != before2 || readFile(t, filepath.Join(stores["slave1"], "u.user")) != before1 {
		t.Error("a slave was left changed")
	}
}

// TestRemovedKeyNeverJournaledInClear is the canary of issue 15: a run
// removes a scrypt set (whose hmac key is in no input) and then fails; the
// rollback puts the set back from the undo state, which the plugin marks
// sensitive. With a state key the journal holds it sealed, without one not
// at all; in neither case does the key appear anywhere in the state
// directory.
func TestRemovedKeyNeverJournaledInClear(t *testing.T) {
	for _, withKey := range []bool{true, false} {
		t.Run(fmt.Sprintf("state key %v", withKey), func(t *testing.T) {
			dir := t.TempDir()
			store := filepath.Join(dir, "store")
			if err := os.MkdirAll(filepath.Join(store, ".tmp"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(store, "root.admin"), []byte(whawtyHash(t, 0, "pw")), 0o600); err != nil {
				t.Fatal(err)
			}
			raw := make([]byte, 32)
			_, _ = rand.Read(raw)
			canary := base64.StdEncoding.EncodeToString(raw)
			cfgText := fmt.Sprintf("basedir: %q\ndefault: 1\nparams:\n  - id: 1\n    scryptauth: {hmackey: %q, cost: 4}\n  - id: 9\n    scryptauth: {hmackey: %q, cost: 4}\n",
				store, base64.StdEncoding.EncodeToString(whawtytest.HMACKey), canary)
			cfg := filepath.Join(dir, "auth-store.yaml")
			if err := os.WriteFile(cfg, []byte(cfgText), 0o600); err != nil {
				t.Fatal(err)
			}
			src := fmt.Sprintf(`runbook "retire" {}
step "whawty.param_set_remove" "rm" {
  with     = { config = %q, id = 9 }
  rollback = native
}
step "core.noop" "boom" {
  with       = { fail = "boom" }
  depends_on = [step.rm]
}
`, cfg)
			lc, diags := lang.LoadSources(map[string][]byte{"retire.hcl": []byte(src)})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			stateDir := t.TempDir()
			st := journal.NewLocal(stateDir)
			meta := &journal.Meta{Started: time.Now()}
			j, err := st.Create(meta)
			if err != nil {
				t.Fatal(err)
			}
			var sealer *journal.Sealer
			if withKey {
				key := make([]byte, 32)
				_, _ = rand.Read(key)
				s, err := journal.NewSealer(key)
				if err != nil {
					t.Fatal(err)
				}
				sealer = s.ForRun(meta)
			}
			var f *faultProviders
			res, err := run.Apply(context.Background(), run.FromConfig(&lang.Scope{Config: lc, RunID: meta.ID}),
				run.Options{RunID: meta.ID, Providers: func() run.Providers { f = &faultProviders{runID: meta.ID}; return f }(),
					Journal: j, Sealer: sealer, Sleep: func(context.Context, time.Duration) error { return nil }})
			j.Close()
			if err != nil {
				t.Fatal(err)
			}
			if res.State != journal.RunRolledBack {
				t.Fatalf("state = %s, err = %v", res.State, res.Err)
			}
			if readFile(t, cfg) != cfgText {
				t.Fatalf("set 9 not restored:\n%s", readFile(t, cfg))
			}
			journaled := 0
			err = filepath.WalkDir(stateDir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				journaled += len(b)
				if holdsCanary(b, canary) {
					t.Errorf("%s holds the removed hmac key in clear", p)
				}
				return nil
			})
			if err != nil || journaled == 0 {
				t.Fatalf("state dir: %d bytes, %v", journaled, err)
			}
		})
	}
}

// base64Run is a run of standard base64 long enough to hide a key.
var base64Run = regexp.MustCompile(`[A-Za-z0-9+/]{40,}={0,2}`)

// holdsCanary says whether b holds canary in clear, also inside any
// base64 text (the journal keeps blobs as base64).
func holdsCanary(b []byte, canary string) bool {
	if strings.Contains(string(b), canary) {
		return true
	}
	for _, m := range base64Run.FindAll(b, -1) {
		if d, err := base64.StdEncoding.DecodeString(string(m)); err == nil && strings.Contains(string(d), canary) {
			return true
		}
	}
	return false
}

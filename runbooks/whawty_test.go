package runbooks_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/zclconf/go-cty/cty"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/scrypt"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/run"
	"github.com/runbookdev/runbook/plugins/whawty"
	"github.com/runbookdev/runbook/sdk"
)

// faultProviders hands out the whawty plugin and a fake core plugin, and
// fails the first Apply of one step.
type faultProviders struct {
	runID  string
	failAt string // step name whose first apply fails ("" = none)

	mu      sync.Mutex // guards the fields below
	failed  bool
	applied []string // step addresses applied, in order
	execs   []string // core.exec commands run (apply and rollback)
}

func (f *faultProviders) Provider(_ context.Context, name string) (sdk.Provider, error) {
	switch name {
	case "whawty":
		return &faultProvider{Provider: sdk.Local(whawty.New()), f: f}, nil
	case "core":
		return &faultProvider{Provider: sdk.Local(&sdk.Plugin{Name: "core", Version: "0", Actions: []sdk.Action{execAction{f}}}), f: f}, nil
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
	a.f.mu.Lock()
	a.f.execs = append(a.f.execs, strings.Join(append([]string{in.Command}, in.Args...), " "))
	a.f.mu.Unlock()
	return &sdk.Result{}, nil
}

// hmacKey is the scrypt set's hmac key: 32 ASCII 'A'.
var hmacKey = []byte(strings.Repeat("A", 32))

// whawtyHash is a whawty.auth hash file for password: on argon2id set
// argonID (time 1, memory 64, one thread, 32 bytes) or, when argonID is 0,
// on scrypt set 1 (cost 4, hmacKey).
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
	m := hmac.New(sha256.New, hmacKey)
	m.Write(s)
	return fmt.Sprintf("hmac_sha256_scrypt:1700000000:1:%s:%s\n", b64(salt), b64(m.Sum(nil)))
}

// whawtyConfig is a store config with comments: set 1 (scrypt, default)
// and set 2 (argon2id).
func whawtyConfig(basedir string) string {
	return fmt.Sprintf(`# whawty.auth store config
basedir: "%s" # the store

default: 1   # current default
params:
  # the old scrypt set
  - id: 1
    scryptauth:
      hmackey: "%s"
      cost: 4
  - id: 2 # argon
    argon2id: {time: 1, memory: 64, threads: 1, length: 32}
`, basedir, base64.StdEncoding.EncodeToString(hmacKey))
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

// rolloutFixture is a master and two slaves, each with its own config and
// store; every user already has an argon2id hash on the set the rollout
// adds (id 5), so the upgrade share is reached at once. With lagging, one
// user has not logged in since and is still on set 1.
func rolloutFixture(t *testing.T, lagging bool) (varFile string, configs []string) {
	t.Helper()
	files := map[string]string{"root.admin": whawtyHash(t, 5, "pw"), "u.user": whawtyHash(t, 5, "pw")}
	target := 100
	if lagging {
		files["late.user"] = whawtyHash(t, 0, "pw")
		target = 50
	}
	dir := t.TempDir()
	var reload []string
	for _, host := range []string{"master", "slave1", "slave2"} {
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
		if err := os.WriteFile(cfg, []byte(whawtyConfig(store)), 0o400); err != nil {
			t.Fatal(err)
		}
		configs = append(configs, cfg)
		reload = append(reload, fmt.Sprintf(`%q = ["reload-%s", "whawty-auth"]`, cfg, host))
	}
	sort.Strings(reload)
	vars := fmt.Sprintf(`master_config = %q
slave_configs = [%q, %q]
new_id = 5
old_id = 1
algorithm = "argon2id"
argon2 = { time = 1, memory = 64, threads = 1, length = 32 }
target_percent = %d
upgrade_timeout = "10s"
reload_commands = { %s }
`, configs[0], configs[1], configs[2], target, strings.Join(reload, ", "))
	varFile = filepath.Join(t.TempDir(), "vars.hcl")
	if err := os.WriteFile(varFile, []byte(vars), 0o600); err != nil {
		t.Fatal(err)
	}
	return varFile, configs
}

// runRollout runs whawty-parameter-set-rollout.hcl, failing the first apply
// of step failAt ("" = none), and returns what the configs held before.
func runRollout(t *testing.T, failAt string, lagging bool) (*run.Result, *faultProviders, []string, map[string]string) {
	t.Helper()
	varFile, configs := rolloutFixture(t, lagging)
	rb := loadRunbook(t, "whawty-parameter-set-rollout.hcl", nil, varFile)
	before := map[string]string{}
	for _, c := range configs {
		before[c] = readFile(t, c)
	}
	var f *faultProviders
	res := rb.apply(t, context.Background(), "", func(id string) run.Providers {
		f = &faultProviders{runID: id, failAt: failAt}
		return f
	})
	return res, f, configs, before
}

// TestRolloutRunbook runs whawty-parameter-set-rollout.hcl through the
// engine: once to the end, then failing at each step in turn, where every
// config must come back byte for byte.
func TestRolloutRunbook(t *testing.T) {
	res, f, configs, before := runRollout(t, "", false)
	if res.State != journal.RunSucceeded {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	for _, c := range configs {
		if def, ids := configSets(t, c); def != 5 || slices.Contains(ids, 1) || !slices.Contains(ids, 5) {
			t.Errorf("%s after rollout: default %d, sets %v", c, def, ids)
		}
		if readFile(t, c) == before[c] {
			t.Errorf("%s unchanged", c)
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
	if len(steps) < 10 {
		t.Fatalf("only %d distinct steps ran: %v", len(steps), f.applied)
	}
	for _, name := range slices.Sorted(maps.Keys(steps)) {
		t.Run("fail at "+name, func(t *testing.T) {
			res, f, configs, before := runRollout(t, name, false)
			if !f.failed {
				t.Fatalf("step %s never ran", name)
			}
			if res.State != journal.RunRolledBack {
				t.Fatalf("state = %s, err = %v", res.State, res.Err)
			}
			for _, c := range configs {
				if got := readFile(t, c); got != before[c] {
					t.Errorf("%s not restored:\n%s\nwant:\n%s", c, got, before[c])
				}
			}
		})
	}
}

// TestRolloutRunbookKeepsUsedSet: with a user still on the old set the run
// succeeds at the target share and keeps the old set everywhere.
func TestRolloutRunbookKeepsUsedSet(t *testing.T) {
	res, f, configs, _ := runRollout(t, "", true)
	if res.State != journal.RunSucceeded {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	for _, c := range configs {
		if def, ids := configSets(t, c); def != 5 || !slices.Contains(ids, 1) {
			t.Errorf("%s: default %d, sets %v; want default 5 and set 1 kept", c, def, ids)
		}
	}
	for _, a := range f.applied {
		if strings.Contains(a, "retire") {
			t.Errorf("%s ran although a user is left on the old set", a)
		}
	}
}

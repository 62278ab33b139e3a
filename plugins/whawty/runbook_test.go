package whawty

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/run"
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
		return &faultProvider{Provider: sdk.Local(New()), f: f}, nil
	case "core":
		return &faultProvider{Provider: sdk.Local(fakeCore(f)), f: f}, nil
	}
	return nil, fmt.Errorf("no plugin %q", name)
}

// stepName extracts "slave_add" from "<run>/slave_add[\"/x\"]/1".
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
	name := addr
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i]
	}
	p.f.mu.Lock()
	p.f.applied = append(p.f.applied, addr)
	fail := name == p.f.failAt && !p.f.failed
	if fail {
		p.f.failed = true
	}
	p.f.mu.Unlock()
	if fail {
		return nil, sdk.Errorf(sdk.KindConflict, false, "injected", "injected failure in %s", addr)
	}
	return p.Provider.Apply(ctx, action, req, ev)
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

func fakeCore(f *faultProviders) *sdk.Plugin {
	return &sdk.Plugin{Name: "core", Version: "0", Actions: []sdk.Action{execAction{f}}}
}

// rolloutFixture is a master and two slaves, each with its own config and
// store; every user already has an argon2id hash on the set the rollout
// adds (id 5), so the upgrade share is reached at once.
func rolloutFixture(t *testing.T, lagging bool) (vars string, configs []string) {
	t.Helper()
	set5 := &paramSet{ID: 5, Argon2: &argon2Params{Time: 1, Memory: 64, Threads: 1, Length: 32}}
	files := map[string]string{"root.admin": hashFor(t, set5, "pw"), "u.user": hashFor(t, set5, "pw")}
	target := 100
	if lagging { // one user has not logged in since: still on set 1
		files["late.user"] = hashFor(t, fastScrypt, "pw")
		target = 50
	}
	dir := t.TempDir()
	reload := map[string]string{}
	for _, host := range []string{"master", "slave1", "slave2"} {
		store := newStore(t, filepath.Join(dir, host, "store"), files)
		cfg := filepath.Join(dir, host, "auth-store.yaml")
		if err := os.WriteFile(cfg, []byte(configText(store)), 0o400); err != nil {
			t.Fatal(err)
		}
		configs = append(configs, cfg)
		reload[cfg] = fmt.Sprintf(`["reload-%s", "whawty-auth"]`, host)
	}
	var rc []string
	for k, v := range reload {
		rc = append(rc, fmt.Sprintf("%q = %s", k, v))
	}
	sort.Strings(rc)
	vars = fmt.Sprintf(`master_config = %q
slave_configs = [%q, %q]
new_id = 5
old_id = 1
algorithm = "argon2id"
argon2 = { time = 1, memory = 64, threads = 1, length = 32 }
target_percent = %d
upgrade_timeout = "10s"
reload_commands = { %s }
`, configs[0], configs[1], configs[2], target, strings.Join(rc, ", "))
	return vars, configs
}

func runRollout(t *testing.T, failAt string, lagging bool) (*run.Result, *faultProviders, []string, map[string]string) {
	t.Helper()
	src, err := os.ReadFile("../../runbooks/whawty-parameter-set-rollout.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg, diags := lang.LoadSources(map[string][]byte{"rollout.hcl": src})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	vars, configs := rolloutFixture(t, lagging)
	varFile := filepath.Join(t.TempDir(), "vars.hcl")
	if err := os.WriteFile(varFile, []byte(vars), 0o600); err != nil {
		t.Fatal(err)
	}
	vals, diags := cfg.ResolveVariables(lang.VarSources{Files: []string{varFile}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	before := map[string]string{}
	for _, c := range configs {
		before[c] = readFile(t, c)
	}
	meta := &journal.Meta{ID: "", Started: time.Now()}
	j, err := journal.NewLocal(t.TempDir()).Create(meta)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	f := &faultProviders{runID: meta.ID, failAt: failAt}
	res, err := run.Apply(context.Background(), run.FromConfig(&lang.Scope{Config: cfg, Vars: vals, RunID: meta.ID}),
		run.Options{RunID: meta.ID, Providers: f, Journal: j,
			Sleep: func(context.Context, time.Duration) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	return res, f, configs, before
}

// TestRolloutRunbook runs runbooks/whawty-parameter-set-rollout.hcl through
// the engine: once to the end, then failing at each step in turn, where
// every config must come back byte for byte.
func TestRolloutRunbook(t *testing.T) {
	res, f, configs, before := runRollout(t, "", false)
	if res.State != journal.RunSucceeded {
		t.Fatalf("state = %s, err = %v", res.State, res.Err)
	}
	for _, c := range configs {
		got, err := parseConfig([]byte(readFile(t, c)))
		if err != nil {
			t.Fatal(err)
		}
		if got.Default != 5 || got.Sets[1] != nil || got.Sets[5] == nil {
			t.Errorf("%s after rollout: default %d, sets %s", c, got.Default, got.idList())
		}
		if readFile(t, c) == before[c] {
			t.Errorf("%s unchanged", c)
		}
	}
	// Slaves took the new default before the master.
	pos := map[string]int{}
	for i, a := range f.applied {
		name := a
		if k := strings.IndexByte(name, '['); k >= 0 {
			name = name[:k]
		}
		if _, seen := pos[name]; !seen || name == "slave_reload" {
			pos[name] = i
		}
	}
	if !(pos["slave_reload"] < pos["master_default"]) {
		t.Errorf("master default before every slave reloaded: %v", f.applied)
	}
	steps := map[string]bool{}
	for _, a := range f.applied {
		if k := strings.IndexByte(a, '['); k >= 0 {
			a = a[:k]
		}
		steps[a] = true
	}
	if len(steps) < 10 {
		t.Fatalf("only %d distinct steps ran: %v", len(steps), f.applied)
	}
	for _, name := range sortedKeys(steps) {
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
		got, err := parseConfig([]byte(readFile(t, c)))
		if err != nil {
			t.Fatal(err)
		}
		if got.Default != 5 || got.Sets[1] == nil {
			t.Errorf("%s: default %d, sets %s; want default 5 and set 1 kept", c, got.Default, got.idList())
		}
	}
	for _, a := range f.applied {
		if strings.Contains(a, "retire") {
			t.Errorf("%s ran although a user is left on the old set", a)
		}
	}
}

package whawty

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// paramSetAddAction is whawty.param_set_add.
type paramSetAddAction struct{}

var (
	_ sdk.Action    = (*paramSetAddAction)(nil)
	_ sdk.Planner   = (*paramSetAddAction)(nil)
	_ sdk.Undoer    = (*paramSetAddAction)(nil)
	_ sdk.Validator = (*paramSetAddAction)(nil)
)

type paramSetAddInputs struct {
	Config    string `cty:"config"`
	ID        int64  `cty:"id"`
	Algorithm string `cty:"algorithm"`
	HMACKey   string `cty:"hmackey"`
	Cost      int64  `cty:"cost"`
	R         int64  `cty:"r"`
	P         int64  `cty:"p"`
	Time      int64  `cty:"time"`
	Memory    int64  `cty:"memory"`
	Threads   int64  `cty:"threads"`
	Length    int64  `cty:"length"`
	// PeerConfigs is read by undo (peerConfigsOf).
	PeerConfigs []string `cty:"peer_configs"`
}

type paramSetAddOutputs struct {
	ID        int64  `cty:"id"`
	Algorithm string `cty:"algorithm"`
	HMACKey   string `cty:"hmackey"`
	Changed   bool   `cty:"changed"`
}

func (*paramSetAddAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "param_set_add",
		Description: "Add a hashing parameter-set to a store config (auth-store.yaml), keeping its comments and order. " +
			"scrypt: hmackey (32 random bytes unless given), cost 1..31, r, p. argon2id: time, memory (KiB), threads, length. " +
			"Refuses a duplicate id. Edits a symlink's target in place, never the link, and refuses a config others may write. " +
			"Native undo restores the file byte for byte, except that it never removes the set while a hash in the store " +
			"(or in a peer_configs store) uses it: it then restores the rest (the default) and keeps the set, reporting a partial undo " +
			"at warn level with the number of hashes on it (rollback -force removes it anyway).",
		Inputs: append([]sdk.Attribute{
			{Name: "config", Type: cty.String, Required: true, Description: "Config file location (path or ssh://user@host:port/path)."},
			{Name: "id", Type: cty.Number, Required: true, Description: "New parameter-set id (> 0, not in the config yet)."},
			{Name: "algorithm", Type: cty.String, Description: "\"scrypt\" (default) or \"argon2id\"."},
			{Name: "hmackey", Type: cty.String, Sensitive: true, Description: "scrypt: standard base64 of 32 bytes; generated when empty."},
			{Name: "cost", Type: cty.Number, Description: "scrypt: log2(N), 1..31 (default 14)."},
			{Name: "r", Type: cty.Number, Description: "scrypt: block size r (default 8)."},
			{Name: "p", Type: cty.Number, Description: "scrypt: parallelism p (default 1)."},
			{Name: "time", Type: cty.Number, Description: "argon2id: passes, > 0 (default 1)."},
			{Name: "memory", Type: cty.Number, Description: "argon2id: memory in KiB (default 65536)."},
			{Name: "threads", Type: cty.Number, Description: "argon2id: threads 1..255 (default 4)."},
			{Name: "length", Type: cty.Number, Description: "argon2id: tag length in bytes, >= 16 (default 32)."},
			peerConfigsInput,
		}, sshInputs...),
		Outputs: []sdk.Attribute{
			{Name: "id", Type: cty.Number, Description: "The parameter-set id."},
			{Name: "algorithm", Type: cty.String, Description: "\"scrypt\" or \"argon2id\"."},
			{Name: "hmackey", Type: cty.String, Sensitive: true, Description: "scrypt: the hmac key (to add the same set to other hosts)."},
			{Name: "changed", Type: cty.Bool, Description: "Whether the file changed."},
		},
	}
}

// paramSet builds and checks the set the inputs describe, filling defaults.
// It generates an hmac key when none is given and gen is true.
func (in *paramSetAddInputs) paramSet(gen bool) (*paramSet, error) {
	bad := func(format string, args ...any) error {
		return sdk.Errorf(sdk.KindInvalid, false, "fix the step's inputs", format, args...)
	}
	if in.ID <= 0 {
		return nil, bad("id must be > 0 (0 is reserved)")
	}
	ps := &paramSet{ID: uint64(in.ID)}
	switch in.Algorithm {
	case "", "scrypt", "scryptauth":
		in.Algorithm = "scrypt"
		if in.Time != 0 || in.Memory != 0 || in.Threads != 0 || in.Length != 0 {
			return nil, bad("time, memory, threads and length are argon2id settings; set algorithm = \"argon2id\"")
		}
		if in.Cost == 0 {
			in.Cost = 14
		}
		if in.R == 0 {
			in.R = 8
		}
		if in.P == 0 {
			in.P = 1
		}
		switch {
		case in.Cost < 1 || in.Cost > 31:
			return nil, bad("cost %d out of range 1..31", in.Cost)
		case in.R < 1 || in.P < 1 || in.R*in.P >= 1<<30:
			return nil, bad("r and p must be >= 1 with r*p < 2^30")
		}
		sp := &scryptParams{Cost: uint(in.Cost), R: int(in.R), P: int(in.P)}
		switch {
		case in.HMACKey != "":
			k, err := base64.StdEncoding.DecodeString(in.HMACKey)
			if err != nil || len(k) != 32 {
				return nil, bad("hmackey must be standard base64 of exactly 32 bytes")
			}
			sp.HMACKey = k
		case gen:
			sp.HMACKey = make([]byte, 32)
			if _, err := rand.Read(sp.HMACKey); err != nil {
				return nil, sdk.Errorf(sdk.KindInternal, true, "retry", "generate hmac key: %v", err)
			}
		}
		ps.Scrypt = sp
	case "argon2id", "argon2":
		in.Algorithm = "argon2id"
		if in.Cost != 0 || in.R != 0 || in.P != 0 || in.HMACKey != "" {
			return nil, bad("cost, r, p and hmackey are scrypt settings; argon2id takes time, memory, threads and length")
		}
		if in.Time == 0 {
			in.Time = 1
		}
		if in.Memory == 0 {
			in.Memory = 65536
		}
		if in.Threads == 0 {
			in.Threads = 4
		}
		if in.Length == 0 {
			in.Length = 32
		}
		switch {
		case in.Time < 1 || in.Time > 1<<32-1:
			return nil, bad("time must be 1..%d", uint32(1<<32-1))
		case in.Threads < 1 || in.Threads > 255:
			return nil, bad("threads must be 1..255")
		case in.Memory < 8*in.Threads || in.Memory > 1<<32-1:
			return nil, bad("memory must be at least 8*threads KiB and fit 32 bits")
		case in.Length < 16 || in.Length > 1024:
			return nil, bad("length must be 16..1024 bytes")
		}
		ps.Argon2 = &argon2Params{Time: uint32(in.Time), Memory: uint32(in.Memory), Threads: uint8(in.Threads), Length: uint32(in.Length)}
	default:
		return nil, bad("algorithm %q: want \"scrypt\" or \"argon2id\"", in.Algorithm)
	}
	return ps, nil
}

func (*paramSetAddAction) Validate(_ context.Context, inputs cty.Value) sdk.Diagnostics {
	d := peerConfigsDiag(locDiag(nil, inputs, "config", true), inputs)
	if !inputs.IsWhollyKnown() {
		return d
	}
	var in paramSetAddInputs
	if _, err := decodeInputs(inputs, &in); err != nil {
		return d.Errorf(nil, "%v", err)
	}
	if _, err := in.paramSet(false); err != nil {
		d = d.Errorf(nil, "%v", sdk.Classify(err).Err)
	}
	return d
}

func describeSet(ps *paramSet) string {
	if ps.Scrypt != nil {
		return fmt.Sprintf("scrypt cost=%d r=%d p=%d", ps.Scrypt.Cost, ps.Scrypt.R, ps.Scrypt.P)
	}
	a := ps.Argon2
	return fmt.Sprintf("argon2id time=%d memory=%dKiB threads=%d length=%d", a.Time, a.Memory, a.Threads, a.Length)
}

var _ sdk.Planner = (*paramSetAddAction)(nil)

func (*paramSetAddAction) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	if !req.Inputs.IsWhollyKnown() {
		return &sdk.PlanResult{Summary: "add a parameter-set (inputs known at apply time)", Counts: map[string]int64{"add": 1}}, nil
	}
	var in paramSetAddInputs
	opts, err := decodeInputs(req.Inputs, &in)
	if err != nil {
		return nil, err
	}
	ps, err := in.paramSet(false)
	if err != nil {
		return nil, err
	}
	c := newConns(opts)
	defer c.Close()
	cf, err := loadConfigArg(ctx, c, in.Config)
	if err != nil {
		return nil, err
	}
	if _, dup := cf.Cfg.Sets[ps.ID]; dup {
		return nil, duplicateSet(cf, ps.ID)
	}
	return &sdk.PlanResult{
		Summary: fmt.Sprintf("add parameter-set %d (%s) to %s", ps.ID, describeSet(ps), cf.Loc),
		Counts:  map[string]int64{"add": 1},
	}, nil
}

func loadConfigArg(ctx context.Context, c *conns, s string) (*configFile, error) {
	loc, err := decodeLoc("config", s)
	if err != nil {
		return nil, err
	}
	return loadConfig(ctx, c, loc)
}

func duplicateSet(cf *configFile, id uint64) error {
	return sdk.Errorf(sdk.KindConflict, false, "choose an id that is not in the config",
		"config %s already has parameter-set %d", cf.Loc, id)
}

func (a *paramSetAddAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in paramSetAddInputs
	opts, err := decodeInputs(req.Inputs, &in)
	if err != nil {
		return nil, err
	}
	ps, err := in.paramSet(true)
	if err != nil {
		return nil, err
	}
	c := newConns(opts)
	defer c.Close()
	cf, err := loadConfigArg(ctx, c, in.Config)
	if err != nil {
		return nil, err
	}
	if _, dup := cf.Cfg.Sets[ps.ID]; dup {
		return nil, duplicateSet(cf, ps.ID)
	}
	if err := cf.Cfg.addSet(ps); err != nil {
		return nil, configInvalid(cf.Loc, err)
	}
	res, err := commitConfig(cf, ev, fmt.Sprintf("added parameter-set %d (%s)", ps.ID, describeSet(ps)))
	if err != nil {
		return res, err
	}
	out := paramSetAddOutputs{ID: in.ID, Algorithm: in.Algorithm, Changed: true}
	if ps.Scrypt != nil {
		out.HMACKey = base64.StdEncoding.EncodeToString(ps.Scrypt.HMACKey)
	}
	if res.Outputs, err = sdk.Encode(a.Schema(), out); err != nil {
		return res, err
	}
	return res, nil
}

// commitConfig encodes cf's edited config, prepares its undo state and
// writes it.
func commitConfig(cf *configFile, ev sdk.Events, what string) (*sdk.Result, error) {
	data, err := cf.Cfg.encode()
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInternal, false, "report this; the config was not changed", "config %s: %v", cf.Loc, err)
	}
	u, err := newConfigUndo(cf.Loc, cf.Raw, data)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindConflict, false,
			"the config's layout defeats exact restoration (e.g. an escaped hmackey); simplify it by hand",
			"config %s: cannot prepare undo: %v", cf.Loc, err)
	}
	if !u.Changed {
		ev.Log(sdk.LevelInfo, fmt.Sprintf("config %s: nothing to change", cf.Loc))
		return &sdk.Result{UndoState: u.marshal()}, nil
	}
	if err := cf.write(data); err != nil {
		return nil, err
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("config %s: %s", cf.Loc, what))
	// Keys of removed sets travel in the undo state: the engine seals it.
	return &sdk.Result{UndoState: u.marshal(), SensitiveUndoState: len(u.Keys) > 0}, nil
}

var _ sdk.Undoer = (*paramSetAddAction)(nil)

func (*paramSetAddAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	return undoConfigAction(ctx, req, ev)
}

// undoConfigAction is the native undo of every config-editing action.
func undoConfigAction(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	return undoConfigEdit(ctx, req, ev)
}

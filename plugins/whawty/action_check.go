package whawty

import (
	"context"
	"fmt"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// checkAction is whawty.check.
type checkAction struct{}

var (
	_ sdk.Action    = (*checkAction)(nil)
	_ sdk.Validator = (*checkAction)(nil)
)

type checkInputs struct {
	Store  string `cty:"store"`
	Config string `cty:"config"`
	Strict bool   `cty:"strict"`
}

type checkOutputs struct {
	OK          bool             `cty:"ok"`
	WhawtyOK    bool             `cty:"whawty_ok"`
	Users       int64            `cty:"users"`
	Admins      int64            `cty:"admins"`
	PerParamSet map[string]int64 `cty:"per_param_set"`
	PerProblem  map[string]int64 `cty:"per_problem"`
	Problems    []string         `cty:"problems"`
}

func (*checkAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "check",
		Description: "Check a store's consistency as whawty judges it (file names, x.user beside x.admin, " +
			"hash lines, known parameter-sets, a supported admin) plus what whawty misses (stray temp files, " +
			"empty placeholders, v0.1 layout, permissions). Fails when whawty's own check would fail, or on any problem with strict.",
		Inputs: append([]sdk.Attribute{
			{Name: "store", Type: cty.String, Description: "Store directory location (path or ssh://user@host:port/path). Default: the config's basedir on the config's host."},
			{Name: "config", Type: cty.String, Description: "Store config (auth-store.yaml) location; enables the parameter-set checks."},
			{Name: "strict", Type: cty.Bool, Description: "Fail on any problem, not only on those that make whawty's own check fail."},
		}, sshInputs...),
		Outputs: []sdk.Attribute{
			{Name: "ok", Type: cty.Bool, Description: "No problem at all."},
			{Name: "whawty_ok", Type: cty.Bool, Description: "whawty's own check would pass."},
			{Name: "users", Type: cty.Number, Description: "Hash files (users and admins)."},
			{Name: "admins", Type: cty.Number, Description: "Admin hash files."},
			{Name: "per_param_set", Type: cty.Map(cty.Number), Description: "Parseable hashes per parameter-set id."},
			{Name: "per_problem", Type: cty.Map(cty.Number), Description: "Problems per code."},
			{Name: "problems", Type: cty.List(cty.String), Description: "Every problem as \"file: code: detail\"."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (*checkAction) Validate(_ context.Context, inputs cty.Value) sdk.Diagnostics {
	var d sdk.Diagnostics
	d = locDiag(d, inputs, "store", false)
	d = locDiag(d, inputs, "config", false)
	if inputs.IsKnown() && inputs.Type().IsObjectType() {
		s, c := inputs.GetAttr("store"), inputs.GetAttr("config")
		if s.IsKnown() && c.IsKnown() && s.IsNull() && c.IsNull() {
			d = d.Errorf(nil, "set store, config or both")
		}
	}
	return d
}

// openStore resolves the store (and the config when given) of an action.
func openStore(ctx context.Context, c *conns, storeIn, configIn string) (fileSystem, location, *configFile, error) {
	var cf *configFile
	if configIn != "" {
		cl, err := decodeLoc("config", configIn)
		if err != nil {
			return nil, location{}, nil, err
		}
		if cf, err = loadConfig(ctx, c, cl); err != nil {
			return nil, location{}, nil, err
		}
	}
	var sl location
	var err error
	switch {
	case cf != nil:
		sl, err = cf.storeLoc(storeIn)
	case storeIn != "":
		sl, err = decodeLoc("store", storeIn)
	default:
		err = sdk.Errorf(sdk.KindInvalid, false, "set store, config or both", "no store given")
	}
	if err != nil {
		return nil, location{}, nil, err
	}
	fsys, err := c.fs(ctx, sl)
	if err != nil {
		return nil, location{}, nil, err
	}
	return fsys, sl, cf, nil
}

func (a *checkAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in checkInputs
	opts, err := decodeInputs(req.Inputs, &in)
	if err != nil {
		return nil, err
	}
	c := newConns(opts)
	defer c.Close()
	fsys, sl, cf, err := openStore(ctx, c, in.Store, in.Config)
	if err != nil {
		return nil, err
	}
	var cfg *storeConfig
	if cf != nil {
		cfg = cf.Cfg
	}
	scan, err := scanStore(ctx, fsys, sl.Path, cfg)
	if err != nil {
		return nil, fsError("read store", sl, err)
	}
	out := checkReport(scan)
	for _, p := range scan.Problems {
		lvl := sdk.LevelWarn
		if fatalProblems[p.Code] {
			lvl = sdk.LevelError
		}
		ev.Log(lvl, fmt.Sprintf("%s: %s", sl, p))
	}
	res := &sdk.Result{}
	if res.Outputs, err = sdk.Encode(a.Schema(), out); err != nil {
		return nil, err
	}
	if !out.WhawtyOK || (in.Strict && !out.OK) {
		return res, sdk.Errorf(sdk.KindConflict, false,
			"fix the problems listed (whawty's own check fails on invalid files, x.user beside x.admin and a missing supported admin)",
			"store %s has %d problem(s): %s", sl, len(out.Problems), summarize(out.Problems, 5))
	}
	return res, nil
}

func checkReport(scan *storeScan) checkOutputs {
	out := checkOutputs{PerParamSet: scan.perSet(), PerProblem: map[string]int64{}, Problems: []string{}}
	for _, f := range scan.Files {
		out.Users++
		if f.Admin {
			out.Admins++
		}
	}
	for _, p := range scan.Problems {
		out.PerProblem[p.Code]++
		out.Problems = append(out.Problems, p.String())
	}
	out.OK = len(scan.Problems) == 0
	out.WhawtyOK = len(scan.fatal()) == 0
	return out
}

// summarize joins the first n items and says how many more there are.
func summarize(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "; ")
	}
	return strings.Join(items[:n], "; ") + fmt.Sprintf("; and %d more", len(items)-n)
}

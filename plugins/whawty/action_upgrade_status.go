package whawty

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/backoff"
	"github.com/runbookdev/runbook/sdk"
)

// upgradeStatusAction is whawty.upgrade_status.
type upgradeStatusAction struct{}

var (
	_ sdk.Action    = (*upgradeStatusAction)(nil)
	_ sdk.Validator = (*upgradeStatusAction)(nil)
)

type upgradeStatusInputs struct {
	Config         string  `cty:"config"`
	Store          string  `cty:"store"`
	WaitForPercent float64 `cty:"wait_for_percent"`
	Timeout        string  `cty:"timeout"`
	Interval       string  `cty:"interval"`
}

type upgradeStatusOutputs struct {
	Total       int64            `cty:"total"`
	DefaultID   int64            `cty:"default_id"`
	OnDefault   int64            `cty:"on_default"`
	Percent     float64          `cty:"percent_on_default"`
	PerParamSet map[string]int64 `cty:"per_param_set"`
	Unsupported int64            `cty:"unsupported"`
}

func (*upgradeStatusAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "upgrade_status",
		Description: "Count hashes per parameter-set and the share on the default set. With wait_for_percent, " +
			"poll until that share is reached (progress events) or fail after timeout.",
		Inputs: append([]sdk.Attribute{
			{Name: "config", Type: cty.String, Required: true, Description: "Config file location (path or ssh://user@host:port/path)."},
			{Name: "store", Type: cty.String, Description: "Store location (default: the config's basedir on the config's host)."},
			{Name: "wait_for_percent", Type: cty.Number, Description: "Poll until at least this share (0..100) of hashes is on the default set."},
			{Name: "timeout", Type: cty.String, Description: "How long to wait for wait_for_percent (Go duration, default \"1h\")."},
			{Name: "interval", Type: cty.String, Description: "Time between polls (default \"30s\")."},
		}, sshInputs...),
		Outputs: []sdk.Attribute{
			{Name: "total", Type: cty.Number, Description: "Hash files with a parseable hash."},
			{Name: "default_id", Type: cty.Number, Description: "The default parameter-set id."},
			{Name: "on_default", Type: cty.Number, Description: "Hashes on the default set."},
			{Name: "percent_on_default", Type: cty.Number, Description: "on_default / total * 100 (100 for an empty store)."},
			{Name: "per_param_set", Type: cty.Map(cty.Number), Description: "Hashes per parameter-set id."},
			{Name: "unsupported", Type: cty.Number, Description: "Hashes whose set is unknown to the config or of another format."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (*upgradeStatusAction) Validate(_ context.Context, inputs cty.Value) sdk.Diagnostics {
	d := locDiag(nil, inputs, "config", true)
	d = locDiag(d, inputs, "store", false)
	if !inputs.IsKnown() || inputs.IsNull() {
		return d
	}
	for _, a := range []string{"timeout", "interval"} {
		if v := inputs.GetAttr(a); v.IsKnown() && !v.IsNull() {
			if dur, err := time.ParseDuration(v.AsString()); err != nil || dur <= 0 {
				d = d.Errorf([]string{a}, "%s must be a positive Go duration such as \"30s\" or \"2h\"", a)
			}
		}
	}
	if v := inputs.GetAttr("wait_for_percent"); v.IsKnown() && !v.IsNull() {
		if f, _ := v.AsBigFloat().Float64(); f < 0 || f > 100 {
			d = d.Errorf([]string{"wait_for_percent"}, "must be between 0 and 100")
		}
	}
	return d
}

func parseDur(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, sdk.Errorf(sdk.KindInvalid, false, "write a Go duration such as \"30s\"", "bad duration %q", s)
	}
	return d, nil
}

func (a *upgradeStatusAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in upgradeStatusInputs
	opts, err := decodeInputs(req.Inputs, &in)
	if err != nil {
		return nil, err
	}
	timeout, err := parseDur(in.Timeout, time.Hour)
	if err != nil {
		return nil, err
	}
	interval, err := parseDur(in.Interval, 30*time.Second)
	if err != nil {
		return nil, err
	}
	c := newConns(opts)
	defer c.Close()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		out, err := upgradeStatus(ctx, c, in)
		if err != nil {
			return nil, err
		}
		ev.Progress(out.OnDefault, out.Total, "users")
		ev.Log(sdk.LevelInfo, fmt.Sprintf("%d of %d hashes (%.1f%%) on default parameter-set %d", out.OnDefault, out.Total, out.Percent, out.DefaultID))
		if in.WaitForPercent <= 0 || out.Percent >= in.WaitForPercent {
			res := &sdk.Result{}
			res.Outputs, err = sdk.Encode(a.Schema(), out)
			return res, err
		}
		// Poll until the deadline: the last wait is cut short so that the
		// last count is taken at the deadline.
		left := time.Until(deadline)
		if left <= 0 {
			res := &sdk.Result{}
			res.Outputs, _ = sdk.Encode(a.Schema(), out)
			return res, sdk.Errorf(sdk.KindConflict, true,
				"users are re-hashed only when they log in (whawty --do-upgrades local on the master); wait longer, lower wait_for_percent, or ask users to log in",
				"only %.1f%% of hashes are on parameter-set %d after %s (want %.1f%%)", out.Percent, out.DefaultID, time.Since(start).Round(time.Second), in.WaitForPercent)
		}
		if err := backoff.Sleep(ctx, min(interval, left)); err != nil {
			return nil, sdk.Errorf(sdk.KindCancelled, true, "re-run the step", "waiting for upgrades: %v", err)
		}
	}
}

// upgradeStatus reads the config and the store once.
func upgradeStatus(ctx context.Context, c *conns, in upgradeStatusInputs) (upgradeStatusOutputs, error) {
	var out upgradeStatusOutputs
	fsys, sl, cf, err := openStore(ctx, c, in.Store, in.Config)
	if err != nil {
		return out, err
	}
	scan, err := scanStore(ctx, fsys, sl.Path, cf.Cfg)
	if err != nil {
		return out, fsError("read store", sl, err)
	}
	out.PerParamSet = scan.perSet()
	out.DefaultID = int64(cf.Cfg.Default)
	for id, n := range out.PerParamSet {
		out.Total += n
		pid, _ := strconv.ParseUint(id, 10, 64)
		if pid == cf.Cfg.Default {
			out.OnDefault += n
		}
	}
	for _, f := range scan.Files {
		if f.HashErr != nil || len(f.Content) == 0 {
			continue
		}
		if set := cf.Cfg.Sets[f.Hash.ParamID]; set == nil || set.format() != f.Hash.Format {
			out.Unsupported++
		}
	}
	out.Percent = 100
	if out.Total > 0 {
		out.Percent = float64(out.OnDefault) * 100 / float64(out.Total)
	}
	return out, nil
}

package whawty

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// paramSetRemoveAction is whawty.param_set_remove.
type paramSetRemoveAction struct{}

var (
	_ sdk.Action    = (*paramSetRemoveAction)(nil)
	_ sdk.Planner   = (*paramSetRemoveAction)(nil)
	_ sdk.Undoer    = (*paramSetRemoveAction)(nil)
	_ sdk.Validator = (*paramSetRemoveAction)(nil)
)

type paramSetRemoveInputs struct {
	Config string `cty:"config"`
	Store  string `cty:"store"`
	ID     int64  `cty:"id"`
	Force  bool   `cty:"force"`
	// PeerConfigs: the other hosts' configs; their stores are checked too.
	PeerConfigs []string `cty:"peer_configs"`
}

type paramSetRemoveOutputs struct {
	UsersOnSet int64    `cty:"users_on_set"`
	Users      []string `cty:"users"`
	Changed    bool     `cty:"changed"`
}

// maxListed bounds user lists in outputs and messages.
const maxListed = 100

func (*paramSetRemoveAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "param_set_remove",
		Description: "Remove a parameter-set from a store config. Refuses while any user's hash still uses it " +
			"(listing them) unless force = true, always refuses when no admin would be left with a supported hash, " +
			"and refuses the default set. With peer_configs, every peer's store is checked the same way against its own config first, " +
			"so that a lagging slave stops the removal before anything is written. " +
			"Native undo restores the file byte for byte (its undo state holds the removed set's hmac key and is marked sensitive: the engine seals it).",
		Inputs: append([]sdk.Attribute{
			{Name: "config", Type: cty.String, Required: true, Description: "Config file location (path or ssh://user@host:port/path)."},
			{Name: "store", Type: cty.String, Description: "Store location to count users in (default: the config's basedir on the config's host)."},
			{Name: "id", Type: cty.Number, Required: true, Description: "Parameter-set id to remove."},
			{Name: "force", Type: cty.Bool, Description: "Remove even though users still use the set (they will not be able to log in)."},
			peerConfigsInput,
		}, sshInputs...),
		Outputs: []sdk.Attribute{
			{Name: "users_on_set", Type: cty.Number, Description: "Users whose hash used the set."},
			{Name: "users", Type: cty.List(cty.String), Description: "Those users (at most 100)."},
			{Name: "changed", Type: cty.Bool, Description: "False when the set was already absent."},
		},
		Capabilities: sdk.Capabilities{Idempotent: true},
	}
}

func (*paramSetRemoveAction) Validate(_ context.Context, inputs cty.Value) sdk.Diagnostics {
	d := peerConfigsDiag(locDiag(nil, inputs, "config", true), inputs)
	d = locDiag(d, inputs, "store", false)
	return idDiag(d, inputs)
}

// removal is the outcome of checking a removal against the store.
type removal struct {
	cf    *configFile
	users []string // users still on the set, sorted
	// absent is true when the set is not in the config (nothing to do).
	absent bool
}

func (in *paramSetRemoveInputs) check(ctx context.Context, c *conns) (*removal, error) {
	if in.ID <= 0 {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "fix the step's inputs", "id must be > 0")
	}
	id := uint64(in.ID)
	cf, err := loadConfigArg(ctx, c, in.Config)
	if err != nil {
		return nil, err
	}
	r := &removal{cf: cf}
	if cf.Cfg.Sets[id] == nil {
		r.absent = true
		return r, nil
	}
	if cf.Cfg.Default == id {
		return nil, sdk.Errorf(sdk.KindConflict, false, "make another set the default first (whawty.param_set_default)",
			"config %s: parameter-set %d is the default", cf.Loc, id)
	}
	sl, err := cf.storeLoc(in.Store)
	if err != nil {
		return nil, err
	}
	if r.users, err = usersOnRemoval(ctx, c, cf, sl, id, in.Force, ""); err != nil {
		return nil, err
	}
	// The peers' stores, each against its own config, before anything
	// is written here: a slave that still needs the set stops the removal
	// on every host.
	locs, err := peerLocations(cf.Loc, in.PeerConfigs)
	if err != nil {
		return nil, err
	}
	for _, pl := range locs {
		pc, err := loadConfig(ctx, c, pl)
		if err != nil {
			return nil, err
		}
		if pc.Cfg.Sets[id] == nil {
			continue // already gone there
		}
		if pc.Cfg.Default == id {
			return nil, sdk.Errorf(sdk.KindConflict, false, "make another set the default there first (whawty.param_set_default)",
				"peer config %s: parameter-set %d is its default; not removing it from %s", pl, id, cf.Loc)
		}
		psl, err := pc.storeLoc("")
		if err != nil {
			return nil, err
		}
		if _, err := usersOnRemoval(ctx, c, pc, psl, id, in.Force, fmt.Sprintf(" (a peer of %s: nothing was removed there)", cf.Loc)); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// usersOnRemoval lists the users of the store sl whose hash uses set id of
// cf, and refuses when removing the set would leave no admin with a
// supported hash, or (unless force) while users are on it.
// note is added to the refusal (which host it is about).
func usersOnRemoval(ctx context.Context, c *conns, cf *configFile, sl location, id uint64, force bool, note string) ([]string, error) {
	fsys, err := c.fs(ctx, sl)
	if err != nil {
		return nil, err
	}
	scan, err := scanStore(ctx, fsys, sl.Path, cf.Cfg)
	if err != nil {
		return nil, fsError("read store", sl, err)
	}
	var users []string
	supportedAdmins := 0
	for _, f := range scan.Files {
		if f.HashErr != nil || len(f.Content) == 0 {
			continue
		}
		if f.Hash.ParamID == id {
			users = append(users, f.User)
			continue
		}
		if set := cf.Cfg.Sets[f.Hash.ParamID]; f.Admin && set != nil && set.format() == f.Hash.Format && usernameRE.MatchString(f.User) {
			supportedAdmins++
		}
	}
	sort.Strings(users)
	if supportedAdmins == 0 {
		return nil, sdk.Errorf(sdk.KindConflict, false,
			"let an admin log in (or reset an admin's password) so that its hash moves to another set (and sync the slaves), then retry",
			"removing parameter-set %d from %s would leave no admin with a supported hash in %s; whawty would refuse to start%s", id, cf.Loc, sl, note)
	}
	if len(users) > 0 && !force {
		return nil, sdk.Errorf(sdk.KindConflict, true,
			"wait until these users have logged in (and been upgraded) and the slaves are synced, or set force = true to lock them out",
			"%d user(s) still use parameter-set %d in %s%s: %s", len(users), id, sl, note, summarize(users, 20))
	}
	return users, nil
}

var _ sdk.Planner = (*paramSetRemoveAction)(nil)

func (*paramSetRemoveAction) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	if !req.Inputs.IsWhollyKnown() {
		return &sdk.PlanResult{Summary: "remove a parameter-set (inputs known at apply time)", Counts: map[string]int64{"remove": 1}}, nil
	}
	var in paramSetRemoveInputs
	opts, err := decodeInputs(req.Inputs, &in)
	if err != nil {
		return nil, err
	}
	c := newConns(opts)
	defer c.Close()
	r, err := in.check(ctx, c)
	if err != nil {
		return nil, err
	}
	if r.absent {
		return &sdk.PlanResult{Summary: fmt.Sprintf("%s has no parameter-set %d: nothing to do", r.cf.Loc, in.ID), Counts: map[string]int64{"remove": 0}}, nil
	}
	pr := &sdk.PlanResult{
		Summary: fmt.Sprintf("remove parameter-set %d from %s", in.ID, r.cf.Loc),
		Counts:  map[string]int64{"remove": 1, "users_locked_out": int64(len(r.users))},
	}
	if len(r.users) > 0 {
		pr.Warnings = append(pr.Warnings, fmt.Sprintf("force: %d user(s) will no longer be able to log in: %s", len(r.users), summarize(r.users, 20)))
	}
	return pr, nil
}

func (a *paramSetRemoveAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in paramSetRemoveInputs
	opts, err := decodeInputs(req.Inputs, &in)
	if err != nil {
		return nil, err
	}
	c := newConns(opts)
	defer c.Close()
	r, err := in.check(ctx, c)
	if err != nil {
		return nil, err
	}
	out := paramSetRemoveOutputs{UsersOnSet: int64(len(r.users)), Users: r.users}
	if len(out.Users) > maxListed {
		out.Users = out.Users[:maxListed]
	}
	if out.Users == nil {
		out.Users = []string{}
	}
	var res *sdk.Result
	if r.absent {
		ev.Log(sdk.LevelInfo, fmt.Sprintf("%s has no parameter-set %d: nothing to do", r.cf.Loc, in.ID))
		res = &sdk.Result{}
	} else {
		if len(r.users) > 0 {
			ev.Log(sdk.LevelWarn, fmt.Sprintf("force: %d user(s) lose their login: %s", len(r.users), strings.Join(out.Users, ", ")))
		}
		if err := r.cf.Cfg.removeSet(uint64(in.ID)); err != nil {
			return nil, configInvalid(r.cf.Loc, err)
		}
		if res, err = commitConfig(r.cf, ev, fmt.Sprintf("removed parameter-set %d", in.ID)); err != nil {
			return res, err
		}
		out.Changed = true
	}
	if res.Outputs, err = sdk.Encode(a.Schema(), out); err != nil {
		return res, err
	}
	return res, nil
}

var _ sdk.Undoer = (*paramSetRemoveAction)(nil)

func (*paramSetRemoveAction) Undo(ctx context.Context, req *sdk.UndoRequest, ev sdk.Events) error {
	return undoConfigAction(ctx, req, ev)
}

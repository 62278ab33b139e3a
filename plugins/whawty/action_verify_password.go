package whawty

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// verifyPasswordAction is whawty.verify_password.
type verifyPasswordAction struct{}

var (
	_ sdk.Action    = (*verifyPasswordAction)(nil)
	_ sdk.Validator = (*verifyPasswordAction)(nil)
)

type verifyPasswordInputs struct {
	Config        string `cty:"config"`
	Store         string `cty:"store"`
	Username      string `cty:"username"`
	Password      string `cty:"password"`
	AllowMismatch bool   `cty:"allow_mismatch"`
}

type verifyPasswordOutputs struct {
	Valid       bool  `cty:"valid"`
	Admin       bool  `cty:"admin"`
	ParamSet    int64 `cty:"param_set"`
	Upgradeable bool  `cty:"upgradeable"`
}

func (*verifyPasswordAction) Schema() sdk.ActionSchema {
	return sdk.ActionSchema{
		Name: "verify_password",
		Description: "Check a user's password against the store with the config's parameter-sets " +
			"(hmac_sha256_scrypt and argon2id), as whawty authenticates. Fails on a wrong password unless allow_mismatch = true.",
		Inputs: append([]sdk.Attribute{
			{Name: "config", Type: cty.String, Required: true, Description: "Config file location (path or ssh://user@host:port/path)."},
			{Name: "store", Type: cty.String, Description: "Store location (default: the config's basedir on the config's host)."},
			{Name: "username", Type: cty.String, Required: true, Description: "User name."},
			{Name: "password", Type: cty.String, Required: true, Sensitive: true, Description: "Password to check."},
			{Name: "allow_mismatch", Type: cty.Bool, Description: "Succeed with valid = false instead of failing when the password does not match."},
		}, sshInputs...),
		Outputs: []sdk.Attribute{
			{Name: "valid", Type: cty.Bool, Description: "The password matches."},
			{Name: "admin", Type: cty.Bool, Description: "The user is an admin."},
			{Name: "param_set", Type: cty.Number, Description: "Parameter-set of the user's hash."},
			{Name: "upgradeable", Type: cty.Bool, Description: "The hash is not on the default set (whawty re-hashes it at the next login)."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (*verifyPasswordAction) Validate(_ context.Context, inputs cty.Value) sdk.Diagnostics {
	d := locDiag(nil, inputs, "config", true)
	d = locDiag(d, inputs, "store", false)
	if inputs.IsKnown() && !inputs.IsNull() {
		if v := inputs.GetAttr("username"); v.IsKnown() && !v.IsNull() && !usernameRE.MatchString(v.AsString()) {
			d = d.Errorf([]string{"username"}, "not a valid whawty user name (%s)", usernameRE)
		}
	}
	return d
}

func (a *verifyPasswordAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	var in verifyPasswordInputs
	opts, err := decodeInputs(req.Inputs, &in)
	if err != nil {
		return nil, err
	}
	if !usernameRE.MatchString(in.Username) {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "fix the user name", "not a valid whawty user name: %q", in.Username)
	}
	c := newConns(opts)
	defer c.Close()
	fsys, sl, cf, err := openStore(ctx, c, in.Store, in.Config)
	if err != nil {
		return nil, err
	}
	var out verifyPasswordOutputs
	var content []byte
	for _, ext := range []string{".admin", ".user"} {
		b, err := fsys.ReadFile(path.Join(sl.Path, in.Username+ext))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fsError("read", sl.join(in.Username+ext), err)
		}
		content, out.Admin = b, ext == ".admin"
		break
	}
	if content == nil {
		return nil, sdk.Errorf(sdk.KindNotFound, false, "check the user name and the store location",
			"user %q not found in %s", in.Username, sl)
	}
	h, err := parseHashFile(content)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindConflict, false, "run whawty.check on the store; the user must be re-added",
			"user %q: %v", in.Username, err)
	}
	out.ParamSet = int64(h.ParamID)
	out.Upgradeable = h.ParamID != cf.Cfg.Default
	ok, err := verifyHash(h, cf.Cfg.Sets[h.ParamID], in.Password)
	if err != nil {
		return nil, sdk.Errorf(sdk.KindConflict, false,
			"add the user's parameter-set back to the config, or re-add the user",
			"user %q cannot be authenticated: %v", in.Username, err)
	}
	out.Valid = ok
	res := &sdk.Result{}
	if res.Outputs, err = sdk.Encode(a.Schema(), out); err != nil {
		return nil, err
	}
	if !ok {
		ev.Log(sdk.LevelWarn, fmt.Sprintf("password of %q does not match", in.Username))
		if !in.AllowMismatch {
			return res, sdk.Errorf(sdk.KindAuth, false, "check the password given to the step",
				"password of user %q does not match its hash in %s", in.Username, sl)
		}
	}
	return res, nil
}

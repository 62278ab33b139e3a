// Package whawty manages whawty.auth password stores: it checks a store,
// mirrors a master store to slaves safely (over SFTP or locally), rolls out
// hashing parameter-sets in the store config, reports upgrade progress and
// verifies passwords.
//
// Locations are local absolute paths or ssh://user@host:port/path. Host keys
// are always checked against a known_hosts file.
package whawty

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// Version of the plugin.
const Version = "0.1.0"

// New returns the whawty plugin.
func New() *sdk.Plugin {
	return &sdk.Plugin{
		Name:    "whawty",
		Version: Version,
		Actions: []sdk.Action{
			&checkAction{},
			&syncAction{},
			&paramSetAddAction{},
			&paramSetDefaultAction{},
			&paramSetRemoveAction{},
			&upgradeStatusAction{},
			&verifyPasswordAction{},
		},
	}
}

// sshInputs are the inputs every action takes for ssh:// locations.
var sshInputs = []sdk.Attribute{
	{Name: "known_hosts", Type: cty.String, Description: "known_hosts file the ssh host keys are checked against (default ~/.ssh/known_hosts)."},
	{Name: "identity_file", Type: cty.String, Description: "Private key file for ssh:// locations (default: the ssh agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa)."},
}

// fsError classifies a file operation error on loc.
func fsError(op string, loc location, err error) error {
	var se *sdk.Error
	if errors.As(err, &se) {
		return err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return sdk.Errorf(sdk.KindNotFound, false, "check the path in the location", "%s %s: %v", op, loc, err)
	case errors.Is(err, fs.ErrPermission):
		return sdk.Errorf(sdk.KindAuth, false,
			"run as (or connect as) a user that may read and write the store, e.g. root or the whawty user",
			"%s %s: %v", op, loc, err)
	}
	return sdk.Errorf(sdk.KindInternal, false, "check the host's disk and logs", "%s %s: %v", op, loc, err)
}

// configInvalid classifies a config whawty (or we) would refuse.
func configInvalid(loc location, err error) error {
	return sdk.Errorf(sdk.KindConflict, false,
		"fix the config file by hand so that whawty accepts it, then re-run",
		"config %s: %v", loc, err)
}

// decodeLoc parses a location input, naming the attribute in errors.
func decodeLoc(attr, s string) (location, error) {
	l, err := parseLocation(s)
	if err != nil {
		return location{}, fmt.Errorf("%s: %w", attr, err)
	}
	return l, nil
}

// locDiag validates an optional location input for Validate.
func locDiag(d sdk.Diagnostics, inputs cty.Value, attr string, required bool) sdk.Diagnostics {
	if !inputs.Type().IsObjectType() || !inputs.Type().HasAttribute(attr) {
		return d
	}
	v := inputs.GetAttr(attr)
	if !v.IsKnown() {
		return d
	}
	if v.IsNull() {
		if required {
			d = d.Errorf([]string{attr}, "%s is required", attr)
		}
		return d
	}
	if _, err := parseLocation(v.AsString()); err != nil {
		d = d.Errorf([]string{attr}, "%v", err)
	}
	return d
}

// decodeInputs decodes the action's own inputs into dst (a struct with cty
// tags) and returns the shared ssh options.
func decodeInputs(v cty.Value, dst any) (sshOptions, error) {
	v, _ = v.UnmarkDeep()
	if v.IsNull() || !v.IsKnown() || !v.Type().IsObjectType() {
		return sshOptions{}, sdk.Errorf(sdk.KindInvalid, false, "", "inputs must be a known object")
	}
	o := sshOptionsOf(v)
	attrs := v.AsValueMap()
	delete(attrs, "known_hosts")
	delete(attrs, "identity_file")
	rest := cty.EmptyObjectVal
	if len(attrs) > 0 {
		rest = cty.ObjectVal(attrs)
	}
	return o, sdk.Decode(rest, dst)
}

// sshOptionsOf reads the shared ssh options from an inputs object.
func sshOptionsOf(v cty.Value) sshOptions {
	v, _ = v.UnmarkDeep()
	str := func(name string) string {
		if v.IsNull() || !v.IsKnown() || !v.Type().IsObjectType() || !v.Type().HasAttribute(name) {
			return ""
		}
		x := v.GetAttr(name)
		if x.IsNull() || !x.IsKnown() || x.Type() != cty.String {
			return ""
		}
		return x.AsString()
	}
	return sshOptions{KnownHosts: str("known_hosts"), IdentityFile: str("identity_file")}
}

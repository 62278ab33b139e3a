package couchdb

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// connAttrs are the connection inputs of a single-server action; with a
// prefix ("source_", "target_") they name one side of a two-server action.
func connAttrs(prefix, side string) []sdk.Attribute {
	if side != "" {
		side += " "
	}
	return []sdk.Attribute{
		{Name: prefix + "url", Type: cty.String, Required: true, Sensitive: true,
			Description: "Base URL of the " + side + "server, e.g. http://127.0.0.1:5984. Credentials may be given inside it (user:pass@host): the URL is sensitive, so it is sealed in the journal and masked in every output, and the plugin's own messages name the server by host only."},
		{Name: prefix + "username", Type: cty.String, Description: "User name (an admin for design documents and database creation)."},
		{Name: prefix + "password", Type: cty.String, Sensitive: true, Description: "Password; never printed."},
	}
}

// conn holds the connection inputs of one server.
type conn struct {
	URL      string
	Username string
	Password string
}

// connFrom reads the prefixed connection inputs from an inputs object.
func connFrom(in cty.Value, prefix string) conn {
	return conn{
		URL:      ctyx.StringAttr(in, prefix+"url"),
		Username: ctyx.StringAttr(in, prefix+"username"),
		Password: ctyx.StringAttr(in, prefix+"password"),
	}
}

func (c conn) client() (*Client, error) { return NewClient(c.URL, c.Username, c.Password) }

// openPair opens the clients of a two-server action's source_ and target_
// inputs and resolves the databases it names on the source. On error,
// whatever it opened is closed already.
func openPair(ctx context.Context, in cty.Value) (src, dst *Client, dbs []string, err error) {
	src, err = connFrom(in, "source_").client()
	if err != nil {
		return nil, nil, nil, err
	}
	dst, err = connFrom(in, "target_").client()
	if err != nil {
		src.Close()
		return nil, nil, nil, err
	}
	dbs, err = resolveDatabases(ctx, src, in)
	if err != nil {
		dst.Close()
		src.Close()
		return nil, nil, nil, err
	}
	return src, dst, dbs, nil
}

func listAttr(in cty.Value, name string) []string {
	v := ctyx.Attr(in, name)
	if v.IsNull() || !v.IsKnown() || !v.CanIterateElements() {
		return nil
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsKnown() && !e.IsNull() && e.Type() == cty.String {
			out = append(out, e.AsString())
		}
	}
	return out
}

// databaseAttrs are the inputs choosing databases: a list or a prefix.
var databaseAttrs = []sdk.Attribute{
	{Name: "databases", Type: cty.List(cty.String), Description: "Databases to take."},
	{Name: "prefix", Type: cty.String, Description: "Take every database whose name starts with this prefix followed by \"/\" (a Cozy v3 instance: \"alice-example-net\"), or with the prefix itself when it ends in \"/\"."},
}

// resolveDatabases lists the databases named by the inputs, sorted and
// deduplicated, checking that at least one is given.
func resolveDatabases(ctx context.Context, c *Client, in cty.Value) ([]string, error) {
	dbs := listAttr(in, "databases")
	if p := ctyx.StringAttr(in, "prefix"); p != "" {
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		all, err := c.AllDBs(ctx)
		if err != nil {
			return nil, fmt.Errorf("list databases: %w", err)
		}
		for _, d := range all {
			if strings.HasPrefix(d, p) {
				dbs = append(dbs, d)
			}
		}
		if len(dbs) == 0 {
			return nil, sdk.Errorf(sdk.KindNotFound, false, "check the instance prefix (cozy-stack instances show DOMAIN → prefix)", "no database starts with %q on %s", p, c.Name())
		}
	}
	sort.Strings(dbs)
	out := dbs[:0]
	for i, d := range dbs {
		if i == 0 || d != dbs[i-1] {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "set databases = [...] or prefix = \"...\"", "no database given")
	}
	return out, nil
}

// validateDatabases is the shared Validate part for databases/prefix.
func validateDatabases(in cty.Value) sdk.Diagnostics {
	var d sdk.Diagnostics
	dv, pv := ctyx.Attr(in, "databases"), ctyx.Attr(in, "prefix")
	if !dv.IsKnown() || !pv.IsKnown() {
		return nil
	}
	if (dv.IsNull() || dv.LengthInt() == 0) && (pv.IsNull() || pv.AsString() == "") {
		d = d.Errorf([]string{"databases"}, "set databases or prefix")
	}
	return d
}

// validateURL checks a known URL input.
func validateURL(in cty.Value, name string) sdk.Diagnostics {
	v := ctyx.Attr(in, name)
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	if _, err := NewClient(v.AsString(), "", ""); err != nil {
		return sdk.Diagnostics{}.Errorf([]string{name}, "%s", sdk.Classify(err).Err.Error())
	}
	return nil
}

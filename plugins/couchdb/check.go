package couchdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// checkAction is couchdb.check.
type checkAction struct{}

var (
	_ sdk.Action    = checkAction{}
	_ sdk.Validator = checkAction{}
)

var dbInfoType = cty.Object(map[string]cty.Type{
	"name": cty.String, "doc_count": cty.Number, "doc_del_count": cty.Number,
	"update_seq": cty.String, "disk_size": cty.Number,
})

func (checkAction) Schema() sdk.ActionSchema {
	in := append(connAttrs("", ""), databaseAttrs...)
	in = append(in, sdk.Attribute{Name: "require_databases", Type: cty.Bool,
		Description: "Fail when a database named in databases is missing (default true)."})
	return sdk.ActionSchema{
		Name:        "check",
		Description: "Check that a server is reachable and the credentials work; report its version and databases.",
		Inputs:      in,
		Outputs: []sdk.Attribute{
			{Name: "version", Type: cty.String},
			{Name: "vendor", Type: cty.String},
			{Name: "user", Type: cty.String, Description: "The user the server authenticated (empty: anonymous)."},
			{Name: "admin", Type: cty.Bool, Description: "Whether that user is a server admin."},
			{Name: "databases", Type: cty.List(dbInfoType), Description: "The named databases, or every database when none is named."},
			{Name: "missing", Type: cty.List(cty.String), Description: "Named databases that do not exist."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (checkAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	return validateURL(in, "url")
}

type dbInfoOut struct {
	Name        string `cty:"name"`
	DocCount    int64  `cty:"doc_count"`
	DocDelCount int64  `cty:"doc_del_count"`
	UpdateSeq   string `cty:"update_seq"`
	DiskSize    int64  `cty:"disk_size"`
}

func (a checkAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	c, err := connFrom(req.Inputs, "").client()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	info, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", c.Name(), err)
	}
	version := info.CouchDB
	if version == "" {
		version = info.Version
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("%s: %s %s", c.Name(), info.VendorName(), version))
	// GET / may be public: /_session says who the server took us for.
	var sess struct {
		UserCtx struct {
			Name  *string  `json:"name"`
			Roles []string `json:"roles"`
		} `json:"userCtx"`
	}
	if err := c.JSON(ctx, Request{Method: "GET", Path: "/_session"}, &sess); err != nil {
		return nil, fmt.Errorf("check %s: %w", c.Name(), err)
	}
	user := ""
	if sess.UserCtx.Name != nil {
		user = *sess.UserCtx.Name
	}
	if c.username != "" && user == "" {
		return nil, &sdk.Error{Kind: sdk.KindAuth, Hint: fmt.Sprintf("check the username and password for %s", c.base.Host),
			Err: fmt.Errorf("credentials rejected by %s: the server treats the requests as anonymous", c.base.Host)}
	}
	admin := false
	for _, r := range sess.UserCtx.Roles {
		if r == "_admin" {
			admin = true
		}
	}
	names := listAttr(req.Inputs, "databases")
	var all []string
	if p := ctyx.StringAttr(req.Inputs, "prefix"); p != "" || len(names) == 0 {
		if all, err = c.AllDBs(ctx); err != nil {
			return nil, fmt.Errorf("check %s: list databases (needs an admin on CouchDB 3): %w", c.Name(), err)
		}
	}
	if p := ctyx.StringAttr(req.Inputs, "prefix"); p != "" {
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		for _, d := range all {
			if strings.HasPrefix(d, p) {
				names = append(names, d)
			}
		}
	} else if len(names) == 0 {
		names = all
	}
	out := struct {
		Version   string      `cty:"version"`
		Vendor    string      `cty:"vendor"`
		User      string      `cty:"user"`
		Admin     bool        `cty:"admin"`
		Databases []dbInfoOut `cty:"databases"`
		Missing   []string    `cty:"missing"`
	}{Version: version, Vendor: info.VendorName(), User: user, Admin: admin, Databases: []dbInfoOut{}, Missing: []string{}}
	for i, n := range names {
		di, err := c.DBInfo(ctx, n)
		if kindOf(err) == sdk.KindNotFound {
			out.Missing = append(out.Missing, n)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("database %s: %w", n, err)
		}
		out.Databases = append(out.Databases, dbInfoOut{n, di.DocCount, di.DocDelCount, seqParam(di.UpdateSeq), di.FileSize()})
		ev.Progress(int64(i+1), int64(len(names)), "databases")
	}
	v, err := sdk.Encode(a.Schema(), out)
	if err != nil {
		return nil, err
	}
	res := &sdk.Result{Outputs: v}
	if len(out.Missing) > 0 && ctyx.BoolAttr(req.Inputs, "require_databases", true) && len(listAttr(req.Inputs, "databases")) > 0 {
		return res, sdk.Errorf(sdk.KindNotFound, false, "check the database names (a Cozy v3 database is named PREFIX/DOCTYPE)",
			"missing databases on %s: %s", c.Name(), strings.Join(out.Missing, ", "))
	}
	return res, nil
}

package couchdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/runbookdev/runbook/sdk"
	"github.com/zclconf/go-cty/cty"
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
		return nil, fmt.Errorf("check %s: %w", c.URL(), err)
	}
	version := info.CouchDB
	if version == "" {
		version = info.Version
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("%s: %s %s", c.URL(), info.VendorName(), version))
	// GET / is public; listing databases proves the credentials.
	all, err := c.AllDBs(ctx)
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", c.URL(), err)
	}
	names := listAttr(req.Inputs, "databases")
	if p := strAttr(req.Inputs, "prefix"); p != "" {
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
		Databases []dbInfoOut `cty:"databases"`
		Missing   []string    `cty:"missing"`
	}{Version: version, Vendor: info.VendorName(), Databases: []dbInfoOut{}, Missing: []string{}}
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
	if len(out.Missing) > 0 && boolAttr(req.Inputs, "require_databases", true) && len(listAttr(req.Inputs, "databases")) > 0 {
		return res, sdk.Errorf(sdk.KindNotFound, false, "check the database names (a Cozy v3 database is named PREFIX/DOCTYPE)",
			"missing databases on %s: %s", c.URL(), strings.Join(out.Missing, ", "))
	}
	return res, nil
}

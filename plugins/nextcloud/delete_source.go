package nextcloud

import (
	"context"
	"fmt"
	"net/http"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// deleteSourceAction is nextcloud.delete_source.
type deleteSourceAction struct{}

var (
	_ sdk.Action    = deleteSourceAction{}
	_ sdk.Validator = deleteSourceAction{}
)

func (deleteSourceAction) Schema() sdk.ActionSchema {
	in := connAttrs("", "", true)
	in = append(in,
		sdk.Attribute{Name: "path", Type: cty.String, Description: `Folder whose children are deleted (default "/": the user's files). The folder itself stays: Nextcloud refuses to delete the home.`},
		sdk.Attribute{Name: "empty_trash", Type: cty.Bool, Description: "Then empty the user's trash bin, so the space is freed at once (default false)."},
	)
	return sdk.ActionSchema{
		Name: "delete_source",
		Description: "Delete the top-level children of a folder on the source server (they go to the Nextcloud trash bin unless empty_trash is set). " +
			"Irreversible: put it after the copy has been verified and a person approved.",
		Inputs: in,
		Outputs: []sdk.Attribute{
			{Name: "deleted", Type: cty.Number, Description: "Children deleted."},
			{Name: "deleted_paths", Type: cty.List(cty.String), Description: "Their paths (at most 1000)."},
			{Name: "errors", Type: cty.List(errorType), Description: "Children that could not be deleted (never null)."},
		},
	}
}

func (deleteSourceAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	return validateConn(in, "")
}

func (a deleteSourceAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	in := req.Inputs
	c, root, err := connFrom(in, "").davRoot(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	dir := joinPath(root, ctyx.StringAttr(in, "path"))
	var kids []entry
	if err := c.propfind(ctx, dir, func(e entry, self bool) error {
		if !self {
			kids = append(kids, e)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	out := struct {
		Deleted int64       `cty:"deleted"`
		Paths   []string    `cty:"deleted_paths"`
		Errors  []fileError `cty:"errors"`
	}{Paths: []string{}, Errors: []fileError{}}
	for i, k := range kids {
		p := joinPath(dir, k.Path)
		if k.Dir {
			p += "/"
		}
		resp, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: p, Idempotent: true})
		switch {
		case err == nil:
			resp.Body.Close()
		case kindOf(err) == sdk.KindNotFound:
		case kindOf(err) == sdk.KindCancelled:
			return nil, err
		default:
			out.Errors = append(out.Errors, fileError{k.Path, err.Error()})
			continue
		}
		out.Deleted++
		if len(out.Paths) < maxListed {
			out.Paths = append(out.Paths, k.Path)
		}
		ev.Progress(int64(i+1), int64(len(kids)), "entries")
	}
	if ctyx.BoolAttr(in, "empty_trash", false) && len(out.Errors) == 0 {
		resp, err := c.Do(ctx, Request{Method: http.MethodDelete, Path: "/remote.php/dav/trashbin/" + filepathBase(root) + "/trash", Idempotent: true})
		if err != nil {
			return nil, fmt.Errorf("empty the trash bin: %w", err)
		}
		resp.Body.Close()
	}
	ev.Log(sdk.LevelInfo, fmt.Sprintf("deleted %d of %d entries of %s", out.Deleted, len(kids), dir))
	v, err := sdk.Encode(a.Schema(), out)
	if err != nil {
		return nil, err
	}
	res := &sdk.Result{Outputs: v}
	if len(out.Errors) > 0 {
		return res, sdk.Errorf(sdk.KindConflict, true, "see the errors output; apply again to delete the rest",
			"%d entries could not be deleted, e.g. %s: %s", len(out.Errors), out.Errors[0].Path, out.Errors[0].Message)
	}
	return res, nil
}

package swift

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/ncw/swift/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// deleteAction is swift.delete.
type deleteAction struct{}

var (
	_ sdk.Action    = deleteAction{}
	_ sdk.Validator = deleteAction{}
	_ sdk.Planner   = deleteAction{}
)

func (deleteAction) Schema() sdk.ActionSchema {
	in := connAttrs("", "")
	in = append(in,
		sdk.Attribute{Name: "containers", Type: cty.List(cty.String), Required: true, Description: "Containers to empty (e.g. the source of a verified copy)."},
		sdk.Attribute{Name: "prefix", Type: cty.String, Description: "Only objects whose names start with this; the containers are then kept."},
		sdk.Attribute{Name: "delete_containers", Type: cty.Bool, Description: "Delete the emptied containers too (default true without a prefix)."},
	)
	return sdk.ActionSchema{
		Name:        "delete",
		Description: "Delete every object of containers by bulk delete (10,000 names a request), then the containers. Irreversible: there is no undo; run it after swift.verify.",
		Inputs:      in,
		Outputs: []sdk.Attribute{
			{Name: "deleted", Type: cty.Number, Description: "Objects deleted."},
			{Name: "bytes", Type: cty.Number, Description: "Bytes they held."},
			{Name: "containers_deleted", Type: cty.List(cty.String), Description: "Containers deleted."},
		},
		Capabilities: sdk.Capabilities{Idempotent: true},
	}
}

func (deleteAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	d := validateConn(in, "", true)
	if v := ctyx.Attr(in, "containers"); v.IsKnown() && !v.IsNull() && v.LengthInt() == 0 {
		d = d.Errorf([]string{"containers"}, "name at least one container")
	}
	return d
}

func (deleteAction) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	in := req.Inputs
	if !in.IsWhollyKnown() {
		return &sdk.PlanResult{Summary: "delete Swift objects (inputs known only at apply time)"}, nil
	}
	c, err := connFrom(in, "").connect(ctx)
	if err != nil {
		return nil, err
	}
	var n, b int64
	var details []string
	for _, cont := range strList(in, "containers") {
		info, _, err := c.Container(ctx, cont)
		if errors.Is(err, swift.ContainerNotFound) {
			continue
		}
		if err != nil {
			return nil, classify(err, "container "+cont)
		}
		n += info.Count
		b += info.Bytes
		details = append(details, fmt.Sprintf("%s: %s, %s", cont, plural(info.Count, "object"), humanBytes(info.Bytes)))
	}
	return &sdk.PlanResult{Summary: fmt.Sprintf("delete up to %s (%s)", plural(n, "object"), humanBytes(b)),
		Counts: map[string]int64{"delete": n}, Details: details}, nil
}

func (deleteAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	in := req.Inputs
	c, err := connFrom(in, "").connect(ctx)
	if err != nil {
		return nil, err
	}
	prefix := ctyx.StringAttr(in, "prefix")
	dropContainers := ctyx.BoolAttr(in, "delete_containers", prefix == "")
	var deleted, bytes int64
	var gone []string
	for _, cont := range strList(in, "containers") {
		var names []string
		var b int64
		err := walkObjects(ctx, c, cont, &swift.ObjectsOpts{Prefix: prefix}, func(o swift.Object) error {
			names = append(names, o.Name)
			b += o.Bytes
			return nil
		})
		if errors.Is(err, swift.ContainerNotFound) {
			continue // deleted by an earlier attempt
		}
		if err != nil {
			return nil, classify(err, "list "+cont)
		}
		n, err := bulkDelete(ctx, c, cont, names, ev)
		deleted += n
		if err != nil {
			return nil, err
		}
		bytes += b
		if dropContainers {
			if err := c.ContainerDelete(ctx, cont); err != nil && !errors.Is(err, swift.ContainerNotFound) {
				return nil, classify(err, "delete container "+cont)
			}
			gone = append(gone, cont)
		}
		ev.Log(sdk.LevelInfo, fmt.Sprintf("%s: deleted %s", cont, plural(int64(len(names)), "object")))
	}
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{
		"deleted": cty.NumberIntVal(deleted), "bytes": cty.NumberIntVal(bytes), "containers_deleted": stringList(gone)})}, nil
}

// bulkDeleteMax is Swift's default max_deletes_per_request.
const bulkDeleteMax = 10000

// bulkDelete deletes names from cont, 10,000 a request, and returns how
// many were deleted. Names already gone are fine; any other failure of
// one name fails the whole (Swift answers 200 with a summary even then).
func bulkDelete(ctx context.Context, c *swift.Connection, cont string, names []string, ev sdk.Events) (int64, error) {
	var deleted int64
	for len(names) > 0 {
		n := min(len(names), bulkDeleteMax)
		// Bulk delete is idempotent: a transient failure is sent again.
		err := retry(ctx, "bulk delete in "+cont, func(ctx context.Context) error {
			res, err := c.BulkDelete(ctx, cont, names[:n])
			if err != nil && len(res.Errors) == 0 {
				return classify(err, "bulk delete in "+cont)
			}
			deleted += res.NumberDeleted
			if len(res.Errors) > 0 {
				var bad []string
				for k, v := range res.Errors {
					bad = append(bad, k+": "+v.Error())
				}
				sort.Strings(bad)
				if len(bad) > 5 {
					bad = append(bad[:5], fmt.Sprintf("and %d more", len(bad)-5))
				}
				return sdk.Errorf(sdk.KindConflict, true, "retry: bulk delete is idempotent", "bulk delete in %s: %s", cont, strings.Join(bad, "; "))
			}
			return nil
		})
		if err != nil {
			return deleted, err
		}
		names = names[n:]
		if ev != nil {
			ev.Progress(deleted, deleted+int64(len(names)), "objects")
		}
	}
	return deleted, nil
}

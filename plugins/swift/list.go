package swift

import (
	"context"
	"strings"

	"github.com/ncw/swift/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// listAction is swift.list.
type listAction struct{}

var (
	_ sdk.Action    = listAction{}
	_ sdk.Validator = listAction{}
)

var itemType = cty.Object(map[string]cty.Type{
	"name": cty.String, "bytes": cty.Number, "count": cty.Number, "hash": cty.String,
	"content_type": cty.String, "last_modified": cty.String, "subdir": cty.Bool,
})

func (listAction) Schema() sdk.ActionSchema {
	in := connAttrs("", "")
	in = append(in,
		sdk.Attribute{Name: "container", Type: cty.String, Description: "Container to list; without it the account's containers are listed."},
		sdk.Attribute{Name: "prefix", Type: cty.String, Description: "Only names that start with this."},
		sdk.Attribute{Name: "delimiter", Type: cty.String, Description: "One character, e.g. `/`: names with it after the prefix are rolled up into `subdir` items (pseudo-directories)."},
		sdk.Attribute{Name: "limit", Type: cty.Number, Description: "Most items to return in `items` (default 1000); count and bytes always cover everything. Pages of 10,000 are read with a marker."},
	)
	return sdk.ActionSchema{
		Name:        "list",
		Description: "List an account's containers or a container's objects, following markers past Swift's 10,000-item pages.",
		Inputs:      in,
		Outputs: []sdk.Attribute{
			{Name: "items", Type: cty.List(itemType), Description: "Containers (name, count, bytes) or objects (name, bytes, hash, content_type, last_modified) and pseudo-directories (subdir = true), up to limit."},
			{Name: "names", Type: cty.List(cty.String), Description: "Names of the items, up to limit."},
			{Name: "count", Type: cty.Number, Description: "Objects (or, for an account, containers) listed."},
			{Name: "objects", Type: cty.Number, Description: "Objects in the listed containers (for an account: their sum)."},
			{Name: "bytes", Type: cty.Number, Description: "Bytes of the listed objects."},
			{Name: "truncated", Type: cty.Bool, Description: "Whether items was cut at limit."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (listAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	d := validateConn(in, "", true)
	if v := ctyx.Attr(in, "delimiter"); v.IsKnown() && !v.IsNull() && len([]rune(v.AsString())) != 1 {
		d = d.Errorf([]string{"delimiter"}, "delimiter must be one character")
	}
	return d
}

func (listAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	in := req.Inputs
	c, err := connFrom(in, "").connect(ctx)
	if err != nil {
		return nil, err
	}
	limit := intAttr(in, "limit", 1000)
	prefix, container := ctyx.StringAttr(in, "prefix"), ctyx.StringAttr(in, "container")
	var items, names []cty.Value
	var count, objects, bytes int64
	add := func(v map[string]cty.Value) {
		if len(items) < limit {
			for n, t := range itemType.AttributeTypes() {
				if _, ok := v[n]; !ok {
					v[n] = cty.NullVal(t)
				}
			}
			items = append(items, cty.ObjectVal(v))
			names = append(names, v["name"])
		}
	}
	if container == "" {
		cs, err := c.ContainersAll(ctx, &swift.ContainersOpts{Prefix: prefix})
		if err != nil {
			return nil, classify(err, "list containers")
		}
		for i, x := range cs {
			if i < 1000 {
				// The account listing's counts lag (the container updater
				// brings them); a container's HEAD is exact.
				if info, _, err := c.Container(ctx, x.Name); err == nil {
					x = info
				}
			}
			count++
			objects += x.Count
			bytes += x.Bytes
			add(map[string]cty.Value{"name": cty.StringVal(x.Name), "count": cty.NumberIntVal(x.Count), "bytes": cty.NumberIntVal(x.Bytes), "subdir": cty.False})
		}
	} else {
		opts := &swift.ObjectsOpts{Prefix: prefix}
		if d := ctyx.StringAttr(in, "delimiter"); d != "" {
			opts.Delimiter = []rune(d)[0]
		}
		err := walkObjects(ctx, c, container, opts, func(o swift.Object) error {
			if o.PseudoDirectory {
				add(map[string]cty.Value{"name": cty.StringVal(o.SubDir), "subdir": cty.True})
				return nil
			}
			count++
			objects++
			bytes += o.Bytes
			add(map[string]cty.Value{"name": cty.StringVal(o.Name), "bytes": cty.NumberIntVal(o.Bytes), "hash": cty.StringVal(o.Hash),
				"content_type": cty.StringVal(o.ContentType), "last_modified": cty.StringVal(o.ServerLastModified), "subdir": cty.False})
			return nil
		})
		if err != nil {
			return nil, classify(err, "list "+container)
		}
	}
	truncated := count > int64(len(items))
	ev.Log(sdk.LevelInfo, strings.TrimSpace(plural(count, "item")+" listed"))
	return &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{
		"items": listOrEmpty(items, itemType), "names": listOrEmpty(names, cty.String),
		"count": cty.NumberIntVal(count), "objects": cty.NumberIntVal(objects), "bytes": cty.NumberIntVal(bytes), "truncated": cty.BoolVal(truncated),
	})}, nil
}

// pageSize is Swift's default and largest listing page.
var pageSize = 10000

// walkObjects lists a container page by page (10,000 names, marker = the
// last name), calling f for each item.
func walkObjects(ctx context.Context, c *swift.Connection, container string, opts *swift.ObjectsOpts, f func(swift.Object) error) error {
	o := *opts
	o.Limit = pageSize
	for {
		page, err := c.Objects(ctx, container, &o)
		if err != nil {
			return err
		}
		for _, x := range page {
			if err := f(x); err != nil {
				return err
			}
		}
		if len(page) < o.Limit {
			return nil // a short page is the last
		}
		last := page[len(page)-1]
		o.Marker = last.Name
		if last.PseudoDirectory {
			o.Marker = last.SubDir
		}
	}
}

func listOrEmpty(vs []cty.Value, t cty.Type) cty.Value {
	if len(vs) == 0 {
		return cty.ListValEmpty(t)
	}
	return cty.ListVal(vs)
}

func plural(n int64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return itoa(n) + " " + what + "s"
}

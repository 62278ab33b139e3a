package swift

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/ncw/swift/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// verifyAction is swift.verify.
type verifyAction struct{}

var (
	_ sdk.Action    = verifyAction{}
	_ sdk.Validator = verifyAction{}
)

var containerReportType = cty.Object(map[string]cty.Type{
	"name": cty.String, "source_objects": cty.Number, "target_objects": cty.Number,
	"source_bytes": cty.Number, "target_bytes": cty.Number,
	"missing": cty.Number, "different": cty.Number, "extra": cty.Number, "equal": cty.Bool,
})

func (verifyAction) Schema() sdk.ActionSchema {
	in := append(connAttrs("source_", "source"), connAttrs("target_", "target")...)
	in = append(in,
		sdk.Attribute{Name: "target_dir", Type: cty.String, Description: "Verify a local copy made by swift.copy with target_dir instead of a Swift account."},
		sdk.Attribute{Name: "containers", Type: cty.List(cty.String), Description: "Containers to compare (default: every container of the source)."},
		sdk.Attribute{Name: "prefix", Type: cty.String, Description: "Only objects whose names start with this."},
		sdk.Attribute{Name: "deep", Type: cty.Bool, Description: "For a local copy: hash every file and compare with the ETag (default true); false trusts the copy's index where size and mtime match."},
		sdk.Attribute{Name: "fail_on_difference", Type: cty.Bool, Description: "Fail with `assertion` when anything differs (default true); false only reports."},
		sdk.Attribute{Name: "max_differences", Type: cty.Number, Description: "Most differences listed (default 100)."},
	)
	return sdk.ActionSchema{
		Name:        "verify",
		Description: "Compare containers of two Swift accounts (or an account and a local copy): counts, bytes and the ETag of every object, large objects by their manifest's ETag. Read-only.",
		Inputs:      in,
		Outputs: []sdk.Attribute{
			{Name: "equal", Type: cty.Bool, Description: "Whether every container matched: same names, sizes and ETags, nothing missing or extra."},
			{Name: "containers", Type: cty.List(containerReportType), Description: "Per container: counts and bytes on both sides, and how many objects are missing, different or extra at the target."},
			{Name: "differences", Type: cty.List(cty.String), Description: "The differences, one a line, up to max_differences."},
			{Name: "objects", Type: cty.Number, Description: "Source objects compared."},
			{Name: "bytes", Type: cty.Number, Description: "Source bytes compared."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (verifyAction) Validate(ctx context.Context, in cty.Value) sdk.Diagnostics {
	return copyAction{}.Validate(ctx, in)
}

// side is one side's view of a container: name → ETag and size.
type side map[string]entry

func (verifyAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	in := req.Inputs
	src, err := connFrom(in, "source_").connect(ctx)
	if err != nil {
		return nil, err
	}
	dst, err := openTarget(ctx, in)
	if err != nil {
		return nil, err
	}
	containers := strList(in, "containers")
	if len(containers) == 0 {
		if containers, err = src.ContainerNamesAll(ctx, nil); err != nil {
			return nil, classify(err, "list the source's containers")
		}
	}
	prefix := ctyx.StringAttr(in, "prefix")
	maxDiff := intAttr(in, "max_differences", 100)
	deep := ctyx.BoolAttr(in, "deep", true)
	var diffs []string
	var reports []cty.Value
	var nDiff, objects, bytes int64
	equal := true
	note := func(format string, args ...any) {
		nDiff++
		if len(diffs) < maxDiff {
			diffs = append(diffs, fmt.Sprintf(format, args...))
		}
	}
	for i, cont := range containers {
		s, err := listSide(ctx, src, cont, prefix)
		if err != nil {
			return nil, err
		}
		var t side
		switch d := dst.(type) {
		case *swiftTarget:
			t, err = listSide(ctx, d.c, cont, prefix)
			if kindOf(err) == sdk.KindNotFound {
				t, err = side{}, nil
			}
		case *localTarget:
			t, err = localSide(ctx, d, cont, prefix, s, deep)
		}
		if err != nil {
			return nil, err
		}
		var missing, different, extra, sb, tb int64
		for _, name := range sortedNames(s) {
			se := s[name]
			sb += se.bytes
			te, ok := t[name]
			switch {
			case !ok:
				missing++
				note("%s/%s: missing at the target", cont, name)
			case te.hash != se.hash || te.bytes != se.bytes:
				different++
				note("%s/%s: source %s (%d bytes), target %s (%d bytes)", cont, name, se.hash, se.bytes, te.hash, te.bytes)
			}
		}
		for _, name := range sortedNames(t) {
			tb += t[name].bytes
			if _, ok := s[name]; !ok {
				extra++
				note("%s/%s: only at the target", cont, name)
			}
		}
		ok := missing == 0 && different == 0 && extra == 0
		equal = equal && ok
		objects += int64(len(s))
		bytes += sb
		reports = append(reports, cty.ObjectVal(map[string]cty.Value{
			"name": cty.StringVal(cont), "source_objects": cty.NumberIntVal(int64(len(s))), "target_objects": cty.NumberIntVal(int64(len(t))),
			"source_bytes": cty.NumberIntVal(sb), "target_bytes": cty.NumberIntVal(tb),
			"missing": cty.NumberIntVal(missing), "different": cty.NumberIntVal(different), "extra": cty.NumberIntVal(extra), "equal": cty.BoolVal(ok),
		}))
		ev.Progress(int64(i+1), int64(len(containers)), "containers")
		ev.Log(sdk.LevelInfo, fmt.Sprintf("%s: %s, %s; missing %d, different %d, extra %d", cont, plural(int64(len(s)), "object"), humanBytes(sb), missing, different, extra))
	}
	res := &sdk.Result{Outputs: cty.ObjectVal(map[string]cty.Value{
		"equal": cty.BoolVal(equal), "containers": listOrEmpty(reports, containerReportType), "differences": stringList(diffs),
		"objects": cty.NumberIntVal(objects), "bytes": cty.NumberIntVal(bytes),
	})}
	if !equal && ctyx.BoolAttr(in, "fail_on_difference", true) {
		shown := diffs
		if len(shown) > 5 {
			shown = shown[:5]
		}
		return res, sdk.Errorf(sdk.KindAssertion, false, "copy again (swift.copy skips what is already there), then verify",
			"%s between source and target: %s", plural(nDiff, "difference"), strings.Join(shown, "; "))
	}
	return res, nil
}

func sortedNames(s side) []string {
	out := make([]string, 0, len(s))
	for n := range s {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// listSide lists a Swift container: an SLO by its slo_etag, a 0-byte
// object that is a DLO manifest by its HEAD's ETag and its segments' size.
func listSide(ctx context.Context, c *swift.Connection, cont, prefix string) (side, error) {
	s := side{}
	var zero []string
	err := walkObjects(ctx, c, cont, &swift.ObjectsOpts{Prefix: prefix}, func(o swift.Object) error {
		h := o.Hash
		if o.SLOHash != "" {
			h = o.SLOHash
		}
		s[o.Name] = entry{hash: unquote(h), bytes: o.Bytes}
		if o.Bytes == 0 && o.SLOHash == "" {
			zero = append(zero, o.Name)
		}
		return nil
	})
	if err != nil {
		return nil, classify(err, "list "+cont)
	}
	for _, name := range zero {
		info, h, err := c.Object(ctx, cont, name)
		if err != nil {
			return nil, classify(err, "head "+cont+"/"+name)
		}
		if h["X-Object-Manifest"] != "" {
			s[name] = entry{hash: unquote(h["Etag"]), bytes: info.Bytes}
		}
	}
	return s, nil
}

// localSide reads a local copy: the index's ETags, checked against the
// files (hashed when deep, else by size), and the files the index lacks.
func localSide(ctx context.Context, t *localTarget, cont, prefix string, src side, deep bool) (side, error) {
	if err := t.load(ctx, cont); err != nil {
		return nil, err
	}
	s := side{}
	for name, e := range t.idx[cont] {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		p, err := t.path(cont, name)
		if err != nil {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			continue // missing
		}
		got := entry{hash: e.ETag, bytes: st.Size()}
		if st.IsDir() {
			got.bytes = 0
		} else if st.Size() != e.Bytes {
			got.hash = "size-changed"
		} else if deep {
			sum, err := fileMD5(p)
			if err != nil || sum != e.MD5 {
				got.hash = "md5:" + sum
			}
		}
		s[name] = got
	}
	return s, nil
}

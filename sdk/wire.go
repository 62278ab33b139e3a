package sdk

import (
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"

	pb "github.com/runbookdev/runbook/sdk/proto/pluginv1"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
	"github.com/zclconf/go-cty/cty/msgpack"

	"github.com/runbookdev/runbook/internal/ctyx"
)

// MarkSensitive is the cty mark of sensitive values. It equals the engine's
// lang.MarkSensitive, so values marked on one side of the wire are marked
// the same way on the other.
const MarkSensitive = "sensitive"

// EncodeValue encodes v for the wire: its type as JSON, the value as
// msgpack of that type (unknowns kept), and the paths of every marked value
// inside it. cty.NilVal encodes as nil.
func EncodeValue(v cty.Value) (*pb.DynamicValue, error) {
	if v == cty.NilVal {
		return nil, nil
	}
	un, pvm := unmarkDeepWithPaths(v)
	tj, err := types.marshal(un.Type())
	if err != nil {
		return nil, fmt.Errorf("encode value type: %w", err)
	}
	b, err := msgpack.Marshal(un, un.Type())
	if err != nil {
		return nil, fmt.Errorf("encode value: %w", err)
	}
	dv := &pb.DynamicValue{Msgpack: b, Type: tj}
	for _, pm := range pvm {
		p, err := encodePath(pm.Path)
		if err != nil {
			return nil, err
		}
		dv.Sensitive = append(dv.Sensitive, p)
	}
	return dv, nil
}

// DecodeValue decodes a wire value without applying its marks, and returns
// the sensitive paths separately. nil decodes as cty.NilVal.
func DecodeValue(dv *pb.DynamicValue) (cty.Value, []cty.Path, error) {
	if dv == nil {
		return cty.NilVal, nil, nil
	}
	t := cty.DynamicPseudoType
	if len(dv.Type) > 0 {
		var err error
		if t, err = types.unmarshal(dv.Type); err != nil {
			return cty.NilVal, nil, fmt.Errorf("decode value type: %w", err)
		}
	}
	v, err := msgpack.Unmarshal(dv.Msgpack, t)
	if err != nil {
		return cty.NilVal, nil, fmt.Errorf("decode value: %w", err)
	}
	var paths []cty.Path
	for _, p := range dv.Sensitive {
		cp, err := decodePath(p)
		if err != nil {
			return cty.NilVal, nil, err
		}
		paths = append(paths, cp)
	}
	return v, paths, nil
}

// DecodeMarkedValue decodes a wire value and marks its sensitive paths with
// MarkSensitive.
func DecodeMarkedValue(dv *pb.DynamicValue) (cty.Value, error) {
	v, paths, err := DecodeValue(dv)
	if err != nil || len(paths) == 0 {
		return v, err
	}
	return MarkPaths(v, paths), nil
}

// MarkPaths marks the values at paths inside v with MarkSensitive. Paths
// that do not exist in v are ignored.
func MarkPaths(v cty.Value, paths []cty.Path) cty.Value {
	if len(paths) == 0 {
		return v
	}
	pvm := make([]cty.PathValueMarks, len(paths))
	for i, p := range paths {
		pvm[i] = cty.PathValueMarks{Path: p, Marks: cty.NewValueMarks(MarkSensitive)}
	}
	return v.MarkWithPaths(pvm)
}

// UnmarkPaths removes every mark from v and returns the paths that were
// marked.
func UnmarkPaths(v cty.Value) (cty.Value, []cty.Path) {
	if v == cty.NilVal {
		return v, nil
	}
	un, pvm := unmarkDeepWithPaths(v)
	paths := make([]cty.Path, len(pvm))
	for i, pm := range pvm {
		paths[i] = pm.Path
	}
	return un, paths
}

func encodePath(p cty.Path) (*pb.AttributePath, error) {
	out := &pb.AttributePath{}
	for _, s := range p {
		switch s := s.(type) {
		case cty.GetAttrStep:
			out.Steps = append(out.Steps, &pb.AttributePath_Step{Selector: &pb.AttributePath_Step_AttributeName{AttributeName: s.Name}})
		case cty.IndexStep:
			switch {
			case s.Key.Type() == cty.String && s.Key.IsKnown() && !s.Key.IsNull():
				out.Steps = append(out.Steps, &pb.AttributePath_Step{Selector: &pb.AttributePath_Step_ElementKeyString{ElementKeyString: s.Key.AsString()}})
			case s.Key.Type() == cty.Number && s.Key.IsKnown() && !s.Key.IsNull():
				i, acc := s.Key.AsBigFloat().Int64()
				if acc != big.Exact {
					return nil, fmt.Errorf("encode path: non-integer index %s", s.Key.AsBigFloat())
				}
				out.Steps = append(out.Steps, &pb.AttributePath_Step{Selector: &pb.AttributePath_Step_ElementKeyInt{ElementKeyInt: i}})
			default:
				// A marked set element (index by value) cannot be named by
				// a path: mark the whole set instead.
				return out, nil
			}
		}
	}
	return out, nil
}

func decodePath(p *pb.AttributePath) (cty.Path, error) {
	var out cty.Path
	for _, s := range p.GetSteps() {
		switch s := s.Selector.(type) {
		case *pb.AttributePath_Step_AttributeName:
			out = out.GetAttr(s.AttributeName)
		case *pb.AttributePath_Step_ElementKeyString:
			out = out.Index(cty.StringVal(s.ElementKeyString))
		case *pb.AttributePath_Step_ElementKeyInt:
			out = out.Index(cty.NumberIntVal(s.ElementKeyInt))
		default:
			return nil, errors.New("decode path: empty step")
		}
	}
	return out, nil
}

// EncodeSchema converts a plugin schema to its wire form.
func EncodeSchema(s *PluginSchema) (*pb.GetSchemaResponse, error) {
	resp := &pb.GetSchemaResponse{Name: s.Name, Version: s.Version, SdkVersion: SDKVersion}
	names := make([]string, 0, len(s.Actions))
	for n := range s.Actions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		a := s.Actions[n]
		pa := &pb.ActionSchema{
			Name:        a.Name,
			Description: a.Description,
			Capabilities: &pb.Capabilities{
				ReadOnly:     a.Capabilities.ReadOnly,
				Idempotent:   a.Capabilities.Idempotent,
				NativeUndo:   a.Capabilities.NativeUndo,
				SupportsPlan: a.Capabilities.SupportsPlan,
			},
			MaxConcurrency: int32(a.MaxConcurrency),
		}
		var err error
		if pa.Inputs, err = encodeAttrs(a.Inputs); err != nil {
			return nil, fmt.Errorf("action %s inputs: %w", n, err)
		}
		if pa.Outputs, err = encodeAttrs(a.Outputs); err != nil {
			return nil, fmt.Errorf("action %s outputs: %w", n, err)
		}
		resp.Actions = append(resp.Actions, pa)
	}
	return resp, nil
}

func encodeAttrs(as []Attribute) ([]*pb.Attribute, error) {
	out := make([]*pb.Attribute, 0, len(as))
	for _, a := range as {
		t, err := ctyjson.MarshalType(a.Type)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", a.Name, err)
		}
		out = append(out, &pb.Attribute{Name: a.Name, Type: t, Required: a.Required, Sensitive: a.Sensitive, Description: a.Description})
	}
	return out, nil
}

// DecodeSchema converts a wire schema back.
func DecodeSchema(r *pb.GetSchemaResponse) (*PluginSchema, error) {
	s := &PluginSchema{Name: r.Name, Version: r.Version, Actions: map[string]ActionSchema{}}
	for _, pa := range r.Actions {
		a := ActionSchema{
			Name:           pa.Name,
			Description:    pa.Description,
			MaxConcurrency: int(pa.MaxConcurrency),
		}
		if c := pa.Capabilities; c != nil {
			a.Capabilities = Capabilities{ReadOnly: c.ReadOnly, Idempotent: c.Idempotent, NativeUndo: c.NativeUndo, SupportsPlan: c.SupportsPlan}
		}
		var err error
		if a.Inputs, err = decodeAttrs(pa.Inputs); err != nil {
			return nil, fmt.Errorf("action %s inputs: %w", pa.Name, err)
		}
		if a.Outputs, err = decodeAttrs(pa.Outputs); err != nil {
			return nil, fmt.Errorf("action %s outputs: %w", pa.Name, err)
		}
		s.Actions[a.Name] = a
	}
	return s, nil
}

func decodeAttrs(as []*pb.Attribute) ([]Attribute, error) {
	if len(as) == 0 {
		return nil, nil
	}
	out := make([]Attribute, 0, len(as))
	for _, a := range as {
		t, err := ctyjson.UnmarshalType(a.Type)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", a.Name, err)
		}
		out = append(out, Attribute{Name: a.Name, Type: t, Required: a.Required, Sensitive: a.Sensitive, Description: a.Description})
	}
	return out, nil
}

// EncodeDiagnostics converts diagnostics to their wire form.
func EncodeDiagnostics(d Diagnostics) []*pb.Diagnostic {
	out := make([]*pb.Diagnostic, 0, len(d))
	for _, x := range d {
		sev := pb.Diagnostic_ERROR
		if x.Severity == SeverityWarning {
			sev = pb.Diagnostic_WARNING
		}
		out = append(out, &pb.Diagnostic{Severity: sev, Summary: x.Summary, Detail: x.Detail, Path: x.Path})
	}
	return out
}

// DecodeDiagnostics converts wire diagnostics back.
func DecodeDiagnostics(d []*pb.Diagnostic) Diagnostics {
	if len(d) == 0 {
		return nil
	}
	out := make(Diagnostics, 0, len(d))
	for _, x := range d {
		sev := SeverityError
		if x.Severity == pb.Diagnostic_WARNING {
			sev = SeverityWarning
		}
		out = append(out, Diagnostic{Severity: sev, Summary: x.Summary, Detail: x.Detail, Path: x.Path})
	}
	return out
}

// EncodeError converts an error to its wire form (nil for nil), keeping an
// *Error's Kind, Retryable and Hint.
func EncodeError(err error) *pb.Error {
	if err == nil {
		return nil
	}
	e := Classify(err)
	msg := err.Error()
	if e.Kind != KindUnknown {
		// The kind travels on its own and Error() prefixes it again on the
		// other side: drop the "kind: " that the *Error inside err wrote.
		msg = strings.Replace(msg, string(e.Kind)+": ", "", 1)
	}
	return &pb.Error{Kind: string(e.Kind), Retryable: e.Retryable, Hint: e.Hint, Message: msg}
}

// DecodeError rebuilds an *Error from its wire form (nil for nil).
func DecodeError(e *pb.Error) error {
	if e == nil {
		return nil
	}
	return &Error{Kind: Kind(e.Kind), Retryable: e.Retryable, Hint: e.Hint, Err: errors.New(e.Message)}
}

// unmarkDeepWithPaths is v.UnmarkDeepWithPaths without its cost (a copy of
// every collection in v) when nothing in v is marked, the usual case.
func unmarkDeepWithPaths(v cty.Value) (cty.Value, []cty.PathValueMarks) {
	if !ctyx.ContainsMarked(v) {
		return v, nil
	}
	return v.UnmarkDeepWithPaths()
}

// Package pluginwire is what both ends of the plugin protocol share: the
// go-plugin handshake, the connection's flow-control windows, and the wire
// form of cty values with their sensitive marks. It knows no sdk type, so
// the SDK (plugin side) and the host's client both build on it.
package pluginwire

import (
	"errors"
	"fmt"
	"math/big"

	pb "github.com/runbookdev/runbook/sdk/proto/pluginv1"
	"github.com/zclconf/go-cty/cty"
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

// unmarkDeepWithPaths is v.UnmarkDeepWithPaths without its cost (a copy of
// every collection in v) when nothing in v is marked, the usual case.
func unmarkDeepWithPaths(v cty.Value) (cty.Value, []cty.PathValueMarks) {
	if !ctyx.ContainsMarked(v) {
		return v, nil
	}
	return v.UnmarkDeepWithPaths()
}

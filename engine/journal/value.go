package journal

import (
	"encoding/json"
	"fmt"
	"math/big"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/runbookdev/runbook/internal/ctyx"
)

// MarkSensitive is the cty mark of sensitive values (the same string as
// lang.MarkSensitive).
const MarkSensitive = "sensitive"

// Value is a cty value as journaled. Sensitive parts are replaced by null in
// Value; the whole value is in Sealed, encrypted, when a key is available.
type Value struct {
	Type      json.RawMessage `json:"type"`
	Value     json.RawMessage `json:"value"`
	Sensitive []Path          `json:"sensitive,omitempty"`
	Sealed    []byte          `json:"sealed,omitempty"`
}

// Path is a cty.Path in JSON: each step names an attribute (A), a string
// key (K) or a number index (I).
type Path []PathStep

// PathStep is one step of a Path.
type PathStep struct {
	A string  `json:"a,omitempty"`
	K *string `json:"k,omitempty"`
	I *int64  `json:"i,omitempty"`
}

// EncodeValue journals v. Parts marked sensitive are nulled in the clear
// copy and sealed with s (dropped when s is nil).
func EncodeValue(v cty.Value, s *Sealer) (*Value, error) {
	if v == cty.NilVal {
		return nil, nil
	}
	plain, pvm := v, []cty.PathValueMarks(nil)
	if ctyx.ContainsMarked(v) { // (copying v is costly; most values hold no marks)
		plain, pvm = v.UnmarkDeepWithPaths()
	}
	var sens []cty.Path
	for _, pm := range pvm {
		if _, ok := pm.Marks[MarkSensitive]; ok {
			sens = append(sens, pm.Path)
		}
	}
	t := plain.Type()
	tj, err := ctyjson.MarshalType(t)
	if err != nil {
		return nil, err
	}
	out := &Value{Type: tj}
	clear := plain
	if len(sens) > 0 {
		clear, err = cty.Transform(plain, func(p cty.Path, x cty.Value) (cty.Value, error) {
			for _, sp := range sens {
				if p.Equals(sp) {
					return cty.NullVal(x.Type()), nil
				}
			}
			return x, nil
		})
		if err != nil {
			return nil, err
		}
		for _, sp := range sens {
			out.Sensitive = append(out.Sensitive, encodePath(sp))
		}
		if s != nil {
			full, err := ctyjson.Marshal(plain, t)
			if err != nil {
				return nil, err
			}
			out.Sealed = s.Seal(full)
		}
	}
	vj, err := ctyjson.Marshal(clear, t)
	if err != nil {
		return nil, err
	}
	out.Value = vj
	return out, nil
}

// Decode returns the journaled value with its sensitive marks. complete is
// false when sensitive parts were not stored (no key then) or cannot be
// decrypted (s nil): they are null in the result.
func (jv *Value) Decode(s *Sealer) (v cty.Value, complete bool, err error) {
	if jv == nil {
		return cty.NilVal, true, nil
	}
	t, err := ctyjson.UnmarshalType(jv.Type)
	if err != nil {
		return cty.NilVal, false, fmt.Errorf("journaled type: %w", err)
	}
	raw := []byte(jv.Value)
	complete = len(jv.Sensitive) == 0
	if len(jv.Sensitive) > 0 && len(jv.Sealed) > 0 && s != nil {
		full, err := s.Open(jv.Sealed)
		if err != nil {
			return cty.NilVal, false, err
		}
		raw, complete = full, true
	}
	v, err = ctyjson.Unmarshal(raw, t)
	if err != nil {
		return cty.NilVal, false, fmt.Errorf("journaled value: %w", err)
	}
	if len(jv.Sensitive) > 0 {
		pvm := make([]cty.PathValueMarks, 0, len(jv.Sensitive))
		for _, p := range jv.Sensitive {
			pvm = append(pvm, cty.PathValueMarks{Path: decodePath(p), Marks: cty.NewValueMarks(MarkSensitive)})
		}
		v = v.MarkWithPaths(pvm)
	}
	return v, complete, nil
}

func encodePath(p cty.Path) Path {
	out := make(Path, 0, len(p))
	for _, st := range p {
		switch st := st.(type) {
		case cty.GetAttrStep:
			out = append(out, PathStep{A: st.Name})
		case cty.IndexStep:
			k, _ := st.Key.Unmark()
			switch {
			case k.Type() == cty.String && k.IsKnown() && !k.IsNull():
				s := k.AsString()
				out = append(out, PathStep{K: &s})
			case k.Type() == cty.Number && k.IsKnown() && !k.IsNull():
				i, _ := k.AsBigFloat().Int64()
				out = append(out, PathStep{I: &i})
			}
		}
	}
	return out
}

func decodePath(p Path) cty.Path {
	out := make(cty.Path, 0, len(p))
	for _, st := range p {
		switch {
		case st.K != nil:
			out = append(out, cty.IndexStep{Key: cty.StringVal(*st.K)})
		case st.I != nil:
			out = append(out, cty.IndexStep{Key: cty.NumberVal(new(big.Float).SetInt64(*st.I))})
		default:
			out = append(out, cty.GetAttrStep{Name: st.A})
		}
	}
	return out
}

// Blob is opaque plugin data (checkpoints, undo state). When it holds a
// secret it is sealed, or dropped without a key (Redacted).
type Blob struct {
	Data     []byte `json:"data,omitempty"`
	Sealed   []byte `json:"sealed,omitempty"`
	Redacted bool   `json:"redacted,omitempty"`
}

// NewBlob journals b; secret says whether it holds a known secret.
func NewBlob(b []byte, secret bool, s *Sealer) *Blob {
	if b == nil {
		return nil
	}
	if !secret {
		return &Blob{Data: b}
	}
	if s == nil {
		return &Blob{Redacted: true}
	}
	return &Blob{Sealed: s.Seal(b)}
}

// Bytes returns the blob's data; ok=false when it was redacted or cannot be
// decrypted.
func (b *Blob) Bytes(s *Sealer) (data []byte, ok bool) {
	switch {
	case b == nil:
		return nil, true
	case b.Redacted:
		return nil, false
	case len(b.Sealed) > 0:
		if s == nil {
			return nil, false
		}
		d, err := s.Open(b.Sealed)
		return d, err == nil
	}
	return b.Data, true
}

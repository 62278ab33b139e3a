package lang

import (
	"sort"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// Placeholders used when rendering values.
const (
	KnownAfterApply = "(known after apply)"
	SensitiveValue  = "(sensitive)"
)

// FormatValue renders a value in HCL syntax for humans: unknown parts as
// (known after apply) and sensitive parts as (sensitive), never their
// content. Nested values are indented by indent more spaces per level.
func FormatValue(v cty.Value, indent int) string {
	var b strings.Builder
	formatValue(&b, v, indent)
	return b.String()
}

// FormatInputs is FormatValue(WithoutNulls(v), indent) without building
// the object WithoutNulls returns (a tenth of the CPU of a large plan).
func FormatInputs(v cty.Value, indent int) string {
	if v == cty.NilVal || v.IsMarked() || !v.IsKnown() || v.IsNull() || !v.Type().IsObjectType() {
		return FormatValue(v, indent)
	}
	m := v.AsValueMap()
	for k, e := range m {
		if e.IsKnown() && !e.IsMarked() && e.IsNull() {
			delete(m, k)
		}
	}
	var b strings.Builder
	formatMap(&b, m, indent)
	return b.String()
}

func formatValue(b *strings.Builder, v cty.Value, indent int) {
	if v == cty.NilVal {
		b.WriteString("null")
		return
	}
	if v.HasMark(MarkSensitive) {
		b.WriteString(SensitiveValue)
		return
	}
	v, _ = v.Unmark() // other marks are irrelevant for display
	if !v.IsKnown() {
		b.WriteString(KnownAfterApply)
		return
	}
	if v.IsNull() {
		b.WriteString("null")
		return
	}
	ty := v.Type()
	pad := func() string { return strings.Repeat(" ", indent+2) }
	end := func() string { return strings.Repeat(" ", indent) }
	switch {
	case ty == cty.String:
		s := v.AsString()
		if lines := strings.Count(s, "\n"); lines > 0 && len(s) > 1 && lines*(indent+2) <= 2*len(s)+maxHeredocPad {
			pad := pad()
			b.WriteString("<<-EOT\n")
			for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
				b.WriteString(pad + line + "\n")
			}
			b.WriteString(end() + "EOT")
			return
		}
		b.WriteString(strconv.Quote(s))
	case ty == cty.Number:
		b.WriteString(formatNumber(v.AsBigFloat()))
	case ty == cty.Bool:
		if v.True() {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case ty.IsListType() || ty.IsSetType() || ty.IsTupleType():
		if v.LengthInt() == 0 {
			b.WriteString("[]")
			return
		}
		if inline, ok := inlineList(v); ok {
			b.WriteString(inline)
			return
		}
		pad := pad()
		b.WriteString("[\n")
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			b.WriteString(pad)
			formatValue(b, e, indent+2)
			b.WriteString(",\n")
		}
		b.WriteString(end() + "]")
	case ty.IsMapType() || ty.IsObjectType():
		formatMap(b, v.AsValueMap(), indent)
	default:
		b.WriteString(ty.FriendlyName())
	}
}

// formatMap renders the attributes of a map or object, sorted.
func formatMap(b *strings.Builder, m map[string]cty.Value, indent int) {
	if len(m) == 0 {
		b.WriteString("{}")
		return
	}
	keys := make([]string, 0, len(m))
	width := 0
	for k := range m {
		keys = append(keys, k)
		if len(formatKey(k)) > width {
			width = len(formatKey(k))
		}
	}
	sort.Strings(keys)
	pad := strings.Repeat(" ", indent+2)
	b.WriteString("{\n")
	for _, k := range keys {
		fk := formatKey(k)
		b.WriteString(pad + fk + strings.Repeat(" ", width-len(fk)) + " = ")
		formatValue(b, m[k], indent+2)
		b.WriteString("\n")
	}
	b.WriteString(strings.Repeat(" ", indent) + "}")
}

// maxHeredocPad bounds the indentation a multi-line string may add, beyond
// twice its length, when shown as a heredoc: its lines are indented with
// the value, and a string of many short lines deep in a value made the
// plan hundreds of times larger than the value. Past it the string is
// shown quoted.
const maxHeredocPad = 256

func formatKey(k string) string {
	if validIdentifier(k) {
		return k
	}
	return strconv.Quote(k)
}

// inlineList renders a short list of known primitives on one line.
func inlineList(v cty.Value) (string, bool) {
	var parts []string
	total := 0
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsMarked() || !e.IsKnown() || e.IsNull() || !e.Type().IsPrimitiveType() {
			return "", false
		}
		s := FormatValue(e, 0)
		if strings.Contains(s, "\n") {
			return "", false
		}
		total += len(s) + 2
		if total > 60 {
			return "", false
		}
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, ", ") + "]", true
}

// WithoutNulls drops the null attributes of a known object (the optional
// inputs left unset), for display.
func WithoutNulls(v cty.Value) cty.Value {
	if v == cty.NilVal || v.IsMarked() || !v.IsKnown() || v.IsNull() || !v.Type().IsObjectType() {
		return v
	}
	m := map[string]cty.Value{}
	for k, e := range v.AsValueMap() {
		if e.IsKnown() && !e.IsMarked() && e.IsNull() {
			continue
		}
		m[k] = e
	}
	return cty.ObjectVal(m)
}

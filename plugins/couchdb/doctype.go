package couchdb

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// docTypeAttr is the doc_type input of find and delete_docs.
var docTypeAttr = sdk.Attribute{Name: "doc_type", Type: cty.String,
	Description: `Only documents whose docType is this one, compared case-insensitively as Cozy v2 does (its data-system lowercases both sides): "Application" also matches "application". Combined with selector when both are set.`}

// caseInsensitiveRegex is an anchored regular expression matching s in
// any letter case, written with character classes ("[Aa]") so that every
// server's $regex takes it (Erlang's re, JavaScript's RegExp) and so does
// the plugin's own matcher.
func caseInsensitiveRegex(s string) string {
	var b strings.Builder
	b.WriteByte('^')
	for _, r := range s {
		lo, up := unicode.ToLower(r), unicode.ToUpper(r)
		if lo != up {
			fmt.Fprintf(&b, "[%c%c]", up, lo)
			continue
		}
		b.WriteString(regexp.QuoteMeta(string(r)))
	}
	b.WriteByte('$')
	return b.String()
}

// inputSelector is the selector the inputs designate: selector, doc_type,
// or both; nil when neither is set.
func inputSelector(in cty.Value) (map[string]any, error) {
	var sel map[string]any
	if v := ctyx.Attr(in, "selector"); !v.IsNull() {
		s, err := selectorFrom(v)
		if err != nil {
			return nil, err
		}
		sel = s
	}
	dt := ctyx.StringAttr(in, "doc_type")
	if dt == "" {
		return sel, nil
	}
	typ := map[string]any{"docType": map[string]any{"$regex": caseInsensitiveRegex(dt)}}
	if sel == nil {
		return typ, nil
	}
	return map[string]any{"$and": []any{typ, sel}}, nil
}

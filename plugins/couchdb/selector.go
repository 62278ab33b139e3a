package couchdb

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// matchSelector evaluates a Mango selector against a document decoded with
// encoding/json (map[string]any, []any, float64, string, bool, nil). It is
// the fallback for servers without _find and follows CouchDB's rules:
// implicit $eq and $and, dotted field paths, and CouchDB's collation order
// for comparisons (strings compare by code point, not ICU).
func matchSelector(sel map[string]any, doc any) (bool, error) {
	keys := make([]string, 0, len(sel))
	for k := range sel {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ok, err := matchField(k, sel[k], doc)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func matchField(key string, cond any, doc any) (bool, error) {
	switch key {
	case "$and", "$or", "$nor":
		list, ok := cond.([]any)
		if !ok {
			return false, fmt.Errorf("%s takes an array of selectors", key)
		}
		for _, c := range list {
			sub, ok := c.(map[string]any)
			if !ok {
				return false, fmt.Errorf("%s takes an array of selectors", key)
			}
			m, err := matchSelector(sub, doc)
			if err != nil {
				return false, err
			}
			switch {
			case key == "$and" && !m:
				return false, nil
			case key == "$or" && m:
				return true, nil
			case key == "$nor" && m:
				return false, nil
			}
		}
		return key != "$or", nil
	case "$not":
		sub, ok := cond.(map[string]any)
		if !ok {
			return false, fmt.Errorf("$not takes a selector")
		}
		m, err := matchSelector(sub, doc)
		return !m, err
	}
	if strings.HasPrefix(key, "$") {
		return false, fmt.Errorf("unknown operator %s", key)
	}
	v, found := lookup(doc, key)
	return matchCond(cond, v, found)
}

// lookup follows a dotted path ("a.b.c"); "\." escapes a dot.
func lookup(doc any, path string) (any, bool) {
	parts := splitPath(path)
	cur := doc
	for _, p := range parts {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		cur, ok = m[p]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

func splitPath(p string) []string {
	var parts []string
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		switch {
		case p[i] == '\\' && i+1 < len(p) && p[i+1] == '.':
			b.WriteByte('.')
			i++
		case p[i] == '.':
			parts = append(parts, b.String())
			b.Reset()
		default:
			b.WriteByte(p[i])
		}
	}
	return append(parts, b.String())
}

// matchCond applies a field's condition: an operator object, a nested
// selector, or a value for implicit equality.
func matchCond(cond any, v any, found bool) (bool, error) {
	m, isObj := cond.(map[string]any)
	if !isObj {
		return found && collate(v, cond) == 0, nil
	}
	hasOp := false
	for k := range m {
		if strings.HasPrefix(k, "$") {
			hasOp = true
		}
	}
	if !hasOp {
		if len(m) == 0 {
			return found && reflect.DeepEqual(v, cond), nil
		}
		if !found {
			return false, nil
		}
		return matchSelector(m, v)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, op := range keys {
		ok, err := matchOp(op, m[op], v, found)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func matchOp(op string, arg any, v any, found bool) (bool, error) {
	switch op {
	case "$exists":
		want, ok := arg.(bool)
		if !ok {
			return false, fmt.Errorf("$exists takes true or false")
		}
		return found == want, nil
	case "$eq":
		return found && collate(v, arg) == 0, nil
	case "$ne":
		// CouchDB: a missing field does not match $ne.
		return found && collate(v, arg) != 0, nil
	case "$gt", "$gte", "$lt", "$lte":
		if !found {
			return false, nil
		}
		c := collate(v, arg)
		switch op {
		case "$gt":
			return c > 0, nil
		case "$gte":
			return c >= 0, nil
		case "$lt":
			return c < 0, nil
		}
		return c <= 0, nil
	case "$in", "$nin":
		list, ok := arg.([]any)
		if !ok {
			return false, fmt.Errorf("%s takes an array", op)
		}
		if !found {
			return false, nil
		}
		in := false
		for _, x := range list {
			if collate(v, x) == 0 {
				in = true
				break
			}
			if arr, ok := v.([]any); ok {
				for _, e := range arr {
					if collate(e, x) == 0 {
						in = true
					}
				}
			}
		}
		return in == (op == "$in"), nil
	case "$type":
		t, ok := arg.(string)
		if !ok {
			return false, fmt.Errorf("$type takes a type name")
		}
		return found && typeName(v) == t, nil
	case "$size":
		n, ok := arg.(float64)
		arr, isArr := v.([]any)
		if !ok {
			return false, fmt.Errorf("$size takes a number")
		}
		return found && isArr && float64(len(arr)) == n, nil
	case "$mod":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return false, fmt.Errorf("$mod takes [divisor, remainder]")
		}
		d, _ := a[0].(float64)
		r, _ := a[1].(float64)
		x, isNum := v.(float64)
		if !found || !isNum || d == 0 || x != math.Trunc(x) {
			return false, nil
		}
		return math.Mod(x, d) == r, nil
	case "$regex":
		pat, ok := arg.(string)
		if !ok {
			return false, fmt.Errorf("$regex takes a string")
		}
		re, err := regexp.Compile(pat)
		if err != nil {
			return false, fmt.Errorf("$regex: %v", err)
		}
		s, isStr := v.(string)
		return found && isStr && re.MatchString(s), nil
	case "$not":
		m, err := matchCond(arg, v, found)
		return !m, err
	case "$all":
		list, ok := arg.([]any)
		arr, isArr := v.([]any)
		if !ok {
			return false, fmt.Errorf("$all takes an array")
		}
		if !found || !isArr {
			return false, nil
		}
		for _, x := range list {
			has := false
			for _, e := range arr {
				if collate(e, x) == 0 {
					has = true
					break
				}
			}
			if !has {
				return false, nil
			}
		}
		return true, nil
	case "$elemMatch", "$allMatch":
		arr, isArr := v.([]any)
		if !found || !isArr || len(arr) == 0 {
			return false, nil
		}
		for _, e := range arr {
			m, err := matchCond(arg, e, true)
			if err != nil {
				return false, err
			}
			if op == "$elemMatch" && m {
				return true, nil
			}
			if op == "$allMatch" && !m {
				return false, nil
			}
		}
		return op == "$allMatch", nil
	}
	return false, fmt.Errorf("unsupported operator %s", op)
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return ""
}

func typeRank(v any) int {
	switch v.(type) {
	case nil:
		return 0
	case bool:
		return 1
	case float64:
		return 3
	case string:
		return 4
	case []any:
		return 5
	case map[string]any:
		return 6
	}
	return 7
}

// collate orders JSON values the way CouchDB's views do: null, false,
// true, numbers, strings, arrays, objects.
func collate(a, b any) int {
	ra, rb := typeRank(a), typeRank(b)
	if ra != rb {
		return cmpInt(ra, rb)
	}
	switch x := a.(type) {
	case nil:
		return 0
	case bool:
		y := b.(bool)
		if x == y {
			return 0
		}
		if !x {
			return -1
		}
		return 1
	case float64:
		y := b.(float64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case string:
		return strings.Compare(x, b.(string))
	case []any:
		y := b.([]any)
		for i := 0; i < len(x) && i < len(y); i++ {
			if c := collate(x[i], y[i]); c != 0 {
				return c
			}
		}
		return cmpInt(len(x), len(y))
	case map[string]any:
		y := b.(map[string]any)
		if reflect.DeepEqual(x, y) {
			return 0
		}
		return cmpInt(len(x), len(y)) | 1
	}
	return 0
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareVersions compares dotted version strings numerically
// ("1.10.0" > "1.9.2"); non-numeric parts compare as strings.
func compareVersions(a, b string) int {
	pa := strings.FieldsFunc(a, func(r rune) bool { return r == '.' || r == '-' || r == '+' })
	pb := strings.FieldsFunc(b, func(r rune) bool { return r == '.' || r == '-' || r == '+' })
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y string
		if i < len(pa) {
			x = pa[i]
		}
		if i < len(pb) {
			y = pb[i]
		}
		nx, ex := parseUint(x)
		ny, ey := parseUint(y)
		if ex == nil && ey == nil {
			if nx != ny {
				if nx < ny {
					return -1
				}
				return 1
			}
			continue
		}
		if c := strings.Compare(x, y); c != 0 {
			return c
		}
	}
	return 0
}

func parseUint(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	var n uint64
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("not a number")
		}
		n = n*10 + uint64(r-'0')
	}
	return n, nil
}

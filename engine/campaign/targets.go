package campaign

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
)

// Row is one target of a targets file: the line it starts on and its
// fields (strings from a CSV file, any JSON value from a JSON file).
type Row struct {
	Line   int
	Fields map[string]cty.Value
}

// RowError names the line of a targets file that is wrong.
type RowError struct {
	File string
	Line int
	Err  error
}

func (e *RowError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }
func (e *RowError) Unwrap() error { return e.Err }

// ParseTargets reads a targets file: a JSON array of objects (a file whose
// name ends in .json, or whose content starts with '['), or CSV with a
// header row naming the variables. Every row must be well formed: the
// first bad one is returned as a *RowError.
func ParseTargets(name string, r io.Reader) ([]Row, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if strings.EqualFold(filepath.Ext(name), ".json") || bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		return parseJSON(name, b)
	}
	return parseCSV(name, b)
}

func parseCSV(name string, b []byte) ([]Row, error) {
	cr := csv.NewReader(bytes.NewReader(b))
	cr.FieldsPerRecord = 0 // every row as long as the header
	header, err := cr.Read()
	if err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("%s: empty targets file: it needs a header row naming the variables", name)
		}
		return nil, csvError(name, err)
	}
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, &RowError{name, 1, fmt.Errorf("column %d of the header has no name", i+1)}
		}
		if seen[h] {
			return nil, &RowError{name, 1, fmt.Errorf("column %q appears twice in the header", h)}
		}
		seen[h], header[i] = true, h
	}
	var rows []Row
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, csvError(name, err)
		}
		line, _ := cr.FieldPos(0)
		row := Row{Line: line, Fields: map[string]cty.Value{}}
		for i, v := range rec {
			row.Fields[header[i]] = cty.StringVal(v)
		}
		rows = append(rows, row)
	}
}

func csvError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &RowError{name, pe.StartLine, pe.Err}
	}
	return fmt.Errorf("%s: %w", name, err)
}

func parseJSON(name string, b []byte) ([]Row, error) {
	lineAt := func(off int64) int { return 1 + bytes.Count(b[:min(int(off), len(b))], []byte("\n")) }
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, &RowError{name, 1, errors.New("a JSON targets file is an array of objects")}
	}
	var rows []Row
	for dec.More() {
		start := dec.InputOffset()
		for start < int64(len(b)) && strings.ContainsRune(" \t\r\n,", rune(b[start])) {
			start++
		}
		line := lineAt(start)
		var obj map[string]json.RawMessage
		if err := dec.Decode(&obj); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				line = lineAt(se.Offset)
			}
			return nil, &RowError{name, line, fmt.Errorf("not a JSON object: %v", err)}
		}
		row := Row{Line: line, Fields: map[string]cty.Value{}}
		for k, raw := range obj {
			if string(raw) == "null" {
				continue
			}
			ty, err := ctyjson.ImpliedType(raw)
			if err == nil {
				row.Fields[k], err = ctyjson.Unmarshal(raw, ty)
			}
			if err != nil {
				return nil, &RowError{name, line, fmt.Errorf("field %q: %v", k, err)}
			}
		}
		rows = append(rows, row)
	}
	if _, err := dec.Token(); err != nil {
		return nil, &RowError{name, lineAt(dec.InputOffset()), fmt.Errorf("the array is not closed: %v", err)}
	}
	return rows, nil
}

// Target is a row checked against the runbook: its variables resolve and
// its lock key is known.
type Target struct {
	Line    int
	LockKey string
	// Vars are the variables the row (and the campaign's -var arguments)
	// set, journal-encoded: sensitive ones sealed with the state key.
	Vars map[string]*journal.Value
	// Bind is what the sealed values are bound to (VarsSealer).
	Bind string
}

// Prepare checks every row against the runbook: each field must name a
// variable, the variables must resolve (types, validations, required ones
// set) together with common (the campaign's "name=value" arguments, which
// a row overrides), the lock key must evaluate, and no two rows may share
// one. Sensitive values are sealed with sealer bound to the campaign and
// the row's line; a sensitive value without a sealer is refused (it could
// not reach the worker). The first bad row is returned as a *RowError.
func Prepare(cfg *lang.Config, file, campaign string, rows []Row, common []string, sealer *journal.Sealer) ([]Target, error) {
	out := make([]Target, 0, len(rows))
	byKey := map[string]int{}
	for _, row := range rows {
		// A message may quote a value: sensitive ones never show.
		var secrets []string
		for n, v := range row.Fields {
			if cfg.Variables[n] != nil && cfg.Variables[n].Sensitive && VarArg(v) != "" {
				secrets = append(secrets, VarArg(v))
			}
		}
		bad := func(err error) error {
			msg := err.Error()
			for _, s := range secrets {
				msg = strings.ReplaceAll(msg, s, "(sensitive)")
			}
			return &RowError{file, row.Line, errors.New(msg)}
		}
		names := make([]string, 0, len(row.Fields))
		for n := range row.Fields {
			if _, ok := cfg.Variables[n]; !ok {
				return nil, bad(fmt.Errorf("%q is not a variable of the runbook%s", n, knownVars(cfg)))
			}
			names = append(names, n)
		}
		sort.Strings(names)
		args := append([]string(nil), common...)
		for _, n := range names {
			args = append(args, n+"="+VarArg(row.Fields[n]))
		}
		values, diags := cfg.ResolveVariables(lang.VarSources{Args: args})
		if diags.HasErrors() {
			return nil, bad(diagText(diags))
		}
		key, diags := (&lang.Scope{Config: cfg, Vars: values}).Lock()
		if diags.HasErrors() {
			return nil, bad(diagText(diags))
		}
		if key == "" {
			key = "line:" + strconv.Itoa(row.Line)
		} else if prev, ok := byKey[key]; ok {
			return nil, bad(fmt.Errorf("lock key %q is also the lock key of line %d: one run per lock key", key, prev))
		}
		byKey[key] = row.Line
		t := Target{Line: row.Line, LockKey: key, Vars: map[string]*journal.Value{}, Bind: campaign + "/" + strconv.Itoa(row.Line)}
		set := map[string]bool{}
		for _, a := range args {
			n, _, _ := strings.Cut(a, "=")
			set[n] = true
		}
		s := VarsSealer(sealer, t.Bind)
		for n := range set {
			v := values[n]
			if cfg.Variables[n] != nil && cfg.Variables[n].Sensitive && s == nil {
				return nil, bad(fmt.Errorf("variable %q is sensitive and no state key is set to seal it (set %s or %s)", n, journal.EnvStateKeyFile, journal.EnvStateKey))
			}
			jv, err := journal.EncodeValue(v, s.Bind("var", n))
			if err != nil {
				return nil, bad(fmt.Errorf("variable %q: %v", n, err))
			}
			t.Vars[n] = jv
		}
		out = append(out, t)
	}
	return out, nil
}

// VarsSealer is the state key bound to a target's variables.
func VarsSealer(sealer *journal.Sealer, bind string) *journal.Sealer {
	return sealer.Bind("campaign-target", bind)
}

// DecodeVars turns a target's journaled variables back into "name=value"
// arguments for the session.
func DecodeVars(vars map[string]*journal.Value, sealer *journal.Sealer, bind string) ([]string, error) {
	s := VarsSealer(sealer, bind)
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Strings(names)
	var args []string
	for _, n := range names {
		v, complete, err := vars[n].Decode(s.Bind("var", n))
		if err != nil {
			return nil, fmt.Errorf("variable %q: %w", n, err)
		}
		if !complete {
			return nil, fmt.Errorf("variable %q is sensitive and this worker has not the state key it was sealed with", n)
		}
		args = append(args, n+"="+VarArg(v))
	}
	return args, nil
}

// VarArg writes a value as a -var argument: raw for strings, HCL
// otherwise.
func VarArg(v cty.Value) string {
	v, _ = v.UnmarkDeep()
	if v.Type() == cty.String && !v.IsNull() {
		return v.AsString()
	}
	return string(hclwrite.TokensForValue(v).Bytes())
}

func knownVars(cfg *lang.Config) string {
	names := make([]string, 0, len(cfg.Variables))
	for n := range cfg.Variables {
		names = append(names, n)
	}
	if len(names) == 0 {
		return " (it declares none)"
	}
	sort.Strings(names)
	return " (it declares " + strings.Join(names, ", ") + ")"
}

// diagText is the errors of diags on one line, without source positions
// (they point into the -var arguments made from the row, not a file).
func diagText(diags hcl.Diagnostics) error {
	var parts []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		s := d.Summary
		if d.Detail != "" {
			s += ": " + d.Detail
		}
		parts = append(parts, s)
	}
	return errors.New(strings.Join(parts, "; "))
}

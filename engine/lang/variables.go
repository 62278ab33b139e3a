package lang

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// EnvPrefix is the prefix of environment variables that set runbook
// variables: RUNBOOK_VAR_name.
const EnvPrefix = "RUNBOOK_VAR_"

// VarSources says where variable values come from. Later sources win:
// defaults, then Env, then Files in order, then Args in order; a required
// variable still missing is asked for through Prompt when it is set.
type VarSources struct {
	Args   []string                          // "k=v"
	Files  []string                          // *.hcl or *.json files of name = value
	Env    []string                          // os.Environ()
	Prompt func(v *Variable) (string, error) // nil = no prompting
}

func decodeVariable(b *hcl.Block) (*Variable, hcl.Diagnostics) {
	v := &Variable{Name: b.Labels[0], DeclRange: b.DefRange, Type: cty.DynamicPseudoType, Nullable: true}
	diags := validName("variable", v.Name, b.LabelRanges[0])
	content, d := b.Body.Content(&hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "default"}, {Name: "description"}, {Name: "sensitive"}, {Name: "nullable"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "validation"}},
	})
	diags = append(diags, d...)
	if a, ok := content.Attributes["type"]; ok {
		ty, defs, d := typeexpr.TypeConstraintWithDefaults(a.Expr)
		diags = append(diags, d...)
		if !d.HasErrors() {
			v.Type, v.defaults = ty, defs
		}
	}
	if a, ok := content.Attributes["description"]; ok {
		diags = append(diags, constString(a, &v.Description)...)
	}
	if a, ok := content.Attributes["sensitive"]; ok {
		diags = append(diags, constBool(a, &v.Sensitive)...)
	}
	if a, ok := content.Attributes["nullable"]; ok {
		diags = append(diags, constBool(a, &v.Nullable)...)
	}
	if a, ok := content.Attributes["default"]; ok {
		val, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		if !d.HasErrors() {
			cv, err := v.convert(val)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid default value for variable",
					Detail:   fmt.Sprintf("The default of variable %q does not match its type: %s.", v.Name, err),
					Subject:  a.Expr.Range().Ptr(),
				})
			} else if d := checkStorable(cv, "default", fmt.Sprintf("variable %q", v.Name), a.Expr.Range()); d != nil {
				diags = append(diags, d...)
			} else if cv.IsNull() && !v.Nullable {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError, Summary: "Invalid default value for variable",
					Detail: fmt.Sprintf("Variable %q is not nullable, so its default cannot be null.", v.Name), Subject: a.Expr.Range().Ptr(),
				})
			} else {
				v.Default = cv
			}
		}
	}
	for _, vb := range content.Blocks {
		c, d := vb.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
			{Name: "condition", Required: true}, {Name: "error_message", Required: true},
		}})
		diags = append(diags, d...)
		ca, ok1 := c.Attributes["condition"]
		ea, ok2 := c.Attributes["error_message"]
		if ok1 && ok2 {
			v.Validations = append(v.Validations, &Validation{Condition: ca.Expr, ErrorMessage: ea.Expr, DeclRange: vb.DefRange})
		}
	}
	return v, diags
}

// convert applies optional-attribute defaults and converts to the type.
func (v *Variable) convert(val cty.Value) (cty.Value, error) {
	if v.defaults != nil && !val.IsNull() {
		val = v.defaults.Apply(val)
	}
	return convertValue(val, v.Type)
}

// Required reports whether the variable has no default.
func (v *Variable) Required() bool { return v.Default == cty.NilVal }

// TypeString renders the variable's type constraint for messages.
func (v *Variable) TypeString() string { return typeexpr.TypeString(v.Type) }

type varValue struct {
	val  cty.Value
	from string     // "-var", "file", "env", "prompt"
	rng  *hcl.Range // where the value was given, when from a file
}

// ResolveVariables computes the value of every declared variable from the
// sources. Sensitive values are marked; validation blocks are checked. Every
// problem is reported (unknown names, bad values, all missing variables).
func (c *Config) ResolveVariables(src VarSources) (map[string]cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	given := map[string]varValue{}
	invalid := map[string]bool{} // names given a value that is not valid
	names := mapKeys(c.Variables)

	for _, kv := range src.Env {
		k, raw, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, EnvPrefix) {
			continue
		}
		name := strings.TrimPrefix(k, EnvPrefix)
		v, declared := c.Variables[name]
		if !declared {
			continue // other runbooks' variables may be in the environment
		}
		val, d := parseRawVar(v, raw, "environment variable "+k)
		diags = append(diags, d...)
		if !d.HasErrors() {
			given[name] = varValue{val: val, from: "environment variable " + k}
		} else {
			invalid[name] = true
		}
	}
	for _, f := range src.Files {
		vals, d := c.readVarFile(f)
		diags = append(diags, d...)
		for name, vv := range vals {
			given[name] = vv
		}
	}
	for _, arg := range src.Args {
		name, raw, ok := strings.Cut(arg, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid -var option",
				Detail: fmt.Sprintf("%q must be NAME=VALUE, for example -var region=eu-west.", arg)})
			continue
		}
		v, declared := c.Variables[name]
		if !declared {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Value for undeclared variable",
				Detail: fmt.Sprintf("-var %s: this runbook declares no variable %q.%s", name, name, didYouMean(name, names))})
			continue
		}
		val, d := parseRawVar(v, raw, "-var "+name)
		diags = append(diags, d...)
		if d.HasErrors() {
			invalid[name] = true
		}
		if !d.HasErrors() {
			given[name] = varValue{val: val, from: "-var " + name}
		} else if d[0].Subject != nil && d[0].Subject.Filename == "-var "+name && !v.Sensitive {
			c.keepSource(d[0].Subject.Filename, []byte(raw))
		}
	}

	out := map[string]cty.Value{}
	var missing []*Variable
	for _, name := range names {
		v := c.Variables[name]
		vv, ok := given[name]
		if !ok {
			if !v.Required() {
				out[name] = v.Default
				continue
			}
			if invalid[name] {
				continue // given, but not valid: reported above, not missing
			}
			if src.Prompt == nil {
				missing = append(missing, v)
				continue
			}
			raw, err := src.Prompt(v)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No value for variable",
					Detail: fmt.Sprintf("Reading variable %q: %s", name, err), Subject: v.DeclRange.Ptr()})
				continue
			}
			val, d := parseRawVar(v, raw, "the value entered for "+name)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			vv = varValue{val: val, from: "prompt"}
		}
		cv, err := v.convert(vv.val)
		if err != nil {
			detail := fmt.Sprintf("The value from %s for variable %q is not %s: %s.", vv.from, name, v.TypeString(), err)
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable",
				Detail: detail, Subject: vv.rng})
			continue
		}
		if cv.IsNull() && !v.Nullable {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable",
				Detail: fmt.Sprintf("Variable %q is not nullable; give it a value.", name), Subject: vv.rng})
			continue
		}
		if d := checkStorable(cv, "var."+name, "", givenRange(vv, v)); d != nil {
			diags = append(diags, d...)
			continue
		}
		out[name] = cv
	}
	if len(missing) > 0 {
		diags = append(diags, missingVariables(missing))
	}
	for name, val := range out {
		if c.Variables[name].Sensitive {
			out[name] = val.Mark(MarkSensitive)
		}
	}
	if diags.HasErrors() {
		return out, uniqueDiags(diags)
	}
	diags = append(diags, c.validateVariables(out)...)
	return out, uniqueDiags(diags)
}

// givenRange is where a variable's value was given: in a variables file,
// else the variable's declaration.
func givenRange(vv varValue, v *Variable) hcl.Range {
	if vv.rng != nil {
		return *vv.rng
	}
	return v.DeclRange
}

func missingVariables(missing []*Variable) *hcl.Diagnostic {
	var names, lines []string
	for _, v := range missing {
		names = append(names, fmt.Sprintf("%q", v.Name))
		line := fmt.Sprintf("  %s (%s), declared at %s", v.Name, v.TypeString(), pos(v.DeclRange))
		if v.Description != "" {
			line += ": " + v.Description
		}
		lines = append(lines, line)
	}
	ex := missing[0].Name
	summary := fmt.Sprintf("No value for required variable %s", names[0])
	if len(missing) > 1 {
		summary = fmt.Sprintf("No value for required variables %s", strings.Join(names, ", "))
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail: fmt.Sprintf("These variables have no default and were not set:\n%s\n\nSet each with -var %s=VALUE, in a -var-file, or with the environment variable %s%s=VALUE.",
			strings.Join(lines, "\n"), ex, EnvPrefix, ex),
		Subject: missing[0].DeclRange.Ptr(),
	}
}

// parseRawVar reads a value given as text: raw text for string variables,
// an HCL expression otherwise (like Terraform).
func parseRawVar(v *Variable, raw, from string) (cty.Value, hcl.Diagnostics) {
	if v.Type == cty.String || (v.Type == cty.DynamicPseudoType && !looksLikeExpr(raw)) {
		return cty.StringVal(raw), nil
	}
	if d := notAPrimitive(v, raw, from); d != nil {
		return cty.NilVal, hcl.Diagnostics{d}
	}
	if d := checkInput(from, []byte(raw), syntaxConfig); d.HasErrors() {
		return cty.NilVal, d
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), from, hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value for variable",
			Detail: fmt.Sprintf("The value from %s for variable %q must be an HCL expression of type %s (for example [\"a\", \"b\"] or { k = \"v\" }): %s",
				from, v.Name, v.TypeString(), diags[0].Summary)}}
	}
	val, diags := expr.Value(nil)
	if diags.HasErrors() {
		problem := "is invalid"
		if len(expr.Variables()) > 0 {
			problem = "must be a constant"
		}
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value for variable",
			Detail: fmt.Sprintf("The value from %s for variable %q %s: %s", from, v.Name, problem, diags[0].Detail)}}
	}
	return val, nil
}

// notAPrimitive says plainly that a word given for a number or bool
// variable is not one ("abc" for a number), instead of the expression
// error HCL would give for it (a word parses as a variable reference).
// The value is quoted unless the variable is sensitive.
func notAPrimitive(v *Variable, raw, from string) *hcl.Diagnostic {
	word := strings.TrimSpace(raw)
	if word == "" || strings.ContainsAny(word, "()[]{}\"+*/%<>=!&|?:,") {
		return nil // an expression: HCL's own evaluation says what is wrong
	}
	what := ""
	switch v.Type {
	case cty.Number:
		if _, err := cty.ParseNumberVal(word); err == nil {
			return nil
		}
		what = "a number"
	case cty.Bool:
		if word == "true" || word == "false" {
			return nil
		}
		what = "a bool (true or false)"
	default:
		return nil
	}
	shown := fmt.Sprintf(" %q", word)
	if v.Sensitive {
		shown = ""
	}
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable",
		Detail: fmt.Sprintf("The value%s from %s for variable %q is not %s.", shown, from, v.Name, what)}
}

func looksLikeExpr(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasPrefix(s, "[") || strings.HasPrefix(s, "{")
}

func (c *Config) readVarFile(name string) (map[string]varValue, hcl.Diagnostics) {
	src, diags := readSource(name, "variables file")
	if diags.HasErrors() {
		return nil, diags
	}
	return c.parseVarFile(name, src)
}

func (c *Config) parseVarFile(name string, src []byte) (map[string]varValue, hcl.Diagnostics) {
	if d := checkInput(name, src, syntaxOf(name)); d.HasErrors() {
		if len(c.sensitiveEnv()) == 0 { // no sensitive variable
			// (Unparsed, the file's sensitive values cannot be told
			// apart: no snippet then.)
			c.keepSource(name, src)
		}
		return nil, d
	}
	var f *hcl.File
	var diags hcl.Diagnostics
	if strings.HasSuffix(name, ".json") {
		f, diags = parseJSON(src, name)
	} else {
		f, diags = hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	}
	if diags.HasErrors() || f == nil {
		return nil, diags
	}
	if c.varFiles == nil {
		c.varFiles = map[string]*hcl.File{}
	}
	attrs, d := f.Body.JustAttributes()
	diags = append(diags, d...)
	c.varFiles[name] = c.redactVarFile(f, attrs)
	out := map[string]varValue{}
	for _, n := range sortedAttrNames(attrs) {
		a := attrs[n]
		if _, ok := c.Variables[n]; !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Value for undeclared variable",
				Detail:  fmt.Sprintf("This runbook declares no variable %q.%s", n, didYouMean(n, mapKeys(c.Variables))),
				Subject: a.NameRange.Ptr()})
			continue
		}
		val, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		out[n] = varValue{val: val, from: "file " + name, rng: a.Expr.Range().Ptr()}
	}
	return out, diags
}

// validateVariables runs every validation block.
func (c *Config) validateVariables(vals map[string]cty.Value) hcl.Diagnostics {
	var diags hcl.Diagnostics
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(vals)},
		Functions: c.functions(),
	}
	names := mapKeys(c.Variables)
	sort.Strings(names)
	for _, name := range names {
		v := c.Variables[name]
		for _, val := range v.Validations {
			res, d := val.Condition.Value(ctx)
			if d.HasErrors() {
				diags = append(diags, d...)
				continue
			}
			res, _ = res.Unmark()
			if !res.IsKnown() {
				continue
			}
			if res.IsNull() || res.Type() != cty.Bool {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid validation condition",
					Detail: "The condition must be true or false.", Subject: val.Condition.Range().Ptr()})
				continue
			}
			if res.True() {
				continue
			}
			msg := "The value does not satisfy the validation rule."
			if m, d := val.ErrorMessage.Value(ctx); !d.HasErrors() {
				if m, marks := m.Unmark(); len(marks) == 0 && m.Type() == cty.String && m.IsKnown() && !m.IsNull() {
					msg = m.AsString()
				}
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Invalid value for variable %q", name),
				Detail:   msg + fmt.Sprintf("\n\nThis was checked by the validation rule at %s.", pos(val.DeclRange)),
				Subject:  val.Condition.Range().Ptr(),
			})
		}
	}
	return diags
}

// redactVarFile is a variables file as kept for diagnostic snippets: the
// values given to sensitive variables are overwritten with '*' (newlines
// kept, so that every line and the columns before them stay where they
// were), so that a snippet of a line holding a secret shows no secret.
func (c *Config) redactVarFile(f *hcl.File, attrs hcl.Attributes) *hcl.File {
	var src []byte
	for n, a := range attrs {
		if v, ok := c.Variables[n]; !ok || !v.Sensitive {
			continue
		}
		r := a.Expr.Range()
		if r.Start.Byte < 0 || r.End.Byte > len(f.Bytes) || r.Start.Byte > r.End.Byte {
			continue
		}
		if src == nil {
			src = bytes.Clone(f.Bytes)
		}
		for i := r.Start.Byte; i < r.End.Byte; i++ {
			if src[i] != '\n' && src[i] != '\r' {
				src[i] = '*'
			}
		}
	}
	if src == nil {
		return f
	}
	return &hcl.File{Body: f.Body, Bytes: src, Nav: f.Nav}
}

package lang

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-cty-funcs/crypto"
	"github.com/hashicorp/go-cty-funcs/encoding"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	ctyyaml "github.com/zclconf/go-cty-yaml"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Functions returns every function available in runbook expressions.
// Relative paths given to file functions are resolved against baseDir (the
// directory of the runbook).
func Functions(baseDir string) map[string]function.Function {
	return functionsFor(baseDir, nil)
}

// functionsFor is Functions for a runbook whose environment variables
// named in sensitiveEnv hold secrets: env() marks their values sensitive.
func functionsFor(baseDir string, sensitiveEnv map[string]bool) map[string]function.Function {
	fns := map[string]function.Function{
		// stdlib: numbers
		"abs": stdlib.AbsoluteFunc, "ceil": stdlib.CeilFunc, "floor": stdlib.FloorFunc,
		"log": stdlib.LogFunc, "max": stdlib.MaxFunc, "min": stdlib.MinFunc,
		"parseint": stdlib.ParseIntFunc, "pow": stdlib.PowFunc, "signum": stdlib.SignumFunc,
		// strings
		"chomp": stdlib.ChompFunc, "format": stdlib.FormatFunc, "formatlist": stdlib.FormatListFunc,
		"indent": stdlib.IndentFunc, "join": stdlib.JoinFunc, "lower": stdlib.LowerFunc,
		"regex": stdlib.RegexFunc, "regexall": stdlib.RegexAllFunc, "regex_replace": stdlib.RegexReplaceFunc,
		"replace": stdlib.ReplaceFunc, "split": stdlib.SplitFunc, "strrev": stdlib.ReverseFunc,
		"substr": stdlib.SubstrFunc, "title": stdlib.TitleFunc, "trim": stdlib.TrimFunc,
		"trimprefix": stdlib.TrimPrefixFunc, "trimspace": stdlib.TrimSpaceFunc,
		"trimsuffix": stdlib.TrimSuffixFunc, "upper": stdlib.UpperFunc,
		"startswith": startsWithFunc, "endswith": endsWithFunc, "strcontains": strContainsFunc,
		// collections
		"chunklist": stdlib.ChunklistFunc, "coalesce": stdlib.CoalesceFunc,
		"coalescelist": stdlib.CoalesceListFunc, "compact": stdlib.CompactFunc,
		"concat": stdlib.ConcatFunc, "contains": stdlib.ContainsFunc, "distinct": stdlib.DistinctFunc,
		"element": stdlib.ElementFunc, "flatten": stdlib.FlattenFunc, "index": indexFunc,
		"keys": stdlib.KeysFunc, "length": lengthFunc, "lookup": stdlib.LookupFunc,
		"merge": stdlib.MergeFunc, "range": stdlib.RangeFunc, "reverse": stdlib.ReverseListFunc,
		"setintersection": stdlib.SetIntersectionFunc, "setproduct": stdlib.SetProductFunc,
		"setsubtract": stdlib.SetSubtractFunc, "setunion": stdlib.SetUnionFunc,
		"slice": stdlib.SliceFunc, "sort": stdlib.SortFunc, "values": stdlib.ValuesFunc,
		"zipmap": stdlib.ZipmapFunc,
		// encoding
		"csvdecode": stdlib.CSVDecodeFunc, "jsondecode": stdlib.JSONDecodeFunc,
		"jsonencode": stdlib.JSONEncodeFunc, "yamldecode": ctyyaml.YAMLDecodeFunc,
		"yamlencode": ctyyaml.YAMLEncodeFunc, "base64decode": encoding.Base64DecodeFunc,
		"base64encode": encoding.Base64EncodeFunc, "urlencode": encoding.URLEncodeFunc,
		// hashing
		"md5": crypto.Md5Func, "sha1": crypto.Sha1Func, "sha256": crypto.Sha256Func,
		"sha512": crypto.Sha512Func, "bcrypt": crypto.BcryptFunc,
		// dates
		"formatdate": stdlib.FormatDateFunc, "timeadd": stdlib.TimeAddFunc, "timestamp": timestampFunc,
		// types
		"tobool": stdlib.MakeToFunc(cty.Bool), "tolist": makeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap": makeToFunc(cty.Map(cty.DynamicPseudoType)), "tonumber": stdlib.MakeToFunc(cty.Number),
		"toset": makeToFunc(cty.Set(cty.DynamicPseudoType)), "tostring": stdlib.MakeToFunc(cty.String),
		"try": tryfunc.TryFunc, "can": tryfunc.CanFunc,
		// environment and files
		"env": makeEnvFunc(sensitiveEnv), "uuid": uuidFunc,
		"file": makeFileFunc(baseDir), "fileexists": makeFileExistsFunc(baseDir),
		"basename": basenameFunc, "dirname": dirnameFunc,
	}
	for name, f := range numberFunctions {
		fns[name] = f
	}
	fns["templatefile"] = makeTemplateFileFunc(baseDir, func() map[string]function.Function { return fns })
	return fns
}

// FunctionNames lists the available function names, sorted (for docs).
func FunctionNames() []string {
	fns := Functions(".")
	names := make([]string, 0, len(fns))
	for n := range fns {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func stringPredicate(f func(s, sub string) bool) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "str", Type: cty.String}, {Name: "substr", Type: cty.String}},
		Type:   function.StaticReturnType(cty.Bool),
		RefineResult: func(b *cty.RefinementBuilder) *cty.RefinementBuilder {
			return b.NotNull()
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.BoolVal(f(args[0].AsString(), args[1].AsString())), nil
		},
	})
}

var (
	startsWithFunc  = stringPredicate(strings.HasPrefix)
	endsWithFunc    = stringPredicate(strings.HasSuffix)
	strContainsFunc = stringPredicate(strings.Contains)
)

// indexFunc is Terraform's index(list, value): the position of the first
// element equal to value. cty's stdlib.IndexFunc is another function of
// the same name, the element at a key (list[i]).
var indexFunc = function.New(&function.Spec{
	Params: []function.Parameter{
		{Name: "list", Type: cty.DynamicPseudoType},
		{Name: "value", Type: cty.DynamicPseudoType},
	},
	Type: function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		list, value := args[0], args[1]
		if ty := list.Type(); !ty.IsListType() && !ty.IsTupleType() {
			return cty.NilVal, function.NewArgErrorf(0, "a list or tuple is required, but have %s", ty.FriendlyName())
		}
		if !list.IsKnown() {
			return cty.UnknownVal(cty.Number), nil
		}
		if list.IsNull() {
			return cty.NilVal, function.NewArgErrorf(0, "the list is null")
		}
		for it := list.ElementIterator(); it.Next(); {
			i, v := it.Element()
			eq, err := stdlib.Equal(v, value)
			if err != nil {
				return cty.NilVal, err
			}
			if !eq.IsKnown() {
				return cty.UnknownVal(cty.Number), nil
			}
			if eq.True() {
				return i, nil
			}
		}
		return cty.NilVal, function.NewArgErrorf(1, "the value is not in the list")
	},
})

// timestampFunc returns the current time in UTC as RFC 3339.
var timestampFunc = function.New(&function.Spec{
	Type: function.StaticReturnType(cty.String),
	Impl: func([]cty.Value, cty.Type) (cty.Value, error) {
		return cty.StringVal(time.Now().UTC().Format(time.RFC3339)), nil
	},
})

// makeEnvFunc returns env(): an environment variable, or the optional
// default (or "") when it is unset. The value is sensitive when the
// variable holds a secret: the state key (RUNBOOK_STATE_KEY), a name in
// sensitiveEnv (RUNBOOK_VAR_x of a sensitive variable x), or a name or
// default that is itself sensitive (cty marks the result of a function
// whose arguments are marked).
func makeEnvFunc(sensitiveEnv map[string]bool) function.Function {
	return function.New(&function.Spec{
		Params:   []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam: &function.Parameter{Name: "default", Type: cty.String},
		Type:     function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if len(args) > 2 {
				return cty.NilVal, function.NewArgErrorf(2, "env takes at most one default")
			}
			name := args[0].AsString()
			if v, ok := os.LookupEnv(name); ok {
				if sensitiveEnv[name] || name == envStateKey {
					return cty.StringVal(v).Mark(MarkSensitive), nil
				}
				return cty.StringVal(v), nil
			}
			if len(args) == 2 {
				return args[1], nil
			}
			return cty.StringVal(""), nil
		},
	})
}

// envStateKey is the environment variable that may hold the state key.
const envStateKey = "RUNBOOK_STATE_KEY"

// sensitiveEnv is the set of environment variables that set the runbook's
// sensitive variables (RUNBOOK_VAR_x), nil when there is none.
func (c *Config) sensitiveEnv() map[string]bool {
	var out map[string]bool
	for name, v := range c.Variables {
		if v.Sensitive {
			if out == nil {
				out = map[string]bool{}
			}
			out[EnvPrefix+name] = true
		}
	}
	return out
}

// functions is the function table of the runbook's expressions; see
// functionsFor.
func (c *Config) functions() map[string]function.Function {
	sens := c.sensitiveEnv()
	base := c.BaseDir
	if base == "" {
		base = "."
	}
	key := base
	if len(sens) > 0 {
		names := mapKeys(sens)
		sort.Strings(names)
		key += "\x00" + strings.Join(names, "\x00")
	}
	if f, ok := funcCache.Load(key); ok {
		return f.(map[string]function.Function)
	}
	f, _ := funcCache.LoadOrStore(key, functionsFor(base, sens))
	return f.(map[string]function.Function)
}

// uuidFunc returns a random version 4 UUID.
var uuidFunc = function.New(&function.Spec{
	Type: function.StaticReturnType(cty.String),
	Impl: func([]cty.Value, cty.Type) (cty.Value, error) {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return cty.NilVal, fmt.Errorf("uuid: %w", err)
		}
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		return cty.StringVal(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])), nil
	},
})

var basenameFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "path", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.StringVal(filepath.Base(args[0].AsString())), nil
	},
})

var dirnameFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "path", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.StringVal(filepath.Dir(args[0].AsString())), nil
	},
})

func resolvePath(baseDir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(baseDir, p)
}

func readTextFile(baseDir, p string) (string, error) {
	b, err := readLimited(resolvePath(baseDir, p))
	var tooLarge *fileTooLargeError
	switch {
	case errors.As(err, &tooLarge):
		return "", err
	case err != nil:
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return string(b), nil
}

func makeFileFunc(baseDir string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			s, err := readTextFile(baseDir, args[0].AsString())
			if err != nil {
				return cty.NilVal, err
			}
			return cty.StringVal(s), nil
		},
	})
}

func makeFileExistsFunc(baseDir string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			st, err := os.Stat(resolvePath(baseDir, args[0].AsString()))
			if err != nil {
				return cty.False, nil
			}
			return cty.BoolVal(st.Mode().IsRegular()), nil
		},
	})
}

// makeTemplateFileFunc renders a file as an HCL template with the given
// variables. Templates cannot call templatefile themselves.
func makeTemplateFileFunc(baseDir string, funcs func() map[string]function.Function) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{
			{Name: "path", Type: cty.String},
			{Name: "vars", Type: cty.DynamicPseudoType},
		},
		Type: function.StaticReturnType(cty.DynamicPseudoType),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			src, err := readTextFile(baseDir, name)
			if err != nil {
				return cty.NilVal, err
			}
			vars := args[1]
			if !vars.IsKnown() {
				return cty.DynamicVal, nil
			}
			if vars.IsNull() || !(vars.Type().IsObjectType() || vars.Type().IsMapType()) {
				return cty.NilVal, function.NewArgErrorf(1, "vars must be an object or a map")
			}
			if diags := checkNesting(name, []byte(src), syntaxTemplate); diags.HasErrors() {
				return cty.NilVal, fmt.Errorf("template %s: %s", name, diags.Error())
			}
			expr, diags := hclsyntax.ParseTemplate([]byte(src), name, hcl.Pos{Line: 1, Column: 1, Byte: 0})
			if diags.HasErrors() {
				return cty.NilVal, fmt.Errorf("template %s: %s", name, diags.Error())
			}
			ctx := &hcl.EvalContext{Variables: map[string]cty.Value{}, Functions: map[string]function.Function{}}
			for k, v := range vars.AsValueMap() {
				if !validIdentifier(k) {
					return cty.NilVal, function.NewArgErrorf(1, "invalid template variable name %q", k)
				}
				ctx.Variables[k] = v
			}
			for k, f := range funcs() {
				if k != "templatefile" {
					ctx.Functions[k] = f
				}
			}
			v, diags := expr.Value(ctx)
			if diags.HasErrors() {
				return cty.NilVal, fmt.Errorf("template %s: %s", name, diags.Error())
			}
			return v, nil
		},
	})
}

// lengthFunc is the length of a collection, or of a string in characters.
var lengthFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "value", Type: cty.DynamicPseudoType, AllowDynamicType: true, AllowUnknown: true, AllowMarked: true}},
	Type: func(args []cty.Value) (cty.Type, error) {
		ty := args[0].Type()
		if ty == cty.String || ty == cty.DynamicPseudoType || ty.IsCollectionType() || ty.IsTupleType() || ty.IsObjectType() {
			return cty.Number, nil
		}
		return cty.NilType, function.NewArgErrorf(0, "length needs a string, list, map, set, tuple or object; got %s", ty.FriendlyName())
	},
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		v, marks := args[0].Unmark()
		if v.Type() == cty.String {
			if !v.IsKnown() {
				return cty.UnknownVal(cty.Number).WithMarks(marks), nil
			}
			if v.IsNull() {
				return cty.NilVal, function.NewArgErrorf(0, "cannot take the length of null")
			}
			n, err := stdlib.Strlen(v)
			return n.WithMarks(marks), err
		}
		if !v.IsKnown() {
			return cty.UnknownVal(cty.Number).WithMarks(marks), nil
		}
		if v.IsNull() {
			return cty.NilVal, function.NewArgErrorf(0, "cannot take the length of null")
		}
		if v.Type().IsObjectType() {
			return cty.NumberIntVal(int64(len(v.Type().AttributeTypes()))).WithMarks(marks), nil
		}
		return v.Length().WithMarks(marks), nil
	},
})

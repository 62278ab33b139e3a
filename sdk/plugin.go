package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/runbookdev/runbook/internal/pluginwire"
)

// Plugin is a backend: a name, a version and its actions.
type Plugin struct {
	Name    string
	Version string
	Actions []Action
	// Configure, if set, is called once before the plugin's first call
	// (Serve calls it when serving starts): the place to open what the
	// actions share across calls, such as a client with its connection
	// pool. An error stops the plugin (Serve) or fails every call (Local).
	// The engine waits for it when it starts the plugin (go-plugin's start
	// timeout, a minute), so what may take long is better opened lazily.
	Configure func(ctx context.Context) error
	// Close, if set, is called once when the plugin stops serving (after
	// its calls returned, or their grace ran out), to release what
	// Configure opened. It is not called when Configure failed.
	Close func() error
}

// Provider is the host's view of one plugin, whether it runs in-process
// (Local) or in another process over gRPC (engine/pluginhost). All methods
// are safe for concurrent use. Action names are plain ("replicate").
type Provider interface {
	Schema(ctx context.Context) (*PluginSchema, error)
	Validate(ctx context.Context, action string, inputs cty.Value) (Diagnostics, error)
	Plan(ctx context.Context, action string, req *PlanRequest) (*PlanResult, error)
	Apply(ctx context.Context, action string, req *ApplyRequest, ev Events) (*Result, error)
	Undo(ctx context.Context, action string, req *UndoRequest, ev Events) error
}

// Local drives a Plugin in-process through the Provider interface. It does
// what the gRPC server does around each call: the Check of the plugin and
// its Configure hook (once, before the first call), input conversion to the
// schema's types, output checks, and panic recovery. The returned Provider
// is also an io.Closer that runs the plugin's Close hook.
func Local(p *Plugin) Provider { return newLocal(p) }

func newLocal(p *Plugin) *local { return &local{p: p} }

type local struct {
	p *Plugin

	once sync.Once // guards acts and bad: built on first use, read-only after
	acts map[string]*bound
	// bad is the plugin's Check error, returned by every call.
	bad error

	confOnce sync.Once // runs Configure (or marks it never to run); the two below are read-only after
	confErr  error
	// configured is set once Configure succeeded (or there was none).
	configured bool

	closeOnce sync.Once // runs Close once
	closeErr  error
	// closed is set by close; calls then fail.
	closed atomic.Bool
}

// errClosed fails the calls of a Local plugin after Close.
var errClosed = &Error{Kind: KindInternal, Err: errors.New("the plugin is closed")}

// bound is an action with its schema and types, built once: an action's
// schema is fixed for the life of the plugin, and building it (and its cty
// types) on every call is most of the cost of a small call.
type bound struct {
	Action
	schema          ActionSchema
	inType, outType cty.Type
}

var _ Provider = (*local)(nil)

// check builds the actions' table and returns the plugin's Check error.
func (l *local) check() error {
	l.once.Do(func() {
		if l.bad = l.p.Check(); l.bad != nil {
			return
		}
		l.acts = make(map[string]*bound, len(l.p.Actions))
		for _, a := range l.p.Actions {
			s := actionSchema(a)
			if _, dup := l.acts[s.Name]; !dup { // the first one wins, as before
				l.acts[s.Name] = &bound{Action: a, schema: s, inType: s.InputType(), outType: s.OutputType()}
			}
		}
	})
	return l.bad
}

// configure checks the plugin and runs its Configure hook, once.
func (l *local) configure() error {
	if err := l.check(); err != nil {
		return err
	}
	l.confOnce.Do(func() {
		if l.p.Configure != nil {
			if err := l.p.Configure(context.Background()); err != nil {
				l.confErr = &Error{Kind: KindInternal, Err: fmt.Errorf("configure plugin %s: %w", l.p.Name, err)}
				return
			}
		}
		l.configured = true
	})
	return l.confErr
}

// close runs the plugin's Close hook once, if Configure ran (a Configure
// that has not run by then never will); later calls fail.
func (l *local) close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		l.confOnce.Do(func() { l.confErr = errClosed })
		if l.configured && l.p.Close != nil {
			l.closeErr = l.p.Close()
		}
	})
	return l.closeErr
}

// Close runs the plugin's Close hook (once, and only if its Configure
// hook ran); later calls fail.
func (l *local) Close() error { return l.close() }

func (l *local) action(name string) (*bound, error) {
	if err := l.configure(); err != nil {
		return nil, err
	}
	if l.closed.Load() {
		return nil, errClosed
	}
	if b, ok := l.acts[name]; ok {
		return b, nil
	}
	names := make([]string, 0, len(l.acts))
	for n := range l.acts {
		names = append(names, n)
	}
	sort.Strings(names)
	return nil, &Error{Kind: KindInvalid, Err: fmt.Errorf("plugin %q has no action %q (it has: %s)", l.p.Name, name, strings.Join(names, ", "))}
}

func (l *local) Schema(context.Context) (*PluginSchema, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	return SchemaOf(l.p), nil
}

// SchemaOf builds the PluginSchema of p. The capabilities NativeUndo and
// SupportsPlan of each action come from the interfaces it implements
// (Undoer, Planner).
func SchemaOf(p *Plugin) *PluginSchema {
	s := &PluginSchema{Name: p.Name, Version: p.Version, Actions: map[string]ActionSchema{}}
	for _, a := range p.Actions {
		as := actionSchema(a)
		s.Actions[as.Name] = as
	}
	return s
}

// actionSchema is a's schema with the capabilities its interfaces give.
func actionSchema(a Action) ActionSchema {
	s := a.Schema()
	_, s.Capabilities.NativeUndo = a.(Undoer)
	_, s.Capabilities.SupportsPlan = a.(Planner)
	return s
}

// Check reports what is wrong with p's declarations: an action that
// declares a capability (NativeUndo, SupportsPlan) without implementing
// its interface (Undoer, Planner). Serve refuses such a plugin, and Local
// fails its calls. Capabilities need not be declared: they are derived
// from the interfaces an action implements.
func (p *Plugin) Check() error {
	var errs []error
	for _, a := range p.Actions {
		s := a.Schema()
		if _, ok := a.(Undoer); s.Capabilities.NativeUndo && !ok {
			errs = append(errs, fmt.Errorf("action %s declares NativeUndo but does not implement sdk.Undoer", s.Name))
		}
		if _, ok := a.(Planner); s.Capabilities.SupportsPlan && !ok {
			errs = append(errs, fmt.Errorf("action %s declares SupportsPlan but does not implement sdk.Planner", s.Name))
		}
	}
	if len(errs) > 0 {
		return &Error{Kind: KindInternal, Err: fmt.Errorf("plugin %s: %w", p.Name, errors.Join(errs...))}
	}
	return nil
}

func (l *local) Validate(ctx context.Context, action string, inputs cty.Value) (diags Diagnostics, err error) {
	a, err := l.action(action)
	if err != nil {
		return nil, err
	}
	defer recoverPanic(l.p.Name, action, &err)
	un, _ := pluginwire.UnmarkPaths(inputs)
	in, d := conformInputs(a.schema, a.inType, un)
	if d.HasErrors() {
		return d, nil
	}
	if v, ok := a.Action.(Validator); ok {
		d = append(d, v.Validate(ctx, in)...)
	}
	return d, nil
}

func (l *local) Plan(ctx context.Context, action string, req *PlanRequest) (res *PlanResult, err error) {
	a, err := l.action(action)
	if err != nil {
		return nil, err
	}
	defer recoverPanic(l.p.Name, action, &err)
	p, ok := a.Action.(Planner)
	if !ok {
		return nil, nil
	}
	un, _ := pluginwire.UnmarkPaths(req.Inputs)
	in, d := conformInputs(a.schema, a.inType, un)
	if d.HasErrors() {
		return nil, d.Err()
	}
	return p.Plan(ctx, &PlanRequest{Inputs: in})
}

func (l *local) Apply(ctx context.Context, action string, req *ApplyRequest, ev Events) (res *Result, err error) {
	a, err := l.action(action)
	if err != nil {
		return nil, err
	}
	defer recoverPanic(l.p.Name, action, &err)
	un, paths := pluginwire.UnmarkPaths(req.Inputs)
	in, d := conformInputs(a.schema, a.inType, un)
	if d.HasErrors() {
		return nil, d.Err()
	}
	r2 := *req
	r2.Inputs = in
	if len(paths) > 0 {
		r2.Sensitive = append(append([]cty.Path(nil), req.Sensitive...), paths...)
	}
	if ev == nil {
		ev = NopEvents{}
	}
	res, err = a.Apply(ctx, &r2, ev)
	if res != nil {
		out, cerr := conformOutputs(a.schema, a.outType, res.Outputs)
		if cerr != nil && err == nil {
			return res, &Error{Kind: KindInternal, Err: fmt.Errorf("plugin %s action %s returned bad outputs: %w", l.p.Name, action, cerr)}
		}
		res.Outputs = out
	}
	return res, err
}

func (l *local) Undo(ctx context.Context, action string, req *UndoRequest, ev Events) (err error) {
	a, err := l.action(action)
	if err != nil {
		return err
	}
	u, ok := a.Action.(Undoer)
	if !ok {
		return &Error{Kind: KindInvalid, Err: fmt.Errorf("action %s.%s has no native undo", l.p.Name, action)}
	}
	defer recoverPanic(l.p.Name, action, &err)
	un, _ := pluginwire.UnmarkPaths(req.Inputs)
	in, d := conformInputs(a.schema, a.inType, un)
	if d.HasErrors() {
		return d.Err()
	}
	r2 := *req
	r2.Inputs = in
	r2.Outputs, _ = pluginwire.UnmarkPaths(req.Outputs)
	if ev == nil {
		ev = NopEvents{}
	}
	return u.Undo(ctx, &r2, ev)
}

// panicLog receives the stack of a recovered panic; nil = os.Stderr, the
// plugin log (the host masks it and keeps it in the run log).
var panicLog io.Writer

// recoverPanic turns a panic of an action into a classified error, and logs
// the panic with its stack to the plugin log: the error tells the operator
// what happened, the stack tells the plugin's author where. The log line
// does not start with "panic: ", which the host reads as the plugin
// process's own death.
func recoverPanic(plugin, action string, err *error) {
	if r := recover(); r != nil {
		w := panicLog
		if w == nil {
			w = os.Stderr
		}
		fmt.Fprintf(w, "plugin %s: recovered panic in action %s: %v\n%s", plugin, action, r, debug.Stack())
		msg, _, _ := strings.Cut(fmt.Sprint(r), "\n")
		*err = &Error{Kind: KindInternal, Err: fmt.Errorf("plugin %s crashed in %s: panic: %s", plugin, action, msg)}
	}
}

// Err turns error diagnostics into an *Error of kind invalid (nil if none).
func (d Diagnostics) Err() error {
	var msgs []string
	for _, x := range d {
		if x.Severity != SeverityError {
			continue
		}
		m := x.Summary
		if len(x.Path) > 0 {
			m = strings.Join(x.Path, ".") + ": " + m
		}
		if x.Detail != "" {
			m += " (" + x.Detail + ")"
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil
	}
	return &Error{Kind: KindInvalid, Err: fmt.Errorf("%s", strings.Join(msgs, "; "))}
}

// conformInputs converts v to the action's input type inType and checks
// required attributes, returning diagnostics with paths. Unknown values
// pass through.
func conformInputs(s ActionSchema, inType cty.Type, v cty.Value) (cty.Value, Diagnostics) {
	var d Diagnostics
	if v == cty.NilVal || v.IsNull() {
		v = cty.EmptyObjectVal
	}
	v, _ = v.Unmark()
	if v.IsKnown() && (v.Type().IsObjectType() || v.Type().IsMapType()) {
		for it := v.ElementIterator(); it.Next(); {
			k, _ := it.Element()
			if s.Input(k.AsString()) == nil {
				d = d.Errorf([]string{k.AsString()}, "unsupported argument %q for action %s", k.AsString(), s.Name)
			}
		}
	}
	if d.HasErrors() {
		return cty.NilVal, d
	}
	out, err := v, error(nil)
	if !conforms(v.Type(), inType) {
		out, err = convert.Convert(v, inType)
	}
	if err != nil {
		var path []string
		if pe, ok := err.(cty.PathError); ok {
			path = pathStrings(pe.Path)
		}
		return cty.NilVal, d.Errorf(path, "%s", err.Error())
	}
	if out.IsKnown() {
		for _, a := range s.Inputs {
			if a.Required && out.GetAttr(a.Name).IsNull() {
				d = d.Errorf([]string{a.Name}, "missing required argument %q", a.Name)
			}
		}
	}
	return out, d
}

// ConformOutputs converts v to the action's output type; a nil or null v
// becomes an object of null outputs.
func ConformOutputs(s ActionSchema, v cty.Value) (cty.Value, error) {
	return conformOutputs(s, s.OutputType(), v)
}

func conformOutputs(s ActionSchema, t cty.Type, v cty.Value) (cty.Value, error) {
	if v != cty.NilVal && !v.IsNull() && conforms(v.Type(), t) {
		return v, nil
	}
	if v == cty.NilVal || v.IsNull() {
		vals := map[string]cty.Value{}
		for _, a := range s.Outputs {
			vals[a.Name] = cty.NullVal(a.Type)
		}
		return cty.ObjectVal(vals), nil
	}
	if v.Type().IsObjectType() {
		// Missing outputs become null.
		vals := map[string]cty.Value{}
		for _, a := range s.Outputs {
			if v.Type().HasAttribute(a.Name) {
				vals[a.Name] = v.GetAttr(a.Name)
			} else {
				vals[a.Name] = cty.NullVal(a.Type)
			}
		}
		v = cty.ObjectVal(vals)
	}
	return convert.Convert(v, t)
}

func pathStrings(p cty.Path) []string {
	var out []string
	for _, s := range p {
		switch s := s.(type) {
		case cty.GetAttrStep:
			out = append(out, s.Name)
		case cty.IndexStep:
			if s.Key.Type() == cty.String {
				out = append(out, s.Key.AsString())
			} else if s.Key.Type() == cty.Number {
				out = append(out, s.Key.AsBigFloat().String())
			}
		}
	}
	return out
}

// conforms reports whether a value of type have converts to want as it is:
// the same type, or objects with the same attributes whose types conform
// (want's optional attributes are all present), or want dynamic. Building
// the converted copy was a fifth of a small call's CPU in the plugin.
func conforms(have, want cty.Type) bool {
	switch {
	case want.Equals(cty.DynamicPseudoType) || have.Equals(want):
		return true
	case have.IsObjectType() && want.IsObjectType():
		ha, wa := have.AttributeTypes(), want.AttributeTypes()
		if len(ha) != len(wa) {
			return false
		}
		for n, w := range wa {
			h, ok := ha[n]
			if !ok || !conforms(h, w) {
				return false
			}
		}
		return true
	}
	return false
}

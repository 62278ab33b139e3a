// Package sdk is what plugin authors use to add a backend to runbook.
//
// A plugin is a named set of actions. Each action implements Action (schema
// and Apply) and, optionally, Planner, Undoer and Validator; the schema's
// capabilities follow from which of them it implements. The same Plugin
// value can be served over gRPC with Serve, or driven in-process through
// Local, which is how sdktest and the engine's own tests exercise it.
// Plugin.Configure and Plugin.Close hold what actions share across calls.
package sdk

import (
	"github.com/zclconf/go-cty/cty"
)

// Attribute describes one input or output of an action.
type Attribute struct {
	Name        string
	Type        cty.Type
	Required    bool
	Sensitive   bool
	Description string
}

// Capabilities tell the engine how an action behaves.
type Capabilities struct {
	// ReadOnly actions change nothing; they need no undo and never mark the
	// point of no return.
	ReadOnly bool
	// Idempotent actions can be applied again with the same inputs safely.
	Idempotent bool
	// NativeUndo actions implement Undoer: `rollback = native` is allowed.
	// It is derived from the action (SchemaOf); an action need not set it,
	// and one that sets it without implementing Undoer is refused (Check).
	NativeUndo bool
	// SupportsPlan actions implement Planner; derived like NativeUndo.
	SupportsPlan bool
}

// ActionSchema is the static description of an action.
type ActionSchema struct {
	// Name is the action's name within its plugin ("replicate", not
	// "couchdb.replicate").
	Name         string
	Description  string
	Inputs       []Attribute
	Outputs      []Attribute
	Capabilities Capabilities
	// MaxConcurrency caps how many steps of this action run at once in one
	// run (0 = no cap of its own).
	MaxConcurrency int
}

// InputType is the cty object type of the action's inputs. Optional
// attributes are marked optional so that a missing one converts to null.
func (s ActionSchema) InputType() cty.Type { return objectType(s.Inputs, true) }

// OutputType is the cty object type of the action's outputs.
func (s ActionSchema) OutputType() cty.Type { return objectType(s.Outputs, false) }

// Input returns the named input attribute, or nil.
func (s ActionSchema) Input(name string) *Attribute { return findAttr(s.Inputs, name) }

// Output returns the named output attribute, or nil.
func (s ActionSchema) Output(name string) *Attribute { return findAttr(s.Outputs, name) }

func findAttr(attrs []Attribute, name string) *Attribute {
	for i := range attrs {
		if attrs[i].Name == name {
			return &attrs[i]
		}
	}
	return nil
}

func objectType(attrs []Attribute, withOptional bool) cty.Type {
	m := make(map[string]cty.Type, len(attrs))
	var opt []string
	for _, a := range attrs {
		m[a.Name] = a.Type
		if withOptional && !a.Required {
			opt = append(opt, a.Name)
		}
	}
	if len(opt) > 0 {
		return cty.ObjectWithOptionalAttrs(m, opt)
	}
	return cty.Object(m)
}

// PluginSchema is what GetSchema returns.
type PluginSchema struct {
	Name    string
	Version string
	Actions map[string]ActionSchema
}

// Action returns the schema of the named action and whether it exists.
func (p *PluginSchema) Action(name string) (ActionSchema, bool) {
	a, ok := p.Actions[name]
	return a, ok
}

// Package lang parses, decodes, checks and evaluates runbook files.
//
// Decoding happens in phases, as Terraform does: Load reads the files and
// decodes the engine's own structure (variables, locals, steps with their
// engine arguments, outputs, plugin requirements), collecting every
// diagnostic; Check then decodes each step's `with` against the action's
// input schema from a SchemaSource and checks references to step outputs.
// Scope evaluates expressions at plan and run time.
package lang

import (
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// MarkSensitive is the cty mark carried by every sensitive value (variables
// declared sensitive, sensitive plugin outputs, anything derived from them).
const MarkSensitive = "sensitive"

// SchemaSource gives action schemas for phase-2 checks and plan.
type SchemaSource interface {
	// ActionSchema returns the schema of PLUGIN.ACTION. ok=false: the plugin
	// exists but has no such action. err: plugin unknown / cannot start.
	ActionSchema(plugin, action string) (s sdk.ActionSchema, ok bool, err error)
}

// Config is a loaded runbook: every file of it, decoded.
//
// Check and ResolveVariables record state for diagnostics, so they must not
// run concurrently on one Config; once they are done, any number of Scopes
// may evaluate the Config concurrently.
type Config struct {
	Runbook   *Runbook // nil if no runbook block
	Variables map[string]*Variable
	Locals    map[string]*Local
	Steps     map[string]*Step
	StepOrder []string // declaration order
	Outputs   map[string]*Output
	Plugins   map[string]*PluginReq // plugin "NAME" { source, version }
	Files     map[string]*hcl.File  // for diagnostics
	Sources   map[string][]byte     // raw file contents (hashes in the journal)
	BaseDir   string                // directory relative file paths resolve against

	// badRefs holds the ranges of references already reported as errors,
	// so that later checks do not report them again.
	badRefs map[hcl.Range]bool
	// varFiles holds sources for diagnostic snippets only: -var-file files
	// read by ResolveVariables, -var values refused, and runbook files
	// refused before parsing (by name).
	varFiles map[string]*hcl.File

	// localDeps: local name -> steps it references, directly or through
	// other locals.
	localDeps map[string][]string

	// inputs remembers per action what Scope.Inputs derives from its
	// schema; shared by the copies of a Config, nil in a Config not made
	// by Load (then nothing is remembered).
	inputs *inputCache
	// localMemo remembers the locals' references and step-free values
	// (see localCache); shared by the copies of a Config, nil in a Config
	// not made by Load.
	localMemo *localCache
}

// Runbook is the optional `runbook "NAME"` block.
type Runbook struct {
	Name, Description string
	Lock              hcl.Expression // nil when absent
	DeclRange         hcl.Range
}

// Variable is a `variable "NAME"` block.
type Variable struct {
	Name, Description string
	Type              cty.Type
	Default           cty.Value // cty.NilVal = required
	Sensitive         bool
	Nullable          bool
	DeclRange         hcl.Range

	// defaults holds optional(T, default) defaults of the type constraint.
	defaults    *typeDefaults
	Validations []*Validation
}

// Validation is one `validation` block of a variable.
type Validation struct {
	Condition    hcl.Expression
	ErrorMessage hcl.Expression
	DeclRange    hcl.Range
}

// Local is one attribute of a `locals` block.
type Local struct {
	Name      string
	Expr      hcl.Expression
	DeclRange hcl.Range
}

// Output is an `output "NAME"` block.
type Output struct {
	Name, Description string
	Value             hcl.Expression
	Sensitive         bool
	DeclRange         hcl.Range
}

// PluginReq is a `plugin "NAME"` block for an external plugin.
type PluginReq struct {
	Name, Source, Version string
	DeclRange             hcl.Range
}

// Step is a `step "PLUGIN.ACTION" "NAME"` block.
type Step struct {
	Name, Plugin, Action string
	DeclRange            hcl.Range
	TypeRange            hcl.Range      // range of the "PLUGIN.ACTION" label
	With, ForEach, When  hcl.Expression // nil when absent
	DependsOn            []string       // explicit, step names
	Deps                 []string       // every step this one depends on: explicit + references (also through locals, rollback.with), sorted, unique
	Retry                *Retry         // nil = a single attempt
	Timeout              time.Duration  // 0 = none
	OnFailure            string         // "rollback" (default) | "continue" | "abort"
	Always               bool
	Rollback             *Rollback // nil = no rollback declared

	// depRanges: dependency step name -> where it is referenced (first).
	depRanges       map[string]hcl.Range
	dependsOnRanges map[string]hcl.Range
}

// Address is the step's address for the given for_each key.
func (s *Step) Address(key cty.Value) string { return Address(s.Name, key) }

// Retry is a step's `retry` block.
type Retry struct {
	Attempts        int
	Delay, MaxDelay time.Duration
	Backoff         string // "fixed"|"exponential"
	AnyError        bool   // retry_on = "any": also non-retryable errors
}

// Rollback is a step's `rollback` block or `rollback = native`.
type Rollback struct {
	Native         bool
	Plugin, Action string
	With           hcl.Expression // nil when absent
	DeclRange      hcl.Range
}

// On-failure policies.
const (
	OnFailureRollback = "rollback"
	OnFailureContinue = "continue"
	OnFailureAbort    = "abort"
)

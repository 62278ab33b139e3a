// Package run is the executor: it walks a runbook's steps as a DAG, runs
// each step instance through its plugin with retries and timeouts, journals
// every state change before acting on it, undoes completed steps in reverse
// dependency order when a step fails, resumes interrupted runs from the
// journal, and rolls back finished runs. It never prints: it emits events.
package run

import (
	"context"
	"fmt"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/event"
	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/mask"
	"github.com/runbookdev/runbook/sdk"
)

// Evaluator evaluates a runbook's expressions. steps is what `step.NAME`
// evaluates to (see lang.Scope.Steps). The executor calls it from one
// goroutine only.
type Evaluator interface {
	Expand(st *lang.Step, steps map[string]cty.Value) (insts []lang.Instance, known bool, err error)
	When(st *lang.Step, in lang.Instance, steps map[string]cty.Value) (bool, error)
	Inputs(st *lang.Step, in lang.Instance, steps map[string]cty.Value) (cty.Value, error)
	RollbackInputs(st *lang.Step, in lang.Instance, steps map[string]cty.Value, inputs, outputs cty.Value) (cty.Value, error)
	Outputs(steps map[string]cty.Value) (map[string]cty.Value, error)
}

// Providers hands out a plugin's provider by name (pluginhost.Host does).
type Providers interface {
	Provider(ctx context.Context, name string) (sdk.Provider, error)
}

// Runbook is what the executor runs: the steps (in declaration order) and
// how to evaluate their expressions.
type Runbook struct {
	Steps []*lang.Step
	Eval  Evaluator
	// NoOutputs says the runbook has no output blocks: the values of the
	// steps no other step refers to are then never needed.
	NoOutputs bool
}

// Options configure one execution.
type Options struct {
	RunID       string
	Parallelism int // default 10
	Providers   Providers
	Journal     journal.Journal
	Sealer      *journal.Sealer // bound to the run (Sealer.ForRun); nil: sensitive values are not journaled
	Sink        event.Sink      // nil: events.Discard
	Mask        *mask.Masker    // nil: a fresh one
	// Resume, when set, is the journaled state of the run being resumed:
	// succeeded instances keep their outputs, in-flight ones are applied
	// again with the same idempotency key and their last checkpoint.
	Resume *journal.State
	// Force is passed to every native undo (sdk.UndoRequest.Force): undo
	// even where the plugin finds that what the step left has changed
	// since (runbook rollback -force).
	Force bool
	// Sleep waits between attempts (tests make it instant). nil = real.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock (nil = time.Now).
	Now func() time.Time
	// KeepFinal: the record that ends the run (its end state, unless
	// interrupted) is not journaled but returned in Result.Final, for the
	// caller to journal it in the same commit as what else records the
	// run's end (a job queue's completion).
	KeepFinal bool
}

// Result is the outcome of Apply or Rollback.
type Result struct {
	State     string // a journal.Run* state
	Instances []*Instance
	Outputs   map[string]cty.Value // runbook outputs (on success), sensitive ones marked
	// Err is the first step failure (masked), nil on success.
	Err error
	// Interrupted is true when ctx was cancelled (Ctrl-C).
	Interrupted bool
	Duration    time.Duration
	// Final is the run's end record left for the caller to journal
	// (Options.KeepFinal); nil when it was journaled.
	Final *journal.Record
}

// Instance is one step instance as the executor saw it.
type Instance struct {
	Address string
	Step    *lang.Step
	Key     lang.Instance
	State   string // journal.Step* state
	Attempt int
	Inputs  cty.Value
	Outputs cty.Value
	Err     error
	Reused  bool // resume kept journaled outputs
	Started time.Time
	Ended   time.Time

	undoState  []byte
	checkpoint []byte         // last journaled checkpoint of an in-flight attempt
	jin        *journal.Value // the inputs as journaled
	undoInputs cty.Value      // inputs of the undo (rollback)
	resumeAtt  int            // in-flight attempt to apply again on resume (0 = none)
	undoLost   bool           // the journaled undo state held a secret and could not be read back
	undoErr    error
	// Scheduler-owned: the action whose MaxConcurrency (cap, 0 = none)
	// applies.
	capKey string
	cap    int
}

// StepError is a step failure as reported to the operator (already masked).
type StepError struct {
	Address string
	Kind    sdk.Kind
	Hint    string
	Msg     string
}

func (e *StepError) Error() string {
	s := fmt.Sprintf("step %s: %s", e.Address, e.Msg)
	if e.Kind != sdk.KindUnknown {
		s = fmt.Sprintf("step %s: %s: %s", e.Address, e.Kind, e.Msg)
	}
	return s
}

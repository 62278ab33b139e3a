package sdk

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies backend errors so the engine and the operator know what to
// do next.
type Kind string

const (
	KindUnknown     Kind = ""
	KindInvalid     Kind = "invalid"     // bad input; fix the runbook
	KindAuth        Kind = "auth"        // credentials rejected
	KindUnreachable Kind = "unreachable" // network, DNS, connection refused, 5xx
	KindConflict    Kind = "conflict"    // state differs from what was expected
	KindQuota       Kind = "quota"       // out of space, rate-limited, over quota
	KindNotFound    Kind = "not_found"   // what the step needs does not exist (an HTTP 404)
	KindAssertion   Kind = "assertion"   // a check the runbook made did not hold
	KindRejected    Kind = "rejected"    // a person rejected an approval
	KindTimeout     Kind = "timeout"     // a step or an approval ran out of time
	KindCancelled   Kind = "cancelled"
	KindInternal    Kind = "internal" // a bug or a crash in the plugin
)

// Error is a classified error. Return it (wrapped or not) from Apply, Undo or
// Plan; the engine reads Kind, Retryable and Hint.
type Error struct {
	Kind      Kind
	Retryable bool
	// Hint says what the operator should do next.
	Hint string
	Err  error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Kind != KindUnknown {
		b.WriteString(string(e.Kind))
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a classified error.
func Errorf(kind Kind, retryable bool, hint, format string, args ...any) *Error {
	return &Error{Kind: kind, Retryable: retryable, Hint: hint, Err: fmt.Errorf(format, args...)}
}

// Classify returns the *Error inside err, or a KindUnknown wrapper.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: KindUnknown, Err: err}
}

// Severity of a diagnostic.
type Severity int

const (
	SeverityError Severity = iota
	SeverityWarning
)

// Diagnostic is a problem with an action's inputs, with the attribute path
// (e.g. ["target", "url"]) it is about.
type Diagnostic struct {
	Severity Severity
	Summary  string
	Detail   string
	Path     []string
}

// Diagnostics is a list of Diagnostic.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (d Diagnostics) HasErrors() bool {
	for _, x := range d {
		if x.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Errorf appends an error diagnostic at path.
func (d Diagnostics) Errorf(path []string, format string, args ...any) Diagnostics {
	return append(d, Diagnostic{Severity: SeverityError, Summary: fmt.Sprintf(format, args...), Path: path})
}

// Warnf appends a warning diagnostic at path.
func (d Diagnostics) Warnf(path []string, format string, args ...any) Diagnostics {
	return append(d, Diagnostic{Severity: SeverityWarning, Summary: fmt.Sprintf(format, args...), Path: path})
}

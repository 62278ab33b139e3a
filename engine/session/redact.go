package session

import (
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/engine/lang"
	"github.com/runbookdev/runbook/engine/mask"
)

// redactVarArgs replaces the values of sensitive variables given with
// `-var NAME=VALUE` (or -var=NAME=VALUE, --var) in a command line by the
// mask placeholder, by the variable's name: the masker recognises a long
// secret anywhere in the text, but not a short one (a sensitive 42).
// Words are split at blanks: mask the command first, so that a secret
// of several words is masked whole before its first word is redacted.
func redactVarArgs(command string, cfg *lang.Config) string {
	if cfg == nil || !strings.Contains(command, "var") {
		return command
	}
	words := strings.Split(command, " ")
	changed := false
	for i, w := range words {
		arg, ok := "", false
		for _, flag := range []string{"-var=", "--var="} {
			if strings.HasPrefix(w, flag) {
				arg, ok = strings.TrimPrefix(w, flag), true
			}
		}
		if !ok && i > 0 && (words[i-1] == "-var" || words[i-1] == "--var") {
			arg, ok = w, true
		}
		name, _, isAssign := strings.Cut(arg, "=")
		if !ok || !isAssign {
			continue
		}
		if v, declared := cfg.Variables[strings.TrimSpace(name)]; declared && v.Sensitive {
			words[i] = w[:len(w)-len(arg)] + name + "=" + mask.Placeholder
			changed = true
		}
	}
	if !changed {
		return command
	}
	return strings.Join(words, " ")
}

// learnURLPasswords teaches the session's masker the password of every URL
// inside a variable's value, sensitive or not (a for_each over slaves'
// `ssh://user:pass@host/...` URLs): a URL's password is a secret wherever
// it is written.
func (s *Session) learnURLPasswords(v cty.Value) {
	s.mask.Add(mask.URLsIn(v)...)
}

// markURLPasswords marks sensitive every string inside v that holds a URL
// with a password, so that the journal seals it (or leaves it out without
// a state key) like a sensitive variable.
func markURLPasswords(v cty.Value) cty.Value {
	if v == cty.NilVal || len(mask.URLsIn(v)) == 0 {
		return v
	}
	out, err := cty.Transform(v, func(_ cty.Path, x cty.Value) (cty.Value, error) {
		if u, _ := x.Unmark(); u.IsKnown() && !u.IsNull() && u.Type() == cty.String {
			if _, ok := mask.RedactURL(u.AsString()); ok {
				return x.Mark(lang.MarkSensitive), nil
			}
		}
		return x, nil
	})
	if err != nil {
		return v.Mark(lang.MarkSensitive)
	}
	return out
}

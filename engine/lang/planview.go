package lang

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// WriteText renders the plan for humans.
func (p *Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	if p.Name != "" {
		fmt.Fprintf(&b, "Runbook %q", p.Name)
		if p.Description != "" {
			fmt.Fprintf(&b, ": %s", p.Description)
		}
		b.WriteString("\n")
	}
	if p.Lock != "" {
		fmt.Fprintf(&b, "Lock: %s\n", p.Lock)
	}
	n := 0
	for _, l := range p.Levels {
		n += len(l)
	}
	fmt.Fprintf(&b, "\nExecution order (%d steps in %d levels; steps on one level run in parallel):\n", n, len(p.Levels))
	for i, l := range p.Levels {
		fmt.Fprintf(&b, "  %d. %s\n", i+1, strings.Join(l, ", "))
	}
	for _, s := range p.Steps {
		b.WriteString("\n")
		writeStep(&b, s, p.PointOfNoReturn == s.Name)
	}
	if len(p.Outputs) > 0 {
		b.WriteString("\nOutputs:\n")
		keys := make([]string, 0, len(p.Outputs))
		for k := range p.Outputs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %s = %s\n", k, FormatValue(p.Outputs[k], 2))
		}
	}
	b.WriteString("\n")
	if p.PointOfNoReturn != "" {
		fmt.Fprintf(&b, "Point of no return: step %q. It has no rollback and is not read-only, so once it has run,\na later failure cannot undo everything automatically.\n", p.PointOfNoReturn)
	} else {
		b.WriteString("Every step is read-only or reversible: a failure at any point is undone automatically.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeStep(b *strings.Builder, s *PlannedStep, pnr bool) {
	kind := string(s.Reversibility)
	if s.Undo != "" {
		kind += " (" + s.Undo + ")"
	}
	if pnr {
		kind += "  <- point of no return"
	}
	fmt.Fprintf(b, "step %q (%s.%s): %s\n", s.Name, s.Plugin, s.Action, kind)
	if len(s.Deps) > 0 {
		fmt.Fprintf(b, "  after:      %s\n", strings.Join(s.Deps, ", "))
	}
	if s.Retry != nil && s.Retry.Attempts > 1 {
		r := fmt.Sprintf("%d attempts, %s backoff from %s", s.Retry.Attempts, s.Retry.Backoff, s.Retry.Delay)
		if s.Retry.MaxDelay > 0 {
			r += fmt.Sprintf(" up to %s", s.Retry.MaxDelay)
		}
		if s.Retry.AnyError {
			r += ", on any error"
		}
		fmt.Fprintf(b, "  retry:      %s\n", r)
	}
	if s.Timeout > 0 {
		fmt.Fprintf(b, "  timeout:    %s\n", fmtDuration(s.Timeout))
	}
	if s.OnFailure != "" && s.OnFailure != OnFailureRollback {
		fmt.Fprintf(b, "  on failure: %s\n", s.OnFailure)
	}
	if s.Always {
		b.WriteString("  always:     runs even when the run fails or rolls back\n")
	}
	if s.ForEach && !s.InstancesKnown {
		b.WriteString("  instances:  " + KnownAfterApply + "\n")
	}
	for _, in := range s.Instances {
		prefix := "  "
		if s.ForEach {
			fmt.Fprintf(b, "  %s\n", in.Address)
			prefix = "    "
		}
		switch in.Run {
		case "no":
			fmt.Fprintf(b, "%sskipped: when is false\n", prefix)
			continue
		case "unknown":
			fmt.Fprintf(b, "%swhen:       %s\n", prefix, KnownAfterApply)
		}
		fmt.Fprintf(b, "%sinputs:     %s\n", prefix, FormatInputs(in.Inputs, len(prefix)))
		if in.PlanError != "" {
			fmt.Fprintf(b, "%splan:       could not plan: %s\n", prefix, indentLines(in.PlanError, prefix+"            "))
		}
		if pp := in.PluginPlan; pp != nil {
			line := pp.Summary
			if len(pp.Counts) > 0 {
				keys := make([]string, 0, len(pp.Counts))
				for k := range pp.Counts {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				var parts []string
				for _, k := range keys {
					parts = append(parts, fmt.Sprintf("%s %d", k, pp.Counts[k]))
				}
				line += " (" + strings.Join(parts, ", ") + ")"
			}
			cont := prefix + "            "
			fmt.Fprintf(b, "%splan:       %s\n", prefix, indentLines(strings.TrimSpace(line), cont))
			for _, d := range pp.Details {
				fmt.Fprintf(b, "%s%s\n", cont, indentLines(d, cont))
			}
			for _, w := range pp.Warnings {
				fmt.Fprintf(b, "%swarning:    %s\n", prefix, indentLines(w, cont))
			}
		}
	}
}

func fmtDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if s == "" {
		return d.String()
	}
	return s
}

// indentLines indents every line after the first.
func indentLines(s, indent string) string {
	return strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+indent)
}

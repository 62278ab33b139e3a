package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/runbookdev/runbook/engine/lang"
)

// artifacts collects everything a command leaves for a user to read: what
// it printed and, once a run exists, the state directory and `runs show`
// (text and -json).
type artifacts struct {
	t        *testing.T
	dir      string // the runbook's directory
	stateDir string
	stdout   bytes.Buffer
	stderr   bytes.Buffer
}

func newArtifacts(t *testing.T, src string) *artifacts {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	return &artifacts{t: t, dir: dir, stateDir: filepath.Join(dir, ".runbook")}
}

func (a *artifacts) main() string { return filepath.Join(a.dir, "main.hcl") }

func (a *artifacts) write(name, content string) string {
	a.t.Helper()
	p := filepath.Join(a.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		a.t.Fatal(err)
	}
	return p
}

func (a *artifacts) runFlags() runFlags {
	return runFlags{parallelism: 1, stateDir: a.stateDir}
}

// apply runs `apply -auto-approve` and returns its exit code.
func (a *artifacts) apply(vars lang.VarSources) int {
	return langExitCode(runApply(&a.stdout, &a.stderr, a.main(), vars, a.runFlags(), true))
}

// plan runs `plan` (text, then -json) and returns the exit code of the
// text plan.
func (a *artifacts) plan(vars lang.VarSources) int {
	code := langExitCode(runPlan(context.Background(), &a.stdout, &a.stderr, a.main(), vars, false, a.stateDir))
	runPlan(context.Background(), &a.stdout, &a.stderr, a.main(), vars, true, a.stateDir)
	return code
}

// all is every artifact, concatenated: stdout, stderr, every file of the
// state directory, and `runs show` of the latest run in text and -json.
func (a *artifacts) all() string {
	a.t.Helper()
	var b strings.Builder
	b.WriteString(a.stdout.String())
	b.WriteString(a.stderr.String())
	filepath.WalkDir(a.stateDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if data, err := os.ReadFile(p); err == nil {
			b.Write(data)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(a.stateDir, "runs")); err == nil {
		for _, asJSON := range []bool{false, true} {
			var out, errOut bytes.Buffer
			if err := runsShow(&out, &errOut, a.stateDir, "", asJSON); err != nil {
				a.t.Fatalf("runs show (json %v): %v\n%s", asJSON, err, errOut.String())
			}
			b.WriteString(out.String())
			b.WriteString(errOut.String())
		}
	}
	return b.String()
}

// noLeak fails when any artifact holds one of secrets.
func (a *artifacts) noLeak(secrets ...string) {
	a.t.Helper()
	all := a.all()
	for _, s := range secrets {
		if i := strings.Index(all, s); i >= 0 {
			a.t.Errorf("secret %q in clear: …%s…", s, all[max(0, i-200):min(len(all), i+len(s)+100)])
		}
	}
}

const sensitivePW = `
variable "pw" {
  type      = string
  sensitive = true
}
`

// TestPlanMasksFunctionErrors: a function failing on a sensitive argument
// quotes it in its error; plan prints that error masked, like apply.
func TestPlanMasksFunctionErrors(t *testing.T) {
	const secret = "canary-fn-7c1e2a"
	a := newArtifacts(t, sensitivePW+`
step "core.noop" "a" {
  with = { values = { x = file(var.pw) } }
}
`)
	vars := lang.VarSources{Args: []string{"pw=" + secret}}
	if code := a.plan(vars); code != exitError {
		t.Fatalf("plan exit %d\n%s", code, a.stderr.String())
	}
	if !strings.Contains(a.stderr.String(), `Call to function "file" failed`) {
		t.Fatalf("plan did not report the function error:\n%s", a.stderr.String())
	}
	a.apply(vars)
	a.noLeak(secret)
}

// TestVarFileErrorHidesSecrets: a type error in a variables file prints a
// snippet of the line it is on; the values of sensitive variables on that
// line (or in the snippet of their own error) are not shown.
func TestVarFileErrorHidesSecrets(t *testing.T) {
	const secret = "canary-vf-5d0b91"
	a := newArtifacts(t, sensitivePW+`
variable "port" {
  type = number
}
step "core.noop" "a" {
  with = { values = { port = var.port } }
}
`)
	files := []string{
		a.write("one-line.json", `{"pw": "`+secret+`", "port": "abc"}`),
		a.write("wrong-type.tfvars", "pw = {\n  a = \""+secret+"\"\n}\nport = 1\n"),
		// Refused before parsing: which bytes are the secret is not known.
		a.write("bad-byte.tfvars", "pw = \""+secret+"\"; port = \"\xff\"\n"),
	}
	for _, f := range files {
		if code := a.plan(lang.VarSources{Files: []string{f}}); code != exitError {
			t.Fatalf("plan -var-file %s: exit %d", f, code)
		}
		if code := a.apply(lang.VarSources{Files: []string{f}}); code != exitError {
			t.Fatalf("apply -var-file %s: exit %d", f, code)
		}
	}
	if got := a.stderr.String(); !strings.Contains(got, `"port": "abc"`) || !strings.Contains(got, `variable "pw" is not string`) {
		t.Errorf("the errors lost their snippets or messages:\n%s", got)
	}
	a.noLeak(secret)
}

// TestEnvKeepsSensitiveMark: env() of the environment variable that sets
// a sensitive variable gives a sensitive value: plan shows it as
// (sensitive), and no artifact holds it.
func TestEnvKeepsSensitiveMark(t *testing.T) {
	const secret = "canary-env-3a9f0c"
	a := newArtifacts(t, sensitivePW+`
step "core.noop" "a" {
  with = { values = { x = env("RUNBOOK_VAR_pw") } }
}
`)
	t.Setenv("RUNBOOK_VAR_pw", secret)
	vars := lang.VarSources{Env: os.Environ()}
	if code := a.plan(vars); code != 0 {
		t.Fatalf("plan exit %d\n%s", code, a.stderr.String())
	}
	if !strings.Contains(a.stdout.String(), lang.SensitiveValue) {
		t.Errorf("plan does not show the value as %s:\n%s", lang.SensitiveValue, a.stdout.String())
	}
	if code := a.apply(vars); code != 0 {
		t.Fatalf("apply exit %d\n%s", code, a.stderr.String())
	}
	a.noLeak(secret)
}

// TestFileHashOfSecretSealed: the sha256 output of a core.file step whose
// content is sensitive is sensitive too: the hash of a secret lets anyone
// check a guess, so it is not in clear anywhere.
func TestFileHashOfSecretSealed(t *testing.T) {
	const secret = "canary-sha-e41f07"
	a := newArtifacts(t, sensitivePW+`
step "core.file" "f" {
  with     = { path = "secret.txt", content = var.pw }
  rollback = native
}
output "sum" {
  value = step.f.outputs.sha256
}
`)
	if code := a.apply(lang.VarSources{Args: []string{"pw=" + secret}}); code != 0 {
		t.Fatalf("apply exit %d\n%s", code, a.stderr.String())
	}
	sum := sha256.Sum256([]byte(secret))
	a.noLeak(secret, hex.EncodeToString(sum[:]))
}

// TestShortSensitiveNumberSealed: a sensitive number too short for the
// masker to recognise in text (42) stays sensitive by where it is, not by
// its text: a step echoing it returns it marked, and neither the journal
// nor `runs show` nor the summary holds it.
func TestShortSensitiveNumberSealed(t *testing.T) {
	a := newArtifacts(t, `
variable "n" {
  type      = number
  sensitive = true
}
step "core.noop" "a" {
  with = { values = { n = var.n, m = 77 } }
}
step "core.noop" "b" {
  with = { values = { n = step.a.outputs.values.n } }
}
output "o" {
  value = step.b.outputs.values.n
}
`)
	// The command line is journaled too.
	args := os.Args
	os.Args = []string{"runbook", "apply", "-auto-approve", "-var", "n=42", "main.hcl"}
	defer func() { os.Args = args }()
	if code := a.apply(lang.VarSources{Args: []string{"n=42"}}); code != 0 {
		t.Fatalf("apply exit %d\n%s", code, a.stderr.String())
	}
	all := a.all()
	if !regexp.MustCompile(`"m":\s*77\b`).MatchString(all) {
		t.Fatalf("the plain value is not journaled: the check below would prove nothing:\n%s", all)
	}
	if m := regexp.MustCompile(`("[no]"\s*:\s*|\b[no] = |\bn=)"?42\b`).FindString(all); m != "" {
		t.Errorf("the sensitive number is in clear (%s):\n%s", m, all)
	}
}

// TestApplyKeepsLogsForTheViewer: apply writes the steps' logs beside the
// local journal (events.ndjson, read by `runbook serve`), masked.
func TestApplyKeepsLogsForTheViewer(t *testing.T) {
	const secret = "canary-evlog-3e81f0"
	a := newArtifacts(t, sensitivePW+`
step "core.exec" "say" {
  with = {
    command = "sh"
    args    = ["-c", "echo hello-viewer; echo \"$PW\""]
    env     = { PW = var.pw }
  }
}
`)
	if code := a.apply(lang.VarSources{Args: []string{"pw=" + secret}}); code != exitOK {
		t.Fatalf("apply exit %d\n%s", code, a.stderr.String())
	}
	logs, _ := filepath.Glob(filepath.Join(a.stateDir, "runs", "*", "events.ndjson"))
	if len(logs) != 1 {
		t.Fatalf("event logs: %v", logs)
	}
	b, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"step_log"`) || !strings.Contains(string(b), "running sh") {
		t.Errorf("the step's log is not in %s:\n%s", logs[0], b)
	}
	a.noLeak(secret)
}

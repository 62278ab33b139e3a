package core

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runbookdev/runbook/sdk"
	"github.com/runbookdev/runbook/sdk/sdktest"
	"github.com/zclconf/go-cty/cty"
)

// each runs f in-process and over gRPC.
func each(t *testing.T, f func(t *testing.T, p sdk.Provider)) {
	for name, p := range sdktest.Providers(t, New()) {
		t.Run(name, func(t *testing.T) { f(t, p) })
	}
}

func TestNoop(t *testing.T) {
	each(t, func(t *testing.T, p sdk.Provider) {
		v := cty.ObjectVal(map[string]cty.Value{"a": cty.ListVal([]cty.Value{cty.NumberIntVal(1)})})
		res, rec := sdktest.ApplyAndUndo(t, p, "noop", cty.ObjectVal(map[string]cty.Value{"values": v}))
		sdktest.AssertOutput(t, res, "values", v)
		if len(rec.Events()) != 0 {
			t.Fatalf("undo events = %v", rec.Events())
		}
		_, _, err := sdktest.Apply(t, p, "noop", sdktest.Object(map[string]any{"fail": "on purpose"}))
		if err == nil || !strings.Contains(err.Error(), "on purpose") {
			t.Fatalf("fail = %v", err)
		}
	})
}

// TestNoopKeepsSensitive: the parts of `values` that were sensitive inputs
// come back as sensitive outputs (in-process and over gRPC), whatever
// their text.
func TestNoopKeepsSensitive(t *testing.T) {
	each(t, func(t *testing.T, p sdk.Provider) {
		v := cty.ObjectVal(map[string]cty.Value{"n": cty.NumberIntVal(42), "m": cty.NumberIntVal(7)})
		in := cty.ObjectVal(map[string]cty.Value{"values": v, "fail": cty.NullVal(cty.String)})
		res, _, err := sdktest.ApplyRequest(t, p, "noop", &sdk.ApplyRequest{Inputs: in, Sensitive: []cty.Path{cty.GetAttrPath("values").GetAttr("n")}})
		if err != nil {
			t.Fatal(err)
		}
		out := res.Outputs.GetAttr("values")
		if !out.GetAttr("n").HasMark(markSensitive) || out.GetAttr("m").HasMark(markSensitive) {
			t.Fatalf("outputs = %#v: want values.n (only) sensitive", res.Outputs)
		}
	})
}

func TestExec(t *testing.T) {
	each(t, func(t *testing.T, p sdk.Provider) {
		dir := t.TempDir()
		res, _ := sdktest.MustApply(t, p, "exec", sdktest.Object(map[string]any{
			"command": "sh",
			"args":    []string{"-c", `pwd; echo "$FOO"; cat; echo err >&2`},
			"env":     map[string]string{"FOO": "bar"},
			"dir":     dir,
			"stdin":   "input",
		}))
		real, _ := filepath.EvalSymlinks(dir)
		sdktest.AssertOutput(t, res, "stdout", cty.StringVal(real+"\nbar\ninput"))
		sdktest.AssertOutput(t, res, "stderr", cty.StringVal("err\n"))
		sdktest.AssertOutput(t, res, "exit_code", cty.NumberIntVal(0))

		res, _, err := sdktest.Apply(t, p, "exec", sdktest.Object(map[string]any{
			"command": "sh", "args": []string{"-c", "echo out; echo first >&2; echo last >&2; exit 4"},
		}))
		if err == nil || !strings.Contains(err.Error(), "sh exited with status 4: first\nlast") {
			t.Fatalf("err = %v", err)
		}
		sdktest.AssertOutput(t, res, "exit_code", cty.NumberIntVal(4))

		_, _, err = sdktest.Apply(t, p, "exec", sdktest.Object(map[string]any{"command": "sleep", "args": []string{"10"}, "timeout": "100ms"}))
		if e := sdk.Classify(err); e.Kind != sdk.KindUnreachable || !strings.Contains(err.Error(), "timed out") {
			t.Fatalf("timeout err = %v", err)
		}
		_, _, err = sdktest.Apply(t, p, "exec", sdktest.Object(map[string]any{"command": "no-such-command-xyz"}))
		sdktest.AssertKind(t, err, sdk.KindInvalid)
		_, _, err = sdktest.Apply(t, p, "exec", sdktest.Object(map[string]any{"command": "true", "timeout": "soon"}))
		sdktest.AssertKind(t, err, sdk.KindInvalid)
	})
}

func TestExecCancel(t *testing.T) {
	each(t, func(t *testing.T, p sdk.Provider) {
		sdktest.ApplyCancelled(t, p, "exec", sdktest.Object(map[string]any{"command": "sleep", "args": []string{"30"}}), 200*time.Millisecond)
	})
}

func TestTail(t *testing.T) {
	long := strings.Repeat("x", 100) + "\n" + strings.Repeat("y", 50)
	if got := tail(long, 60); got != "..."+strings.Repeat("y", 50) {
		t.Fatalf("tail = %q", got)
	}
	if got := tail("  short \n", 60); got != "short" {
		t.Fatalf("tail = %q", got)
	}
}

// TestTailNeverStartsInsideALine: a cut that falls inside a secret would
// quote the secret's end, which the engine's masker does not recognise; the
// tail starts at a line boundary, and quotes nothing of a last line longer
// than the tail.
func TestTailNeverStartsInsideALine(t *testing.T) {
	const secret = "Canary-Secret-9f3e1d"
	tests := []struct {
		name, stderr string
		want         string
	}{
		{"cut-inside-secret-near-end", "setup\nauth token=" + secret + " rejected\nexit", "...exit"},
		{"cut-inside-secret-far-from-end", "auth token=" + secret + "\n" + strings.Repeat("z", 20), "..." + strings.Repeat("z", 20)},
		{"one-long-line", "auth token=" + secret + " rejected by the server", "(the last line of stderr is 54 bytes, too long to quote: see the step's stderr output)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A cut 5 bytes before the secret's end.
			n := len(tt.stderr) - strings.Index(tt.stderr, secret) - len(secret) + 5
			got := tail(tt.stderr, n)
			if got != tt.want || strings.Contains(got, secret[len(secret)-5:]) {
				t.Errorf("tail(%q, %d) = %q, want %q", tt.stderr, n, got, tt.want)
			}
		})
	}
}

func TestSleepAndAssert(t *testing.T) {
	each(t, func(t *testing.T, p sdk.Provider) {
		_, rec := sdktest.MustApply(t, p, "sleep", sdktest.Object(map[string]any{"duration": "10ms"}))
		if pr := rec.ProgressEvents(); len(pr) == 0 || pr[len(pr)-1].Unit != "s" {
			t.Fatalf("progress = %+v", pr)
		}
		sdktest.ApplyCancelled(t, p, "sleep", sdktest.Object(map[string]any{"duration": "1h"}), 100*time.Millisecond)
		sdktest.MustApply(t, p, "assert", sdktest.Object(map[string]any{"condition": true}))
		_, _, err := sdktest.Apply(t, p, "assert", sdktest.Object(map[string]any{"condition": false, "message": "disk not mounted"}))
		if err == nil || !strings.Contains(err.Error(), "disk not mounted") {
			t.Fatalf("assert err = %v", err)
		}
		sdktest.AssertKind(t, err, sdk.KindAssertion)
		d, err := sdktest.Validate(t, p, "assert", cty.ObjectVal(map[string]cty.Value{"condition": cty.UnknownVal(cty.Bool)}))
		if err != nil || d.HasErrors() {
			t.Fatalf("validate unknown condition = %v, %v", d, err)
		}
	})
}

func TestHTTP(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch r.URL.Path {
		case "/flaky":
			if n%3 != 0 {
				w.WriteHeader(503)
				return
			}
		case "/teapot":
			w.WriteHeader(418)
			return
		case "/missing":
			w.WriteHeader(404)
			return
		}
		w.Header().Set("X-Test", "yes")
		json.NewEncoder(w).Encode(map[string]any{"status": "ok", "items": []any{map[string]any{"name": "a"}}, "count": 2, "method": r.Method, "auth": r.Header.Get("Authorization")})
	}))
	defer srv.Close()
	each(t, func(t *testing.T, p sdk.Provider) {
		res, _ := sdktest.MustApply(t, p, "http", sdktest.Object(map[string]any{
			"url":     srv.URL + "/",
			"method":  "POST",
			"headers": map[string]string{"Authorization": "Bearer t"},
			"json":    map[string]string{"status": "ok", "items.0.name": "a", "count": "2", "method": "POST", "auth": "Bearer t"},
		}))
		sdktest.AssertOutput(t, res, "status", cty.NumberIntVal(200))
		if h := res.Outputs.GetAttr("headers").Index(cty.StringVal("X-Test")); h.AsString() != "yes" {
			t.Fatalf("header = %#v", h)
		}
		_, _, err := sdktest.Apply(t, p, "http", sdktest.Object(map[string]any{"url": srv.URL + "/", "json": map[string]string{"status": "down"}}))
		if err == nil || !strings.Contains(err.Error(), `json status: got "ok", want "down"`) {
			t.Fatalf("json check err = %v", err)
		}
		_, _, err = sdktest.Apply(t, p, "http", sdktest.Object(map[string]any{"url": srv.URL + "/teapot"}))
		sdktest.AssertKind(t, err, sdk.KindConflict) // 418: an unexpected status
		_, _, err = sdktest.Apply(t, p, "http", sdktest.Object(map[string]any{"url": srv.URL + "/missing", "expect_status": []int{200}}))
		sdktest.AssertKind(t, err, sdk.KindNotFound)
		res, _ = sdktest.MustApply(t, p, "http", sdktest.Object(map[string]any{"url": srv.URL + "/teapot", "expect_status": []int{418}}))
		sdktest.AssertOutput(t, res, "status", cty.NumberIntVal(418))
		calls.Store(0)
		_, rec := sdktest.MustApply(t, p, "http", sdktest.Object(map[string]any{"url": srv.URL + "/flaky", "retry_for": "5s", "retry_interval": "10ms"}))
		if len(rec.Logs()) != 2 {
			t.Fatalf("retry logs = %v", rec.Logs())
		}
		_, _, err = sdktest.Apply(t, p, "http", sdktest.Object(map[string]any{"url": "http://user:pw@127.0.0.1:1/"}))
		if e := sdk.Classify(err); e.Kind != sdk.KindUnreachable || !e.Retryable || strings.Contains(err.Error(), "pw") {
			t.Fatalf("unreachable err = %v (%+v)", err, e)
		}
	})
}

func TestApprove(t *testing.T) {
	each(t, func(t *testing.T, p sdk.Provider) {
		state := t.TempDir()
		t.Setenv("RUNBOOK_STATE_DIR", state)
		path, err := ApprovalPath(state, `01RUN/go_live["a b"]/1`)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(state, "approvals", "01RUN", "go_live__a_b__.json"); path != want {
			t.Fatalf("path = %s, want %s", path, want)
		}
		write := func(approved bool) {
			os.MkdirAll(filepath.Dir(path), 0o755)
			b, _ := json.Marshal(Approval{ApprovedBy: "alice", At: "2026-01-01T00:00:00Z", Approved: approved})
			os.WriteFile(path, b, 0o644)
		}
		go func() { time.Sleep(300 * time.Millisecond); write(true) }()
		res, rec, err := sdktest.ApplyRequest(t, p, "approve", &sdk.ApplyRequest{
			Inputs:         sdktest.Object(map[string]any{"prompt": "Switch DNS?"}),
			IdempotencyKey: `01RUN/go_live["a b"]/1`,
		})
		if err != nil {
			t.Fatal(err)
		}
		sdktest.AssertOutput(t, res, "approved_by", cty.StringVal("alice"))
		if logs := rec.Logs(); len(logs) == 0 || !strings.Contains(logs[0], "runbook approve 01RUN") {
			t.Fatalf("logs = %v", logs)
		}
		write(false)
		_, _, err = sdktest.ApplyRequest(t, p, "approve", &sdk.ApplyRequest{
			Inputs: sdktest.Object(map[string]any{"prompt": "?"}), IdempotencyKey: `01RUN/go_live["a b"]/2`,
		})
		if err == nil || !strings.Contains(err.Error(), "rejected by alice") {
			t.Fatalf("reject err = %v", err)
		}
		sdktest.AssertKind(t, err, sdk.KindRejected)
		os.Remove(path)
		_, _, err = sdktest.ApplyRequest(t, p, "approve", &sdk.ApplyRequest{
			Inputs: sdktest.Object(map[string]any{"prompt": "?", "timeout": "50ms"}), IdempotencyKey: `01RUN/go_live["a b"]/3`,
		})
		if err == nil || !strings.Contains(err.Error(), "nobody approved") {
			t.Fatalf("timeout err = %v", err)
		}
	})
}

func TestFileUndo(t *testing.T) {
	each(t, func(t *testing.T, p sdk.Provider) {
		dir := t.TempDir()
		newFile := filepath.Join(dir, "new.conf")
		res, rec := sdktest.ApplyAndUndo(t, p, "file", sdktest.Object(map[string]any{"path": newFile, "content": "x=1\n"}))
		sdktest.AssertOutput(t, res, "changed", cty.True)
		if _, err := os.Stat(newFile); !os.IsNotExist(err) {
			t.Fatalf("undo left the new file: %v (%v)", err, rec.Logs())
		}

		old := filepath.Join(dir, "old.conf")
		os.WriteFile(old, []byte("before"), 0o600)
		in := sdktest.Object(map[string]any{"path": old, "content": "after", "mode": "0644"})
		_, rec = sdktest.MustApply(t, p, "file", in)
		if b, _ := os.ReadFile(old); string(b) != "after" {
			t.Fatalf("content = %q", b)
		}
		if st, _ := os.Stat(old); st.Mode().Perm() != 0o644 {
			t.Fatalf("mode = %v", st.Mode())
		}
		if len(rec.Checkpoints()) != 1 {
			t.Fatalf("checkpoints = %v", rec.Checkpoints())
		}
		// A resumed attempt (file already written) keeps the original
		// content in its undo state thanks to the checkpoint.
		res2, _, err := sdktest.ApplyRequest(t, p, "file", &sdk.ApplyRequest{Inputs: in, Checkpoint: rec.Checkpoints()[0]})
		if err != nil {
			t.Fatal(err)
		}
		sdktest.AssertOutput(t, res2, "changed", cty.True)
		if _, err := sdktest.Undo(t, p, "file", &sdk.UndoRequest{Inputs: in, Outputs: res2.Outputs, UndoState: res2.UndoState}); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(old); string(b) != "before" {
			t.Fatalf("restored content = %q", b)
		}
		if st, _ := os.Stat(old); st.Mode().Perm() != 0o600 {
			t.Fatalf("restored mode = %v", st.Mode())
		}
		_, _, err = sdktest.Apply(t, p, "file", sdktest.Object(map[string]any{"path": filepath.Join(dir, "no/such/dir/f"), "content": "x"}))
		if e := sdk.Classify(err); e.Kind != sdk.KindNotFound {
			t.Fatalf("missing dir err = %v", err)
		}
		owned := filepath.Join(dir, "owned")
		uid, gid := os.Getuid(), os.Getgid()
		sdktest.MustApply(t, p, "file", sdktest.Object(map[string]any{"path": owned, "content": "x", "owner": strconv.Itoa(uid) + ":" + strconv.Itoa(gid)}))
		if st, err := os.Stat(owned); err != nil || st.Sys().(*syscall.Stat_t).Uid != uint32(uid) {
			t.Fatalf("owner: %v", err)
		}
		_, _, err = sdktest.Apply(t, p, "file", sdktest.Object(map[string]any{"path": owned, "content": "x", "owner": "no-such-user-xyz"}))
		sdktest.AssertKind(t, err, sdk.KindInvalid)
		plan, err := sdktest.Plan(t, p, "file", sdktest.Object(map[string]any{"path": old, "content": "x"}))
		if err != nil || plan.Counts["update"] != 1 {
			t.Fatalf("plan = %+v, %v", plan, err)
		}
	})
}

// alive reports whether pid is a live (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// Cancelling exec stops the command's children too: a pipeline or a
// background job must not outlive the step (nor keep it waiting on their
// output).
func TestExecCancelKillsProcessGroup(t *testing.T) {
	old := killDelay
	killDelay = 500 * time.Millisecond
	defer func() { killDelay = old }()
	for _, tc := range []struct{ name, script string }{
		{"background child", `sleep 30 & echo $! > "$1"; wait`},
		{"child ignoring SIGTERM", `trap '' TERM; sleep 30 & echo $! > "$1"; wait; wait`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			in := sdktest.Object(map[string]any{"command": "sh", "args": []string{"-c", tc.script, "sh", pidFile}})
			start := time.Now()
			ctx, cancel := sdktest.Context()
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := sdk.Local(New()).Apply(ctx, "exec", &sdk.ApplyRequest{Inputs: in}, sdk.NopEvents{})
				done <- err
			}()
			var pid int
			for deadline := time.Now().Add(5 * time.Second); pid == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				b, _ := os.ReadFile(pidFile)
				pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			}
			if pid == 0 {
				t.Fatal("the command did not start its child")
			}
			cancel()
			select {
			case err := <-done:
				sdktest.AssertKind(t, err, sdk.KindCancelled)
			case <-time.After(5 * time.Second):
				t.Fatal("exec did not return after cancel")
			}
			if took := time.Since(start); took > 4*time.Second {
				t.Fatalf("cancel took %s", took)
			}
			for deadline := time.Now().Add(3 * time.Second); alive(pid) && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			}
			if alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("child %d outlived the cancelled step", pid)
			}
		})
	}
}

// TestExecEnvHoldsNoEngineSecret: a command sees neither the state key nor
// any RUNBOOK_VAR_*, even when the plugin runs in the engine's process; it
// keeps PATH and HOME and gets what `env` gives it.
func TestExecEnvHoldsNoEngineSecret(t *testing.T) {
	t.Setenv("RUNBOOK_STATE_KEY", "canary-state-key")
	t.Setenv("RUNBOOK_STATE_KEY_FILE", "/canary/key/file")
	t.Setenv("RUNBOOK_VAR_pw", "canary-var-pw")
	each(t, func(t *testing.T, p sdk.Provider) {
		res, _ := sdktest.MustApply(t, p, "exec", sdktest.Object(map[string]any{
			"command": "env",
			"env":     map[string]string{"GIVEN": "given-value"},
		}))
		out := res.Outputs.GetAttr("stdout").AsString()
		for _, leak := range []string{"canary-state-key", "/canary/key/file", "canary-var-pw", "RUNBOOK_VAR_", "RUNBOOK_STATE_KEY"} {
			if strings.Contains(out, leak) {
				t.Errorf("the command's environment holds %q", leak)
			}
		}
		for _, kept := range []string{"PATH=", "HOME=", "GIVEN=given-value"} {
			if !strings.Contains(out, kept) {
				t.Errorf("the command's environment lacks %q:\n%s", kept, out)
			}
		}
	})
}

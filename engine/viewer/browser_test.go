package viewer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/runbookdev/runbook/engine/viewer"
	"github.com/runbookdev/runbook/internal/testenv"
)

// browser starts a headless Chromium; the context is cancelled at the
// test's end. Call it after newEnv: the browser then stops before the
// server, which would otherwise wait for its event streams. Under the race
// detector the server is several times slower: the deadline is tripled.
func browser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	if raceEnabled {
		timeout *= 3
	}
	exe := testenv.Chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1400, 1000))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	// The first action starts the browser, for as long as ctx lives (no
	// timeout on it); the test's actions run under a deadline.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		cancelB()
		cancelA()
		testenv.Unavailable(t, "chromium does not start: %v", err)
	}
	tctx, cancelT := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelT(); cancelB(); cancelA() })
	return tctx
}

// screenshot saves the top of the page (1400×2000 pixels) as dir/name.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1400, 2000)); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Error(err)
	}
	t.Logf("screenshot %s", path)
}

// firstPaint is the page's first contentful paint, from navigation start.
func firstPaint(ctx context.Context) (time.Duration, error) {
	ms, err := chromedp.Run(ctx, chromedp.Poll[float64](`(() => { const p = performance.getEntriesByName('first-contentful-paint')[0]; return p ? p.startTime : 0; })()`,
		chromedp.WithPollingTimeout(10*time.Second)))
	return time.Duration(ms * float64(time.Millisecond)), err
}

// nodeClass is the class of the graph node of step name (its label's first
// line).
func nodeClass(name string) string {
	return fmt.Sprintf(`(() => { for (const g of document.querySelectorAll('#graph g.node')) { if (g.textContent.trim().startsWith(%q)) return g.getAttribute('class'); } return ''; })()`, name)
}

// TestBrowserWatchesAndApproves: a browser opens the runs list and the run
// page while the run goes; the graph is drawn, its nodes change colour as
// steps finish, the approval form appears when the gate waits, and
// clicking Approve lets the run finish.
func TestBrowserWatchesAndApproves(t *testing.T) {
	e := newEnv(t, viewer.AuthConfig{})
	ctx := browser(t, 40*time.Second)
	arts := testenv.Artifacts(t)
	rctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	wait := e.start(rctx, strings.Replace(liveRunbook, `"1s"`, `"3s"`, 1), "secret="+canary)
	id := e.waitRun()

	if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/"), chromedp.WaitVisible(`#runs tr.run a`)); err != nil {
		t.Fatalf("runs list: %v", err)
	}
	if fp, err := firstPaint(ctx); err == nil {
		t.Logf("runs list: first contentful paint %v", fp)
	}
	screenshot(t, ctx, arts, "01-runs.png")

	err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+"/runs/"+id), chromedp.WaitVisible(`#graph svg g.node`))
	if err != nil {
		g, _ := chromedp.Run(context.WithoutCancel(ctx), chromedp.Evaluate[string](`document.getElementById('graph').textContent`))
		screenshot(t, context.WithoutCancel(ctx), arts, "02-no-graph.png")
		t.Fatalf("run page: %v; graph box says %q", err, g)
	}
	nodes, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#graph g.node').length`))
	if err != nil {
		t.Fatalf("run page: %v", err)
	}
	if nodes != 4 {
		t.Errorf("graph has %d nodes, want 4", nodes)
	}
	if fp, err := firstPaint(ctx); err == nil {
		t.Logf("run page: first contentful paint %v", fp)
	}
	if err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](nodeClass("first")+`.includes('st-succeeded')`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Errorf("node first never coloured succeeded: %v", err)
	}
	screenshot(t, ctx, arts, "02-run-in-progress.png")
	// The gate waits: its form appears without a reload.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`form.approve[data-step="gate"] button.ok`)); err != nil {
		t.Fatalf("no approval form: %v", err)
	}
	class, _ := chromedp.Run(ctx, chromedp.Evaluate[string](nodeClass("gate")))
	if !strings.Contains(class, "st-running") {
		t.Errorf("gate node class %q, want st-running", class)
	}
	screenshot(t, ctx, arts, "03-waiting-for-approval.png")
	if err := chromedp.Do(ctx, chromedp.Click(`form.approve[data-step="gate"] button.ok`)); err != nil {
		t.Fatalf("approve: %v", err)
	}
	// The form posts and the page loads again: a check started while the
	// old page goes away fails (see navigating); try again on the new page.
	for deadline := time.Now().Add(20 * time.Second); ; {
		err = chromedp.Do(ctx,
			chromedp.WaitVisible(`#graph svg g.node`),
			chromedp.Poll[chromedp.Void](`document.getElementById('run-state').textContent === 'succeeded'`, chromedp.WithPollingTimeout(15*time.Second)),
			chromedp.Poll[chromedp.Void](nodeClass("after")+`.includes('st-succeeded')`, chromedp.WithPollingTimeout(5*time.Second)))
		if err == nil || !navigating(err) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after approving: %v", err)
	}
	screenshot(t, ctx, arts, "04-succeeded.png")
	if out := wait(); out == nil || out.Result.State != "succeeded" {
		t.Fatalf("run: %+v", out)
	}
	var d viewer.RunDetail
	must(t, json.Unmarshal([]byte(e.get(nil, "/api/runs/"+id, 200)), &d))
	for _, s := range d.Steps {
		if s.Address == "gate" && s.Outputs["approved_by"] != "tester" {
			t.Errorf("gate approved by %v, want tester", s.Outputs["approved_by"])
		}
	}
	html, _ := chromedp.Run(ctx, chromedp.OuterHTML("html"))
	if strings.Contains(html, canary) {
		t.Error("the secret is in the page")
	}
}

// navigating tells whether err is Chromium's answer to a check that ran
// while the page was being replaced by the next one (each wording seen in
// CI), as opposed to a check that failed on a loaded page.
func navigating(err error) bool {
	for _, m := range []string{"Cannot find context", "Inspected target navigated or closed", "Execution context was destroyed", "Cannot find default execution context"} {
		if strings.Contains(err.Error(), m) {
			return true
		}
	}
	return false
}

// TestBrowserBigRun measures the first paint of the runs list and of a
// 10,000-step run's page (the graph is drawn on request only).
func TestBrowserBigRun(t *testing.T) {
	e := newEnv(t, viewer.AuthConfig{})
	ctx := browser(t, 30*time.Second)
	arts := testenv.Artifacts(t)
	const n = 10000
	var src strings.Builder
	names := make([]string, n)
	src.WriteString("runbook \"big\" {}\n")
	for i := range n {
		names[i] = fmt.Sprintf("s%05d", i)
		fmt.Fprintf(&src, "step \"core.noop\" %q {\n  with = {}\n}\n", names[i])
	}
	id, _ := e.synth(src.String(), names[:n-10], names[n-10:], true)
	e.get(nil, "/runs/"+id, 200) // parse the runbook once, as a first visitor would
	for _, p := range []struct{ name, path, wait string }{
		{"list", "/", `#runs tr.run`},
		{"run", "/runs/" + id, `#steps tr.step`},
	} {
		start := time.Now()
		if err := chromedp.Do(ctx, chromedp.Navigate(e.srv.URL+p.path), chromedp.WaitVisible(p.wait)); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		fp, err := firstPaint(ctx)
		if err != nil {
			t.Fatalf("%s: first paint: %v", p.name, err)
		}
		t.Logf("10,000-step run, %s page: first contentful paint %v (loaded and visible after %v)", p.name, fp, time.Since(start))
		if fp > 3*time.Second && !raceEnabled {
			t.Errorf("%s page: first paint %v", p.name, fp)
		}
		screenshot(t, ctx, arts, "big-"+p.name+".png")
	}
}

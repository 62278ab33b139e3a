package pluginhost

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/runbookdev/runbook/internal/pluginclient"
	"github.com/runbookdev/runbook/internal/pluginwire"
	"github.com/runbookdev/runbook/sdk"
	"github.com/zclconf/go-cty/cty"
)

// proc is one plugin process seen as an sdk.Provider. It is started on the
// first call, reused by every later call, and started again if it died (so
// that a crash fails one step, not every later step of that plugin).
type proc struct {
	name   string
	path   string
	args   []string
	env    []string
	stderr *stderrWatcher
	// origin is the plugin's path as found, for messages, when path is
	// its private copy ("": path).
	origin string
	// cleanup removes a private copy of the binary that is not kept for
	// reuse (nil: none); kill calls it.
	cleanup func()

	mu sync.Mutex // guards client, prov and closed
	// client is the running go-plugin client, nil before the first start.
	client *plugin.Client
	// prov talks to client; valid while client is.
	prov sdk.Provider
	// closed is set by kill; no start after it.
	closed bool
}

var _ sdk.Provider = (*proc)(nil)

// get returns a live provider, starting the process if needed.
func (p *proc) get() (sdk.Provider, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("plugin %s: host is closed", p.name)
	}
	if p.client != nil && !p.client.Exited() {
		return p.prov, nil
	}
	if p.client != nil {
		p.client.Kill()
	}
	var c *plugin.Client
	var rpc plugin.ClientProtocol
	var err error
	for try := 0; ; try++ {
		p.stderr.reset()
		c = plugin.NewClient(p.clientConfig())
		if rpc, err = c.Client(); err == nil {
			break
		}
		c.Kill()
		if !errTextBusy(err) || try == 4 {
			return nil, p.startError(err)
		}
		time.Sleep(time.Duration(try+1) * 10 * time.Millisecond)
	}
	raw, err := rpc.Dispense(pluginwire.PluginKey)
	if err != nil {
		c.Kill()
		return nil, fmt.Errorf("plugin %s: %w", p.name, err)
	}
	prov, ok := raw.(sdk.Provider)
	if !ok {
		c.Kill()
		return nil, fmt.Errorf("plugin %s: unexpected client type %T", p.name, raw)
	}
	p.client, p.prov = c, prov
	return prov, nil
}

// startError explains why the process could not be started.
func (p *proc) startError(err error) error {
	msg := err.Error()
	if line := p.stderr.lastLine(); line != "" {
		msg += "; stderr: " + line
	}
	return &sdk.Error{
		Kind: sdk.KindInternal,
		Hint: fmt.Sprintf("check that %s is a runbook plugin built for protocol version %d", cmp.Or(p.origin, p.path), pluginwire.ProtocolVersion),
		Err:  fmt.Errorf("plugin %s could not be started: %s", p.name, msg),
	}
}

// kill stops the process: go-plugin sends Shutdown and, with wait, waits
// for the process to exit (killing it after a grace period). Without wait
// it returns once the plugin was told to stop serving: for a command that
// exits right after, which need not pay for the plugin's exit (a plugin
// whose engine is gone exits anyway, see sdk/lifetime.go).
func (p *proc) kill(wait bool) {
	p.mu.Lock()
	c := p.client
	p.closed = true
	cleanup := p.cleanup
	p.cleanup = nil
	p.mu.Unlock()
	if cleanup != nil {
		// Removing the directory of a running binary is fine on Unix; on
		// Windows the temporary copy stays behind.
		defer cleanup()
	}
	if c == nil {
		return
	}
	if wait {
		c.Kill()
		return
	}
	if rpc, err := c.Client(); err == nil {
		_ = rpc.Close()
	} else {
		c.Kill()
	}
}

// mapErr turns a transport failure into a step error naming the plugin and
// what the process said when it died.
func (p *proc) mapErr(ctx context.Context, err error) error {
	var te *pluginclient.TransportError
	if err == nil || !errors.As(err, &te) {
		return err
	}
	if ctx.Err() != nil {
		return &sdk.Error{Kind: sdk.KindCancelled, Err: fmt.Errorf("plugin %s: %w", p.name, ctx.Err())}
	}
	p.mu.Lock()
	c := p.client
	p.mu.Unlock()
	// Give the process a moment to finish dying so that its stderr is
	// fully read (Exited is set only after that).
	exited := false
	for deadline := time.Now().Add(2 * time.Second); c != nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if c.Exited() {
			exited = true
			break
		}
	}
	if !exited {
		return &sdk.Error{Kind: sdk.KindInternal, Retryable: true, Err: fmt.Errorf("plugin %s did not respond: %v", p.name, te.Err)}
	}
	what := "exited unexpectedly"
	hint := fmt.Sprintf("this is a bug in the %s plugin; its full output is in the run log", p.name)
	st := p.stderr.exitStatus()
	if sig, ok := strings.CutPrefix(st, "signal: "); ok {
		// Killed from outside: not the plugin's own doing.
		what = "was killed by signal " + signalName(sig)
		hint = "something outside the plugin killed it: the out-of-memory killer (see `dmesg`), a supervisor or a `kill`; its full output is in the run log"
	} else if st != "" {
		what += " (" + st + ")"
	}
	if line := p.stderr.panicLine(); line != "" {
		what = "crashed: " + line
	} else if line := p.stderr.lastLine(); line != "" {
		what += ": " + line
	}
	return &sdk.Error{
		Kind: sdk.KindInternal,
		Hint: hint,
		Err:  fmt.Errorf("plugin %s %s", p.name, what),
	}
}

func (p *proc) Schema(ctx context.Context) (*sdk.PluginSchema, error) {
	prov, err := p.get()
	if err != nil {
		return nil, err
	}
	s, err := prov.Schema(ctx)
	return s, p.mapErr(ctx, err)
}

func (p *proc) Validate(ctx context.Context, action string, inputs cty.Value) (sdk.Diagnostics, error) {
	prov, err := p.get()
	if err != nil {
		return nil, err
	}
	d, err := prov.Validate(ctx, action, inputs)
	return d, p.mapErr(ctx, err)
}

func (p *proc) Plan(ctx context.Context, action string, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	prov, err := p.get()
	if err != nil {
		return nil, err
	}
	r, err := prov.Plan(ctx, action, req)
	return r, p.mapErr(ctx, err)
}

func (p *proc) Apply(ctx context.Context, action string, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	prov, err := p.get()
	if err != nil {
		return nil, err
	}
	r, err := prov.Apply(ctx, action, req, ev)
	return r, p.mapErr(ctx, err)
}

func (p *proc) Undo(ctx context.Context, action string, req *sdk.UndoRequest, ev sdk.Events) error {
	prov, err := p.get()
	if err != nil {
		return err
	}
	return p.mapErr(ctx, prov.Undo(ctx, action, req, ev))
}

// alive reports whether the process answers a ping (false once it died,
// even before go-plugin noticed).
func (p *proc) alive() bool {
	p.mu.Lock()
	c, closed := p.client, p.closed
	p.mu.Unlock()
	if closed || c == nil || c.Exited() {
		return false
	}
	rpc, err := c.Client()
	return err == nil && rpc.Ping() == nil
}

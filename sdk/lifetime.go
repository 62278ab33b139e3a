package sdk

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"time"
)

// A plugin process must not outlive the engine that started it: a plugin
// left running after the engine was killed (kill -9, a second Ctrl-C, a
// crash) would go on changing a backend behind the back of the `resume` or
// `rollback` that follows. The engine asks the kernel to send SIGTERM to
// the plugin when it dies (Linux), and the plugin also watches for being
// reparented (every Unix). Either way the plugin cancels every running
// action, gives them StopGrace to return (core.exec, for one, then kills
// its command's process group), and exits.

// StopGrace is how long a plugin whose engine is gone waits for its
// cancelled actions before it exits.
var StopGrace = 10 * time.Second

// lifetime is the plugin process's stop signal and its running calls.
type lifetime struct {
	ctx  context.Context // cancelled when the engine is gone
	stop context.CancelFunc

	mu sync.Mutex // guards running and idle
	// running counts the calls in progress.
	running int
	// idle is closed and replaced whenever running drops to zero.
	idle chan struct{}
}

func newLifetime() *lifetime {
	ctx, stop := context.WithCancel(context.Background())
	return &lifetime{ctx: ctx, stop: stop, idle: make(chan struct{})}
}

// call derives a call's context from parent that is also cancelled when
// the engine is gone, and counts the call until done is called.
func (l *lifetime) call(parent context.Context) (ctx context.Context, done func()) {
	ctx, cancel := context.WithCancel(parent)
	unhook := context.AfterFunc(l.ctx, cancel)
	l.mu.Lock()
	l.running++
	l.mu.Unlock()
	return ctx, func() {
		unhook()
		cancel()
		l.mu.Lock()
		l.running--
		if l.running == 0 {
			close(l.idle)
			l.idle = make(chan struct{})
		}
		l.mu.Unlock()
	}
}

// drain cancels every call and waits up to grace for them to return.
func (l *lifetime) drain(grace time.Duration) {
	l.stop()
	deadline := time.After(grace)
	for {
		l.mu.Lock()
		n, idle := l.running, l.idle
		l.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-idle:
		case <-deadline:
			return
		}
	}
}

// watchEngine exits the process once the engine is gone: on SIGTERM, or
// when the parent process changed (the engine died and the plugin was
// reparented). It drains the running calls and runs closePlugin first.
func (l *lifetime) watchEngine(closePlugin func() error) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, stopSignals...)
	parent := os.Getppid()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-term:
		case <-tick.C:
			if os.Getppid() == parent {
				continue
			}
		}
		l.drain(StopGrace)
		_ = closePlugin()
		os.Exit(2)
	}
}

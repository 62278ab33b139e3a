package run

import (
	"context"
	"fmt"

	"github.com/runbookdev/runbook/engine/graph"
)

// direction is what differs between the forward walk and the rollback; the
// scheduler (walk) is the same for both.
type direction struct {
	// ready is called once every node n waits for is terminal: it queues
	// n's instances, or finishes n at once.
	ready func(ctx context.Context, n *node) error
	// work runs one instance on a worker goroutine. It may touch only in
	// and the thread-safe parts of the executor.
	work func(ctx context.Context, in *Instance) error
	// finished handles an instance whose work returned (scheduler goroutine).
	finished func(ctx context.Context, in *Instance, err error) error
	// settle is called when n is terminal, before the nodes waiting for it
	// are told.
	settle func(ctx context.Context, n *node)
	// stopping reports whether queued instances must be looked at by keep
	// (the run is stopping); drop handles the ones keep refuses.
	stopping func(ctx context.Context) bool
	keep     func(ctx context.Context, in *Instance) bool
	drop     func(ctx context.Context, in *Instance) error
}

// walk runs g in direction d: a node is ready when every node it depends
// on in g is terminal (forward: the step graph; rollback: its undo order,
// graph.Undo). Ready instances start while a parallelism slot is free and
// their action's MaxConcurrency allows. It returns once nothing runs and
// nothing can start; after an error that stops the walk (a journal
// failure), once every instance in flight has returned.
func (e *executor) walk(ctx context.Context, g *graph.Graph, d direction) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.stop.mu.Lock()
	e.stop.cancel = cancel
	e.stop.mu.Unlock()
	e.dir = d
	for _, n := range e.nodes {
		n.wait, n.next = 0, nil
	}
	var roots []*node
	for _, name := range g.Nodes() {
		n := e.byName[name]
		n.wait = len(g.Deps(name))
		for _, dn := range g.Dependents(name) {
			n.next = append(n.next, e.byName[dn])
		}
		if n.wait == 0 {
			roots = append(roots, n)
		}
	}
	// Roots are readied one at a time while a slot is free: readying
	// evaluates a step's condition and inputs, and the first of many
	// independent steps should start at once rather than after every one
	// of them is prepared (1,000 roots took 25 ms or more). Nodes readied
	// as their dependencies finish go before roots not yet readied.
	for {
		e.dispatch(ctx)
		for len(roots) > 0 && e.running < e.opts.Parallelism && e.stop.err() == nil {
			n := roots[0]
			roots = roots[1:]
			e.check(e.readyNode(ctx, n))
			e.dispatch(ctx)
		}
		if e.running == 0 {
			if err := e.stop.err(); err != nil {
				return err
			}
			if len(e.queue) == 0 {
				return nil
			}
			// Only instances blocked by a cap remain: cannot happen while
			// nothing runs, but never spin.
			return fmt.Errorf("internal: %d instances queued with nothing running", len(e.queue))
		}
		m := <-e.done
		e.running--
		e.caps[m.in.capKey]--
		if e.stop.err() == nil {
			e.check(d.finished(ctx, m.in, m.err))
		}
	}
}

// check stops the walk on err (after it, the walk only drains).
func (e *executor) check(err error) {
	if err != nil {
		e.stop.halt(err)
	}
}

// readyNode readies n unless the walk is stopping.
func (e *executor) readyNode(ctx context.Context, n *node) error {
	if err := e.stop.err(); err != nil {
		return err
	}
	return e.dir.ready(ctx, n)
}

// dispatch starts queued instances while slots are free.
func (e *executor) dispatch(ctx context.Context) {
	if e.stop.err() != nil {
		return
	}
	if e.dir.stopping(ctx) {
		keep := e.queue[:0]
		var dropped []*Instance
		for _, in := range e.queue {
			if e.dir.keep(ctx, in) {
				keep = append(keep, in)
			} else {
				dropped = append(dropped, in)
			}
		}
		e.queue = keep
		for _, in := range dropped {
			e.check(e.dir.drop(ctx, in))
		}
	}
	for i := 0; i < len(e.queue) && e.running < e.opts.Parallelism && e.stop.err() == nil; {
		in := e.queue[i]
		if in.cap > 0 && e.caps[in.capKey] >= in.cap {
			i++
			continue
		}
		e.queue = append(e.queue[:i], e.queue[i+1:]...)
		e.running++
		e.caps[in.capKey]++
		j := job{ctx: ctx, in: in, work: e.dir.work}
		select {
		case e.jobs <- j:
		default:
			go e.worker(j)
		}
	}
}

// worker runs j, then whatever the scheduler hands it next, until the
// executor ends. Workers outlive one instance so that each does not grow
// a fresh goroutine stack again through the deep plugin-call and
// value-encoding call chains.
func (e *executor) worker(j job) {
	for {
		err := j.work(j.ctx, j.in)
		e.done <- doneMsg{in: j.in, err: err}
		select {
		case j = <-e.jobs:
		case <-e.quit:
			return
		}
	}
}

// instDone is called once per instance when it is terminal.
func (e *executor) instDone(ctx context.Context, in *Instance) error {
	n := e.byName[in.Step.Name]
	n.open--
	if n.open > 0 {
		return nil
	}
	return e.nodeDone(ctx, n)
}

// nodeDone marks n terminal and readies the nodes waiting for it.
func (e *executor) nodeDone(ctx context.Context, n *node) error {
	e.dir.settle(ctx, n)
	for _, m := range n.next {
		m.wait--
		if m.wait == 0 {
			if err := e.readyNode(ctx, m); err != nil {
				return err
			}
		}
	}
	return nil
}

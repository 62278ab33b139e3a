// Package graph is a small directed acyclic graph of named nodes: the steps
// of a runbook and their dependencies. It reports cycles (Tarjan) and sorts
// nodes into parallel levels (Kahn). Walking it is the executor's job.
package graph

import (
	"fmt"
	"sort"
	"strings"
)

// Graph is a set of nodes and "depends on" edges. The zero value is not
// usable; call New. A Graph is not safe for concurrent mutation; concurrent
// reads are fine once it is built.
type Graph struct {
	nodes []string            // insertion order
	index map[string]int      // name -> position in nodes
	deps  map[string][]string // from -> the nodes it depends on (sorted)
	rdeps map[string][]string // to -> the nodes depending on it (sorted)
}

// New returns an empty graph.
func New() *Graph {
	return &Graph{index: map[string]int{}, deps: map[string][]string{}, rdeps: map[string][]string{}}
}

// AddNode adds a node; adding an existing node does nothing.
func (g *Graph) AddNode(name string) {
	if _, ok := g.index[name]; ok {
		return
	}
	g.index[name] = len(g.nodes)
	g.nodes = append(g.nodes, name)
}

// AddEdge records that from depends on to, adding both nodes if needed.
// Duplicate edges are ignored.
func (g *Graph) AddEdge(from, to string) {
	g.AddNode(from)
	g.AddNode(to)
	g.deps[from] = insertSorted(g.deps[from], to)
	g.rdeps[to] = insertSorted(g.rdeps[to], from)
}

func insertSorted(s []string, v string) []string {
	i := sort.SearchStrings(s, v)
	if i < len(s) && s[i] == v {
		return s
	}
	s = append(s, "")
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

// Nodes returns every node in insertion order.
func (g *Graph) Nodes() []string { return append([]string(nil), g.nodes...) }

// Has reports whether the node exists.
func (g *Graph) Has(name string) bool { _, ok := g.index[name]; return ok }

// Deps returns the nodes n depends on, sorted.
func (g *Graph) Deps(n string) []string { return append([]string(nil), g.deps[n]...) }

// Dependents returns the nodes that depend on n, sorted.
func (g *Graph) Dependents(n string) []string { return append([]string(nil), g.rdeps[n]...) }

// Reverse returns a new graph with every edge reversed: in it, a node
// depends on its former dependents. This is the undo order.
func (g *Graph) Reverse() *Graph {
	r := New()
	for _, n := range g.nodes {
		r.AddNode(n)
	}
	for _, n := range g.nodes {
		for _, d := range g.deps[n] {
			r.AddEdge(d, n)
		}
	}
	return r
}

// Subgraph returns the graph restricted to the given nodes (edges between
// kept nodes only), keeping insertion order.
func (g *Graph) Subgraph(keep func(string) bool) *Graph {
	s := New()
	for _, n := range g.nodes {
		if keep(n) {
			s.AddNode(n)
		}
	}
	for _, n := range s.nodes {
		for _, d := range g.deps[n] {
			if s.Has(d) {
				s.AddEdge(n, d)
			}
		}
	}
	return s
}

// Cycles returns every strongly connected component that forms a cycle
// (more than one node, or one node depending on itself). Each cycle lists
// its nodes in dependency order starting from its smallest name; cycles are
// sorted by their first node.
func (g *Graph) Cycles() [][]string {
	t := tarjan{g: g, index: map[string]int{}, low: map[string]int{}, on: map[string]bool{}}
	for _, n := range g.nodes {
		if _, seen := t.index[n]; !seen {
			t.strongConnect(n)
		}
	}
	var out [][]string
	for _, scc := range t.sccs {
		if len(scc) == 1 && !g.dependsOn(scc[0], scc[0]) {
			continue
		}
		out = append(out, g.orderCycle(scc))
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

func (g *Graph) dependsOn(from, to string) bool {
	d := g.deps[from]
	i := sort.SearchStrings(d, to)
	return i < len(d) && d[i] == to
}

// orderCycle returns one real cycle of an SCC: the shortest one through
// its smallest node, in dependency order ("a -> b -> c -> a"), so that
// every edge it names exists. (An SCC of overlapping cycles has more; one
// real cycle is what the user can act on, and fixing it shows the next.)
func (g *Graph) orderCycle(scc []string) []string {
	in := map[string]bool{}
	for _, n := range scc {
		in[n] = true
	}
	start := scc[0]
	for _, n := range scc {
		if n < start {
			start = n
		}
	}
	// Breadth-first from start along dependency edges inside the SCC,
	// until an edge leads back to start.
	prev := map[string]string{}
	queue := []string{start}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, d := range g.deps[cur] { // sorted: the result is stable
			if d == start {
				var path []string
				for n := cur; n != start; n = prev[n] {
					path = append(path, n)
				}
				path = append(path, start)
				for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
					path[i], path[j] = path[j], path[i]
				}
				return path
			}
			if _, seen := prev[d]; !seen && in[d] && d != start {
				prev[d] = cur
				queue = append(queue, d)
			}
		}
	}
	return []string{start} // unreachable for an SCC
}

type tarjan struct {
	g     *Graph
	next  int
	index map[string]int
	low   map[string]int
	on    map[string]bool
	stack []string
	sccs  [][]string
}

// strongConnect is Tarjan's algorithm, iterative so that deep graphs cannot
// overflow the goroutine stack.
func (t *tarjan) strongConnect(root string) {
	type frame struct {
		n string
		i int
	}
	visit := func(n string) {
		t.index[n] = t.next
		t.low[n] = t.next
		t.next++
		t.stack = append(t.stack, n)
		t.on[n] = true
	}
	visit(root)
	call := []frame{{n: root}}
	for len(call) > 0 {
		f := &call[len(call)-1]
		deps := t.g.deps[f.n]
		if f.i < len(deps) {
			w := deps[f.i]
			f.i++
			if _, seen := t.index[w]; !seen {
				visit(w)
				call = append(call, frame{n: w})
			} else if t.on[w] && t.index[w] < t.low[f.n] {
				t.low[f.n] = t.index[w]
			}
			continue
		}
		n := f.n
		call = call[:len(call)-1]
		if len(call) > 0 {
			p := call[len(call)-1].n
			if t.low[n] < t.low[p] {
				t.low[p] = t.low[n]
			}
		}
		if t.low[n] == t.index[n] {
			var scc []string
			for {
				w := t.stack[len(t.stack)-1]
				t.stack = t.stack[:len(t.stack)-1]
				t.on[w] = false
				scc = append(scc, w)
				if w == n {
					break
				}
			}
			t.sccs = append(t.sccs, scc)
		}
	}
}

// CycleError is returned by Levels when the graph has cycles.
type CycleError struct{ Cycles [][]string }

func (e *CycleError) Error() string {
	parts := make([]string, len(e.Cycles))
	for i, c := range e.Cycles {
		parts[i] = strings.Join(append(append([]string(nil), c...), c[0]), " -> ")
	}
	return fmt.Sprintf("dependency cycle: %s", strings.Join(parts, "; "))
}

// Levels sorts the nodes into parallel levels: level 0 has no dependencies,
// each later level depends only on earlier ones. Nodes within a level are
// sorted by name. It returns a *CycleError when the graph has a cycle.
func (g *Graph) Levels() ([][]string, error) {
	indeg := make(map[string]int, len(g.nodes))
	for _, n := range g.nodes {
		indeg[n] = len(g.deps[n])
	}
	var cur []string
	for _, n := range g.nodes {
		if indeg[n] == 0 {
			cur = append(cur, n)
		}
	}
	var levels [][]string
	done := 0
	for len(cur) > 0 {
		sort.Strings(cur)
		levels = append(levels, cur)
		done += len(cur)
		var next []string
		for _, n := range cur {
			for _, d := range g.rdeps[n] {
				indeg[d]--
				if indeg[d] == 0 {
					next = append(next, d)
				}
			}
		}
		cur = next
	}
	if done != len(g.nodes) {
		return levels, &CycleError{Cycles: g.Cycles()}
	}
	return levels, nil
}

// TopoSort returns the nodes in one dependency order (dependencies first),
// flattening Levels.
func (g *Graph) TopoSort() ([]string, error) {
	levels, err := g.Levels()
	var out []string
	for _, l := range levels {
		out = append(out, l...)
	}
	return out, err
}

// Undo is the undo order of g, the one definition both `runbook graph
// -rollback` and the executor use: only the nodes for which undoable holds
// appear, and a node's undo depends on the undo of every undoable node that
// depended on it in g, directly or through nodes that are not undoable. A
// node is therefore undone only after everything built on it is.
func (g *Graph) Undo(undoable func(string) bool) *Graph {
	u := New()
	for _, n := range g.nodes {
		if undoable(n) {
			u.AddNode(n)
		}
	}
	for _, n := range u.nodes {
		seen := map[string]bool{}
		stack := append([]string(nil), g.rdeps[n]...)
		for len(stack) > 0 {
			d := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[d] {
				continue
			}
			seen[d] = true
			if u.Has(d) {
				u.AddEdge(n, d) // undo n after the undo of d
				continue
			}
			stack = append(stack, g.rdeps[d]...)
		}
	}
	return u
}

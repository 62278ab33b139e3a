package graph

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite golden files")

func build(edges string, nodes ...string) *Graph {
	g := New()
	for _, n := range nodes {
		g.AddNode(n)
	}
	for _, e := range strings.Fields(edges) {
		from, to, _ := strings.Cut(e, ">")
		g.AddEdge(from, to)
	}
	return g
}

func TestLevels(t *testing.T) {
	tests := []struct {
		name  string
		g     *Graph
		want  [][]string
		cycle bool
	}{
		{"empty", New(), nil, false},
		{"single", build("", "a"), [][]string{{"a"}}, false},
		{"chain", build("c>b b>a"), [][]string{{"a"}, {"b"}, {"c"}}, false},
		{"diamond", build("b>a c>a d>b d>c"), [][]string{{"a"}, {"b", "c"}, {"d"}}, false},
		{"independent sorted", build("", "z", "y", "x"), [][]string{{"x", "y", "z"}}, false},
		{"duplicate edges", build("b>a b>a"), [][]string{{"a"}, {"b"}}, false},
		{"cycle", build("a>b b>a c>x"), [][]string{{"x"}, {"c"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.g.Levels()
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("levels (-want +got):\n%s", diff)
			}
			var ce *CycleError
			if tt.cycle != errors.As(err, &ce) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestCycles(t *testing.T) {
	tests := []struct {
		name string
		g    *Graph
		want [][]string
	}{
		{"none", build("b>a c>b"), nil},
		{"self", build("a>a"), [][]string{{"a"}}},
		{"two", build("a>b b>a"), [][]string{{"a", "b"}}},
		{"three ordered along edges", build("c>a a>b b>c"), [][]string{{"a", "b", "c"}}},
		{"two separate", build("a>b b>a x>y y>z z>x q>a"), [][]string{{"a", "b"}, {"x", "y", "z"}}},
		// Overlapping cycles: one real cycle, every edge of which exists
		// (it used to read a -> b -> c -> d -> a, but d does not depend on a).
		{"overlapping", build("a>b b>a b>c c>d d>b"), [][]string{{"a", "b"}}},
		{"overlapping, longer first", build("a>c c>d d>a a>b b>a"), [][]string{{"a", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.g.Cycles()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	for _, g := range []*Graph{build("a>b b>a b>c c>d d>b"), build("a>c c>d d>e e>a c>a d>b b>c")} {
		for _, cyc := range g.Cycles() {
			for i, n := range cyc {
				if next := cyc[(i+1)%len(cyc)]; !g.dependsOn(n, next) {
					t.Errorf("cycle %v names an edge %s -> %s that does not exist", cyc, n, next)
				}
			}
		}
	}
	_, err := build("a>b b>a").Levels()
	if err == nil || err.Error() != "dependency cycle: a -> b -> a" {
		t.Errorf("error text: %v", err)
	}
}

func TestDeepGraphNoStackOverflow(t *testing.T) {
	g := New()
	for i := 1; i < 20000; i++ {
		g.AddEdge(fmt.Sprint(i), fmt.Sprint(i-1))
	}
	if c := g.Cycles(); len(c) != 0 {
		t.Fatal("cycle in a chain")
	}
	g.AddEdge("0", "19999")
	if c := g.Cycles(); len(c) != 1 || len(c[0]) != 20000 {
		t.Fatalf("want one big cycle, got %d", len(c))
	}
}

func TestReverseDepsDependents(t *testing.T) {
	g := build("b>a c>a d>b d>c")
	if diff := cmp.Diff([]string{"b", "c"}, g.Deps("d")); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]string{"b", "c"}, g.Dependents("a")); diff != "" {
		t.Error(diff)
	}
	r := g.Reverse()
	levels, err := r.Levels()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]string{{"d"}, {"b", "c"}, {"a"}}, levels); diff != "" {
		t.Errorf("reverse levels: %s", diff)
	}
	sub := g.Subgraph(func(n string) bool { return n != "b" })
	if diff := cmp.Diff([]string{"a", "c", "d"}, sub.Nodes()); diff != "" {
		t.Error(diff)
	}
	if diff := cmp.Diff([]string{"c"}, sub.Deps("d")); diff != "" {
		t.Error(diff)
	}
	order, err := g.TopoSort()
	if err != nil || order[0] != "a" || order[3] != "d" {
		t.Errorf("topo: %v %v", order, err)
	}
	if !g.Has("a") || g.Has("zz") {
		t.Error("Has")
	}
}

func TestRender(t *testing.T) {
	g := build("b>a c>a d>b d>c", "a")
	style := func(n string) Style {
		return Style{Label: n + "\nkind \"x\"", Dashed: n == "d"}
	}
	var dot, mm strings.Builder
	if err := g.WriteDot(&dot, "t", style); err != nil {
		t.Fatal(err)
	}
	if err := g.WriteMermaid(&mm, style); err != nil {
		t.Fatal(err)
	}
	golden(t, "diamond.dot", dot.String())
	golden(t, "diamond.mmd", mm.String())
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", name, diff)
	}
}

func FuzzGraph(f *testing.F) {
	f.Add("b>a c>a d>b d>c")
	f.Add("a>a")
	f.Add("a>b b>c c>a x>y")
	f.Fuzz(func(t *testing.T, edges string) {
		g := build(edges)
		levels, err := g.Levels()
		cycles := g.Cycles()
		if (err == nil) != (len(cycles) == 0) {
			t.Fatalf("Levels err %v but cycles %v", err, cycles)
		}
		if err == nil {
			n := 0
			pos := map[string]int{}
			for i, l := range levels {
				n += len(l)
				for _, x := range l {
					pos[x] = i
				}
			}
			if n != len(g.Nodes()) {
				t.Fatalf("levels hold %d nodes, graph %d", n, len(g.Nodes()))
			}
			for _, x := range g.Nodes() {
				for _, d := range g.Deps(x) {
					if pos[d] >= pos[x] {
						t.Fatalf("%s on level %d depends on %s on level %d", x, pos[x], d, pos[d])
					}
				}
			}
		}
		var sb strings.Builder
		g.WriteDot(&sb, "f", nil)
		g.WriteMermaid(&sb, nil)
	})
}

func TestUndo(t *testing.T) {
	tests := []struct {
		name     string
		g        *Graph
		undoable string // nodes with an undo
		want     [][]string
	}{
		{"chain reversed", build("c>b b>a"), "a b c", [][]string{{"c"}, {"b"}, {"a"}}},
		{"through a node without undo", build("c>b b>a"), "a c", [][]string{{"c"}, {"a"}}},
		{"diamond", build("b>a c>a d>b d>c"), "a b c d", [][]string{{"d"}, {"b", "c"}, {"a"}}},
		{"independent", build("", "x", "y"), "x y", [][]string{{"x", "y"}}},
		{"none undoable", build("b>a"), "", nil},
		{"branch without undo", build("b>a c>b d>a"), "a c", [][]string{{"c"}, {"a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := map[string]bool{}
			for _, n := range strings.Fields(tt.undoable) {
				set[n] = true
			}
			got, err := tt.g.Undo(func(n string) bool { return set[n] }).Levels()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("undo levels (-want +got):\n%s", diff)
			}
		})
	}
}

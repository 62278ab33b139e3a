package viewer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/runbookdev/runbook/engine/journal"
	"github.com/runbookdev/runbook/engine/lang"
)

// runbookInfo is what the viewer knows of a run's runbook, loaded from the
// files the run journaled.
type runbookInfo struct {
	actions  map[string]string // step name → plugin.action
	nodes    map[string]string // step name → Mermaid node id of the forward graph
	forward  string            // Mermaid, as `runbook graph -format mermaid`
	rollback string            // Mermaid of the undo order (-rollback)
	err      string            // why there is no graph
	changed  []string          // files that differ from the run's
}

// graphCache keeps each run's runbookInfo: the files are read once.
type graphCache struct {
	mu sync.Mutex
	m  map[string]*runbookInfo
}

// mermaidNode is a node line of a Mermaid flowchart from graph.WriteMermaid:
// `  n3["name<br/>plugin.action"]`.
var mermaidNode = regexp.MustCompile(`(?m)^\s*(n\d+)\["([^"<]*)`)

// runbook loads (once) the runbook run meta ran.
func (s *Server) runbook(meta *journal.Meta) *runbookInfo {
	if meta == nil {
		return &runbookInfo{err: "the run's journal does not say which runbook it ran"}
	}
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	if rb, ok := s.cache.m[meta.ID]; ok {
		return rb
	}
	rb := s.loadRunbook(meta)
	if s.cache.m == nil {
		s.cache.m = map[string]*runbookInfo{}
	}
	s.cache.m[meta.ID] = rb
	return rb
}

func (s *Server) loadRunbook(meta *journal.Meta) *runbookInfo {
	rb := &runbookInfo{actions: map[string]string{}, nodes: map[string]string{}}
	if len(meta.Files) == 0 {
		rb.err = "the run's journal lists no runbook file"
		return rb
	}
	var paths []string
	for _, f := range meta.Files {
		paths = append(paths, f.Path)
		b, err := os.ReadFile(f.Path)
		if err != nil {
			rb.err = fmt.Sprintf("the runbook file %s cannot be read here: %v", f.Path, err)
			return rb
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f.SHA256 {
			rb.changed = append(rb.changed, f.Path)
		}
	}
	cfg, diags := lang.Load(paths...)
	if diags.HasErrors() {
		rb.err = "the runbook does not load: " + diags.Error()
		return rb
	}
	for name, st := range cfg.Steps {
		rb.actions[name] = st.Plugin + "." + st.Action
	}
	graphOf := s.opts.Graph
	if graphOf == nil {
		graphOf = plainGraph
	}
	var err error
	if rb.forward, err = graphOf(cfg, false); err != nil {
		rb.err = "graph: " + err.Error()
		return rb
	}
	if rb.rollback, err = graphOf(cfg, true); err != nil {
		rb.err = "rollback graph: " + err.Error()
		return rb
	}
	for _, m := range mermaidNode.FindAllStringSubmatch(rb.forward, -1) {
		rb.nodes[strings.TrimSpace(m[2])] = m[1]
	}
	if len(rb.changed) > 0 {
		rb.err = ""
	}
	return rb
}

// plainGraph is the graph with step names only (when Options.Graph is nil).
func plainGraph(cfg *lang.Config, rollback bool) (string, error) {
	g := cfg.Graph()
	if rollback {
		g = g.Undo(func(n string) bool { return cfg.Steps[n].Rollback != nil })
	}
	var b strings.Builder
	err := g.WriteMermaid(&b, nil)
	return b.String(), err
}

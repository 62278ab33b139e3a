package graph

import (
	"fmt"
	"io"
	"strings"
)

// Style describes how a node is drawn.
type Style struct {
	Label  string // lines separated by "\n"; default: the node name
	Dashed bool
}

// WriteDot renders g in Graphviz DOT. Edges point in execution order: from
// a dependency to the node that waits for it.
func (g *Graph) WriteDot(w io.Writer, title string, style func(string) Style) error {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(title))
	b.WriteString("  rankdir = \"TB\";\n  node [shape = box, fontname = \"sans-serif\"];\n")
	for _, n := range g.nodes {
		st := nodeStyle(n, style)
		attrs := "label = " + dotQuote(st.Label)
		if st.Dashed {
			attrs += ", style = dashed"
		}
		fmt.Fprintf(&b, "  %s [%s];\n", dotQuote(n), attrs)
	}
	for _, n := range g.nodes {
		for _, d := range g.deps[n] {
			fmt.Fprintf(&b, "  %s -> %s;\n", dotQuote(d), dotQuote(n))
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMermaid renders g as a Mermaid flowchart (rendered by GitHub and
// GitLab in Markdown), edges in execution order.
func (g *Graph) WriteMermaid(w io.Writer, style func(string) Style) error {
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	ids := map[string]string{}
	for i, n := range g.nodes {
		ids[n] = fmt.Sprintf("n%d", i)
	}
	for _, n := range g.nodes {
		st := nodeStyle(n, style)
		label := mermaidEscape(st.Label)
		fmt.Fprintf(&b, "  %s[\"%s\"]\n", ids[n], label)
	}
	for _, n := range g.nodes {
		for _, d := range g.deps[n] {
			fmt.Fprintf(&b, "  %s --> %s\n", ids[d], ids[n])
		}
	}
	for _, n := range g.nodes {
		if nodeStyle(n, style).Dashed {
			fmt.Fprintf(&b, "  style %s stroke-dasharray: 5 5\n", ids[n])
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func nodeStyle(n string, style func(string) Style) Style {
	var st Style
	if style != nil {
		st = style(n)
	}
	if st.Label == "" {
		st.Label = n
	}
	return st
}

func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

func mermaidEscape(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;", "\n", "<br/>")
	return r.Replace(s)
}

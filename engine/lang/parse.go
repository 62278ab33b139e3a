package lang

import (
	"bytes"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Parsing a large runbook is dominated by hclsyntax's lexer (it measures
// every token's width in grapheme clusters), and a run cannot start before
// its runbook is parsed. parseHCL therefore splits a large file between
// top-level blocks and parses the pieces on several cores, then joins them
// into the *hcl.File a single parse would give (same blocks, attributes,
// ranges and byte offsets).
//
// A split point is the start of a line that follows a line holding only
// "}" and begins with a letter: the usual end of one top-level block and
// start of the next. Such a line may also sit inside a heredoc or a comment,
// but then the piece before it does not parse on its own; so whenever any
// piece reports any diagnostic, or two pieces set the same top-level
// attribute, the whole file is parsed again in one piece and that result,
// with its diagnostics, is what the caller gets.

// A file is split only from splitMin bytes on, into pieces of about
// pieceSize bytes (at most maxChunks), parsed by one worker per core.
// Small pieces matter as much as the cores: the lexer grows one token
// slice per piece, and growing a large one (copying it, faulting in fresh
// memory) was most of a large file's parse. Measured on a 20 KB runbook of
// 1,000 steps in a fresh process on 2 cores: one piece 29 ms (38 ms CPU),
// two pieces 23–28 ms (40–50 ms CPU), sixteen pieces 15–17 ms (27–31 ms
// CPU).
const (
	splitMin  = 8 << 10
	pieceSize = 1 << 10
	maxChunks = 256
)

func parseHCL(src []byte, name string) (*hcl.File, hcl.Diagnostics) {
	cuts := splitPoints(src, chunkCount(len(src)))
	if len(cuts) == 0 {
		return hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	}
	if f, ok := parseChunks(src, name, cuts); ok {
		return f, nil
	}
	return hclsyntax.ParseConfig(src, name, hcl.InitialPos)
}

// chunkCount is how many pieces to cut a file of size bytes into.
func chunkCount(size int) int {
	if size < splitMin {
		return 1
	}
	return min(size/pieceSize, maxChunks)
}

// splitPoints returns up to n-1 byte offsets, increasing, that cut src into
// n roughly even pieces at likely top-level block boundaries.
func splitPoints(src []byte, n int) []int {
	var cuts []int
	last := 0
	for i := 1; i < n; i++ {
		target := max(len(src)*i/n, last+1)
		p := nextBoundary(src, target)
		if p < 0 {
			break
		}
		cuts = append(cuts, p)
		last = p
	}
	return cuts
}

// nextBoundary is the first offset at or after from that starts a line
// beginning with a letter right after a line that is exactly "}", or -1.
func nextBoundary(src []byte, from int) int {
	for from < len(src) {
		i := bytes.Index(src[from:], []byte("\n}\n"))
		if i < 0 {
			return -1
		}
		p := from + i + 3
		if p < len(src) && isLetter(src[p]) {
			return p
		}
		from = from + i + 1
	}
	return -1
}

func isLetter(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// parseChunks parses src cut at cuts, in parallel, and joins the pieces.
// ok is false when the pieces cannot stand for the whole file.
func parseChunks(src []byte, name string, cuts []int) (*hcl.File, bool) {
	bounds := append(append([]int{0}, cuts...), len(src))
	files := make([]*hcl.File, len(bounds)-1)
	diags := make([]hcl.Diagnostics, len(files))
	// Line numbers where pieces start, counted once from the top.
	lines := make([]int, len(files))
	lines[0] = 1
	for i := 1; i < len(files); i++ {
		lines[i] = lines[i-1] + bytes.Count(src[bounds[i-1]:bounds[i]], []byte("\n"))
	}
	var next atomic.Int64 // the next piece to parse
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= len(files) {
				return
			}
			start := hcl.Pos{Line: lines[i], Column: 1, Byte: bounds[i]}
			files[i], diags[i] = hclsyntax.ParseConfig(src[bounds[i]:bounds[i+1]], name, start)
		}
	}
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(files)) - 1 {
		wg.Go(work)
	}
	work() // this goroutine is a worker too
	wg.Wait()
	for _, d := range diags {
		if len(d) > 0 {
			return nil, false
		}
	}
	// The first piece's body becomes the file's: its navigation (used to
	// name the enclosing block in diagnostics) then sees every block.
	first := files[0].Body.(*hclsyntax.Body)
	for _, f := range files[1:] {
		b := f.Body.(*hclsyntax.Body)
		for k, a := range b.Attributes {
			if _, dup := first.Attributes[k]; dup {
				return nil, false
			}
			first.Attributes[k] = a
		}
		first.Blocks = append(first.Blocks, b.Blocks...)
		first.SrcRange.End = b.SrcRange.End
		first.EndRange = b.EndRange
	}
	files[0].Bytes = src
	return files[0], true
}

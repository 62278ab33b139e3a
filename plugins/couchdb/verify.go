package couchdb

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/zclconf/go-cty/cty"
	"golang.org/x/sync/errgroup"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// verifyReport is the outcome of comparing a source and a target database.
type verifyReport struct {
	SrcDB, DstDB string
	// IgnoreCounts: only missing revisions make the report fail (the
	// target may hold fewer live documents on purpose, e.g. after a
	// cleanup deleted copied ones).
	IgnoreCounts bool
	SrcCount     int64
	DstCount     int64
	Checked      int64 // documents whose revisions were compared
	MissingRevs  int64
	MissingIDs   []string // first few
}

func (r verifyReport) ok() bool {
	return r.MissingRevs == 0 && (r.IgnoreCounts || r.DstCount >= r.SrcCount)
}

func (r verifyReport) summary() string {
	s := fmt.Sprintf("%s: source %d docs, target %d docs", r.SrcDB, r.SrcCount, r.DstCount)
	if r.Checked > 0 || r.MissingRevs > 0 {
		s += fmt.Sprintf(", %d documents compared, %d revisions missing on the target", r.Checked, r.MissingRevs)
	}
	if len(r.MissingIDs) > 0 {
		s += " (e.g. " + strings.Join(r.MissingIDs, ", ") + ")"
	}
	if r.DstCount < r.SrcCount {
		s += ", the target has fewer documents"
	}
	return s
}

// compareDB compares counts and, when revs is set, asks the target which
// leaf revisions of the source's documents it lacks: all of them, or every
// n-th document for a sample of about sample documents.
func compareDB(ctx context.Context, src, dst *Client, srcDB, dstDB string, revs bool, sample int64, workers int) (verifyReport, error) {
	rep := verifyReport{SrcDB: srcDB, DstDB: dstDB}
	si, err := src.DBInfo(ctx, srcDB)
	if err != nil {
		return rep, fmt.Errorf("source %s: %w", srcDB, err)
	}
	di, err := dst.DBInfo(ctx, dstDB)
	if err != nil {
		return rep, fmt.Errorf("target %s: %w", dstDB, err)
	}
	rep.SrcCount, rep.DstCount = si.DocCount, di.DocCount
	if !revs {
		return rep, nil
	}
	step := int64(1)
	if total := si.DocCount + si.DocDelCount; sample > 0 && total > sample {
		step = total / sample
	}
	if workers <= 0 {
		workers = 4
	}
	// The first failed comparison cancels gctx: the reading of changes and
	// the other comparisons stop.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	var (
		mu      sync.Mutex // guards rep's counters
		readErr error
		since   []byte
		i       int64
	)
	for {
		page, err := src.Changes(gctx, srcDB, since, 1000)
		if err != nil {
			readErr = fmt.Errorf("read changes of %s: %w", srcDB, err)
			break
		}
		if len(page.Results) == 0 {
			break
		}
		since = page.LastSeq
		want := map[string][]string{}
		for _, ch := range page.Results {
			if i%step == 0 && ch.ID != "" {
				want[ch.ID] = ch.Revs()
			}
			i++
		}
		g.Go(func() error {
			missing, err := dst.RevsDiff(gctx, dstDB, want)
			if err != nil {
				return fmt.Errorf("compare revisions of %s: %w", dstDB, err)
			}
			ids := make([]string, 0, len(missing))
			var nMissing int64
			for id, m := range missing {
				nMissing += int64(len(m))
				ids = append(ids, id)
			}
			sort.Strings(ids)
			mu.Lock()
			defer mu.Unlock()
			rep.Checked += int64(len(want))
			rep.MissingRevs += nMissing
			for _, id := range ids {
				if len(rep.MissingIDs) < 10 {
					rep.MissingIDs = append(rep.MissingIDs, id)
				}
			}
			return nil
		})
	}
	werr := g.Wait()
	// The first error wins: a comparison's, unless the changes could not be
	// read for a reason of their own (not the cancellation it caused).
	if readErr != nil && (werr == nil || !errors.Is(readErr, context.Canceled)) {
		return rep, readErr
	}
	return rep, werr
}

// verifyAction is couchdb.verify.
type verifyAction struct{}

var (
	_ sdk.Action    = verifyAction{}
	_ sdk.Validator = verifyAction{}
)

func (verifyAction) Schema() sdk.ActionSchema {
	in := append(connAttrs("source_", "source"), connAttrs("target_", "target")...)
	in = append(in, databaseAttrs...)
	in = append(in,
		sdk.Attribute{Name: "sample", Type: cty.Number, Description: "Compare the revisions of about this many documents per database (default 0 = all)."},
		sdk.Attribute{Name: "revisions", Type: cty.Bool, Description: "Compare revisions with _revs_diff (default true); false compares counts only."},
		sdk.Attribute{Name: "fail_on_mismatch", Type: cty.Bool, Description: "Fail the step when a database differs (default true)."},
		sdk.Attribute{Name: "compare_counts", Type: cty.Bool, Description: "Also require the target to hold at least as many documents as the source (default true); false when documents were deleted on purpose after the copy."},
	)
	return sdk.ActionSchema{
		Name:        "verify",
		Description: "Compare databases on two servers: document counts and missing revisions.",
		Inputs:      in,
		Outputs: []sdk.Attribute{
			{Name: "ok", Type: cty.Bool, Description: "Every database matched."},
			{Name: "missing_revisions", Type: cty.Number},
			{Name: "report", Type: cty.List(cty.Object(map[string]cty.Type{
				"database": cty.String, "source_docs": cty.Number, "target_docs": cty.Number,
				"compared": cty.Number, "missing_revisions": cty.Number, "missing_ids": cty.List(cty.String),
			})), Description: "One entry per database."},
		},
		Capabilities: sdk.Capabilities{ReadOnly: true, Idempotent: true},
	}
}

func (verifyAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	d := validateDatabases(in)
	d = append(d, validateURL(in, "source_url")...)
	return append(d, validateURL(in, "target_url")...)
}

type verifyEntry struct {
	Database    string   `cty:"database"`
	SourceDocs  int64    `cty:"source_docs"`
	TargetDocs  int64    `cty:"target_docs"`
	Compared    int64    `cty:"compared"`
	MissingRevs int64    `cty:"missing_revisions"`
	MissingIDs  []string `cty:"missing_ids"`
}

func (a verifyAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	src, dst, dbs, err := openPair(ctx, req.Inputs)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	defer dst.Close()
	sample, _ := ctyx.IntAttr(req.Inputs, "sample", 0)
	revs := ctyx.BoolAttr(req.Inputs, "revisions", true)
	var out struct {
		OK      bool          `cty:"ok"`
		Missing int64         `cty:"missing_revisions"`
		Report  []verifyEntry `cty:"report"`
	}
	out.OK = true
	var bad []string
	for i, db := range dbs {
		rep, err := compareDB(ctx, src, dst, db, db, revs, sample, 4)
		if err != nil {
			return nil, err
		}
		rep.IgnoreCounts = !ctyx.BoolAttr(req.Inputs, "compare_counts", true)
		ev.Log(sdk.LevelInfo, rep.summary())
		ev.Progress(int64(i+1), int64(len(dbs)), "databases")
		ids := rep.MissingIDs
		if ids == nil {
			ids = []string{}
		}
		out.Report = append(out.Report, verifyEntry{db, rep.SrcCount, rep.DstCount, rep.Checked, rep.MissingRevs, ids})
		out.Missing += rep.MissingRevs
		if !rep.ok() {
			out.OK = false
			bad = append(bad, rep.summary())
		}
	}
	v, err := sdk.Encode(a.Schema(), out)
	if err != nil {
		return nil, err
	}
	res := &sdk.Result{Outputs: v}
	if !out.OK && ctyx.BoolAttr(req.Inputs, "fail_on_mismatch", true) {
		return res, sdk.Errorf(sdk.KindConflict, false, "replicate again (it resumes and fills the gaps), then verify", "databases differ: %s", strings.Join(bad, "; "))
	}
	return res, nil
}

package swift

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ncw/swift/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/internal/ctyx"
	"github.com/runbookdev/runbook/sdk"
)

// copyAction is swift.copy.
type copyAction struct{}

var (
	_ sdk.Action    = copyAction{}
	_ sdk.Validator = copyAction{}
	_ sdk.Undoer    = copyAction{}
	_ sdk.Planner   = copyAction{}
)

func (copyAction) Schema() sdk.ActionSchema {
	in := append(connAttrs("source_", "source"), connAttrs("target_", "target")...)
	in = append(in,
		sdk.Attribute{Name: "target_dir", Type: cty.String, Description: "Copy to this local directory instead of a Swift account: one directory per container, object names with `/` as subdirectories, mtimes set, and content types and metadata in `.swift-meta/CONTAINER.json`."},
		sdk.Attribute{Name: "containers", Type: cty.List(cty.String), Description: "Containers to copy (default: every container of the source account)."},
		sdk.Attribute{Name: "prefix", Type: cty.String, Description: "Only objects whose names start with this."},
		sdk.Attribute{Name: "parallel_threshold", Type: cty.Number, Description: "Plain objects from this many bytes are read in ranges (default 64 MiB; 0 turns it off): to a local directory 4 ranges at once, their MD5 still computed in order as the data arrives and checked against the ETag; to Swift the first MiB then the rest, so the source's object server hashes the object once instead of twice (the target still checks the whole object against the ETag). Later ranges are asked If-Match the first's ETag: an object replaced mid-copy is retried, never mixed."},
		sdk.Attribute{Name: "workers", Type: cty.Number, Description: "Objects in flight at once (default 12)."},
		sdk.Attribute{Name: "checkpoint_interval", Type: cty.String, Description: `Least time between two checkpoints (default "5s").`},
	)
	return sdk.ActionSchema{
		Name: "copy",
		Description: "Copy containers, or a whole account, to another Swift account or a local directory, every byte checked. " +
			"Objects keep their `X-Object-Meta-*` metadata, content type and mtime (`X-Object-Meta-Mtime`, else the source's timestamp). " +
			"Plain objects are checked against their MD5 (the target checks the ETag sent with each PUT; a local copy is hashed as it is written); " +
			"DLO and SLO objects are copied as their segments, each checked, plus a recreated manifest whose ETag must match the source's. " +
			"Objects already at the target with the same ETag are skipped, so a rerun or a resumed run continues where it stopped. " +
			"Swift tokens refused mid-copy (401: a gateway sends no expiry) are renewed (tempauth, gateway or HubiC inputs) and the object retried; " +
			"transient answers (408, 409, 429, 5xx) are retried up to five times, no sooner than Swift's Retry-After. " +
			"Undo deletes, by bulk delete, only the objects and containers this step created, and only if they are unchanged since (else `conflict`, unless forced).",
		Inputs: in,
		Outputs: []sdk.Attribute{
			{Name: "containers", Type: cty.List(cty.String), Description: "Containers copied."},
			{Name: "objects", Type: cty.Number, Description: "Objects in the copied containers (including those already there)."},
			{Name: "bytes", Type: cty.Number, Description: "Bytes of those objects."},
			{Name: "copied", Type: cty.Number, Description: "Objects written by this attempt."},
			{Name: "copied_bytes", Type: cty.Number, Description: "Bytes written by this attempt."},
			{Name: "skipped", Type: cty.Number, Description: "Objects already at the target with the same ETag."},
			{Name: "large_objects", Type: cty.Number, Description: "DLO and SLO manifests recreated."},
			{Name: "replaced", Type: cty.Number, Description: "Objects that existed at the target with other content and were overwritten (undo cannot bring those back)."},
			{Name: "created_containers", Type: cty.List(cty.String), Description: "Containers (or directories) this step created."},
		},
		Capabilities:   sdk.Capabilities{Idempotent: true},
		MaxConcurrency: 2,
	}
}

func (copyAction) Validate(_ context.Context, in cty.Value) sdk.Diagnostics {
	d := validateConn(in, "source_", true)
	dir := ctyx.Attr(in, "target_dir")
	if dir.IsKnown() && !dir.IsNull() {
		if connFrom(in, "target_").given() {
			d = d.Errorf([]string{"target_dir"}, "give target_dir or a target account, not both")
		}
	} else if dir.IsKnown() {
		d = append(d, validateConn(in, "target_", true)...)
	}
	if v := ctyx.Attr(in, "checkpoint_interval"); v.IsKnown() && !v.IsNull() {
		if _, err := time.ParseDuration(v.AsString()); err != nil {
			d = d.Errorf([]string{"checkpoint_interval"}, "not a duration: %v", err)
		}
	}
	if n := intAttr(in, "parallel_threshold", defaultRangedThreshold); n < 0 {
		d = d.Errorf([]string{"parallel_threshold"}, "parallel_threshold must be 0 (off) or a size in bytes")
	}
	if w := intAttr(in, "workers", 12); w < 1 || w > 256 {
		d = d.Errorf([]string{"workers"}, "workers must be between 1 and 256")
	}
	return d
}

// copyState is the checkpoint and the undo state: what this step created
// at the target, with the ETag it left, so undo deletes nothing else.
type copyState struct {
	V      int    `json:"v"`
	Target string `json:"target"` // storage URL or directory
	// Containers this step created.
	Containers []string `json:"containers,omitempty"`
	// Objects this step created (not those it replaced): container →
	// name → ETag.
	Objects map[string]map[string]string `json:"objects,omitempty"`
	// Existing are the names each target container held before the step
	// wrote anything (journaled first): an object found at the target on
	// a resumed attempt that is not among them was written by an earlier
	// attempt (whose answer, or checkpoint, was lost) and is the step's.
	Existing map[string][]string `json:"existing,omitempty"`
}

func (s *copyState) add(cont, name, etag string) {
	if s.Objects == nil {
		s.Objects = map[string]map[string]string{}
	}
	m := s.Objects[cont]
	if m == nil {
		m = map[string]string{}
		s.Objects[cont] = m
	}
	m[name] = etag
}

// obj is one source object to copy.
type obj struct {
	cont, name  string
	bytes       int64
	hash        string
	contentType string
	slo         bool
}

// copyRun is one Apply.
type copyRun struct {
	src    *swift.Connection
	dst    target
	ev     sdk.Events
	prefix string
	// rangedMin is the size from which plain objects are read in ranges
	// (0: never): parallel ones to a directory, two in turn to Swift.
	rangedMin int64

	mu    sync.Mutex // guards state, existing, large and the counters below it
	state copyState
	// existing is state.Existing as sets.
	existing map[string]map[string]bool
	// large are the DLO and SLO manifests, copied after the plain objects
	// (their segments may be among them).
	large    []obj
	replaced int64

	objects, bytes    int64 // totals of the listings
	done, doneBytes   atomic.Int64
	copied, copiedB   atomic.Int64
	skipped, largeCnt atomic.Int64
}

func (a copyAction) Apply(ctx context.Context, req *sdk.ApplyRequest, ev sdk.Events) (*sdk.Result, error) {
	in := req.Inputs
	if d := a.Validate(ctx, in); d.HasErrors() {
		return nil, d.Err()
	}
	src, err := connFrom(in, "source_").connect(ctx)
	if err != nil {
		return nil, err
	}
	dst, err := openTarget(ctx, in)
	if err != nil {
		return nil, err
	}
	every := 5 * time.Second
	if s := ctyx.StringAttr(in, "checkpoint_interval"); s != "" {
		every, _ = time.ParseDuration(s)
	}
	r := &copyRun{src: src, dst: dst, ev: ev, prefix: ctyx.StringAttr(in, "prefix"), state: copyState{V: 1, Target: dst.id()},
		rangedMin: int64(intAttr(in, "parallel_threshold", defaultRangedThreshold))}
	if len(req.Checkpoint) > 0 {
		var prev copyState
		if json.Unmarshal(req.Checkpoint, &prev) == nil && prev.Target == r.state.Target {
			r.state = prev
			ev.Log(sdk.LevelInfo, fmt.Sprintf("resuming: %s created by the interrupted attempt", plural(prev.count(), "object")))
		}
	}
	containers := strList(in, "containers")
	if len(containers) == 0 {
		names, err := src.ContainerNamesAll(ctx, nil)
		if err != nil {
			return nil, classify(err, "list the source's containers")
		}
		containers = names
	}
	res, err := r.run(ctx, containers, intAttr(in, "workers", 12), every)
	return res, err
}

func (s *copyState) count() int64 {
	var n int64
	for _, m := range s.Objects {
		n += int64(len(m))
	}
	return n
}

func (r *copyRun) snapshot() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, _ := json.Marshal(r.state)
	return b
}

func (r *copyRun) result(containers []string) *sdk.Result {
	r.mu.Lock()
	created := append([]string{}, r.state.Containers...)
	replaced := r.replaced
	r.mu.Unlock()
	out := cty.ObjectVal(map[string]cty.Value{
		"containers":         stringList(containers),
		"objects":            cty.NumberIntVal(r.objects),
		"bytes":              cty.NumberIntVal(r.bytes),
		"copied":             cty.NumberIntVal(r.copied.Load()),
		"copied_bytes":       cty.NumberIntVal(r.copiedB.Load()),
		"skipped":            cty.NumberIntVal(r.skipped.Load()),
		"large_objects":      cty.NumberIntVal(r.largeCnt.Load()),
		"replaced":           cty.NumberIntVal(replaced),
		"created_containers": stringList(created),
	})
	return &sdk.Result{Outputs: out, UndoState: r.snapshot()}
}

func stringList(ss []string) cty.Value {
	if len(ss) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	vs := make([]cty.Value, len(ss))
	for i, s := range ss {
		vs[i] = cty.StringVal(s)
	}
	return cty.ListVal(vs)
}

func (r *copyRun) run(ctx context.Context, containers []string, workers int, every time.Duration) (*sdk.Result, error) {
	// List every container first: totals for progress, and the target's
	// state for skipping what is already there.
	var todo []obj
	for _, cont := range containers {
		hdr, err := r.containerHeaders(ctx, cont)
		if err != nil {
			return r.result(containers), err
		}
		created, err := r.dst.ensureContainer(ctx, cont, hdr)
		if err != nil {
			return r.result(containers), err
		}
		if created {
			r.mu.Lock()
			r.state.Containers = appendNew(r.state.Containers, cont)
			r.mu.Unlock()
		}
		if err := r.dst.load(ctx, cont); err != nil {
			return r.result(containers), err
		}
		r.noteExisting(cont)
		err = walkObjects(ctx, r.src, cont, &swift.ObjectsOpts{Prefix: r.prefix}, func(o swift.Object) error {
			todo = append(todo, obj{cont: cont, name: o.Name, bytes: o.Bytes, hash: o.Hash, contentType: o.ContentType, slo: o.SLOHash != ""})
			r.objects++
			r.bytes += o.Bytes
			return nil
		})
		if err != nil {
			return r.result(containers), classify(err, "list source container "+cont)
		}
	}
	// The created containers are journaled before anything is written in
	// them.
	if err := r.ev.Checkpoint(r.snapshot()); err != nil {
		return r.result(containers), err
	}
	r.ev.Log(sdk.LevelInfo, fmt.Sprintf("copying %s (%s) from %s", plural(r.objects, "object"), humanBytes(r.bytes), plural(int64(len(containers)), "container")))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopTicker := r.tick(ctx, every)
	err := r.pool(ctx, workers, todo, r.copyPlain)
	if err == nil {
		r.mu.Lock()
		large := r.large
		r.mu.Unlock()
		err = r.pool(ctx, workers, large, r.copyLarge)
	}
	stopTicker()
	for _, cont := range containers {
		if ferr := r.dst.finish(cont); ferr != nil && err == nil {
			err = ferr
		}
	}
	res := r.result(containers)
	if cerr := r.ev.Checkpoint(res.UndoState); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return res, err
	}
	r.ev.Log(sdk.LevelInfo, fmt.Sprintf("copied %s (%s), %s already there, %s recreated",
		plural(r.copied.Load(), "object"), humanBytes(r.copiedB.Load()), plural(r.skipped.Load(), "object"), plural(r.largeCnt.Load(), "large object")))
	return res, nil
}

// containerHeaders are the source container's metadata to copy.
func (r *copyRun) containerHeaders(ctx context.Context, cont string) (swift.Headers, error) {
	_, h, err := r.src.Container(ctx, cont)
	if err != nil {
		return nil, classify(err, "source container "+cont)
	}
	out := swift.Headers{}
	for k, v := range h {
		if strings.HasPrefix(strings.ToLower(k), "x-container-meta-") && !strings.EqualFold(k, "X-Container-Meta-Quota-Bytes") && !strings.EqualFold(k, "X-Container-Meta-Quota-Count") {
			out[k] = v
		}
	}
	return out, nil
}

// tick emits progress every second and a checkpoint every interval until
// the returned function is called.
func (r *copyRun) tick(ctx context.Context, every time.Duration) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				r.progress()
				return
			case <-ctx.Done():
				return
			case <-t.C:
				r.progress()
				if every > 0 && time.Since(last) >= every {
					last = time.Now()
					_ = r.ev.Checkpoint(r.snapshot())
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (r *copyRun) progress() {
	r.ev.Progress(r.done.Load(), r.objects, "objects")
	r.ev.Progress(r.doneBytes.Load(), r.bytes, "bytes")
}

// pool runs f on every item with n workers; the first error stops it.
func (r *copyRun) pool(parent context.Context, n int, items []obj, f func(context.Context, obj) error) error {
	if len(items) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	ch := make(chan obj)
	var wg sync.WaitGroup
	for i := 0; i < n && i < len(items); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range ch {
				if err := retrying(ctx, o, f); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
feed:
	for _, o := range items {
		select {
		case ch <- o:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if parent.Err() != nil {
		return sdk.Errorf(sdk.KindCancelled, false, "", "copy cancelled: %v", parent.Err())
	}
	return context.Cause(ctx)
}

// retrying runs f on o with retry.
func retrying(ctx context.Context, o obj, f func(context.Context, obj) error) error {
	return retry(ctx, "copy "+o.cont+"/"+o.name, func(ctx context.Context) error { return f(ctx, o) })
}

// retry runs f, again after a retryable failure (Swift restarting, a
// token renewed, a checksum mismatch; the statuses rclone retries: 401
// once renewed, 408, 409, 429, 5xx) with a growing pause, or longer when
// Swift sent a Retry-After, five times at most.
func retry(ctx context.Context, what string, f func(context.Context) error) error {
	pause := retryPause
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return sdk.Errorf(sdk.KindCancelled, false, "", "%s: %v", what, ctx.Err())
		}
		e := sdk.Classify(err)
		// A 401 on a body that could not be sent again: the connection has
		// renewed its token by now.
		again := e.Retryable || (e.Kind == sdk.KindAuth && attempt == 1 && strings.Contains(err.Error(), "401"))
		if !again || attempt >= 6 {
			return err
		}
		select {
		case <-time.After(max(pause, retryAfterWait())):
		case <-ctx.Done():
			return sdk.Errorf(sdk.KindCancelled, false, "", "%s: %v", what, ctx.Err())
		}
		if pause < 5*time.Second {
			pause *= 2
		}
	}
}

// retryPause is the first pause before an object is tried again.
var retryPause = 300 * time.Millisecond

// afterWrite, when set (tests), is called after each object written with
// the number written so far.
var afterWrite func(n int64)

// copyHeaders are the object headers a copy keeps: content type and
// encoding, disposition, X-Object-Meta-*, and X-Object-Meta-Mtime from the
// source's timestamp when the object has none.
func copyHeaders(h swift.Headers) swift.Headers {
	out := swift.Headers{}
	for k, v := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-object-meta-") || lk == "content-encoding" || lk == "content-disposition" {
			out[k] = v
		}
	}
	if _, ok := h.ObjectMetadata()["mtime"]; !ok {
		if ts := h["X-Timestamp"]; ts != "" {
			out["X-Object-Meta-Mtime"] = ts
		}
	}
	return out
}

// mtimeOf is the object's mtime: X-Object-Meta-Mtime, else X-Timestamp,
// else Last-Modified.
func mtimeOf(h swift.Headers) time.Time {
	for _, k := range []string{"X-Object-Meta-Mtime", "X-Timestamp"} {
		if v := h[k]; v != "" {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				sec := int64(f)
				return time.Unix(sec, int64((f-float64(sec))*1e9))
			}
		}
	}
	if t, err := time.Parse(time.RFC1123, h["Last-Modified"]); err == nil {
		return t
	}
	return time.Time{}
}

func unquote(etag string) string { return strings.ToLower(strings.Trim(etag, `"`)) }

// copyPlain copies one object of the listing, or puts it aside when it is
// a large object's manifest.
func (r *copyRun) copyPlain(ctx context.Context, o obj) error {
	if o.slo {
		r.setAside(o)
		return nil
	}
	if o.bytes == 0 {
		// A DLO manifest lists as 0 bytes: only a HEAD tells.
		_, h, err := r.src.Object(ctx, o.cont, o.name)
		if err != nil {
			return classify(err, "head "+o.cont+"/"+o.name)
		}
		if h["X-Object-Manifest"] != "" || h["X-Static-Large-Object"] != "" {
			r.setAside(o)
			return nil
		}
	}
	if r.dst.has(o.cont, o.name, o.hash, o.bytes) {
		r.skip(o)
		return nil
	}
	if _, local := r.dst.(*localTarget); local && r.rangedMin > 0 && o.bytes >= r.rangedMin {
		aside, err := r.copyRanged(ctx, o)
		if aside || err != nil {
			return err
		}
	} else if err := r.copyObject(ctx, o.cont, o.name, o.bytes); errors.Is(err, errLargeObject) {
		r.setAside(o)
		return nil
	} else if err != nil {
		return err
	}
	r.wrote(o)
	return nil
}

// noteExisting records, once per container and before any write, what
// the target container held.
func (r *copyRun) noteExisting(cont string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state.Existing == nil {
		r.state.Existing = map[string][]string{}
	}
	names, ok := r.state.Existing[cont]
	if !ok {
		names = r.dst.names(cont)
		r.state.Existing[cont] = names
	}
	if r.existing == nil {
		r.existing = map[string]map[string]bool{}
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	r.existing[cont] = set
}

// mark records an object the step wrote (wrote) or found already there,
// for undo: unless the target held it before the step, it is the step's.
func (r *copyRun) mark(cont, name, etag string, wrote bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.state.Objects[cont][name] != "" || !r.existing[cont][name]:
		r.state.add(cont, name, etag)
	case wrote:
		r.replaced++
	}
}

func (r *copyRun) setAside(o obj) {
	r.mu.Lock()
	r.large = append(r.large, o)
	r.mu.Unlock()
}

func (r *copyRun) skip(o obj) {
	r.mark(o.cont, o.name, o.hash, false)
	r.skipped.Add(1)
	r.done.Add(1)
	r.doneBytes.Add(o.bytes)
}

// wrote counts a written object and records it for undo when it is new.
func (r *copyRun) wrote(o obj) {
	n := r.copied.Add(1)
	if afterWrite != nil {
		defer afterWrite(n)
	}
	r.copiedB.Add(o.bytes)
	r.done.Add(1)
	r.doneBytes.Add(o.bytes)
	r.mark(o.cont, o.name, o.hash, true)
}

// copyObject copies a plain object (or segment) of the listed size.
func (r *copyRun) copyObject(ctx context.Context, cont, name string, listed int64) error {
	split := r.rangedMin > 0 && listed >= r.rangedMin
	var rh swift.Headers
	if split {
		rh = swift.Headers{"Range": fmt.Sprintf("bytes=0-%d", headRange-1)}
	}
	f, h, err := r.src.ObjectOpen(ctx, cont, name, false, rh)
	var se *swift.Error
	if split && errors.As(err, &se) && se.StatusCode == 416 {
		// Emptied since the listing: nothing to range.
		return r.copyObject(ctx, cont, name, 0)
	}
	if err != nil {
		return classify(err, "get "+cont+"/"+name)
	}
	defer f.Close()
	// The ETag of what is there now (the object may have changed since
	// the listing); the target checks the bytes against it.
	etag := unquote(h["Etag"])
	size, _ := strconv.ParseInt(h["Content-Length"], 10, 64)
	var body io.Reader = f
	if total, ok := contentRangeTotal(h["Content-Range"]); split && ok {
		if h.IsLargeObject() {
			return errLargeObject
		}
		size = total
		if total > headRange {
			tail := &tailRange{ctx: ctx, c: r.src, cont: cont, name: name, etag: h["Etag"], off: headRange}
			defer tail.close()
			body = io.MultiReader(f, tail)
		}
	}
	return r.dst.put(ctx, putReq{cont: cont, name: name, body: body, size: size, etag: etag,
		contentType: h["Content-Type"], headers: copyHeaders(h), mtime: mtimeOf(h)})
}

func appendNew(ss []string, s string) []string {
	for _, x := range ss {
		if x == s {
			return ss
		}
	}
	return append(ss, s)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// Plan lists what the copy would do: objects and bytes per container.
func (copyAction) Plan(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	in := req.Inputs
	if !in.IsWhollyKnown() {
		return &sdk.PlanResult{Summary: "copy Swift objects (inputs known only at apply time)"}, nil
	}
	src, err := connFrom(in, "source_").connect(ctx)
	if err != nil {
		return nil, err
	}
	containers := strList(in, "containers")
	var cs []swift.Container
	if len(containers) == 0 {
		if cs, err = src.ContainersAll(ctx, nil); err != nil {
			return nil, classify(err, "list containers")
		}
	} else {
		for _, c := range containers {
			info, _, err := src.Container(ctx, c)
			if err != nil {
				return nil, classify(err, "container "+c)
			}
			cs = append(cs, info)
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	var n, b int64
	var details []string
	for _, c := range cs {
		n += c.Count
		b += c.Bytes
		details = append(details, fmt.Sprintf("%s: %s, %s", c.Name, plural(c.Count, "object"), humanBytes(c.Bytes)))
	}
	return &sdk.PlanResult{Summary: fmt.Sprintf("copy %s (%s) in %s", plural(n, "object"), humanBytes(b), plural(int64(len(cs)), "container")),
		Counts: map[string]int64{"objects": n, "bytes": b, "containers": int64(len(cs))}, Details: details}, nil
}

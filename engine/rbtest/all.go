package rbtest

import (
	"context"
	"errors"
	"sync"
	"time"
)

// RunFiles loads and runs test files, parallel at once (at least one),
// with the sweeps asked for on top of those each file declares. done, when
// set, is called with each file's result as soon as it is known (from the
// goroutine that ran it, one call at a time). The results are in the
// order of paths.
func RunFiles(ctx context.Context, paths []string, parallel int, opts Options, sweeps []string, done func(*FileResult)) []*FileResult {
	if parallel < 1 {
		parallel = 1
	}
	out := make([]*FileResult, len(paths))
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			fr := RunFile(ctx, p, opts, sweeps)
			out[i] = fr
			if done != nil {
				mu.Lock()
				done(fr)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// RunFile loads one test file and runs its tests.
func RunFile(ctx context.Context, path string, opts Options, sweeps []string) *FileResult {
	start := time.Now()
	fr := &FileResult{Path: path}
	opts.Sweeps = sweeps
	s, err := Load(path, opts)
	if err != nil {
		var de *DiagError
		if errors.As(err, &de) {
			fr.Diags, fr.Files = de.Diags, de.Files
		} else {
			fr.Err = err
		}
		fr.Duration = time.Since(start)
		return fr
	}
	defer s.Close()
	fr.Results = s.Run(ctx, sweeps...)
	fr.Duration = time.Since(start)
	return fr
}

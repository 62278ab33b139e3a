package couchdb

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/runbookdev/runbook/internal/testenv"
	"github.com/runbookdev/runbook/sdk"
)

// BenchmarkReplicate compares the plugin's replication with the server's
// own /_replicate between two server processes, on the same data in the
// same run; the figures reported are averages over the rounds. Run with
// scripts/bench.d/couchdb.sh (make bench).
func BenchmarkReplicate(b *testing.B) {
	for _, tc := range []struct {
		name   string
		docs   int
		attach int // attachment bytes per document
	}{
		{"small-20000", 20000, 0},
		{"attach100k-500", 500, 100 << 10},
	} {
		b.Run(tc.name, func(b *testing.B) {
			src, dst := testenv.StartCouchDB(b), testenv.StartCouchDB(b)
			sc, err := NewClient(src.URL, src.Username, src.Password)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			rounds := benchRounds()
			seedBench(b, sc, "bench", tc.docs, tc.attach)
			p := sdk.Local(New())
			dc, err := NewClient(dst.URL, dst.Username, dst.Password)
			if err != nil {
				b.Fatal(err)
			}
			defer dc.Close()
			var bytes int64
			// The plugin replicates the whole source under its own name on
			// a fresh target database.
			runPlugin := func() time.Duration {
				_ = dc.DeleteDB(ctx, "bench")
				start := time.Now()
				res, err := p.Apply(ctx, "replicate", &sdk.ApplyRequest{Inputs: obj(merge(connIn(src, "source_"), connIn(dst, "target_"),
					map[string]any{"databases": []string{"bench"}, "verify": "none", "batch_size": 500, "workers": 4, "checkpoint_interval": "5s"}))}, sdk.NopEvents{})
				if err != nil {
					b.Fatalf("plugin: %v", err)
				}
				d := time.Since(start)
				bytes = outIntB(b, res, "bytes")
				return d
			}
			// The server's own replicator, run by the target (pull).
			runs := 0
			runServer := func() time.Duration {
				runs++
				target := fmt.Sprintf("server-%d", runs)
				start := time.Now()
				body := map[string]any{"source": src.AuthURL() + "/bench", "target": dst.AuthURL() + "/" + target, "create_target": true}
				var out map[string]any
				if err := dc.JSON(ctx, Request{Method: "POST", Path: "/_replicate", Body: body, NoRetry: true}, &out); err != nil {
					b.Fatalf("_replicate: %v", err)
				}
				d := time.Since(start)
				if ok, _ := out["ok"].(bool); !ok {
					b.Fatalf("_replicate: %v", out)
				}
				info, _ := dc.DBInfo(ctx, target)
				if info.DocCount != int64(tc.docs) {
					b.Fatalf("_replicate copied %d docs", info.DocCount)
				}
				_ = dc.DeleteDB(ctx, target)
				return d
			}
			// Rounds alternate the order (plugin first, then server first)
			// so that a change of load on the machine during the run does
			// not favour either side.
			var pluginDur, serverDur time.Duration
			var bestPlugin, bestServer time.Duration
			for i := 0; i < b.N; i++ {
				for r := 0; r < rounds; r++ {
					var pd, sd time.Duration
					if r%2 == 0 {
						pd = runPlugin()
						sd = runServer()
					} else {
						sd = runServer()
						pd = runPlugin()
					}
					b.Logf("%s round %d: plugin %.2fs, server %.2fs, ratio %.2fx", tc.name, r+1, pd.Seconds(), sd.Seconds(), sd.Seconds()/pd.Seconds())
					pluginDur += pd
					serverDur += sd
					if bestPlugin == 0 || pd < bestPlugin {
						bestPlugin = pd
					}
					if bestServer == 0 || sd < bestServer {
						bestServer = sd
					}
				}
			}
			n := float64(b.N * rounds)
			pd, sd := pluginDur.Seconds()/n, serverDur.Seconds()/n
			mb := float64(bytes) / 1e6
			b.ReportMetric(float64(tc.docs)/pd, "plugin_docs/s")
			b.ReportMetric(mb/pd, "plugin_MB/s")
			b.ReportMetric(float64(tc.docs)/sd, "server_docs/s")
			b.ReportMetric(mb/sd, "server_MB/s")
			b.ReportMetric(sd/pd, "speedup")
			best := bestServer.Seconds() / bestPlugin.Seconds()
			b.ReportMetric(best, "best_speedup")
			b.Logf("%s: plugin %.2fs (%.0f docs/s, %.1f MB/s), server /_replicate %.2fs (%.0f docs/s, %.1f MB/s), ratio %.2fx (best of each %.2fx)",
				tc.name, pd, float64(tc.docs)/pd, mb/pd, sd, float64(tc.docs)/sd, mb/sd, sd/pd, best)
		})
	}
}

// benchRounds is how many times each side replicates per benchmark
// iteration (RUNBOOK_COUCHDB_BENCH_ROUNDS, default 2).
func benchRounds() int {
	if n, err := strconv.Atoi(os.Getenv("RUNBOOK_COUCHDB_BENCH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 2
}

func outIntB(b *testing.B, res *sdk.Result, name string) int64 {
	i, _ := res.Outputs.GetAttr(name).AsBigFloat().Int64()
	return i
}

func seedBench(b *testing.B, c *Client, db string, n, attach int) {
	ctx := context.Background()
	if _, err := c.CreateDB(ctx, db); err != nil {
		b.Fatal(err)
	}
	per := 1000
	if attach > 0 {
		per = 20
	}
	for i := 0; i < n; i += per {
		var docs []map[string]any
		for j := i; j < min(i+per, n); j++ {
			d := map[string]any{"_id": fmt.Sprintf("doc-%06d", j), "n": j, "name": fmt.Sprintf("document number %d", j), "tags": []string{"a", "b"}}
			if attach > 0 {
				buf := make([]byte, attach)
				_, _ = rand.Read(buf)
				d["_attachments"] = map[string]any{"blob": map[string]any{"content_type": "application/octet-stream", "data": base64.StdEncoding.EncodeToString(buf)}}
			}
			docs = append(docs, d)
		}
		if err := c.JSON(ctx, Request{Method: "POST", Path: dbPath(db) + "/_bulk_docs", Body: map[string]any{"docs": docs}}, nil); err != nil {
			b.Fatal(err)
		}
	}
}

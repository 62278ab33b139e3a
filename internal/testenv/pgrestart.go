//go:build !windows

package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RestartPostgres restarts the throwaway cluster (pg_ctl restart, fast
// mode): every connection is cut, and the server accepts new ones once it
// is back, with the same data, port and options. It skips the test when
// an external server (RUNBOOK_TEST_PG_URL) is used.
func RestartPostgres(t testing.TB) {
	t.Helper()
	admin := postgresAdmin(t)
	pg.mu.Lock()
	owned := pg.owned
	pg.mu.Unlock()
	if !owned {
		t.Skip("restarting PostgreSQL needs the throwaway cluster, not " + PostgresURLEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("postgres restart: connect: %v", err)
	}
	var data string
	err = conn.QueryRow(ctx, "SHOW data_directory").Scan(&data)
	conn.Close(ctx)
	if err != nil {
		t.Fatalf("postgres restart: %v", err)
	}
	// With its log file, as startCluster started it: the server must not
	// inherit (and hold open) pg_ctl's output.
	log := filepath.Join(filepath.Dir(data), "server.log")
	if out, err := pgCtl("-D", data, "-l", log, "-m", "fast", "-w", "-t", "60", "restart"); err != nil {
		t.Fatalf("postgres restart: %v: %s", err, out)
	}
}

// pgCtl runs the newest pg_ctl, as the postgres user when root (as
// startCluster does).
func pgCtl(args ...string) ([]byte, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		return nil, fmt.Errorf("no /usr/lib/postgresql/*/bin/pg_ctl")
	}
	sort.Slice(bins, func(i, j int) bool {
		return pgMajor(filepath.Dir(bins[i])+"/initdb") < pgMajor(filepath.Dir(bins[j])+"/initdb")
	})
	bin := bins[len(bins)-1]
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...).CombinedOutput()
	}
	return exec.Command(bin, args...).CombinedOutput()
}

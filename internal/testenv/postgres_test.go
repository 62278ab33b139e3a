package testenv

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestMain(m *testing.M) { os.Exit(RunMain(m)) }

func TestPostgres(t *testing.T) {
	ctx := context.Background()
	plain := Postgres(t)
	synapse := PostgresWith(t, PGDatabase{CollateC: true, Init: "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);"})
	again := PostgresWith(t, PGDatabase{CollateC: true, Init: "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);"})
	if plain == synapse || synapse == again {
		t.Fatalf("databases not distinct: %s %s %s", plain, synapse, again)
	}
	c, err := pgx.Connect(ctx, synapse)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var collate string
	var n int
	if err := c.QueryRow(ctx, `SELECT datcollate FROM pg_database WHERE datname = current_database()`).Scan(&collate); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if collate != "C" || n != 2 {
		t.Errorf("collate %q, rows %d; want C and 2", collate, n)
	}
	// Databases are independent.
	if _, err := c.Exec(ctx, `INSERT INTO t VALUES (3)`); err != nil {
		t.Fatal(err)
	}
	c2, err := pgx.Connect(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(ctx)
	if err := c2.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 2 {
		t.Errorf("clone sees %d rows (%v), want 2", n, err)
	}

	_, err = pgx.Connect(ctx, PostgresBadPasswordURL(t))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Errorf("bad password: %v, want SQLSTATE 28P01", err)
	}
}

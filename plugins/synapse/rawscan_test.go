package synapse

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/runbookdev/runbook/internal/testenv"
)

// TestRawScanMatchesScan decodes device and token rows raw, in the binary
// format (extended protocol) and in the text format (simple protocol),
// and compares with rows.Scan: NULLs, negative and large numbers, empty
// and non-ASCII text.
func TestRawScanMatchesScan(t *testing.T) {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	const devices = `SELECT * FROM (VALUES
  ('@a:x'::text, 'D1'::text, 'Phone é'::text, 1700000000123::bigint, '10.0.0.1'::text, 'UA'::text, true),
  ('@b:x', '', NULL, NULL, NULL, NULL, false),
  ('@c:x', 'D3', '', -5, '::1', '', false)) AS v`
	const tokens = `SELECT * FROM (VALUES
  ('@a:x'::text, 'D1'::text, 'syt_a'::text, 9223372036854775807::bigint, 1::bigint),
  ('@b:x', NULL, 'syt_b', NULL, NULL)) AS v`
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		var raw, scanned []deviceRow
		var rawT, scannedT []accessTokenRow
		read := func(q string, each func(pgx.Rows) error) {
			t.Helper()
			rows, err := c.Query(ctx, q, mode)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				if err := each(rows); err != nil {
					t.Fatal(err)
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
		}
		read(devices, func(rows pgx.Rows) error {
			if !rawDecodable(rows, deviceOIDs...) {
				t.Fatalf("mode %v: devices not raw-decodable: %+v", mode, rows.FieldDescriptions())
			}
			var r, s deviceRow
			if err := scanDeviceRaw(rows, &r); err != nil {
				return err
			}
			if err := rows.Scan(&s.userID, &s.device, &s.name, &s.lastSeen, &s.ip, &s.agent, &s.hidden); err != nil {
				return err
			}
			raw, scanned = append(raw, r), append(scanned, s)
			return nil
		})
		read(tokens, func(rows pgx.Rows) error {
			if !rawDecodable(rows, accessTokenOIDs...) {
				t.Fatalf("mode %v: tokens not raw-decodable", mode)
			}
			var r, s accessTokenRow
			if err := scanAccessTokenRaw(rows, &r); err != nil {
				return err
			}
			if err := rows.Scan(&s.userID, &s.device, &s.token, &s.validUntil, &s.lastValidated); err != nil {
				return err
			}
			rawT, scannedT = append(rawT, r), append(scannedT, s)
			return nil
		})
		opt := cmp.AllowUnexported(deviceRow{}, accessTokenRow{})
		if d := cmp.Diff(scanned, raw, opt); d != "" || len(raw) != 3 {
			t.Errorf("mode %v: devices decoded raw differ from Scan (-scan +raw):\n%s", mode, d)
		}
		if d := cmp.Diff(scannedT, rawT, opt); d != "" || len(rawT) != 2 {
			t.Errorf("mode %v: tokens decoded raw differ from Scan (-scan +raw):\n%s", mode, d)
		}
	}
	// Other column types fall back to Scan.
	rows, err := c.Query(ctx, "SELECT 'a'::varchar, 'b'::text, 'c'::text, 1::int4, NULL::text, NULL::text, true")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if rawDecodable(rows, deviceOIDs...) {
		t.Error("a varchar and an int4 column were taken as text and bigint")
	}
}

package synapse

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/runbookdev/runbook/internal/testenv"
)

// TestCopyEncodingRoundTrip COPYs every value type the mapping produces,
// edge values included, in the binary format and reads it back as text.
func TestCopyEncodingRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := &world{t: t}
	url := testenv.Postgres(t)
	w.exec(url, `CREATE TABLE users (user_id uuid, username text, created_at timestamptz, locked_at timestamptz,
  can_request_admin boolean, is_guest boolean, deactivated_at timestamptz)`)
	w.exec(url, `CREATE TABLE compat_sessions (compat_session_id uuid, user_id uuid, device_id text, human_name text,
  created_at timestamptz, is_synapse_admin boolean, last_active_at timestamptz, last_active_ip inet, user_agent text,
  finished_at timestamptz, user_session_id uuid)`)
	w.exec(url, `CREATE TABLE user_passwords (user_password_id uuid, user_id uuid, hashed_password text,
  created_at timestamptz, version integer, upgraded_from_id uuid)`)

	id := pgtype.UUID{Bytes: [16]byte{0x01, 0x8f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd}, Valid: true}
	name := "Pixel ünïcode \x01"
	tm := time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.FixedZone("x", 3600))
	old := time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC)

	users, sessions, pw := &copyBuf{}, &copyBuf{}, &copyBuf{}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(users.appendRow(id, "alice", tm, nil, true, false, old))
	must(users.appendRow([16]byte(id.Bytes), "", old, &tm, false, true, (*time.Time)(nil)))
	must(sessions.appendRow(id, id, &name, (*string)(nil), tm, true, tm, netip.MustParseAddr("192.0.2.7"), "UA", nil, pgtype.UUID{}))
	must(sessions.appendRow(id, id, nil, "x", tm, false, nil, netip.MustParseAddr("fe80::1%eth0"), nil, nil, nil))
	must(sessions.appendRow(id, id, nil, "y", tm, false, nil, netip.MustParseAddr("::ffff:192.0.2.8"), nil, nil, nil))
	must(sessions.appendRow(id, id, nil, "z", tm, false, nil, netip.Addr{}, nil, nil, nil))
	must(pw.appendRow(id, id, "$2b$12$hash", tm, int32(-7), nil))
	bad := &copyBuf{}
	if err := bad.appendRow("x", 3.5); err == nil || !strings.Contains(err.Error(), "column 2") {
		t.Errorf("encoding a float64: got %v, want an error naming column 2", err)
	}
	if bad.rows != 0 || len(bad.b) != 0 {
		t.Errorf("a row that failed to encode was kept: %d rows, %d bytes", bad.rows, len(bad.b))
	}

	c := w.conn(url)
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "SET TIME ZONE 'UTC'"); err != nil {
		t.Fatal(err)
	}
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "TRUNCATE users, compat_sessions, user_passwords"); err != nil {
		t.Fatal(err)
	}
	for table, buf := range map[string]*copyBuf{"users": users, "compat_sessions": sessions, "user_passwords": pw} {
		n, err := copyEncoded(ctx, c.PgConn(), table, buf, true)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		if n != buf.rows {
			t.Errorf("%s: copied %d rows, want %d", table, n, buf.rows)
		}
	}
	if n, err := copyEncoded(ctx, c.PgConn(), "users", &copyBuf{}, true); n != 0 || err != nil {
		t.Errorf("empty buffer: %d, %v", n, err)
	}
	got := func(sql string) [][]string {
		rows, err := tx.Query(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out [][]string
		for rows.Next() {
			var r []string
			vals, _ := rows.Values()
			for _, v := range vals {
				if v == nil {
					r = append(r, "NULL")
				} else {
					r = append(r, v.(string))
				}
			}
			out = append(out, r)
		}
		return out
	}
	uid := "018fff00-0000-0000-0000-00000000abcd"
	want := [][]string{
		{uid, "alice", "2024-02-29 22:59:58.123456+00", "NULL", "true", "false", "1969-12-31 23:59:59.999999+00"},
		{uid, "", "1969-12-31 23:59:59.999999+00", "2024-02-29 22:59:58.123456+00", "false", "true", "NULL"},
	}
	if d := cmp.Diff(want, got(`SELECT user_id::text, username, created_at::text, coalesce(locked_at::text, 'NULL'),
  can_request_admin::text, is_guest::text, coalesce(deactivated_at::text, 'NULL') FROM users ORDER BY username DESC`)); d != "" {
		t.Errorf("users (-want +got):\n%s", d)
	}
	want = [][]string{
		{name, "NULL", "true", "192.0.2.7 32", "UA", "NULL"},
		{"NULL", "x", "false", "fe80::1 128", "NULL", "NULL"},
		{"NULL", "y", "false", "::ffff:192.0.2.8 128", "NULL", "NULL"},
		{"NULL", "z", "false", "NULL", "NULL", "NULL"},
	}
	if d := cmp.Diff(want, got(`SELECT coalesce(device_id, 'NULL'), coalesce(human_name, 'NULL'), is_synapse_admin::text,
  coalesce(host(last_active_ip) || ' ' || masklen(last_active_ip), 'NULL'), coalesce(user_agent, 'NULL'), coalesce(user_session_id::text, 'NULL')
FROM compat_sessions ORDER BY coalesce(human_name, '')`)); d != "" {
		t.Errorf("compat_sessions (-want +got):\n%s", d)
	}
	if d := cmp.Diff([][]string{{"$2b$12$hash", "-7", "NULL"}}, got(`SELECT hashed_password, version::text, coalesce(upgraded_from_id::text, 'NULL') FROM user_passwords`)); d != "" {
		t.Errorf("user_passwords (-want +got):\n%s", d)
	}
}

func TestOrderedReaderStreamsRowsInOrder(t *testing.T) {
	b := []byte("aaBBBcdddd")
	order := []sortRef{{start: 5, end: 6}, {start: 2, end: 5}, {start: 6, end: 10}, {start: 0, end: 2}}
	for _, size := range []int{1, 2, 3, 64} {
		c := &copyBuf{b: b, rows: 4, order: order}
		r := c.reader()
		var got []byte
		p := make([]byte, size)
		for {
			n, err := r.Read(p)
			got = append(got, p[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if string(got) != "cBBBddddaa" {
			t.Errorf("read %q in %d-byte reads, want %q", got, size, "cBBBddddaa")
		}
	}
}

package synapse

import (
	"context"
	"slices"
	"testing"
)

// heapOrder returns a MAS table's column in the order of the rows on
// disk, and whether that order is sorted bytewise.
func heapOrder(w *world, table, col string) ([]string, bool) {
	var out []string
	for _, r := range w.query("SELECT " + col + " FROM " + table + " ORDER BY ctid") {
		out = append(out, r[0])
	}
	return out, slices.IsSorted(out)
}

func TestPresortWritesTextKeysInIndexOrder(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	c := w.conn(w.synURL)
	if err := generate(ctx, c, sizes{Users: 300, Emails: 200, ExternalIDs: 20, Devices: 500, AccessTokens: 900, RefreshPairs: 40}); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	res, _ := w.mustMigrate()
	for _, k := range []struct{ table, col string }{
		{"users", "username"}, {"user_emails", "email"}, {"compat_access_tokens", "access_token"},
	} {
		got, sorted := heapOrder(w, k.table, k.col)
		if !sorted {
			t.Errorf("%s rows are not written in %s order: %v", k.table, k.col, got[:min(len(got), 12)])
		}
		if int64(len(got)) != counts(t, res, "written")[k.table] {
			t.Errorf("%s: %d rows on disk, %d written", k.table, len(got), counts(t, res, "written")[k.table])
		}
	}
	// The fixture's tokens (syt_0, syt_1, ...) are not in byte order as
	// read, so the check above can fail.
	if n := counts(t, res, "written")["compat_access_tokens"]; n < 100 {
		t.Fatalf("only %d access tokens written", n)
	}
}

func TestPresortOnlyForBytewiseCollations(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	probe := func() bool {
		tx := w.masTx()
		ok := presortable(ctx, tx)
		// A refusal leaves the transaction usable.
		var one int
		if err := tx.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatalf("transaction unusable after presortable: %v", err)
		}
		return ok
	}
	if !probe() {
		t.Fatal("presortable = false on a C.UTF-8 database, want true")
	}
	// A column with a collation of its own: rows are streamed as read,
	// and the migration is the same.
	w.exec(w.masURL, `ALTER TABLE user_emails ALTER COLUMN email TYPE text COLLATE "ucs_basic"`)
	if probe() {
		t.Fatal("presortable = true with user_emails.email in ucs_basic, want false")
	}
	w.syn(`INSERT INTO users (name, creation_ts, admin, is_guest, deactivated, locked) VALUES
 ('@zed:example.com', 1600000000, 0, 0, 0, false), ('@amy:example.com', 1600000001, 0, 0, 0, false)`)
	w.syn(`INSERT INTO user_threepids (user_id, medium, address, validated_at, added_at) VALUES
 ('@zed:example.com', 'email', 'zed@example.org', 1, 1), ('@amy:example.com', 'email', 'amy@example.org', 2, 2)`)
	w.syn(`INSERT INTO access_tokens (id, user_id, token) VALUES (1, '@zed:example.com', 'syt_z'), (2, '@amy:example.com', 'syt_a')`)
	w.mustMigrate()
	if got, _ := heapOrder(w, "users", "username"); !slices.Equal(got, []string{"zed", "amy"}) {
		t.Errorf("users on disk = %v, want them as read (zed, amy)", got)
	}
	if got, _ := heapOrder(w, "compat_access_tokens", "access_token"); !slices.Equal(got, []string{"syt_z", "syt_a"}) {
		t.Errorf("access tokens on disk = %v, want them as read", got)
	}
}

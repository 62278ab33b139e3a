package synapse

import (
	"context"
	"testing"
)

// TestTruncateForLoadRechecksUnderLock: a row that appears after the
// first emptiness check is found again under the lock, and nothing is
// truncated.
func TestTruncateForLoadRechecksUnderLock(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.exec(w.masURL, `WITH u AS (INSERT INTO users (user_id, username, created_at) VALUES (gen_random_uuid(), 'late', now()) RETURNING user_id)
INSERT INTO user_emails (user_email_id, user_id, email, created_at) SELECT gen_random_uuid(), user_id, 'late@x', now() FROM u`)
	ctx := context.Background()
	tx := w.masTx()
	if _, err := pauseConstraints(ctx, tx); err != nil {
		t.Fatal(err)
	}
	got, err := truncateForLoad(ctx, tx)
	if err != nil || got != "users" {
		t.Fatalf("truncateForLoad = %q, %v; want users", got, err)
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM user_emails)").Scan(&n); err != nil || n != 2 {
		t.Errorf("users and user_emails hold %d rows (%v) after a refused truncate, want 2", n, err)
	}
}

package synapse

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/runbookdev/runbook/sdk"
)

func (w *world) undoForce(res *sdk.Result, force bool) error {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return sdk.Local(New()).Undo(ctx, "migrate", &sdk.UndoRequest{Inputs: w.inputs(nil), Outputs: res.Outputs, UndoState: res.UndoState, Force: force}, &recorder{})
}

// Rows MAS writes after the migration, each referring to migrated rows in
// one way.
const (
	laterOAuth2Session = `INSERT INTO oauth2_sessions (oauth2_session_id, user_id, scope_list, created_at)
SELECT '00000000-0000-0000-0000-0000000000a1', user_id, '{openid}', now() FROM users WHERE username = 'alice'`
	laterOAuth2Token = `INSERT INTO oauth2_access_tokens VALUES (gen_random_uuid(), '00000000-0000-0000-0000-0000000000a1', 'tok', now())`
	laterTerms       = `INSERT INTO user_terms SELECT gen_random_uuid(), user_id, 'https://tos', now() FROM users WHERE username = 'alice'`
	laterRecovery    = `INSERT INTO user_recovery_sessions VALUES ('00000000-0000-0000-0000-0000000000b1', 'a@x', 'ua', 'en', now());
INSERT INTO user_recovery_tickets SELECT gen_random_uuid(), '00000000-0000-0000-0000-0000000000b1', user_email_id, 'ticket', now(), now() FROM user_emails`
	laterSession = `INSERT INTO user_sessions (user_session_id, user_id, created_at)
SELECT '00000000-0000-0000-0000-0000000000c1', user_id, now() FROM users WHERE username = 'bob'`
	laterAuthentication = `INSERT INTO user_session_authentications
SELECT gen_random_uuid(), '00000000-0000-0000-0000-0000000000c1', now(), user_password_id FROM user_passwords`
	laterUser = `INSERT INTO users (user_id, username, created_at) VALUES (gen_random_uuid(), 'carol', now())`
)

// migratedWorld is a MAS database migrated from a small Synapse, with
// unrelated rows MAS had before (an oauth2 session without a user, a
// recovery session) that an undo must keep.
func migratedWorld(t *testing.T) (*world, masState, *sdk.Result) {
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, password_hash, creation_ts) VALUES ('@alice:example.com', '$2b$12$h', 1600000000), ('@bob:example.com', NULL, 1600000001)`)
	w.syn(`INSERT INTO user_threepids VALUES ('@alice:example.com', 'email', 'a@x', 1, 1)`)
	w.exec(w.masURL, `INSERT INTO oauth2_sessions (oauth2_session_id, user_id, scope_list, created_at) VALUES (gen_random_uuid(), NULL, '{}', now())`)
	start := w.state()
	res, _ := w.mustMigrate()
	return w, start, res
}

// TestUndoStopsOnRowsWrittenSince: rows MAS wrote after the migration that
// refer to migrated rows stop the undo with a conflict naming them, whether
// a delete would cascade to them, be blocked by them or set their
// reference to NULL; nothing is deleted.
func TestUndoStopsOnRowsWrittenSince(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		later []string
		want  []string
	}{
		{"oauth2 session (cascade)", []string{laterOAuth2Session}, []string{"1 rows of public.oauth2_sessions", "ON DELETE CASCADE"}},
		{"terms (cascade)", []string{laterTerms}, []string{"1 rows of public.user_terms", "ON DELETE CASCADE"}},
		{"recovery ticket (cascade from user_emails)", []string{laterRecovery}, []string{"1 rows of public.user_recovery_tickets", "→ public.user_emails"}},
		{"browser session (plain key)", []string{laterSession}, []string{"1 rows of public.user_sessions", "blocking the delete"}},
		{"token of a cascaded session (transitive)", []string{laterOAuth2Session, laterOAuth2Token},
			[]string{"1 rows of public.oauth2_sessions", "1 rows of public.oauth2_access_tokens refer to migrated rows (oauth2_access_tokens_session_fkey → public.oauth2_sessions)"}},
		{"authentication with a migrated password (set null)", []string{laterSession, laterAuthentication},
			[]string{"1 rows of public.user_session_authentications", "1 rows of public.user_sessions"}},
		{"user registered since", []string{laterUser}, []string{"users holds 3 rows, the migration wrote 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, _, res := migratedWorld(t)
			for _, sql := range tc.later {
				w.exec(w.masURL, sql)
			}
			before := w.state()
			err := w.undo(res)
			wantKind(t, err, sdk.KindConflict, "MAS data changed since the migration")
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %q", err, s)
				}
			}
			if h := sdk.Classify(err).Hint; !strings.Contains(h, "-force") {
				t.Errorf("hint %q does not mention -force", h)
			}
			diffState(t, "after a refused undo", before, w.state())
		})
	}
}

// TestUndoForce: rollback -force deletes the migrated rows and everything
// written since that refers to them, keeps the rest, and leaves MAS as it
// was before the migration.
func TestUndoForce(t *testing.T) {
	t.Parallel()
	w, start, res := migratedWorld(t)
	for _, sql := range []string{laterOAuth2Session, laterOAuth2Token, laterTerms, laterRecovery, laterSession, laterAuthentication, laterUser} {
		w.exec(w.masURL, sql)
	}
	if err := w.undoForce(res, true); err != nil {
		t.Fatalf("forced undo: %v", err)
	}
	want := start
	want.Rows["user_recovery_sessions"] = 1 // refers to nothing migrated: kept
	diffState(t, "after a forced undo", want, w.state())
}

// TestUndoTruncatesWhenNothingRefers: right after a migration the undo
// gives back MAS exactly as it was.
func TestUndoTruncatesWhenNothingRefers(t *testing.T) {
	t.Parallel()
	w, start, res := migratedWorld(t)
	if err := w.undo(res); err != nil {
		t.Fatal(err)
	}
	diffState(t, "after undo", start, w.state())
}

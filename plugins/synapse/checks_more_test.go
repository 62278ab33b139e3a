package synapse

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// findings runs check and returns its errors and warnings.
func findings(t *testing.T, w *world, extra map[string]cty.Value) (errs, warns []string, err error) {
	t.Helper()
	res, err := w.check(extra)
	if res == nil {
		t.Fatalf("check: %v", err)
	}
	return strs(res.Outputs.GetAttr("errors")), strs(res.Outputs.GetAttr("warnings")), err
}

func wantOne(t *testing.T, what string, msgs []string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !hasOne(msgs, sub) {
			t.Errorf("%s: want one containing %q in\n%s", what, sub, strings.Join(msgs, "\n"))
		}
	}
}

// TestCheckMASSchemaVersion: a MAS schema out of the supported range, or
// without a column the migration writes, is a check error with what to do,
// and migrate refuses it before writing (instead of SQLSTATE 42703).
func TestCheckMASSchemaVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, sql string
		want      []string
	}{
		{"early 2025 MAS without users.deactivated_at",
			`DELETE FROM _sqlx_migrations; INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
VALUES (20250225091000, 'dynamic policy data', true, '\x00', 0); ALTER TABLE users DROP COLUMN deactivated_at`,
			[]string{"version 20250225091000, older than 20250311093145, the oldest this plugin writes into: upgrade MAS and run `mas-cli database migrate`", "lacks the columns users.deactivated_at"}},
		{"newer MAS", `INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
VALUES (20270101000000, 'future', true, '\x00', 0)`, []string{"newer than 20260720134722", "use a newer runbook"}},
		{"failed migration", `INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
VALUES (20260101000000, 'half done', false, '\x00', 0)`, []string{"migration 20260101000000 failed"}},
		{"no migrations table", `DROP TABLE _sqlx_migrations`, []string{"no _sqlx_migrations table"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.syn(`INSERT INTO users (name, creation_ts) VALUES ('@alice:example.com', 1600000000)`)
			w.exec(w.masURL, tc.sql)
			errs, _, err := findings(t, w, nil)
			wantOne(t, "check errors", errs, tc.want...)
			wantKind(t, err, sdk.KindConflict, "check errors")
			start := w.state()
			_, _, err = w.migrate(nil)
			wantKind(t, err, sdk.KindConflict, tc.want[0])
			if strings.Contains(err.Error(), "42703") {
				t.Errorf("migrate: %v", err)
			}
			diffState(t, "after a refused migration", start, w.state())
		})
	}
}

// TestCheckSynapseRows: rows the migration would stop at or mishandle are
// reported with counts and examples; migrate refuses the errors too.
func TestCheckSynapseRows(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, password_hash, creation_ts, is_guest, appservice_id) VALUES
 ('@alice:example.com', '$2b$12$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0', 1600000000, 0, NULL),
 ('@nosigil:example.com', NULL, 1600000000, 0, NULL), ('nosigil:example.com', NULL, 1600000000, 0, NULL),
 ('@md5:example.com', 'md5:0123', 1600000000, 0, NULL), ('@empty:example.com', '', 1600000000, 0, NULL),
 ('@ms:example.com', NULL, 1600000000000, 0, NULL),
 ('@irc_a:b:example.com', NULL, 1600000000, 0, 'irc')`)
	w.syn(`INSERT INTO user_threepids VALUES ('@alice:example.com', 'email', 'Same@x', 1, 1), ('@md5:example.com', 'email', 'same@X', 1, 1),
 ('@ghost:example.com', 'email', 'g@x', 1, 1), ('@ghost2:example.com', 'msisdn', '1', 1, 1)`)
	w.syn(`INSERT INTO devices (user_id, device_id) VALUES ('@ghost:example.com', 'D1'), ('@irc_a:b:example.com', 'D2'),
 ('@alice:example.com', 'guest_device'), ('@alice:example.com', 'D3')`)
	w.syn(`INSERT INTO access_tokens (id, user_id, device_id, token) VALUES (1, '@ghost:example.com', NULL, 't1'),
 (2, '@alice:example.com', 'guest_device', 't2'), (3, '@alice:example.com', 'D3', 't3')`)
	errs, warns, err := findings(t, w, nil)
	wantOne(t, "errors", errs,
		"1 user ids lack the '@' sigil (e.g. nosigil:example.com)",
		"1 users have a creation_ts in milliseconds, not seconds (e.g. @ms:example.com)",
		"2 rows of user_threepids belong to no user in users (e.g. @ghost2:example.com)",
		"1 rows of devices belong to no user in users (e.g. @ghost:example.com)",
		"1 rows of access_tokens belong to no user in users (e.g. @ghost:example.com)",
		"1 rows of devices belong to appservice users with a ':' in their localpart (e.g. @irc_a:b:example.com)",
	)
	wantKind(t, err, sdk.KindConflict, "check errors")
	wantOne(t, "warnings", warns,
		"2 users have a password hash MAS cannot verify, not a bcrypt hash (e.g. @empty:example.com)",
		"1 email addresses belong to more than one user once case is ignored (e.g. same@x)",
		"1 access tokens of users who are not guests are on device guest_device (e.g. of @alice:example.com)",
	)
	for _, m := range append(errs, warns...) {
		if strings.Contains(m, "md5:0123") || strings.Contains(m, "$2b$") {
			t.Errorf("a password hash in %q", m)
		}
	}
	start := w.state()
	_, _, err = w.migrate(nil)
	// Rows whose user is not migrated are left to the migration itself.
	wantKind(t, err, sdk.KindConflict, "the checks found 2 errors, nothing was written")
	diffState(t, "after a refused migration", start, w.state())
}

// TestCheckLock: another migration holding the MAS lock is a check error.
func TestCheckLock(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	c := w.holdLock()
	defer c.Close(context.Background())
	errs, _, err := findings(t, w, nil)
	wantOne(t, "errors", errs, "another migration (synapse.migrate, its undo, or mas-cli syn2mas) holds the lock")
	wantKind(t, err, sdk.KindConflict, "check errors")
	// Released, check passes and leaves no lock behind.
	if _, err := c.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, advisoryLockKey); err != nil {
		t.Fatal(err)
	}
	if errs, _, err := findings(t, w, nil); err != nil || len(errs) != 0 {
		t.Fatalf("check: %v %q", err, errs)
	}
	if got := w.query(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); got[0][0] != "0" {
		t.Errorf("check left %s advisory locks", got[0][0])
	}
}

// TestCheckDefaultPasswordsWithPepper: with MAS's default password config
// (argon2id, no secret) and a peppered Synapse, both problems are errors.
func TestCheckDefaultPasswordsWithPepper(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.writeConfigs("", "passwords:\n  enabled: true\n")
	errs, _, _ := findings(t, w, nil)
	wantOne(t, "errors", errs, `is "argon2id", not bcrypt`, "Synapse peppers its password hashes (password_config.pepper) but the MAS version 1 scheme has no secret")
}

// TestMigrateRerunsConfigChecks: migrate refuses what check refuses, e.g.
// a wrong pepper, before writing anything.
func TestMigrateRerunsConfigChecks(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, password_hash, creation_ts) VALUES ('@alice:example.com', '$2b$12$abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0', 1600000000)`)
	w.writeConfigs("", "passwords:\n  schemes:\n    - version: 1\n      algorithm: bcrypt\n      unicode_normalization: true\n      secret: wrong\n")
	start := w.state()
	for _, dry := range []bool{true, false} {
		_, _, err := w.migrate(map[string]cty.Value{"dry_run": cty.BoolVal(dry)})
		wantKind(t, err, sdk.KindConflict, "secret differs from Synapse's password_config.pepper")
	}
	diffState(t, "after a refused migration", start, w.state())
}

// holdLock takes the migration lock on a connection of its own, as another
// migration would.
func (w *world) holdLock() *pgx.Conn {
	w.t.Helper()
	c := w.conn(w.masURL)
	if _, err := c.Exec(context.Background(), `SELECT pg_advisory_lock($1)`, advisoryLockKey); err != nil {
		w.t.Fatal(err)
	}
	return c
}

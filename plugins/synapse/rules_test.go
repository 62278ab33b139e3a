package synapse

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbookdev/runbook/sdk"
)

// ulidMS is SQL giving the millisecond timestamp of a ULID stored as UUID.
func ulidMS(col string) string {
	return "('x' || substr(replace(" + col + "::text, '-', ''), 1, 12))::bit(48)::bigint"
}

func rows(t *testing.T, what string, want, got [][]string) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s (-want +got):\n%s", what, d)
	}
}

const (
	tAlice = "2020-09-13T12:26:40Z" // creation_ts 1600000000
	tBob   = "2020-09-13T12:28:20Z" // 1600000100
	tGuest = "2020-09-13T12:30:00Z" // 1600000200
)

func TestRuleUsersAndPasswords(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, password_hash, creation_ts, admin, is_guest, deactivated, locked, appservice_id) VALUES
 ('@alice:example.com', '$2b$12$alicehash', 1600000000, 1, 0, 0, false, NULL),
 ('@bob:example.com', NULL, 1600000100, 0, 0, 1, true, NULL),
 ('@guest1:example.com', '$2b$12$guesthash', 1600000200, 0, 1, 0, false, NULL),
 ('@irc_x:example.com', '$2b$12$ashash', 1600000300, 0, 0, 0, false, 'irc'),
 ('@old:example.com', 'h', -5, 0, 0, 0, false, NULL)`)
	res, _ := w.mustMigrate()
	rows(t, "users", [][]string{
		{"alice", ts(tAlice), "NULL", "true", "false", "NULL", "1600000000000"},
		{"bob", ts(tBob), ts(tBob), "false", "false", ts(tBob), "1600000100000"},
		{"guest1", ts(tGuest), "NULL", "false", "true", "NULL", "1600000200000"},
		{"old", ts("1969-12-31T23:59:55Z"), "NULL", "false", "false", "NULL", "0"},
	}, w.query(`SELECT username, created_at, locked_at, can_request_admin, is_guest, deactivated_at, `+ulidMS("user_id")+`
FROM users ORDER BY username`))
	rows(t, "user_passwords", [][]string{
		{"alice", "$2b$12$alicehash", "1", "true", "true", "1600000000000"},
		{"guest1", "$2b$12$guesthash", "1", "true", "true", "1600000200000"},
		{"old", "h", "1", "true", "true", "0"},
	}, w.query(`SELECT u.username, p.hashed_password, p.version, p.created_at = u.created_at, p.upgraded_from_id IS NULL, `+ulidMS("p.user_password_id")+`
FROM user_passwords p JOIN users u USING (user_id) ORDER BY 1`))
	if got := counts(t, res, "migrated")["users"]; got != 4 {
		t.Errorf("migrated users = %d, want 4", got)
	}
	if got := counts(t, res, "skipped")["users"]; got != 1 {
		t.Errorf("skipped users = %d, want 1 (the appservice user)", got)
	}
}

func TestRuleThreepids(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, creation_ts, deactivated, is_guest, appservice_id) VALUES
 ('@alice:example.com', 1600000000, 0, 0, NULL), ('@deact:example.com', 1600000100, 1, 0, NULL),
 ('@guest1:example.com', 1600000200, 0, 1, NULL), ('@irc_x:example.com', 1600000300, 0, 0, 'irc')`)
	w.syn(`INSERT INTO user_threepids (user_id, medium, address, validated_at, added_at) VALUES
 ('@alice:example.com', 'email', 'Alice@Mail.example', 1, $1),
 ('@alice:example.com', 'msisdn', '447700900123', 1, $2),
 ('@deact:example.com', 'email', 'deact@mail.example', 1, $2),
 ('@guest1:example.com', 'email', 'guest@mail.example', 1, $2),
 ('@irc_x:example.com', 'email', 'irc@mail.example', 1, $2)`, ms("2021-01-02T03:04:05.678Z"), ms("2022-01-01T00:00:00Z"))
	res, _ := w.mustMigrate()
	rows(t, "user_emails", [][]string{
		{"alice", "Alice@Mail.example", ts("2021-01-02T03:04:05.678Z"), "1609556645678"},
		{"deact", "deact@mail.example", ts("2022-01-01T00:00:00Z"), "1640995200000"},
		{"guest1", "guest@mail.example", ts("2022-01-01T00:00:00Z"), "1640995200000"},
	}, w.query(`SELECT u.username, e.email, e.created_at, `+ulidMS("e.user_email_id")+` FROM user_emails e JOIN users u USING (user_id) ORDER BY 1`))
	rows(t, "user_unsupported_third_party_ids", [][]string{
		{"alice", "msisdn", "447700900123", ts("2022-01-01T00:00:00Z")},
	}, w.query(`SELECT u.username, x.medium, x.address, x.created_at FROM user_unsupported_third_party_ids x JOIN users u USING (user_id)`))
	if d := cmp.Diff(map[string]int64{"threepids": 4}, map[string]int64{"threepids": counts(t, res, "migrated")["threepids"]}); d != "" {
		t.Error(d)
	}
	if got := counts(t, res, "skipped")["threepids"]; got != 1 {
		t.Errorf("skipped threepids = %d, want 1", got)
	}
}

func TestRuleDependentRowWithoutUserIsFatal(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, creation_ts) VALUES ('@alice:example.com', 1600000000)`)
	w.syn(`INSERT INTO user_threepids VALUES ('@ghost:example.com', 'email', 'g@x', 1, 1)`)
	_, _, err := w.migrate(nil)
	wantKind(t, err, sdk.KindConflict, "user @ghost:example.com was not found for migration but a row in user_threepids was found")
	if got := w.query(`SELECT count(*) FROM users`); got[0][0] != "0" {
		t.Errorf("a failed migration left %s users", got[0][0])
	}
}

func TestRuleExternalIDs(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, creation_ts, deactivated, appservice_id) VALUES
 ('@alice:example.com', 1600000000, 0, NULL), ('@deact:example.com', 1600000100, 1, NULL), ('@irc_x:example.com', 1600000300, 0, 'irc')`)
	w.syn(`INSERT INTO user_external_ids (auth_provider, external_id, user_id) VALUES
 ('oidc-github', 'gh-1', '@alice:example.com'), ('oidc-google', 'go-2', '@deact:example.com'), ('oidc-github', 'gh-3', '@irc_x:example.com')`)
	res, _ := w.mustMigrate()
	gh, _ := parseULID(provGitHub)
	gg, _ := parseULID(provGoogle)
	rows(t, "upstream_oauth_links", [][]string{
		{"alice", render(gh.Bytes), "gh-1", ts(tAlice), "1600000000000", "NULL"},
		{"deact", render(gg.Bytes), "go-2", ts(tBob), "1600000100000", "NULL"},
	}, w.query(`SELECT u.username, l.upstream_oauth_provider_id, l.subject, l.created_at, `+ulidMS("l.upstream_oauth_link_id")+`, l.human_account_name
FROM upstream_oauth_links l JOIN users u USING (user_id) ORDER BY 1`))
	if got := counts(t, res, "skipped")["external_ids"]; got != 1 {
		t.Errorf("skipped external_ids = %d, want 1", got)
	}
}

func TestRuleUnknownProvider(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, creation_ts) VALUES ('@alice:example.com', 1600000000)`)
	w.syn(`INSERT INTO user_external_ids VALUES ('oidc-gitlab', 'gl-1', '@alice:example.com'), ('oidc-github', 'gh-1', '@alice:example.com')`)
	_, _, err := w.migrate(nil)
	wantKind(t, err, sdk.KindConflict, `no MAS upstream provider has synapse_idp_id "oidc-gitlab"`)
	// ignore_missing_providers is about the Synapse config: links whose
	// IdP no MAS provider maps are still refused.
	_, _, err = w.migrate(map[string]cty.Value{"ignore_missing_providers": cty.True})
	wantKind(t, err, sdk.KindConflict, `no MAS upstream provider has synapse_idp_id "oidc-gitlab"`)
	res, _, err := w.migrate(map[string]cty.Value{"ignore_missing_providers": cty.True, "drop_links_without_mas_provider": cty.True})
	if err != nil {
		t.Fatal(err)
	}
	rows(t, "links", [][]string{{"gh-1"}}, w.query(`SELECT subject FROM upstream_oauth_links`))
	if got := counts(t, res, "skipped")["external_ids"]; got != 1 {
		t.Errorf("skipped external_ids = %d, want 1", got)
	}
	if w := strs(res.Outputs.GetAttr("warnings")); !hasOne(w, `dropped 1 links to IdP "oidc-gitlab"`) {
		t.Errorf("warnings %q: want the count of dropped links", w)
	}
}

func TestRuleProviderNotSynced(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.exec(w.masURL, `DELETE FROM upstream_oauth_providers`)
	_, _, err := w.migrate(nil)
	wantKind(t, err, sdk.KindConflict, "is not in the MAS database yet")
}

// tokenWorld has users, devices and tokens covering every token rule.
func tokenWorld(t *testing.T) *world {
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, creation_ts, admin, is_guest, deactivated, appservice_id) VALUES
 ('@alice:example.com', 1600000000, 1, 0, 0, NULL), ('@guest1:example.com', 1600000200, 0, 1, 0, NULL),
 ('@deact:example.com', 1600000100, 0, 0, 1, NULL), ('@irc_x:example.com', 1600000300, 0, 0, 0, 'irc'),
 ('@carol:example.com', 1600000400, 0, 0, 0, NULL)`)
	w.syn(`INSERT INTO devices (user_id, device_id, display_name, last_seen, ip, user_agent, hidden) VALUES
 ('@alice:example.com', 'D1', 'Phone', $1, '10.1.2.3', 'Element/1', false),
 ('@alice:example.com', 'D2', NULL, NULL, '-', NULL, false),
 ('@alice:example.com', 'D3', 'Laptop', $1, 'bogus', 'curl', false),
 ('@alice:example.com', 'D4', 'Tablet', NULL, '2001:db8::5', NULL, NULL),
 ('@alice:example.com', 'H', 'hidden', NULL, NULL, NULL, true),
 ('@alice:example.com', 'guest_device', NULL, NULL, NULL, NULL, false),
 ('@guest1:example.com', 'G1', NULL, NULL, NULL, NULL, false),
 ('@deact:example.com', 'X1', NULL, NULL, NULL, NULL, false),
 ('@irc_x:example.com', 'I1', NULL, NULL, NULL, NULL, false),
 ('@carol:example.com', 'R1', 'Refresher', NULL, '192.0.2.1', NULL, false),
 ('@carol:example.com', 'RH', NULL, NULL, NULL, NULL, true)`, ms("2023-05-05T05:05:05.505Z"))
	w.syn(`INSERT INTO access_tokens (id, user_id, device_id, token, valid_until_ms, puppets_user_id, last_validated) VALUES
 (1, '@alice:example.com', 'D1', 't_dev', $1, NULL, $2),
 (2, '@alice:example.com', NULL, 't_nodev', NULL, NULL, NULL),
 (3, '@alice:example.com', 'D1', 't_puppet', NULL, '@carol:example.com', $2),
 (4, '@alice:example.com', 'GONE', 't_gone', NULL, NULL, $2),
 (5, '@alice:example.com', 'H', 't_hidden', NULL, NULL, $2),
 (6, '@alice:example.com', 'guest_device', 't_gd', NULL, NULL, $2),
 (7, '@guest1:example.com', 'G1', 't_guest', NULL, NULL, $2),
 (8, '@deact:example.com', 'X1', 't_deact', NULL, NULL, $2),
 (9, '@irc_x:example.com', NULL, 't_irc', NULL, NULL, $2),
 (10, '@alice:example.com', 'D2', 't_d2a', NULL, NULL, $3),
 (11, '@alice:example.com', 'D2', 't_d2b', NULL, NULL, $3),
 (12, '@alice:example.com', NULL, 't_nodev2', NULL, NULL, $3)`,
		ms("2030-01-01T00:00:00Z"), ms("2024-02-02T02:02:02.222Z"), ms("2024-03-03T03:03:03.333Z"))
	// Refresh chains on carol's R1: pair 1 -> pair 2 whose access token is
	// used (pair 1 dropped); pair 3 -> pair 4 unused (both kept). Pair 5
	// is on a hidden device.
	w.syn(`INSERT INTO refresh_tokens (id, user_id, device_id, token, next_token_id) VALUES
 (2, '@carol:example.com', 'R1', 'rt_b', NULL), (1, '@carol:example.com', 'R1', 'rt_a', 2),
 (4, '@carol:example.com', 'R1', 'rt_d', NULL), (3, '@carol:example.com', 'R1', 'rt_c', 4),
 (5, '@carol:example.com', 'RH', 'rt_h', NULL)`)
	w.syn(`INSERT INTO access_tokens (id, user_id, device_id, token, valid_until_ms, last_validated, refresh_token_id, used) VALUES
 (21, '@carol:example.com', 'R1', 'at_a', NULL, $1, 1, true),
 (22, '@carol:example.com', 'R1', 'at_b', $2, $1, 2, true),
 (23, '@carol:example.com', 'R1', 'at_c', NULL, $1, 3, false),
 (24, '@carol:example.com', 'R1', 'at_d', NULL, $1, 4, NULL),
 (25, '@carol:example.com', 'RH', 'at_h', NULL, $1, 5, NULL)`, ms("2024-04-04T04:04:04.444Z"), ms("2031-01-01T00:00:00Z"))
	return w
}

func TestRuleAccessTokensAndDevices(t *testing.T) {
	t.Parallel()
	w := tokenWorld(t)
	before := time.Now().Add(-time.Second)
	res, _ := w.mustMigrate()
	after := time.Now().Add(time.Second)

	// Non-refreshable tokens: puppet and device-less-row tokens dropped,
	// tokens of hidden/guest devices and of guest, deactivated and
	// appservice users skipped.
	got := w.query(`SELECT a.access_token, coalesce(s.device_id, 'NULL'), a.created_at, a.expires_at,
  ` + ulidMS("a.compat_access_token_id") + ` = (extract(epoch from a.created_at) * 1000)::bigint
FROM compat_access_tokens a JOIN compat_sessions s USING (compat_session_id)
WHERE a.access_token LIKE 't_%' AND a.access_token NOT LIKE 't_nodev%' ORDER BY 1`)
	rows(t, "device tokens", [][]string{
		{"t_d2a", "D2", ts("2024-03-03T03:03:03.333Z"), "NULL", "true"},
		{"t_d2b", "D2", ts("2024-03-03T03:03:03.333Z"), "NULL", "true"},
		{"t_dev", "D1", ts("2024-02-02T02:02:02.222Z"), ts("2030-01-01T00:00:00Z"), "true"},
	}, got)
	// Two tokens of one device share its session.
	if n := w.query(`SELECT count(DISTINCT compat_session_id) FROM compat_access_tokens WHERE access_token IN ('t_d2a', 't_d2b')`); n[0][0] != "1" {
		t.Errorf("tokens of D2 use %s sessions, want 1", n[0][0])
	}
	// Deviceless tokens: one new session each, created with the token
	// (last_validated, else now), no device, not admin.
	dl := w.query(`SELECT a.access_token, s.device_id IS NULL, s.human_name IS NULL, s.last_active_at IS NULL, s.last_active_ip IS NULL,
  s.is_synapse_admin, s.created_at = a.created_at, a.created_at
FROM compat_access_tokens a JOIN compat_sessions s USING (compat_session_id) WHERE a.access_token LIKE 't_nodev%' ORDER BY 1`)
	if len(dl) != 2 {
		t.Fatalf("deviceless tokens: %v", dl)
	}
	if d := cmp.Diff([]string{"t_nodev2", "true", "true", "true", "true", "false", "true", ts("2024-03-03T03:03:03.333Z")}, dl[1]); d != "" {
		t.Errorf("t_nodev2:\n%s", d)
	}
	created, _ := time.Parse(time.RFC3339Nano, dl[0][7])
	if dl[0][0] != "t_nodev" || created.Before(before) || created.After(after) {
		t.Errorf("t_nodev without last_validated: created %v, want now", dl[0])
	}

	// Devices: one session per migrated device; created_at is the time of
	// the session id (the first token's time, else now); bad IPs are NULL.
	sess := w.query(`SELECT device_id, coalesce(human_name, 'NULL'), is_synapse_admin, last_active_at,
  coalesce(host(last_active_ip), 'NULL'), coalesce(user_agent, 'NULL'), created_at, ` + ulidMS("compat_session_id") + ` = (extract(epoch from created_at) * 1000)::bigint,
  finished_at IS NULL AND user_session_id IS NULL
FROM compat_sessions WHERE device_id IS NOT NULL ORDER BY 1`)
	nowRow := func(r []string) []string { return append(append([]string{}, r[:6]...), "now", r[7], r[8]) }
	for i, r := range sess {
		if r[0] == "D3" || r[0] == "D4" {
			c, _ := time.Parse(time.RFC3339Nano, r[6])
			if c.Before(before) || c.After(after) {
				t.Errorf("session of %s created %v, want now", r[0], c)
			}
			sess[i] = nowRow(r)
		}
	}
	rows(t, "compat_sessions", [][]string{
		{"D1", "Phone", "true", ts("2023-05-05T05:05:05.505Z"), "10.1.2.3", "Element/1", ts("2024-02-02T02:02:02.222Z"), "true", "true"},
		{"D2", "NULL", "true", "NULL", "NULL", "NULL", ts("2024-03-03T03:03:03.333Z"), "true", "true"},
		{"D3", "Laptop", "true", ts("2023-05-05T05:05:05.505Z"), "NULL", "curl", "now", "true", "true"},
		{"D4", "Tablet", "true", "NULL", "2001:db8::5", "NULL", "now", "true", "true"},
		{"R1", "Refresher", "false", "NULL", "192.0.2.1", "NULL", ts("2024-04-04T04:04:04.444Z"), "true", "true"},
	}, sess)

	// Refresh pairs: pair a dropped (successor used), b, c, d kept, h on a
	// hidden device skipped.
	rows(t, "compat_refresh_tokens", [][]string{
		{"rt_b", "at_b", "R1", ts("2024-04-04T04:04:04.444Z"), ts("2031-01-01T00:00:00Z"), "true"},
		{"rt_c", "at_c", "R1", ts("2024-04-04T04:04:04.444Z"), "NULL", "true"},
		{"rt_d", "at_d", "R1", ts("2024-04-04T04:04:04.444Z"), "NULL", "true"},
	}, w.query(`SELECT r.refresh_token, a.access_token, s.device_id, r.created_at, a.expires_at,
  r.consumed_at IS NULL AND r.compat_session_id = a.compat_session_id
FROM compat_refresh_tokens r JOIN compat_access_tokens a USING (compat_access_token_id) JOIN compat_sessions s ON s.compat_session_id = r.compat_session_id ORDER BY 1`))
	if n := w.query(`SELECT count(*) FROM compat_access_tokens WHERE access_token IN ('at_a', 'at_h')`); n[0][0] != "0" {
		t.Errorf("dropped refresh pairs' access tokens were written")
	}

	want := map[string]int64{"users": 4, "threepids": 0, "external_ids": 0, "nonrefreshable_access_tokens": 5, "refreshable_tokens": 3, "devices": 5}
	if d := cmp.Diff(want, counts(t, res, "migrated")); d != "" {
		t.Errorf("migrated (-want +got):\n%s", d)
	}
	wantSkipped := map[string]int64{"users": 1, "threepids": 0, "external_ids": 0, "nonrefreshable_access_tokens": 5, "refreshable_tokens": 1, "devices": 3}
	if d := cmp.Diff(wantSkipped, counts(t, res, "skipped")); d != "" {
		t.Errorf("skipped (-want +got):\n%s", d)
	}
}

func TestRuleAppserviceLocalpartWithColon(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, creation_ts, appservice_id) VALUES ('@irc_a:b:example.com', 1600000000, 'irc'), ('@alice:example.com', 1600000000, NULL)`)
	res, _ := w.mustMigrate()
	warn := res.Outputs.GetAttr("warnings").AsValueSlice()
	if len(warn) != 1 || !strings.Contains(warn[0].AsString(), "@irc_a:b:example.com") {
		t.Errorf("warnings = %v", warn)
	}
	rows(t, "users", [][]string{{"alice"}}, w.query(`SELECT username FROM users`))

	// Not remembered: a row of that user is fatal.
	w2 := newWorld(t)
	w2.syn(`INSERT INTO users (name, creation_ts, appservice_id) VALUES ('@irc_a:b:example.com', 1600000000, 'irc')`)
	w2.syn(`INSERT INTO devices (user_id, device_id) VALUES ('@irc_a:b:example.com', 'D')`)
	_, _, err := w2.migrate(nil)
	wantKind(t, err, sdk.KindConflict, "user @irc_a:b:example.com was not found for migration but a row in devices was found")
}

func TestRuleFatalUsers(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	start := w.state()
	for _, tc := range []struct {
		name, insert, want string
	}{
		{"wrong server", `INSERT INTO users (name, creation_ts) VALUES ('@eve:other.org', 1)`, `not on server "example.com" (e.g. @eve:other.org)`},
		{"appservice on other server", `INSERT INTO users (name, creation_ts, appservice_id) VALUES ('@as:other.org', 1, 'x')`, `(e.g. @as:other.org): the migration would fail with a wrong server name`},
		{"null creation_ts", `INSERT INTO users (name) VALUES ('@nots:example.com')`, "NULL name or creation_ts (e.g. @nots:example.com)"},
		{"null name", `INSERT INTO users (creation_ts) VALUES (1)`, "NULL name or creation_ts (e.g. (NULL name))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.syn(`DELETE FROM users`)
			w.syn(`INSERT INTO users (name, creation_ts) VALUES ('@alice:example.com', 1600000000)`)
			w.syn(tc.insert)
			_, _, err := w.migrate(nil)
			wantKind(t, err, sdk.KindConflict, tc.want)
			diffState(t, "after a failed run", start, w.state())
		})
	}
}

func TestMigrateRefusesNonEmptyMAS(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.exec(w.masURL, `INSERT INTO users (user_id, username, created_at) VALUES (gen_random_uuid(), 'x', now())`)
	_, _, err := w.migrate(map[string]cty.Value{"dry_run": cty.True})
	wantKind(t, err, sdk.KindConflict, `rows found in at least "users"`)
	if e := sdk.Classify(err); !strings.Contains(e.Hint, "fresh MAS database") {
		t.Errorf("hint %q", e.Hint)
	}
}

func TestMigrateNotAMASDatabase(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.exec(w.masURL, `DROP TABLE compat_refresh_tokens`)
	_, _, err := w.migrate(nil)
	wantKind(t, err, sdk.KindInvalid, "is this actually a MAS database?")
}

func TestMigrateSynapseRunning(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, creation_ts) VALUES ('@alice:example.com', 1600000000)`)
	c := w.conn(w.synURL)
	defer c.Close(context.Background())
	tx, err := c.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	// A live Synapse writing: ROW EXCLUSIVE on devices.
	if _, err := tx.Exec(context.Background(), `LOCK TABLE devices IN ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	_, _, err = w.migrate(nil)
	wantKind(t, err, sdk.KindConflict, "Synapse seems to be running")
	if !sdk.Classify(err).Retryable || sdk.Classify(err).Hint == "" {
		t.Errorf("want retryable with a hint: %+v", sdk.Classify(err))
	}
	// A dry run works beside a live Synapse.
	res, _, err := w.migrate(map[string]cty.Value{"dry_run": cty.True})
	if err != nil {
		t.Fatalf("dry run beside a running Synapse: %v", err)
	}
	if got := counts(t, res, "migrated")["users"]; got != 1 {
		t.Errorf("dry run migrated %d users", got)
	}
}

func TestMigrateAdvisoryLock(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	c := w.holdLock()
	defer c.Close(context.Background())
	_, _, err := w.migrate(nil)
	wantKind(t, err, sdk.KindConflict, "another migration holds the lock")
}

func TestMigrateConnectionErrors(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	bad := strings.Replace(w.masURL, "postgres://postgres@", "postgres://postgres:sekrit-pw@", 1)
	// A port where nothing listens.
	refused := strings.Replace(bad, w.masURL[strings.Index(w.masURL, "127.0.0.1:"):strings.LastIndex(w.masURL, "/")], "127.0.0.1:1", 1)
	_, _, err := w.migrate(map[string]cty.Value{"mas_database_url": cty.StringVal(refused)})
	wantKind(t, err, sdk.KindUnreachable, "MAS database")
	if !sdk.Classify(err).Retryable {
		t.Errorf("connection refused should be retryable")
	}
	if strings.Contains(err.Error(), "sekrit-pw") || strings.Contains(sdk.Classify(err).Hint, "sekrit-pw") {
		t.Errorf("password in error: %v", err)
	}

	authURL := testenvBadPassword(t)
	_, _, err = w.migrate(map[string]cty.Value{"synapse_database_url": cty.StringVal(authURL)})
	wantKind(t, err, sdk.KindAuth, "Synapse database")
	if pw := passwordOf(authURL); pw == "" || strings.Contains(err.Error(), pw) {
		t.Errorf("password in error: %v", err)
	}
}

func TestUndoKeepsLaterData(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.syn(`INSERT INTO users (name, creation_ts) VALUES ('@alice:example.com', 1600000000)`)
	w.syn(`INSERT INTO user_threepids VALUES ('@alice:example.com', 'email', 'a@x', 1, 1)`)
	// Data that existed before and does not refer to migrated rows.
	w.exec(w.masURL, `INSERT INTO oauth2_sessions (oauth2_session_id, user_id, scope_list, created_at) VALUES (gen_random_uuid(), NULL, '{}', now())`)
	start := w.state()
	res, _ := w.mustMigrate()
	// MAS ran and logged alice in: the undo must not delete that.
	w.exec(w.masURL, `INSERT INTO user_sessions (user_session_id, user_id, created_at) SELECT gen_random_uuid(), user_id, now() FROM users`)
	err := w.undo(res)
	wantKind(t, err, sdk.KindConflict, "1 rows of public.user_sessions refer to migrated rows")
	if n := w.query(`SELECT count(*) FROM users`); n[0][0] != "1" {
		t.Errorf("failed undo changed users: %s rows", n[0][0])
	}
	w.exec(w.masURL, `DELETE FROM user_sessions`)
	if err := w.undo(res); err != nil {
		t.Fatal(err)
	}
	diffState(t, "after undo", start, w.state())
}

// TestMigrateRebuildFailureRestoresEverything: when a constraint cannot be
// rebuilt over the loaded rows, the whole MAS transaction is rolled back:
// no row kept, every constraint and index back as it was.
func TestMigrateRebuildFailureRestoresEverything(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.exec(w.masURL, `CREATE UNIQUE INDEX user_emails_lower_unique ON user_emails (lower(email))`)
	w.syn(`INSERT INTO users (name, creation_ts) VALUES ('@a:example.com', 1), ('@b:example.com', 2)`)
	w.syn(`INSERT INTO user_threepids VALUES ('@a:example.com', 'email', 'Same@x', 1, 1), ('@b:example.com', 'email', 'same@x', 1, 1)`)
	start := w.state()
	_, _, err := w.migrate(nil)
	wantKind(t, err, sdk.KindConflict, "duplicate key in MAS table user_emails (user_emails_lower_unique): Key (lower(email))=(same@x) is duplicated.")
	if !strings.Contains(err.Error(), "Synapse rows behind it: @a:example.com (Same@x), @b:example.com (same@x)") {
		t.Errorf("error %q does not name the Synapse rows", err)
	}
	diffState(t, "after a failed rebuild", start, w.state())
}

// cancelOnProgress cancels a context at the first progress event.
type cancelOnProgress struct {
	recorder
	cancel context.CancelFunc
}

func (c *cancelOnProgress) Progress(cur, total int64, unit string) {
	c.recorder.Progress(cur, total, unit)
	c.cancel()
}

func TestMigrateCancelledLeavesMASUnchanged(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	c := w.conn(w.synURL)
	if err := generate(context.Background(), c, sizes{Users: 300, Emails: 100, ExternalIDs: 20, Devices: 300, AccessTokens: 600, RefreshPairs: 40}); err != nil {
		t.Fatal(err)
	}
	c.Close(context.Background())
	start := w.state()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := &cancelOnProgress{cancel: cancel}
	_, err := sdk.Local(New()).Apply(ctx, "migrate", &sdk.ApplyRequest{Inputs: w.inputs(nil)}, ev)
	if err == nil {
		t.Fatal("a cancelled migration succeeded")
	}
	if k := sdk.Classify(err).Kind; k != sdk.KindCancelled {
		t.Errorf("kind %q (%v), want cancelled", k, err)
	}
	diffState(t, "after a cancelled run", start, w.state())
}

func TestBadURLIsRedacted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, _, err := w.migrate(map[string]cty.Value{"mas_database_url": cty.StringVal("postgres://u:sekrit-pw@127.0.0.1:notaport/db")})
	wantKind(t, err, sdk.KindInvalid, "MAS database URL")
	if strings.Contains(err.Error(), "sekrit-pw") {
		t.Errorf("password in error: %v", err)
	}
}

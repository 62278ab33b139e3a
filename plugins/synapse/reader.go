package synapse

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runbookdev/runbook/sdk"
)

// synapseTables are the tables read, and locked to prove Synapse is stopped.
var synapseTables = []string{"users", "user_threepids", "user_external_ids", "devices", "access_tokens", "refresh_tokens"}

// openSynapse starts the one read transaction of the migration
// (SERIALIZABLE READ ONLY DEFERRABLE: a stable snapshot, and the server
// refuses any write) and locks the tables without waiting. In a real run
// the lock is EXCLUSIVE, which fails while Synapse writes to them; a dry
// run takes ACCESS SHARE so it can run beside a live Synapse.
func openSynapse(ctx context.Context, db *dbTarget, conn *pgx.Conn, dryRun bool) (pgx.Tx, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadOnly, DeferrableMode: pgx.Deferrable})
	if err != nil {
		return nil, db.classify(err, "start the read transaction on")
	}
	// Enough memory for the hash joins of the token queries (each hashes
	// the devices table) not to spill to disk.
	if _, err := tx.Exec(ctx, "SET LOCAL work_mem = '64MB'"); err != nil {
		_ = tx.Rollback(context.Background())
		return nil, db.classify(err, "configure the read transaction on")
	}
	mode := "EXCLUSIVE"
	if dryRun {
		mode = "ACCESS SHARE"
	}
	for _, t := range synapseTables {
		if _, err := tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{t}.Sanitize()+" IN "+mode+" MODE NOWAIT"); err != nil {
			_ = tx.Rollback(context.Background())
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "55P03" {
				return nil, sdk.Errorf(sdk.KindConflict, true,
					"stop Synapse and all its workers before the real migration (a dry run may run while it is up)",
					"Synapse seems to be running: table %s of the %s is in use", t, db.where())
			}
			return nil, db.classify(err, "lock table "+t+" of")
		}
	}
	return tx, nil
}

// estimates returns pg_class row estimates per table, clamped at 0 (an
// exact count takes minutes on large servers).
func estimates(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) (map[string]int64, error) {
	rows, err := q.Query(ctx, `
SELECT c.relname, GREATEST(c.reltuples, 0)::bigint FROM pg_class c
WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1::text[])`, synapseTables)
	if err != nil {
		return nil, fmt.Errorf("estimate row counts: %w", err)
	}
	out := map[string]int64{}
	for rows.Next() {
		var n string
		var c int64
		if err := rows.Scan(&n, &c); err != nil {
			rows.Close()
			return nil, err
		}
		out[n] = c
	}
	return out, rows.Err()
}

const (
	qUsers = `SELECT name, password_hash, admin, deactivated, locked, creation_ts, is_guest, appservice_id FROM users`

	// The users in the byte order of their localpart (MAS's username):
	// when the MAS database compares text bytewise, the users are
	// streamed to MAS in the order of their username indexes, instead of
	// being held and sorted once all are read (presortColumns). The
	// localpart is what precedes the first ':' (after the '@', which
	// every migrated user has).
	qUsersByLocalpart = qUsers + ` ORDER BY split_part(name, ':', 1) COLLATE "C"`

	qThreepids = `SELECT user_id, medium, address, added_at FROM user_threepids`

	qExternalIDs = `SELECT user_id, auth_provider, external_id FROM user_external_ids`

	// Non-refreshable tokens: puppet tokens and tokens whose device row is
	// gone are dropped; deviceless tokens are kept. The device's hidden
	// flag (and id) is read so that tokens of devices that are not migrated
	// are skipped instead of pointing at a session never written. One scan
	// of access_tokens (the reference tool's UNION ALL scans it twice).
	qAccessTokens = `
SELECT at0.user_id, at0.device_id, at0.token, at0.valid_until_ms, at0.last_validated, COALESCE(d.hidden, false)
FROM access_tokens at0 LEFT JOIN devices d ON d.user_id = at0.user_id AND d.device_id = at0.device_id
WHERE at0.puppets_user_id IS NULL AND at0.refresh_token_id IS NULL AND (at0.device_id IS NULL OR d.device_id IS NOT NULL)`

	// Refresh pairs: a pair is dropped once its successor's access token
	// has been used; otherwise it is migrated (old and new pairs alike).
	// The access tokens of refresh tokens are read once, for both joins.
	qRefreshTokens = `
WITH rat AS MATERIALIZED (
  SELECT refresh_token_id, user_id, device_id, token, valid_until_ms, last_validated, used
  FROM access_tokens WHERE refresh_token_id IS NOT NULL)
SELECT rt0.user_id, rt0.device_id, at0.token, rt0.token, at0.valid_until_ms, at0.last_validated, COALESCE(d.hidden, false)
FROM refresh_tokens rt0
JOIN devices d USING (user_id, device_id)
JOIN rat at0 ON at0.refresh_token_id = rt0.id AND at0.user_id = rt0.user_id AND at0.device_id = rt0.device_id
LEFT JOIN rat at1 ON at1.refresh_token_id = rt0.next_token_id
WHERE NOT at1.used OR at1.used IS NULL`

	// The reads of the migration's second connection: every device (with
	// its hidden flag), then the non-refreshable, non-puppet tokens; the
	// migration looks each token's device up among the devices, which
	// gives exactly the rows and hidden flags of qAccessTokens, without
	// the server-side hash join: 0.51-0.65 s of server CPU with it for the
	// 288,000 tokens of the benchmark's scale set, 0.13-0.16 s without it
	// (and 0.11-0.15 s for every device, as much as for the migrated ones).
	qDevicesAll = `SELECT user_id, device_id, display_name, last_seen, ip, user_agent, COALESCE(hidden, false) FROM devices`

	qTokensPlain = `
SELECT user_id, device_id, token, valid_until_ms, last_validated FROM access_tokens
WHERE puppets_user_id IS NULL AND refresh_token_id IS NULL`

	// Devices: hidden ones (NULL counts as not hidden, as for tokens) and
	// the guest_device placeholder are not migrated.
	qDevices = `
SELECT user_id, device_id, display_name, last_seen, ip, user_agent FROM devices
WHERE NOT COALESCE(hidden, false) AND device_id != 'guest_device'`
)

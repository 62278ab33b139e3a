package synapse

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runbookdev/runbook/sdk"
)

// dupDetail parses PostgreSQL's detail of a unique violation.
var dupDetail = regexp.MustCompile(`^Key \((.*)\)=\((.*)\) (?:is duplicated|already exists)\.$`)

// tokenTables hold secrets: a duplicate's value is never shown.
var tokenTables = map[string]bool{"compat_access_tokens": true, "compat_refresh_tokens": true}

// dupSources finds, per MAS table, the Synapse rows a duplicated key
// value comes from ($1 is the value; for links, the subject).
var dupSources = map[string]string{
	"users": `SELECT name FROM users WHERE appservice_id IS NULL
  AND lower(split_part(regexp_replace(name, '^@', ''), ':', 1)) = lower($1) ORDER BY name LIMIT 10`,
	"user_emails": `SELECT user_id || ' (' || address || ')' FROM user_threepids
  WHERE medium = 'email' AND lower(address) = lower($1) ORDER BY 1 LIMIT 10`,
	"upstream_oauth_links": `SELECT user_id || ' (' || auth_provider || ' ' || external_id || ')' FROM user_external_ids
  WHERE external_id = $1 ORDER BY 1 LIMIT 10`,
}

// explainDuplicate turns a unique violation met while rebuilding the MAS
// keys into an error naming the duplicated key (PostgreSQL's detail, less
// the value for token tables) and the Synapse rows behind it. It returns
// nil for any other error.
func explainDuplicate(ctx context.Context, e *env, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		return nil
	}
	table := pgErr.TableName
	shown := pgErr.Detail
	var key, val string
	if m := dupDetail.FindStringSubmatch(pgErr.Detail); m != nil {
		key, val = m[1], m[2]
	}
	if tokenTables[table] {
		shown = fmt.Sprintf("Key (%s) is duplicated.", key)
	}
	msg := fmt.Sprintf("duplicate key in MAS table %s (%s): %s", table, pgErr.ConstraintName, shown)
	if q, ok := dupSources[table]; ok && val != "" && !tokenTables[table] {
		if table == "upstream_oauth_links" {
			if _, sub, ok := strings.Cut(val, ", "); ok {
				val = sub
			}
		}
		var found []string
		lookErr := readOnly(ctx, e.synDB, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, q, val)
			if err != nil {
				return err
			}
			found, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
		switch {
		case lookErr != nil:
			msg += fmt.Sprintf(" (the Synapse rows behind it could not be read: %v)", lookErr)
		case len(found) > 0:
			msg += "; Synapse rows behind it: " + strings.Join(found, ", ")
		}
	}
	return sdk.Errorf(sdk.KindConflict, false, "fix or delete the Synapse rows behind the duplicate, then migrate again; MAS is unchanged",
		"%s", redact(msg, e.masDB.secrets...))
}

package synapse

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runbookdev/runbook/sdk"
)

// dbTarget is one database to connect to: its config and the secrets that
// must never appear in an error.
type dbTarget struct {
	what    string // "Synapse" or "MAS"
	cfg     *pgx.ConnConfig
	secrets []string
}

// newTarget builds a connection config. override (a URL or keyword/value
// string) wins over the config file's settings; settings not given fall
// back to the libpq environment (PGHOST, PGUSER, ...).
func newTarget(what, override string, s dbSettings) (*dbTarget, error) {
	t := &dbTarget{what: what}
	src := override
	if src == "" {
		src = s.URI
	}
	if src != "" {
		t.secrets = append(t.secrets, src)
		cfg, err := pgx.ParseConfig(src)
		if err != nil {
			return nil, sdk.Errorf(sdk.KindInvalid, false, "check the "+what+" database URL",
				"parse the %s database URL: %s", what, redact(err.Error(), src))
		}
		t.cfg = cfg
		if cfg.Password != "" {
			t.secrets = append(t.secrets, cfg.Password)
		}
		return t, nil
	}
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, sdk.Errorf(sdk.KindInvalid, false, "check the PG* environment variables",
			"%s database settings: %v", what, err)
	}
	if s.Host != "" {
		cfg.Host = s.Host
	}
	if s.Port != "" {
		p, err := strconv.ParseUint(s.Port, 10, 16)
		if err != nil {
			return nil, sdk.Errorf(sdk.KindInvalid, false, "", "%s database port %q is not a number", what, s.Port)
		}
		cfg.Port = uint16(p)
	}
	if s.User != "" {
		cfg.User = s.User
	}
	if s.Password != "" {
		cfg.Password = s.Password
		t.secrets = append(t.secrets, s.Password)
	}
	if s.Database != "" {
		cfg.Database = s.Database
	}
	t.cfg = cfg
	return t, nil
}

// connect opens one connection and classifies failures.
func (t *dbTarget) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, t.cfg.Copy())
	if err != nil {
		return nil, t.classify(err, "connect to")
	}
	return conn, nil
}

// where names the server without secrets.
func (t *dbTarget) where() string {
	return fmt.Sprintf("%s database %q at %s:%d as %q", t.what, t.cfg.Database, t.cfg.Host, t.cfg.Port, t.cfg.User)
}

// classify turns a database error into a classified sdk error whose text
// holds no secret.
func (t *dbTarget) classify(err error, doing string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &sdk.Error{Kind: sdk.KindCancelled, Err: fmt.Errorf("%s %s: %w", doing, t.where(), err)}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		msg := fmt.Sprintf("%s %s: %s (SQLSTATE %s)", doing, t.where(), redact(pgErr.Message, t.secrets...), pgErr.Code)
		switch {
		case pgErr.Code == "28P01" || pgErr.Code == "28000":
			return sdk.Errorf(sdk.KindAuth, false, "check the user and password of the "+t.what+" database", "%s", msg)
		case pgErr.Code == "3D000":
			return sdk.Errorf(sdk.KindNotFound, false, "check the database name in the "+t.what+" configuration", "%s", msg)
		case pgErr.Code == "55P03":
			return sdk.Errorf(sdk.KindConflict, true, "", "%s", msg)
		case strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P03" || pgErr.Code == "53300":
			return sdk.Errorf(sdk.KindUnreachable, true, "check that the "+t.what+" database server is up", "%s", msg)
		case strings.HasPrefix(pgErr.Code, "53"):
			return sdk.Errorf(sdk.KindQuota, true, "", "%s", msg)
		case strings.HasPrefix(pgErr.Code, "23"):
			return sdk.Errorf(sdk.KindConflict, false, "", "%s", msg)
		}
		return sdk.Errorf(sdk.KindInternal, false, "", "%s", msg)
	}
	var netErr net.Error
	if errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &netErr) || isConnectError(err) {
		return sdk.Errorf(sdk.KindUnreachable, true, "check that the "+t.what+" database server is up and reachable",
			"%s %s: %s", doing, t.where(), redact(rootMessage(err), t.secrets...))
	}
	return sdk.Errorf(sdk.KindInternal, false, "", "%s %s: %s", doing, t.where(), redact(err.Error(), t.secrets...))
}

func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

// rootMessage is the innermost error's text (it leaves out pgconn's
// "failed to connect to `user=... database=...`" wrapper).
func rootMessage(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// redact removes every secret from s.
func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}

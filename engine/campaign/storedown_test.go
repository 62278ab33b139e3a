package campaign

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestStoreDown: a state database that restarts, refuses connections or
// is unreachable makes the job retried (its run resumed), never the
// target failed; a refusal that will not change by waiting does not.
func TestStoreDown(t *testing.T) {
	wrap := func(err error) error {
		return fmt.Errorf("run 01ABC: read journal from postgres://127.0.0.1/x: %w", err)
	}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"admin shutdown (restart)", wrap(&pgconn.PgError{Severity: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"}), true},
		{"starting up", wrap(&pgconn.PgError{Code: "57P03", Message: "the database system is starting up"}), true},
		{"too many connections", wrap(&pgconn.PgError{Code: "53300"}), true},
		{"connection failure", wrap(&pgconn.PgError{Code: "08006"}), true},
		{"serialization", wrap(&pgconn.PgError{Code: "40001"}), true},
		{"refused", wrap(&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}), true},
		{"undefined table", wrap(&pgconn.PgError{Code: "42P01"}), false},
		{"bad password", wrap(&pgconn.PgError{Code: "28P01"}), false},
		{"run's own error", errors.New("step copy: unreachable: dial tcp 10.0.0.1:443: connection refused"), false},
	} {
		if got := storeDown(c.err); got != c.want {
			t.Errorf("%s: storeDown = %v, want %v", c.name, got, c.want)
		}
		if o := failed(c.err); (o.retry != nil) != c.want || (o.err != "") == c.want {
			t.Errorf("%s: failed() = %+v", c.name, o)
		}
	}
}

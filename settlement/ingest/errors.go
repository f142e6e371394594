package ingest

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// transient reports whether err is the platform's and not a record's: the
// connection, the server's state or a race with another writer, which a
// retry of the same batch can get past (meters/README.md "Nothing a producer
// sends can stop ingest"). Any other error is taken as a refusal of what a
// record holds, and the consumer looks for that record.
//
// Errors of the deployment rather than of a record (a privilege or a table
// missing, a server's internal error) count as transient too: they refuse
// every record alike, so quarantining would set the whole stream aside; the
// partition waits, retrying, until the deployment is fixed.
func transient(err error) bool {
	// A failed connection attempt may carry the server's refusal ("database
	// does not allow connections", SQLSTATE 55000): never a record's.
	var connect *pgconn.ConnectError
	if errors.As(err, &connect) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return transientState(pg.Code)
	}
	var netErr net.Error
	switch {
	case errors.Is(err, readstore.ErrConcurrentWrite),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		pgconn.Timeout(err), pgconn.SafeToRetry(err),
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, pgx.ErrTxClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &netErr):
		return true
	}
	// pgxpool's closed pool has no typed error.
	return strings.Contains(err.Error(), "closed pool")
}

// transientState reports whether a SQLSTATE is transient (see transient).
func transientState(code string) bool {
	switch code {
	case "40001", "40P01", // serialization failure, deadlock
		"57014", "55P03", // statement timeout (query canceled), lock not available
		"57P01", "57P02", "57P03": // admin shutdown (pg_terminate_backend), crash shutdown, cannot connect now
		return true
	}
	if len(code) != 5 {
		return true // not a server's SQLSTATE: never blame a record for it
	}
	switch code[:2] {
	case "08", // connection exception
		"53",       // insufficient resources
		"58", "XX", // system error, internal error
		"42",       // syntax error or access rule violation: the deployment's
		"3D", "3F", // no such database or schema
		"28", "F0": // authorization, configuration file
		return true
	}
	return false
}

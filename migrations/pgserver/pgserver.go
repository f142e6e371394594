// Package pgserver holds the statements cmd/gridsettle's bench and chaos
// harnesses run about the server rather than about one package's tables:
// scratch databases, server settings, checkpoints, emptying a set of
// tables, and the sessions of named applications. The product never calls
// it.
package pgserver

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what the statements need: a pool, a connection or a
// transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// CreateDatabase creates the database name, which must be a plain
// identifier (the caller generates it).
func CreateDatabase(ctx context.Context, db Querier, name string) error {
	if _, err := db.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops the database name if it exists, ending its sessions.
func DropDatabase(ctx context.Context, db Querier, name string) error {
	if _, err := db.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// Settings are the server settings a benchmark figure depends on.
type Settings struct {
	Version, Fsync, SynchronousCommit string
}

// ReadSettings reads the server's version, fsync and synchronous_commit.
func ReadSettings(ctx context.Context, db Querier) (Settings, error) {
	var s Settings
	if err := db.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('fsync'), current_setting('synchronous_commit')`).
		Scan(&s.Version, &s.Fsync, &s.SynchronousCommit); err != nil {
		return Settings{}, fmt.Errorf("read server settings: %w", err)
	}
	return s, nil
}

// Checkpoint runs a CHECKPOINT; it needs a superuser or pg_checkpoint.
func Checkpoint(ctx context.Context, db Querier) error {
	if _, err := db.Exec(ctx, `CHECKPOINT`); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// TruncateExisting empties those of tables the schema has, in one
// statement; the others are left out.
func TruncateExisting(ctx context.Context, db Querier, tables []string) error {
	rows, err := db.Query(ctx, `SELECT quote_ident(n) FROM unnest($1::text[]) n WHERE to_regclass(quote_ident(n)) IS NOT NULL`, tables)
	if err != nil {
		return fmt.Errorf("list the tables to empty: %w", err)
	}
	existing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list the tables to empty: %w", err)
	}
	if _, err := db.Exec(ctx, "TRUNCATE "+strings.Join(existing, ", ")); err != nil {
		return fmt.Errorf("empty %v: %w", existing, err)
	}
	return nil
}

// CountWaitingOnLock counts the sessions of this database whose
// application_name is one of apps and which wait on a lock.
func CountWaitingOnLock(ctx context.Context, db Querier, apps []string) (int, error) {
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
		AND wait_event_type = 'Lock' AND application_name = ANY($1)`, apps).Scan(&n); err != nil {
		return 0, fmt.Errorf("count the sessions waiting on a lock: %w", err)
	}
	return n, nil
}

// TerminateSessions terminates the sessions of this database whose
// application_name is one of apps, returning how many it terminated.
func TerminateSessions(ctx context.Context, db Querier, apps []string) (int, error) {
	var n int
	if err := db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = ANY($1)`, apps).Scan(&n); err != nil {
		return 0, fmt.Errorf("terminate the sessions of %v: %w", apps, err)
	}
	return n, nil
}

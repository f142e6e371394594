package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed *.sql
var files embed.FS

// FS is the ordered set of migration files embedded in the binary.
func FS() fs.FS { return files }

// ErrSchemaTooNew is returned when the database was migrated by a newer
// gridsettle than this one.
var ErrSchemaTooNew = errors.New("database schema is newer than this gridsettle binary")

// Connect opens a pool on url with shopspring decimals registered on every
// connection, so numeric columns scan into decimal.Decimal exactly.
func Connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	// A process frozen inside a transaction (SIGSTOP, a paused VM) would
	// otherwise hold its row locks until it wakes: the partition's new owner
	// in ingest, or any writer of the same rows, would stall behind it. Every
	// transaction gridsettle opens works without pause, so one idle for a
	// minute belongs to a process that is gone or frozen; Postgres ends it.
	if _, set := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !set {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = "60000"
	}
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		registerDecimals(c.TypeMap())
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

// Apply brings the database at pool up to the newest embedded migration.
// It refuses a database whose schema is ahead of this binary.
func Apply(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	return apply(ctx, db, log)
}

func apply(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("create migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, files, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	current, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	sources := p.ListSources()
	if n := len(sources); n > 0 && current > sources[n-1].Version {
		return fmt.Errorf("%w: database is at version %d, this binary knows up to %d; upgrade gridsettle or use another data dir",
			ErrSchemaTooNew, current, sources[n-1].Version)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

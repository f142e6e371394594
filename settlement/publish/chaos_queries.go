package publish

// The queries in this file serve cmd/gridsettle's chaos and bench
// harnesses, which watch the relays' leases and prepare the outbox; the
// product never calls them.

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// CountLeasesHeld counts the outbox leases held: the granted advisory locks
// of the relays' lease sessions (LeaseApplicationName) in this database.
func CountLeasesHeld(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() AND a.application_name = $1`,
		LeaseApplicationName).Scan(&n); err != nil {
		return 0, fmt.Errorf("count the leases held: %w", err)
	}
	return n, nil
}

// LeasesByBackend counts the outbox leases each lease session holds, by
// the session's backend pid (as text).
func LeasesByBackend(ctx context.Context, pool *pgxpool.Pool) (map[string]int, error) {
	rows, err := pool.Query(ctx, `SELECT l.pid::text, count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() AND a.application_name = $1
		GROUP BY l.pid`, LeaseApplicationName)
	if err != nil {
		return nil, fmt.Errorf("list the lease holders: %w", err)
	}
	defer rows.Close()
	held := map[string]int{}
	for rows.Next() {
		var (
			pid string
			n   int
		)
		if err := rows.Scan(&pid, &n); err != nil {
			return nil, fmt.Errorf("list the lease holders: %w", err)
		}
		held[pid] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the lease holders: %w", err)
	}
	return held, nil
}

// AnalyzeOutbox refreshes the outbox's planner statistics (the bench fills
// it in bulk before relaying).
func AnalyzeOutbox(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, `ANALYZE outbox`); err != nil {
		return fmt.Errorf("analyze outbox: %w", err)
	}
	return nil
}

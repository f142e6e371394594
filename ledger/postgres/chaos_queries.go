package postgres

// The counts in this file serve cmd/gridsettle's chaos suite, which checks
// the journal against the statement lines; the product verifies the journal
// with Verify.

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// CountUnbalancedEntries counts the journal entries whose lines do not sum
// to zero.
func CountUnbalancedEntries(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT entry_id FROM journal_lines GROUP BY entry_id HAVING sum(amount) <> 0) u`).
		Scan(&n); err != nil {
		return 0, fmt.Errorf("count unbalanced journal entries: %w", err)
	}
	return n, nil
}

// CountEntries counts the journal entries.
func CountEntries(ctx context.Context, pool *pgxpool.Pool) (int, error) {
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM journal_entries`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count journal entries: %w", err)
	}
	return n, nil
}

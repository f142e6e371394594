package postgres

// The counts in this file check what a run wrote for cmd/gridsettle's
// bench (bench_runs.go); the product never calls them.

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// RunOutputs counts what a run wrote.
type RunOutputs struct {
	Lines, Charges, Intervals int64
	// Outbox counts the outbox rows of the run's lines and charges.
	Outbox int64
}

// CountRunOutputs counts the statement lines, account charges, interval
// rows and outbox rows run wrote.
func CountRunOutputs(ctx context.Context, pool *pgxpool.Pool, run string) (RunOutputs, error) {
	var o RunOutputs
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM statement_lines WHERE run_id = $1),
		(SELECT count(*) FROM account_charges WHERE run_id = $1), (SELECT count(*) FROM run_intervals WHERE run_id = $1),
		(SELECT count(*) FROM outbox WHERE record_id IN (SELECT statement_id FROM statement_lines WHERE run_id = $1
		                                                   UNION ALL SELECT charge_id FROM account_charges WHERE run_id = $1))`, run).
		Scan(&o.Lines, &o.Charges, &o.Intervals, &o.Outbox); err != nil {
		return RunOutputs{}, fmt.Errorf("count the outputs of run %s: %w", run, err)
	}
	return o, nil
}

// CountEstimateMethods counts run's estimates by method.
func CountEstimateMethods(ctx context.Context, pool *pgxpool.Pool, run string) (lin, ldy, zer int64, err error) {
	if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE method = 'LIN'),
			count(*) FILTER (WHERE method = 'LDY'), count(*) FILTER (WHERE method = 'ZER')
			FROM run_estimates WHERE run_id = $1`, run).Scan(&lin, &ldy, &zer); err != nil {
		return 0, 0, 0, fmt.Errorf("count the estimates of %s: %w", run, err)
	}
	return lin, ldy, zer, nil
}

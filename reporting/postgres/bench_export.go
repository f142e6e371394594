package postgres

// The statements in this file serve cmd/gridsettle's export bench
// (bench_export.go); the product never calls them.

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CountRunIntervals counts run's run_intervals rows: the rows of its
// intervals.parquet.
func CountRunIntervals(ctx context.Context, pool *pgxpool.Pool, run string) (int64, error) {
	var n int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM run_intervals WHERE run_id = $1`, run).Scan(&n); err != nil {
		return 0, fmt.Errorf("count run intervals: %w", err)
	}
	return n, nil
}

// CopyRunIntervals writes run's run_intervals rows to w as COPY text, in
// the order the export reads them: the plain read-out the bench compares
// the export with.
func CopyRunIntervals(ctx context.Context, pg *pgconn.PgConn, w io.Writer, run string) error {
	if _, err := pg.CopyTo(ctx, w, fmt.Sprintf(`COPY (SELECT participant_id, settlement_point, interval_start, energy_mwh, price, amount,
		actual_reads, estimated_reads, gridsettle_estimated_reads, estimated_energy_mwh FROM run_intervals WHERE run_id = '%s'
		ORDER BY participant_id COLLATE "C", settlement_point COLLATE "C", interval_start) TO STDOUT`, run)); err != nil {
		return fmt.Errorf("copy run intervals out: %w", err)
	}
	return nil
}

// ForgetExports deletes every exports row, so that the next export of a
// run is written anew (the files are not touched).
func ForgetExports(ctx context.Context, pool *pgxpool.Pool) error {
	if _, err := pool.Exec(ctx, `DELETE FROM exports`); err != nil {
		return fmt.Errorf("reset exports: %w", err)
	}
	return nil
}

package postgres

// The statements in this file seed the registry of cmd/gridsettle's bench
// (bench_ingest.go, bench_runs.go); the product never calls them.

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// SeedBenchRegistry registers meters MTR-0000001.., one account each
// (ACC-…), spread over participants RETAILER-001.. × points SP-001.., with
// a few loss factors, and analyzes the tables. As in the simulator's
// registry, 35% of the accounts have a daily threshold (60 kWh: about half
// of the generated meters' days reach it), 25% a monthly budget and 25%
// price alerts, so ingest keeps and evaluates their alert aggregates.
func SeedBenchRegistry(ctx context.Context, pool *pgxpool.Pool, meters, participants, points int) error {
	for _, s := range []struct{ what, sql string }{
		{"INSERT participants", `INSERT INTO participants SELECT 'RETAILER-' || lpad(i::text, 3, '0'), 'Retailer ' || i FROM generate_series(1, $1::int) i
		 WHERE $2::int > 0 AND $3::int > 0`},
		{"INSERT settlement_points", `INSERT INTO settlement_points SELECT 'SP-' || lpad(i::text, 3, '0'), 'Point ' || i, (ARRAY['hub', 'zone', 'node'])[1 + i % 3]
		 FROM generate_series(1, $2::int) i WHERE $1::int > 0 AND $3::int > 0`},
		{"INSERT accounts", `INSERT INTO accounts (account_id, name, daily_kwh_threshold, monthly_budget, price_alerts)
		 SELECT 'ACC-' || lpad(i::text, 7, '0'), 'Account ' || i,
		        CASE WHEN i % 20 < 7 THEN 60 END, CASE WHEN i % 4 = 1 THEN 250.00 END, i % 4 = 2
		 FROM generate_series(1, $3::int) i
		 WHERE $1::int > 0 AND $2::int > 0`},
		{"INSERT meter_assignments", `INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		 SELECT 'MTR-' || lpad(i::text, 7, '0'), 'ACC-' || lpad(i::text, 7, '0'),
		        'RETAILER-' || lpad((1 + (i - 1) % $1::int)::text, 3, '0'),
		        'SP-' || lpad((1 + ((i - 1) / $1::int) % $2::int)::text, 3, '0'),
		        (ARRAY[1.0000, 1.0125, 1.0250, 0.9875, 1.031])[1 + i % 5], '2020-01-01T00:00:00Z'
		 FROM generate_series(1, $3::int) i`},
	} {
		if _, err := pool.Exec(ctx, s.sql, participants, points, meters); err != nil {
			return fmt.Errorf("seed: %s: %w", s.what, err)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE participants, settlement_points, accounts, meter_assignments`); err != nil {
		return fmt.Errorf("seed: ANALYZE: %w", err)
	}
	return nil
}

// SwitchBenchRetailers ends about 1% of the seeded assignments at `at` and
// assigns those meters from then on to the next of participants retailers,
// returning how many switched.
func SwitchBenchRetailers(ctx context.Context, pool *pgxpool.Pool, at time.Time, participants int) (int64, error) {
	tag, err := pool.Exec(ctx, `
		WITH moved AS (
			UPDATE meter_assignments SET effective_to = $1 WHERE id % 100 = 7 RETURNING *
		)
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		SELECT meter_id, account_id,
		       'RETAILER-' || lpad((1 + substr(participant_id, 10)::int % $2::int)::text, 3, '0'),
		       settlement_point, loss_factor, $1
		FROM moved`, at, participants)
	if err != nil {
		return 0, fmt.Errorf("seed retailer switches: %w", err)
	}
	return tag.RowsAffected(), nil
}

// CountOpenPairs counts the (participant, settlement point) pairs of the
// assignments still in force after at.
func CountOpenPairs(ctx context.Context, pool *pgxpool.Pool, at time.Time) (int, error) {
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT (participant_id, settlement_point)) FROM meter_assignments
		WHERE effective_to IS NULL OR effective_to > $1`, at).Scan(&n); err != nil {
		return 0, fmt.Errorf("count assignment pairs: %w", err)
	}
	return n, nil
}

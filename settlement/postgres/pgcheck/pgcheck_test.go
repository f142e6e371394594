package pgcheck_test

import (
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement/oracle"
	"github.com/gridsettle/gridsettle/settlement/postgres/pgcheck"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestStoredEstimates reads the estimate columns of migration 00900 back
// in the shape the oracle's figures are compared in: run_estimates rows
// and the estimate figures of lines, charges and intervals.
func TestStoredEstimates(t *testing.T) {
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	start := time.Date(2026, time.November, 1, 7, 0, 0, 0, time.UTC)
	for _, q := range []string{
		`INSERT INTO runs (run_id, operating_day, run_type, version, status, started_at)
			VALUES ('run-2026-11-01-initial-1', '2026-11-01', 'initial', 1, 'completed', now())`,
		`INSERT INTO statement_lines VALUES ('HB_NORTH/RETAILER-A/2026-11-01/1', 'run-2026-11-01-initial-1', 'RETAILER-A',
			'HB_NORTH', '2026-11-01', 'initial', 1, NULL, 'USD', 1.5, 0, 30, 0, 0, 1.5, 30, 100, 100, 90, 5, 1, now(),
			0.0041250, 2, 3, 1)`,
		`INSERT INTO account_charges VALUES ('ACC-000001/RETAILER-A/2026-11-01/1', 'run-2026-11-01-initial-1', 'ACC-000001',
			'RETAILER-A', '2026-11-01', 'initial', 1, 10, 0, 10, 3, 0, 3, 'USD', 1.25)`,
		`INSERT INTO run_intervals VALUES ('run-2026-11-01-initial-1', 'RETAILER-A', 'HB_NORTH', '2026-11-01T07:00:00Z',
			0.5, NULL, NULL, 1, 0, 0.000412500000000001, 3)`,
		`INSERT INTO run_estimates VALUES ('run-2026-11-01-initial-1', 'MTR-000006', 'export', '2026-11-01T07:00:00Z', 300,
			0.1375, 'LIN', 'ACC-000006', 'VPP-SUNRISE', 'HB_NORTH', 1.0312)`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", strings.Fields(q)[2], err)
		}
	}
	var estimates []pgcheck.Estimate
	if err := pgcheck.Estimates(ctx, pool, func(e *pgcheck.Estimate) { estimates = append(estimates, *e) }); err != nil {
		t.Fatal(err)
	}
	if len(estimates) != 1 || estimates[0].RunID != "run-2026-11-01-initial-1" {
		t.Fatalf("estimates %+v", estimates)
	}
	lines, err := pgcheck.StatementLines(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if l := lines["HB_NORTH/RETAILER-A/2026-11-01/1"]; l.EstimatedEnergyMWh != "0.004125" ||
		l.Reads.GridsettleEstimated != (oracle.EstimateCounts{LIN: 2, LDY: 3, ZER: 1}) {
		t.Errorf("line %+v", l)
	}
	charges, err := pgcheck.AccountCharges(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if ch := charges["ACC-000001/RETAILER-A/2026-11-01/1"]; ch.EstimatedKWh != "1.250000" {
		t.Errorf("charge %+v", ch)
	}
	var intervals []oracle.IntervalFigure
	if err := pgcheck.RunIntervals(ctx, pool, func(run string, f oracle.IntervalFigure) {
		if run == "run-2026-11-01-initial-1" && f.ParticipantID == "RETAILER-A" && f.SettlementPoint == "HB_NORTH" && f.Start.Equal(start) {
			intervals = append(intervals, f)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(intervals) != 1 || !intervals[0].EstimatedEnergyMWh.Equal(decimal.RequireFromString("0.000412500000000001")) ||
		intervals[0].GridsettleEstimatedReads != 3 {
		t.Errorf("intervals %+v", intervals)
	}
	e := estimates[0]
	got := []string{e.MeterID, e.Channel, pgcheck.Fixed(e.ValueKWh, 6), e.Method, e.AccountID, e.ParticipantID, e.SettlementPoint,
		pgcheck.Fixed(e.LossFactor, 6)}
	want := []string{"MTR-000006", "export", "0.137500", "LIN", "ACC-000006", "VPP-SUNRISE", "HB_NORTH", "1.031200"}
	if strings.Join(got, " ") != strings.Join(want, " ") || !e.Start.Equal(start) || e.IntervalSeconds != 300 {
		t.Errorf("estimate %+v, want %v", e, want)
	}
}

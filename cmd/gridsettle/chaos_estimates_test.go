//go:build linux

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement/oracle"
)

func TestCompareEstimateMap(t *testing.T) {
	k := estimateKey{"MTR-000006", "export", 1_793_548_800}
	row := estimateRow{IntervalSeconds: 300, ValueKWh: "0.137500", Method: "LIN", AccountID: "ACC-000006",
		ParticipantID: "VPP-SUNRISE", SettlementPoint: "HB_NORTH", LossFactor: "1.031200"}
	other := row
	other.Method = "LDY"
	for _, c := range []struct {
		name      string
		want, got map[estimateKey]estimateRow
		problems  int
	}{
		{"equal", map[estimateKey]estimateRow{k: row}, map[estimateKey]estimateRow{k: row}, 0},
		{"different", map[estimateKey]estimateRow{k: row}, map[estimateKey]estimateRow{k: other}, 1},
		{"not stored", map[estimateKey]estimateRow{k: row}, nil, 1},
		{"not in the oracle", nil, map[estimateKey]estimateRow{k: row}, 1},
		{"none", nil, nil, 0},
	} {
		var p problems
		compareEstimateMap(&p, "run-1", c.want, c.got)
		if p.counts["estimates"] != c.problems {
			t.Errorf("%s: problems %v, want %d", c.name, p.byKind, c.problems)
		}
	}
}

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
	c := &chaos{pool: pool}
	got, err := c.storedEstimates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := got["run-2026-11-01-initial-1"]
	if r == nil || len(got) != 1 {
		t.Fatalf("runs %v", got)
	}
	lines, err := c.statementRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l := lines["HB_NORTH/RETAILER-A/2026-11-01/1"]; l.EstimatedEnergyMWh != "0.004125" ||
		l.Reads.GridsettleEstimated != (oracle.EstimateCounts{LIN: 2, LDY: 3, ZER: 1}) {
		t.Errorf("line %+v", l)
	}
	charges, err := c.chargeRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ch := charges["ACC-000001/RETAILER-A/2026-11-01/1"]; ch.EstimatedKWh != "1.250000" {
		t.Errorf("charge %+v", ch)
	}
	intervals, err := c.intervalRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	iv := intervals["run-2026-11-01-initial-1"][intervalKey{"RETAILER-A", "HB_NORTH", start.Unix()}]
	if !iv.EstimatedEnergyMWh.Equal(decimal.RequireFromString("0.000412500000000001")) || iv.GridsettleEstimatedReads != 3 {
		t.Errorf("interval %+v", iv)
	}
	want := estimateRow{IntervalSeconds: 300, ValueKWh: "0.137500", Method: "LIN", AccountID: "ACC-000006",
		ParticipantID: "VPP-SUNRISE", SettlementPoint: "HB_NORTH", LossFactor: "1.031200"}
	if e := r[estimateKey{"MTR-000006", "export", start.Unix()}]; e != want {
		t.Errorf("estimate %+v, want %+v", e, want)
	}
}

//go:build linux

package main

import (
	"context"
	"maps"
	"slices"

	"github.com/gridsettle/gridsettle/settlement/oracle"
	"github.com/gridsettle/gridsettle/settlement/postgres/pgcheck"
)

// The estimates a run stored (run_estimates, settlement/README.md "What a run
// records and publishes") are compared here with the oracle's, row by row.
// The estimate figures of lines, charges and intervals are columns of
// their rows and compared with them (statementRows, chargeRows,
// intervalRows).

type estimateKey struct {
	meter, channel string
	start          int64
}

// estimateRow is a run_estimates row; decimals at 6 places.
type estimateRow struct {
	IntervalSeconds int64
	ValueKWh        string
	Method          string
	AccountID       string
	ParticipantID   string
	SettlementPoint string
	LossFactor      string
}

// oracleEstimates are the estimates of the oracle's run st.
func oracleEstimates(st *oracle.Statement) map[estimateKey]estimateRow {
	out := map[estimateKey]estimateRow{}
	for _, x := range st.Estimates {
		out[estimateKey{x.MeterID, x.Channel, x.Start.Unix()}] = estimateRow{
			IntervalSeconds: x.IntervalSeconds,
			ValueKWh:        pgcheck.Fixed(x.ValueKWh, 6),
			Method:          x.Method,
			AccountID:       x.AccountID,
			ParticipantID:   x.ParticipantID,
			SettlementPoint: x.SettlementPoint,
			LossFactor:      pgcheck.Fixed(x.LossFactor, 6),
		}
	}
	return out
}

// compareEstimates: the run's stored estimates equal the oracle's for the
// same run (st), exactly.
func (c *chaos) compareEstimates(p *problems, st *oracle.Statement, got map[estimateKey]estimateRow) {
	want := oracleEstimates(st)
	c.st.Checked.Estimates += len(want)
	compareEstimateMap(p, st.RunID, want, got)
}

// compareEstimateMap reports every estimate only one side has or whose
// row differs.
func compareEstimateMap(p *problems, run string, want, got map[estimateKey]estimateRow) {
	for _, k := range slices.Collect(maps.Keys(want)) {
		if g, ok := got[k]; !ok {
			p.add("estimates", "%s %v: oracle %+v, not stored", run, k, want[k])
		} else if g != want[k] {
			p.add("estimates", "%s %v:\n    stored %+v\n    oracle %+v", run, k, g, want[k])
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			p.add("estimates", "%s %v: stored %+v, not in the oracle", run, k, g)
		}
	}
}

// storedEstimates are the estimates gridsettle stored, by run.
func (c *chaos) storedEstimates(ctx context.Context) (map[string]map[estimateKey]estimateRow, error) {
	out := map[string]map[estimateKey]estimateRow{}
	err := pgcheck.Estimates(ctx, c.pool, func(e *pgcheck.Estimate) {
		if out[e.RunID] == nil {
			out[e.RunID] = map[estimateKey]estimateRow{}
		}
		out[e.RunID][estimateKey{e.MeterID, e.Channel, e.Start.Unix()}] = estimateRow{
			IntervalSeconds: e.IntervalSeconds, ValueKWh: pgcheck.Fixed(e.ValueKWh, 6), Method: e.Method,
			AccountID: e.AccountID, ParticipantID: e.ParticipantID, SettlementPoint: e.SettlementPoint,
			LossFactor: pgcheck.Fixed(e.LossFactor, 6),
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

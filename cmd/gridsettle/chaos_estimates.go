//go:build linux

package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement/oracle"
)

// The estimate figures of a run (estimation.md "What a run records and
// publishes") are compared here, apart from the figures of before
// estimation: statementRows and chargeRows read the columns of those, and
// checkRuns compares them with the oracle's lines and charges stripped of
// their estimate figures (withoutEstimates); the published messages are
// compared whole, estimate figures included, by compareTopic.
//
// The oracle's side is read through oracleEstimates, lineWithoutEstimates
// and chargeWithoutEstimates, the only code that names the oracle's
// estimate fields (chaos_estimates_oracle.go).

// runEstimates are the estimate figures of one run, stored by gridsettle
// or computed by the oracle, in one shape.
type runEstimates struct {
	lines     map[string]lineEstimates // by statement_id
	charges   map[string]string        // estimated_kwh at 6 places, by charge_id
	intervals map[intervalKey]intervalEstimates
	estimates map[estimateKey]estimateRow
}

func newRunEstimates() *runEstimates {
	return &runEstimates{lines: map[string]lineEstimates{}, charges: map[string]string{},
		intervals: map[intervalKey]intervalEstimates{}, estimates: map[estimateKey]estimateRow{}}
}

// lineEstimates: estimated_energy_mwh at 6 places and the channel
// intervals estimated, by method.
type lineEstimates struct {
	EnergyMWh     string
	LIN, LDY, ZER int
}

// intervalEstimates: the run_intervals estimate columns; the energy is
// exact, so compared by value.
type intervalEstimates struct {
	EnergyMWh decimal.Decimal
	Reads     int
}

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

// compareEstimates: the run's stored estimate figures equal the oracle's
// for the same run (st), exactly; a missing run of got compares as a run
// with no estimate figure at all.
func (c *chaos) compareEstimates(p *problems, st *oracle.Statement, got *runEstimates) {
	want := oracleEstimates(st)
	if got == nil {
		got = newRunEstimates()
	}
	c.st.Checked.Estimates += len(want.estimates)
	compareEstimateMap(p, st.RunID, "statement line", want.lines, got.lines, func(a, b lineEstimates) bool { return a == b })
	compareEstimateMap(p, st.RunID, "account charge", want.charges, got.charges, func(a, b string) bool { return a == b })
	compareEstimateMap(p, st.RunID, "run interval", want.intervals, got.intervals, func(a, b intervalEstimates) bool {
		return a.Reads == b.Reads && a.EnergyMWh.Equal(b.EnergyMWh)
	})
	compareEstimateMap(p, st.RunID, "run_estimates row", want.estimates, got.estimates, func(a, b estimateRow) bool { return a == b })
}

// compareEstimateMap reports every key whose figures differ. Which lines,
// charges and intervals exist is checkRuns' business, so a key only one
// side has counts as zero figures on the other.
func compareEstimateMap[K comparable, V any](p *problems, run, what string, want, got map[K]V, equal func(a, b V) bool) {
	var zero V
	for _, k := range slices.Collect(maps.Keys(want)) {
		if g, ok := got[k]; !ok && !equal(want[k], zero) {
			p.add("estimates", "%s %s %v: oracle %+v, not stored", run, what, k, want[k])
		} else if ok && !equal(want[k], g) {
			p.add("estimates", "%s %s %v:\n    stored %+v\n    oracle %+v", run, what, k, g, want[k])
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok && !equal(g, zero) {
			p.add("estimates", "%s %s %v: stored %+v, not in the oracle", run, what, k, g)
		}
	}
}

// withoutEstimates is want with strip applied to every value.
func withoutEstimates[T any](want map[string]T, strip func(T) T) map[string]T {
	out := make(map[string]T, len(want))
	for id, v := range want {
		out[id] = strip(v)
	}
	return out
}

// storedEstimates are the estimate figures gridsettle stored, by run.
func (c *chaos) storedEstimates(ctx context.Context) (map[string]*runEstimates, error) {
	out := map[string]*runEstimates{}
	run := func(id string) *runEstimates {
		if out[id] == nil {
			out[id] = newRunEstimates()
		}
		return out[id]
	}
	each := func(what, query string, scans []any, fn func()) error {
		rows, err := c.pool.Query(ctx, query)
		if err != nil {
			return fmt.Errorf("read %s: %w", what, err)
		}
		if _, err := pgx.ForEachRow(rows, scans, func() error { fn(); return nil }); err != nil {
			return fmt.Errorf("read %s: %w", what, err)
		}
		return nil
	}
	var (
		id, rowID    string
		start        time.Time
		energy, kwh  decimal.Decimal
		line         lineEstimates
		interval     intervalEstimates
		ik           intervalKey
		ek           estimateKey
		est          estimateRow
		value, lossF decimal.Decimal
	)
	err := each("statement line estimates", `SELECT run_id, statement_id, estimated_energy_mwh,
		reads_estimated_lin, reads_estimated_ldy, reads_estimated_zer FROM statement_lines`,
		[]any{&id, &rowID, &energy, &line.LIN, &line.LDY, &line.ZER}, func() {
			line.EnergyMWh = fixed(energy, 6)
			run(id).lines[rowID] = line
		})
	if err == nil {
		err = each("account charge estimates", `SELECT run_id, charge_id, estimated_kwh FROM account_charges`,
			[]any{&id, &rowID, &kwh}, func() { run(id).charges[rowID] = fixed(kwh, 6) })
	}
	if err == nil {
		err = each("run interval estimates", `SELECT run_id, participant_id, settlement_point, interval_start,
			estimated_energy_mwh, gridsettle_estimated_reads FROM run_intervals`,
			[]any{&id, &ik.participant, &ik.point, &start, &interval.EnergyMWh, &interval.Reads}, func() {
				ik.start = start.Unix()
				run(id).intervals[ik] = interval
			})
	}
	if err == nil {
		err = each("run estimates", `SELECT run_id, meter_id, channel, interval_start, interval_seconds, value_kwh, method,
			account_id, participant_id, settlement_point, loss_factor FROM run_estimates`,
			[]any{&id, &ek.meter, &ek.channel, &start, &est.IntervalSeconds, &value, &est.Method,
				&est.AccountID, &est.ParticipantID, &est.SettlementPoint, &lossF}, func() {
				ek.start = start.Unix()
				est.ValueKWh, est.LossFactor = fixed(value, 6), fixed(lossF, 6)
				run(id).estimates[ek] = est
			})
	}
	return out, err
}

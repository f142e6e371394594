package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
	"github.com/gridsettle/gridsettle/settlement/simulate"
)

// The demo's estimation story (settlement/README.md "Estimation of missing
// reads (VEE)"): the initial run settles the head-end outage and the short gaps
// of the sample day on estimates, the late actuals arrive, and the final run
// replaces them.

// estimateTotals are a run's estimate figures over its statement lines.
type estimateTotals struct {
	mwh    decimal.Decimal
	counts settlement.EstimateCounts
}

func totalEstimates(lines []settlement.StatementLine) estimateTotals {
	var t estimateTotals
	for _, l := range lines {
		t.mwh = t.mwh.Add(l.EstimatedEnergyMWh)
		c := l.Reads.GridsettleEstimated
		t.counts.LIN += c.LIN
		t.counts.LDY += c.LDY
		t.counts.ZER += c.ZER
	}
	return t
}

func (t estimateTotals) intervals() int { return t.counts.LIN + t.counts.LDY + t.counts.ZER }

// String is how the demo says what a run estimated.
func (t estimateTotals) String() string {
	if t.intervals() == 0 {
		return "no estimates"
	}
	return fmt.Sprintf("%d channel intervals settled on estimates (LIN %d, LDY %d, ZER %d), %s MWh",
		t.intervals(), t.counts.LIN, t.counts.LDY, t.counts.ZER, t.mwh.StringFixed(6))
}

// replacement is what the estimates of one run that a later run no longer
// makes became: the actual reads that replaced them.
type replacement struct {
	n                 int
	estimated, actual decimal.Decimal // MWh in the day, loss factor applied
}

// replacedEstimates compares the estimates of run before with those of run
// after: every channel interval before estimated and after did not now has
// a current read (an actual replaced it). Each counts with the energy of
// its pieces in the day, as the run settles it.
func (d *demo) replacedEstimates(ctx context.Context, before, after settlementpg.Run) (replacement, error) {
	var r replacement
	was, err := d.svc.runs.Estimates(ctx, settlementpg.EstimateQuery{RunID: before.RunID})
	if err != nil {
		return r, err
	}
	still, err := d.svc.runs.Estimates(ctx, settlementpg.EstimateQuery{RunID: after.RunID})
	if err != nil {
		return r, err
	}
	type key struct {
		meter, channel string
		start          int64
	}
	kept := map[key]bool{}
	for _, e := range still {
		kept[key{e.MeterID, e.Channel, e.IntervalStart.Unix()}] = true
	}
	var gone []settlementpg.Estimate
	var keys []readstore.ValueKey
	for _, e := range was {
		if !kept[key{e.MeterID, e.Channel, e.IntervalStart.Unix()}] {
			gone = append(gone, e)
			keys = append(keys, readstore.ValueKey{MeterID: e.MeterID, Channel: meters.Channel(e.Channel), Start: e.IntervalStart.Unix()})
		}
	}
	values, err := readstore.CurrentValues(ctx, d.p.DB, keys)
	if err != nil {
		return r, err
	}
	m := d.p.Config.Market
	start, end := m.Bounds(demoDay)
	for i, e := range gone {
		if values[i] == readstore.NoRead {
			continue // not replaced by a read: its assignment went, say
		}
		r.n++
		r.estimated = r.estimated.Add(inDayMWh(e, e.ValueKWh, m.IntervalSeconds, start, end))
		r.actual = r.actual.Add(inDayMWh(e, readstore.KWh(values[i]), m.IntervalSeconds, start, end))
	}
	return r, nil
}

// inDayMWh is the settlement energy of a read of e's channel interval with
// value kWh in the day [start, end): its pieces there (settlement/README.md
// step 2), at e's loss factor, export negative.
func inDayMWh(e settlementpg.Estimate, kwh decimal.Decimal, settlementSeconds int, start, end time.Time) decimal.Decimal {
	sum := decimal.Zero
	for _, s := range meters.ToSettlementIntervals(e.IntervalStart, e.IntervalSeconds, kwh, settlementSeconds) {
		if !s.Start.Before(start) && s.Start.Before(end) {
			sum = sum.Add(s.KWh)
		}
	}
	if e.Channel == string(meters.Export) {
		sum = sum.Neg()
	}
	return settlement.MWh(sum, e.LossFactor)
}

// estimateSummary prints what the two runs estimated and how much of the
// final run's delta the actuals that replaced estimates explain.
func (d *demo) estimateSummary(ctx context.Context, w io.Writer, s *story, initial, final []settlement.StatementLine) error {
	ti, tf := totalEstimates(initial), totalEstimates(final)
	fmt.Fprintf(w, "Estimates (VEE: missing reads settled on estimates, flagged, restated when actuals arrive):\n")
	fmt.Fprintf(w, "  initial v%d: %s\n", s.initial.Version, ti)
	fmt.Fprintf(w, "  final v%d:   %s\n", s.final.Version, tf)
	r, err := d.replacedEstimates(ctx, s.initial, s.final)
	if err != nil {
		return err
	}
	delta := decimal.Zero
	for _, l := range final {
		delta = delta.Add(l.DeltaEnergyMWh)
	}
	if r.n == 0 {
		fmt.Fprintf(w, "  no estimate of v%d was replaced by an actual read in v%d\n", s.initial.Version, s.final.Version)
		return nil
	}
	effect := r.actual.Sub(r.estimated).RoundBank(settlement.EnergyScale)
	fmt.Fprintf(w, "  final v%d's Δ %s MWh: estimates replaced by actuals %s MWh (%d channel intervals: actual %s − estimated %s MWh), late reads and corrections %s MWh\n",
		s.final.Version, signed(delta, 6), signed(effect, 6), r.n, r.actual.StringFixed(6), r.estimated.StringFixed(6),
		signed(delta.Sub(effect), 6))
	return nil
}

// historyBlocks counts the stream's read blocks that start before the
// sample day: the history like-day estimates draw on.
func historyBlocks(sc *simulate.Scenario, m settlement.Market) int {
	start, _ := m.Bounds(demoDay)
	n := 0
	for _, r := range sc.Records {
		if r.Topic != sc.Config.Topics.Reads || r.Reason != "" {
			continue
		}
		var v struct {
			Start time.Time `json:"start"`
		}
		if json.Unmarshal(r.Value, &v) == nil && v.Start.Before(start) {
			n++
		}
	}
	return n
}

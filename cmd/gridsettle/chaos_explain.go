//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/oracle"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
	"github.com/gridsettle/gridsettle/settlement/postgres/pgcheck"
)

// The explanations of restated lines (settlement/README.md "Explain a statement
// line") are compared here with the oracle's: for every line of every
// completed run that follows an earlier completed run of its day, the
// engine's explanation against that run (the line's previous version)
// must list the oracle's changes, in order, field for field, with the same
// exact deltas, and must add up on its own.

// maxExplainDiffs is how many differing changes of one line are printed.
const maxExplainDiffs = 3

// checkExplanations explains every line of every completed run of version
// ≥ 2 whose day has an earlier completed run, with the engine and with the
// oracle (failed runs are skipped: "before" is the latest earlier
// completed run). lines are the stored statement lines by id. The chaos
// registry never changes, so one oracle serves both runs; each run's State
// is ingested once and shared by all its lines.
func (c *chaos) checkExplanations(ctx context.Context, p *problems, o *oracle.Oracle, log []oracle.Input, runs []runRow,
	lines map[string]oracle.Line) error {
	began := time.Now()
	defer func() { c.st.Checked.ExplainTime += time.Since(began) }()
	engine := settlementpg.NewRuns(c.pool, settlementpg.Config{Market: c.sc.Config.Market}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	byRun := map[string][]oracle.Line{}
	for _, l := range lines {
		byRun[l.RunID] = append(byRun[l.RunID], l)
	}
	for _, day := range c.days() {
		var before *oracle.State
		var prev runRow
		for _, r := range runs { // by day and version
			if r.day != day || r.status != settlementpg.Completed {
				continue
			}
			after, err := o.Ingest(log, lineageSnapshot(r.lineage))
			if err != nil {
				return err
			}
			if before != nil {
				for _, l := range byRun[r.id] {
					if err := c.explainLine(ctx, p, engine, before, after, prev, l, lines); err != nil {
						return err
					}
				}
			}
			before, prev = after, r
		}
	}
	return nil
}

// explainLine compares the engine's explanation of l against run prev
// with the oracle's over the two States.
func (c *chaos) explainLine(ctx context.Context, p *problems, engine *settlementpg.Runs, before, after *oracle.State,
	prev runRow, l oracle.Line, lines map[string]oracle.Line) error {
	t0 := time.Now()
	got, err := engine.Explain(ctx, l.StatementID, nil)
	c.st.Checked.ExplainEngineTime += time.Since(t0)
	if err != nil {
		p.add("explanations", "%s: engine: %v", l.StatementID, err)
		return ctx.Err()
	}
	want, err := oracle.Explain(before, after, l.OperatingDay, l.ParticipantID, l.SettlementPoint)
	if err != nil {
		// The oracle cross-checks itself with its own statement: this is
		// no answer to compare with, but the check must not pass.
		p.add("explanations", "%s against %s: %v", l.StatementID, prev.id, err)
		return nil
	}
	c.st.Checked.ExplainLines++
	c.st.Checked.ExplainChanges += len(want.Changes)
	against := statementID(l.SettlementPoint, l.ParticipantID, l.OperatingDay, prev.version)
	if got.StatementID != l.StatementID || got.Against != against ||
		l.PreviousVersion == nil || *l.PreviousVersion != prev.version {
		p.add("explanations", "%s: explained as %s against %s; the previous completed run is version %d (%s), the line's previous_version %v",
			l.StatementID, got.StatementID, got.Against, prev.version, prev.id, ptrText(l.PreviousVersion))
	}
	for _, s := range explanationSums(got, l, lines[against]) {
		p.add("explanations", "%s: %s", l.StatementID, s)
	}
	if !got.ExactDeltaEnergyMWh.Equal(want.ExactDeltaEnergyMWh) || !got.ExactDeltaAmount.Equal(want.ExactDeltaAmount) {
		p.add("explanations", "%s: exact deltas %s MWh, %s; oracle %s MWh, %s", l.StatementID,
			pgcheck.Fixed(got.ExactDeltaEnergyMWh, settlement.ExactEnergyScale), pgcheck.Fixed(got.ExactDeltaAmount, settlement.ExactAmountScale),
			pgcheck.Fixed(want.ExactDeltaEnergyMWh, settlement.ExactEnergyScale), pgcheck.Fixed(want.ExactDeltaAmount, settlement.ExactAmountScale))
	}
	gs := make([]string, len(got.Changes))
	for i, ch := range got.Changes {
		gs[i] = changeText(ch)
	}
	ws := make([]string, len(want.Changes))
	for i, ch := range want.Changes {
		ws[i] = changeText(oracleChange(ch, l.SettlementPoint))
	}
	if d := changeDiffs(gs, ws, maxExplainDiffs); d != "" {
		p.add("explanations", "%s: %d changes, oracle %d:%s", l.StatementID, len(gs), len(ws), d)
	}
	return nil
}

// explanationSums checks an explanation from itself and the stored lines
// alone: the effects add up to the exact deltas, rounding is delta_amount −
// exact_delta_amount, and delta_amount is the line's amount minus the
// amount of prev, its line in the version explained against (the zero
// Line when it has none, which counts as zero).
func explanationSums(e *settlement.Explanation, l, prev oracle.Line) []string {
	var out []string
	var energy, amount decimal.Decimal
	for _, ch := range e.Changes {
		energy, amount = energy.Add(ch.EnergyMWhEffect), amount.Add(ch.AmountEffect)
	}
	if !energy.Equal(e.ExactDeltaEnergyMWh) {
		out = append(out, fmt.Sprintf("energy effects add up to %s, exact_delta_energy_mwh is %s", energy, e.ExactDeltaEnergyMWh))
	}
	if !amount.Equal(e.ExactDeltaAmount) {
		out = append(out, fmt.Sprintf("amount effects add up to %s, exact_delta_amount is %s", amount, e.ExactDeltaAmount))
	}
	if r := e.DeltaAmount.Sub(e.ExactDeltaAmount); !r.Equal(e.Rounding) {
		out = append(out, fmt.Sprintf("rounding %s, delta_amount − exact_delta_amount is %s", e.Rounding, r))
	}
	after, err1 := decimal.NewFromString(l.Amount)
	before, err2 := decimal.Zero, error(nil)
	if prev.StatementID != "" {
		before, err2 = decimal.NewFromString(prev.Amount)
	}
	switch {
	case err1 != nil || err2 != nil:
		out = append(out, fmt.Sprintf("stored amounts %q, %q: %v %v", l.Amount, prev.Amount, err1, err2))
	case !e.DeltaAmount.Equal(after.Sub(before)):
		out = append(out, fmt.Sprintf("delta_amount %s, the stored amounts are %s and before %s", e.DeltaAmount, after, before))
	}
	return out
}

// changeDiffs lists, side by side, the first n positions where got and
// want differ, and "" when they are equal.
func changeDiffs(got, want []string, n int) string {
	var b strings.Builder
	shown := 0
	for i := range max(len(got), len(want)) {
		g, w := "(none)", "(none)"
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g == w {
			continue
		}
		if shown == n {
			b.WriteString("\n    …")
			break
		}
		shown++
		fmt.Fprintf(&b, "\n    change %d:\n      engine %s\n      oracle %s", i, g, w)
	}
	return b.String()
}

// oracleChange is the oracle's change in settlement's shape; the oracle's
// price changes do not name the point, which is the line's.
func oracleChange(c oracle.Change, point string) settlement.Change {
	out := settlement.Change{Kind: c.Kind, SettlementInterval: c.SettlementInterval, MeterID: c.MeterID, Channel: c.Channel,
		Start: c.Start, Before: oracleSide(c.Before), After: oracleSide(c.After),
		EnergyMWhEffect: c.EnergyMWhEffect, AmountEffect: c.AmountEffect}
	if c.Kind == oracle.KindPrice {
		out.SettlementPoint = point
		out.PriceBefore, out.PriceAfter = nullDecimal(c.PriceBefore), nullDecimal(c.PriceAfter)
	}
	return out
}

func oracleSide(s *oracle.ReadSide) *settlement.ReadState {
	if s == nil {
		return nil
	}
	out := &settlement.ReadState{Value: s.Value, Version: s.Version, Quality: s.Quality, LossFactor: s.LossFactor, Estimate: s.Estimate}
	if s.Position != nil {
		out.Topic, out.Partition, out.Offset = &s.Position.Topic, &s.Position.Partition, &s.Position.Offset
	}
	return out
}

func nullDecimal(d *decimal.Decimal) decimal.NullDecimal {
	if d == nil {
		return decimal.NullDecimal{}
	}
	return decimal.NullDecimal{Decimal: *d, Valid: true}
}

// changeText is a change as one canonical line: every field of
// settlement/README.md "Explaining every figure", decimals at the contract's
// scales (fixed marks a value with more places, so that it never passes for a
// rounded one), null for what is absent.
func changeText(c settlement.Change) string {
	t := func(x time.Time) string { return x.UTC().Format(time.RFC3339) }
	effects := " energy " + pgcheck.Fixed(c.EnergyMWhEffect, settlement.ExactEnergyScale) + " amount " + pgcheck.Fixed(c.AmountEffect, settlement.ExactAmountScale)
	if c.Kind == settlement.ChangePrice {
		price := func(d decimal.NullDecimal) string {
			if !d.Valid {
				return "null"
			}
			return pgcheck.Fixed(d.Decimal, 6)
		}
		return "price " + t(c.SettlementInterval) + " " + c.SettlementPoint + " before " + price(c.PriceBefore) +
			" after " + price(c.PriceAfter) + effects
	}
	return c.Kind + " " + t(c.SettlementInterval) + " " + c.MeterID + " " + c.Channel + " " + t(c.Start) +
		" before " + sideText(c.Before) + " after " + sideText(c.After) + effects
}

func sideText(s *settlement.ReadState) string {
	if s == nil {
		return "null"
	}
	src := "null"
	if s.Topic != nil || s.Partition != nil || s.Offset != nil {
		src = ptrText(s.Topic) + "/" + ptrText(s.Partition) + "@" + ptrText(s.Offset)
	}
	return "{value " + pgcheck.Fixed(s.Value, 6) + " lf " + pgcheck.Fixed(s.LossFactor, 6) + " v" + ptrText(s.Version) + " q " + ptrText(s.Quality) +
		" est " + ptrText(s.Estimate) + " src " + src + "}"
}

func ptrText[T any](v *T) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprint(*v)
}

// statementID is the id (meters/README.md "Out: `settlement.statements`") of
// the line (point, participant) of day in version v.
func statementID(point, participant, day string, v int) string {
	return point + "/" + participant + "/" + day + "/" + strconv.Itoa(v)
}

// lineageSnapshot is what a run's lineage included, as the oracle reads a
// snapshot: per input partition the first offset not included.
func lineageSnapshot(l settlementpg.Lineage) oracle.Snapshot {
	snap := oracle.Snapshot{}
	for _, in := range l.Inputs {
		snap[oracle.TopicPartition{Topic: in.Topic, Partition: in.Partition}] = in.OffsetThrough + 1
	}
	return snap
}

package reporting

import (
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/exact"
)

// tally accumulates what the manifest says about the rows, and checks the
// rows against each other, from the rows as they stream by: when a folder
// is built from the database and again when it is verified from the files.
// Statements must come first, then intervals, then ledger lines, then
// estimates.
type tally struct {
	day     settlement.Day
	runType string
	version int
	layout  Layout

	statements, intervals, ledgerLines, estimates int64
	energy, amount, delta, ledgerSum, estimated   decimal.Decimal

	lines map[lineKey]*lineTally
	order []*lineTally // lines in statements.parquet order, so the first discrepancy is always the same one

	ledger     LedgerLineage
	entry      int64           // the entry whose lines are being summed
	entryHash  string          // its hash
	entrySum   decimal.Decimal // its lines' sum, zero when it balances
	entryLines int
}

type lineKey struct{ participant, point string }

// lineTally sums a statement line's interval rows.
type lineTally struct {
	statement                           parquet.Statement
	energy, unpriced, amount, estimated exactSum
	intervals, priced                   int32
}

// The scales interval rows are summed at: those of their Parquet columns
// (DECIMAL(38,18) energy, DECIMAL(38,24) amount), which every value written
// is exact at.
const (
	energyScale = 18
	amountScale = 24
)

// exactSum is an exact sum of decimals that does not allocate per addend:
// addends exact at the sum's scale are added as 128-bit integers of
// 10^-scale units; any other addend (more places, too many digits, or a
// sum that would overflow) is added to rest as a decimal. 192,000 interval
// rows summed as decimals cost more than writing them (measured).
type exactSum struct {
	units exact.Int128
	rest  decimal.Decimal
}

func (s *exactSum) add(d decimal.Decimal, scale int32) {
	if u, ok := exact.Unscaled(d, scale); ok {
		if sum, ok := s.units.Add(u); ok {
			s.units = sum
			return
		}
	}
	s.rest = s.rest.Add(d)
}

func (s *exactSum) value(scale int32) decimal.Decimal { return s.units.Decimal(scale).Add(s.rest) }

func newTally(day settlement.Day, runType string, version int, layout Layout) *tally {
	return &tally{day: day, runType: runType, version: version, layout: layout, lines: map[lineKey]*lineTally{}}
}

func (t *tally) statement(s parquet.Statement) error {
	t.statements++
	where := fmt.Sprintf("%s row %d (%s)", parquet.StatementsFile, t.statements, s.StatementID)
	if s.OperatingDay != t.day || s.RunType != t.runType || int(s.Version) != t.version {
		return fmt.Errorf("%s: is for %s %s v%d, the export for %s %s v%d", where,
			s.OperatingDay, s.RunType, s.Version, t.day, t.runType, t.version)
	}
	if want := s.Amount.Sub(s.PreviousAmount); !s.DeltaAmount.Equal(want) {
		return fmt.Errorf("%s: delta_amount %s is not amount − previous_amount = %s", where, s.DeltaAmount, want)
	}
	k := lineKey{s.ParticipantID, s.SettlementPoint}
	if _, dup := t.lines[k]; dup {
		return fmt.Errorf("%s: second line for participant %s at %s", where, k.participant, k.point)
	}
	l := &lineTally{statement: s}
	t.lines[k] = l
	t.order = append(t.order, l)
	t.energy = t.energy.Add(s.EnergyMWh)
	t.amount = t.amount.Add(s.Amount)
	t.delta = t.delta.Add(s.DeltaAmount)
	t.estimated = t.estimated.Add(s.EstimatedEnergyMWh)
	return nil
}

func (t *tally) interval(i parquet.Interval) error {
	t.intervals++
	l := t.lines[lineKey{i.ParticipantID, i.SettlementPoint}]
	if l == nil {
		return fmt.Errorf("%s row %d: participant %s at %s has no statement line", parquet.IntervalsFile,
			t.intervals, i.ParticipantID, i.SettlementPoint)
	}
	if i.Price.Valid != i.Amount.Valid {
		return fmt.Errorf("%s row %d: price and amount must both be null (unpriced) or both set", parquet.IntervalsFile, t.intervals)
	}
	l.intervals++
	l.energy.add(i.EnergyMWh, energyScale)
	l.estimated.add(i.EstimatedEnergyMWh, energyScale)
	if i.Amount.Valid {
		l.priced++
		l.amount.add(i.Amount.Decimal, amountScale)
	} else {
		l.unpriced.add(i.EnergyMWh, energyScale)
	}
	return nil
}

func (t *tally) ledgerLine(l parquet.LedgerLine) error {
	t.ledgerLines++
	where := fmt.Sprintf("%s row %d (entry %d)", parquet.LedgerFile, t.ledgerLines, l.EntryID)
	if l.EffectiveDate != t.day {
		return fmt.Errorf("%s: effective date %s, the export is for %s", where, l.EffectiveDate, t.day)
	}
	if t.ledger.LastEntryID == nil || l.EntryID != t.entry {
		if err := t.closeEntry(); err != nil {
			return err
		}
		if t.ledger.FirstEntryID == nil {
			first := l.EntryID
			t.ledger.FirstEntryID = &first
		}
		last, head := l.EntryID, l.EntryHash
		t.ledger.LastEntryID, t.ledger.ChainHead = &last, &head
		t.entry, t.entryHash, t.entrySum, t.entryLines = l.EntryID, l.EntryHash, decimal.Zero, 0
	} else if l.EntryHash != t.entryHash {
		return fmt.Errorf("%s: entry_hash differs between the lines of one entry", where)
	}
	t.entryLines++
	t.entrySum = t.entrySum.Add(l.Amount)
	t.ledgerSum = t.ledgerSum.Add(l.Amount)
	return nil
}

// estimate checks an estimates.parquet row: a method of settlement/README.md
// "Estimation of missing reads (VEE)", a length, and the statement line it
// flows into (an estimate in the day creates its line as a read would).
func (t *tally) estimate(e parquet.Estimate) error {
	t.estimates++
	where := fmt.Sprintf("%s row %d (%s %s at %s)", parquet.EstimatesFile, t.estimates, e.MeterID, e.Channel,
		e.IntervalStart.UTC().Format(time.RFC3339))
	switch {
	case !slices.Contains(settlement.EstimateMethods, e.Method):
		return fmt.Errorf("%s: method %q is not one of %v", where, e.Method, settlement.EstimateMethods)
	case e.IntervalSeconds <= 0:
		return fmt.Errorf("%s: interval_seconds %d is not positive", where, e.IntervalSeconds)
	case t.lines[lineKey{e.ParticipantID, e.SettlementPoint}] == nil:
		return fmt.Errorf("%s: participant %s at %s has no statement line", where, e.ParticipantID, e.SettlementPoint)
	}
	return nil
}

// closeEntry checks that the entry just summed balances.
func (t *tally) closeEntry() error {
	if t.ledger.LastEntryID == nil {
		return nil
	}
	if t.entryLines < 2 || !t.entrySum.IsZero() {
		return fmt.Errorf("%s: entry %d has %d line(s) summing to %s; an entry has at least 2 lines summing to 0",
			parquet.LedgerFile, t.entry, t.entryLines, t.entrySum)
	}
	return nil
}

// finish checks every statement line against its interval rows and the
// last ledger entry, and returns the control totals and ledger lineage.
func (t *tally) finish() (ControlTotals, LedgerLineage, error) {
	if err := t.closeEntry(); err != nil {
		return ControlTotals{}, LedgerLineage{}, err
	}
	for _, l := range t.order {
		s := l.statement
		for _, c := range []struct {
			what      string
			got, want decimal.Decimal
		}{
			{"energy_mwh", s.EnergyMWh, l.energy.value(energyScale).RoundBank(6)},
			{"unpriced_energy_mwh", s.UnpricedEnergyMWh, l.unpriced.value(energyScale).RoundBank(6)},
			{"amount", s.Amount, l.amount.value(amountScale).RoundBank(2)},
			{"estimated_energy_mwh", s.EstimatedEnergyMWh, l.estimated.value(energyScale).RoundBank(6)},
		} {
			if !c.got.Equal(c.want) {
				return ControlTotals{}, LedgerLineage{}, fmt.Errorf("%s %s: %s %s, but its interval rows in %s round to %s",
					parquet.StatementsFile, s.StatementID, c.what, c.got, parquet.IntervalsFile, c.want)
			}
		}
		if l.intervals != s.Intervals || l.priced != s.PricedIntervals {
			return ControlTotals{}, LedgerLineage{}, fmt.Errorf("%s %s: %d intervals (%d priced), but %s has %d rows (%d priced) for %s at %s",
				parquet.StatementsFile, s.StatementID, s.Intervals, s.PricedIntervals, parquet.IntervalsFile,
				l.intervals, l.priced, s.ParticipantID, s.SettlementPoint)
		}
	}
	totals := ControlTotals{
		EnergyMWh:   t.energy.StringFixed(6),
		Amount:      t.amount.StringFixed(2),
		DeltaAmount: t.delta.StringFixed(2),
		LedgerSum:   t.ledgerSum.StringFixed(2),
	}
	if t.layout.v2() {
		totals.EstimatedEnergyMWh = t.estimated.StringFixed(6)
	}
	return totals, t.ledger, nil
}

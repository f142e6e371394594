package postgres

import (
	"testing"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement"
)

// FuzzPostings: whatever the figures of two versions of a line, the entry
// its delta posts balances (two lines, summing to zero, two places), and a
// line whose amount did not change posts nothing.
func FuzzPostings(f *testing.F) {
	f.Add(int64(4567890), int64(4550000), "RET-A", "HB_NORTH")
	f.Add(int64(-1), int64(1), "P", "S")
	f.Add(int64(0), int64(0), "P", "S")
	f.Fuzz(func(t *testing.T, amountCents, prevCents int64, participant, point string) {
		if participant == "" || point == "" {
			return
		}
		ref := settlement.RunRef{RunID: "run-2026-11-01-final-2", Day: nov1, Type: settlement.Final, Version: 2, Currency: "USD"}
		fig := settlement.LineFigures{Amount: decimal.New(amountCents, -2), EnergyMWh: decimal.Zero, UnpricedEnergyMWh: decimal.Zero}
		line := ref.Line(participant, point, fig, settlement.ReadCounts{}, decimal.Zero, decimal.New(prevCents, -2))
		entries := postings([]settlement.StatementLine{line})
		if amountCents == prevCents {
			if len(entries) != 0 {
				t.Fatalf("an unchanged line posted %+v", entries)
			}
			return
		}
		if len(entries) != 1 {
			t.Fatalf("%d entries for one changed line", len(entries))
		}
		e := entries[0]
		e.Number()
		if err := e.Validate(); err != nil {
			t.Fatal(err)
		}
		if e.Key != line.StatementID || !e.Lines[0].Amount.Equal(line.DeltaAmount) ||
			e.Lines[0].Account != ReceivableAccount(participant) || e.Lines[1].Account != ClearingAccount(point) {
			t.Fatalf("entry %+v for line %+v", e, line)
		}
	})
}

// Package reportingtest builds a small, fully consistent settled operating
// day for the export tests: statement lines, their per-interval rows and
// the ledger lines posted for them, as a run would have stored them. It is
// for tests only.
package reportingtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/settlement"
)

// Day is one run's rows, each slice in natural-key order.
type Day struct {
	Market     settlement.Market
	Day        settlement.Day
	RunType    string
	Version    int32
	RunID      string
	ComputedAt time.Time
	Statements []parquet.Statement
	Intervals  []parquet.Interval
	Ledger     []parquet.LedgerLine
	Estimates  []parquet.Estimate
}

// line is one participant × settlement point of the fixture.
type line struct {
	participant, point string
	previousAmount     string
}

// FallBackDay is the final run (version 2) of 2026-11-01 in
// America/Chicago, the 25-hour day with 100 settlement intervals: three
// statement lines with negative and unpriced intervals, energies with 11
// decimal places and amounts with 17, and one ledger entry (ids from 101)
// per line whose delta is not zero.
func FallBackDay() Day { return fallBack("final", 2, 101, []string{"1.00", "0.00", "-3.25"}) }

// FallBackInitial is the initial run (version 1) of the same day, with the
// same figures, no previous amounts, and ledger entries from id 1.
func FallBackInitial() Day { return fallBack("initial", 1, 1, []string{"0.00", "0.00", "0.00"}) }

func fallBack(runType string, version int32, firstEntry int64, previous []string) Day {
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		panic(err)
	}
	m := settlement.Market{Location: loc, Currency: "USD", IntervalSeconds: 900, PriceSpikeThreshold: decimal.NewFromInt(1000)}
	d := Day{
		Market: m, Day: settlement.Day{Year: 2026, Month: time.November, Day: 1},
		RunType: runType, Version: version, RunID: fmt.Sprintf("run-2026-11-01-%s-%d", runType, version),
		ComputedAt: time.Date(2026, 11, 6, 6, 0, 0, 123456000, time.UTC).AddDate(0, 0, 50*int(version-1)),
	}
	lines := []line{
		// Participant-major order is the intervals' natural key; statements
		// are sorted by statement_id below.
		{"RET-A", "HB_NORTH", previous[0]},
		{"RET-A", "LZ_HOUSTON", previous[1]},
		{"RET-B", "HB_NORTH", previous[2]},
	}
	type totals struct {
		energy, unpriced, amount decimal.Decimal
		intervals, priced        int32
	}
	sums := map[line]*totals{}
	loss := decimal.RequireFromString("1.0312")
	for n, l := range lines {
		t := &totals{}
		sums[l] = t
		for k, start := range m.Intervals(d.Day) {
			kwh := decimal.New(int64(4215+37*k+1009*n)%9000-600, -4) // negative now and then: net export
			mwh := kwh.Mul(loss).Shift(-3)
			iv := parquet.Interval{
				ParticipantID: l.participant, SettlementPoint: l.point, IntervalStart: start,
				EnergyMWh: mwh, ActualReads: int32(10 + k%3), EstimatedReads: int32(k % 2),
			}
			t.energy = t.energy.Add(mwh)
			t.intervals++
			if (k+n)%17 == 5 {
				t.unpriced = t.unpriced.Add(mwh)
			} else {
				price := decimal.New(int64(k*2345679+n*987654)%250000000-20000000, -6) // -20 … 230 $/MWh
				iv.Price = decimal.NewNullDecimal(price)
				amount := mwh.Mul(price)
				iv.Amount = decimal.NewNullDecimal(amount)
				t.amount = t.amount.Add(amount)
				t.priced++
			}
			d.Intervals = append(d.Intervals, iv)
		}
	}
	entry := firstEntry
	posted := d.ComputedAt.Add(1500 * time.Millisecond)
	prevHash := ""
	for _, l := range []line{lines[0], lines[2], lines[1]} { // statement_id order: point first
		t := sums[l]
		id := fmt.Sprintf("%s/%s/%s/%d", l.point, l.participant, d.Day, d.Version)
		amount := t.amount.RoundBank(2)
		previous := decimal.RequireFromString(l.previousAmount)
		delta := amount.Sub(previous)
		d.Statements = append(d.Statements, parquet.Statement{
			StatementID: id, ParticipantID: l.participant, SettlementPoint: l.point, OperatingDay: d.Day,
			RunType: d.RunType, Version: d.Version, Currency: m.Currency,
			EnergyMWh: t.energy.RoundBank(6), UnpricedEnergyMWh: t.unpriced.RoundBank(6),
			Amount: amount, PreviousAmount: previous, DeltaAmount: delta,
			Intervals: t.intervals, PricedIntervals: t.priced,
		})
		if delta.IsZero() {
			continue
		}
		sum := sha256.Sum256([]byte(prevHash + id + delta.String()))
		hash := hex.EncodeToString(sum[:])
		for no, posting := range []struct {
			account string
			amount  decimal.Decimal
		}{
			{"participant:" + l.participant + ":energy_receivable", delta},
			{"settlement_point:" + l.point + ":energy_clearing", delta.Neg()},
		} {
			d.Ledger = append(d.Ledger, parquet.LedgerLine{
				EntryID: entry, LineNo: int32(no + 1), EntryKey: id, Account: posting.account,
				Amount: posting.amount, Currency: m.Currency, EffectiveDate: d.Day, PostedAt: posted, EntryHash: hash,
			})
		}
		prevHash = hash
		entry++
		posted = posted.Add(time.Millisecond)
	}
	return d
}

// WithEstimates is d with part of line RET-A at HB_NORTH settled on
// gridsettle's estimates, as a v2 export carries them: meter M-1's import
// channel (15 minutes, the line's only meter) estimated by LIN over three
// intervals, by LDY over one and by ZER over one. The estimates' energy is
// the interval energy the fixture already has (a ZER interval keeps its
// other meters' energy), so amounts and the ledger are unchanged; the
// estimate figures of the line, its interval rows and estimates.parquet
// agree.
func (d Day) WithEstimates() Day {
	const participant, point = "RET-A", "HB_NORTH"
	loss := decimal.RequireFromString("1.0312")
	methods := map[int]string{3: "LIN", 4: "LIN", 5: "LIN", 40: "LDY", 77: "ZER"}
	d.Intervals = append([]parquet.Interval(nil), d.Intervals...)
	d.Statements = append([]parquet.Statement(nil), d.Statements...)
	d.Estimates = nil
	var estimated decimal.Decimal
	k := 0
	for n := range d.Intervals {
		iv := &d.Intervals[n]
		if iv.ParticipantID != participant || iv.SettlementPoint != point {
			continue
		}
		method, ok := methods[k]
		k++
		if !ok {
			continue
		}
		kwh := decimal.Zero
		if method != "ZER" {
			kwh = iv.EnergyMWh.Shift(3).DivRound(loss, 6) // the fixture's kWh (4 places): exact
			iv.EstimatedEnergyMWh = iv.EnergyMWh
			estimated = estimated.Add(iv.EnergyMWh)
		}
		iv.GridsettleEstimatedReads = 1
		d.Estimates = append(d.Estimates, parquet.Estimate{
			MeterID: "M-1", Channel: "import", IntervalStart: iv.IntervalStart, IntervalSeconds: 900,
			ValueKWh: kwh, Method: method, AccountID: "ACC-1", ParticipantID: participant, SettlementPoint: point,
			LossFactor: loss,
		})
	}
	for n := range d.Statements {
		if s := &d.Statements[n]; s.ParticipantID == participant && s.SettlementPoint == point {
			s.EstimatedEnergyMWh = estimated.RoundBank(6)
		}
	}
	return d
}

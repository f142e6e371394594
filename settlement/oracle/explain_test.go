package oracle

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

// Day 2026-10-31 in Chicago is [05:00Z, 05:00Z next day); every interval
// under test is in it. Figures are MWh = kWh × loss factor / 1000.

// explain runs Explain of day 2026-10-31 and checks the totals, which the
// changes must sum to exactly.
func explain(t *testing.T, before, after *State, participant, point, energy, amount string) *Explanation {
	t.Helper()
	ex, err := Explain(before, after, "2026-10-31", participant, point)
	if err != nil {
		t.Fatal(err)
	}
	e, a := decimal.Zero, decimal.Zero
	for _, c := range ex.Changes {
		e, a = e.Add(c.EnergyMWhEffect), a.Add(c.AmountEffect)
	}
	eq(t, "exact delta energy", ex.ExactDeltaEnergyMWh, energy)
	eq(t, "exact delta amount", ex.ExactDeltaAmount, amount)
	eq(t, "Σ energy effects", e, energy)
	eq(t, "Σ amount effects", a, amount)
	return ex
}

// changeRows writes the changes one a line: interval (UTC), kind, then for
// a read its key and both sides, for a price both prices, then the energy
// and amount effects.
func changeRows(ex *Explanation) string {
	var b strings.Builder
	for _, c := range ex.Changes {
		at := c.SettlementInterval.Format("15:04")
		switch c.Kind {
		case KindPrice:
			fmt.Fprintf(&b, "%s price %s -> %s %s %s\n", at, priceText(c.PriceBefore), priceText(c.PriceAfter),
				c.EnergyMWhEffect, c.AmountEffect)
		default:
			fmt.Fprintf(&b, "%s %s %s %s %s %s -> %s %s %s\n", at, c.Kind, c.MeterID, c.Channel, c.Start.Format("15:04"),
				sideText(c.Before), sideText(c.After), c.EnergyMWhEffect, c.AmountEffect)
		}
	}
	return b.String()
}

func priceText(p *decimal.Decimal) string {
	if p == nil {
		return "nil"
	}
	return p.String()
}

func sideText(s *ReadSide) string {
	switch {
	case s == nil:
		return "nil"
	case s.Estimate != nil:
		if s.Version != nil || s.Quality != nil || s.Position != nil {
			return "estimate with a read's fields"
		}
		return fmt.Sprintf("[%s lf%s %s]", s.Value, s.LossFactor, *s.Estimate)
	default:
		return fmt.Sprintf("[%s lf%s v%d %s %s/%d@%d]", s.Value, s.LossFactor, *s.Version, *s.Quality,
			s.Position.Topic, s.Position.Partition, s.Position.Offset)
	}
}

// twoRegistries is a log settled with two registries: the same fixture's
// log under the meter rows before and after a registry correction.
func twoRegistries(t *testing.T, accountRows, before, after []string) (f0, f1 *fixture) {
	f0 = newFixture(t, 900, accountRows, before).market(noEstimation)
	f1 = newFixture(t, 900, accountRows, after).market(noEstimation)
	return f0, f1
}

// correctionFixture: version 1 has M1's 15:00 read (2 kWh) and its 15:15
// read (1 kWh, quality E), prices 50, 40, 30 from 15:00; version 2 corrects
// 15:00 to 3.5, re-sends 15:15 as 1.000 quality A, adds the late 15:30 read
// (0.8) and corrects the 15:15 price to 45.
func correctionFixture(t *testing.T) (f *fixture, v1, v2 *State) {
	f = newFixture(t, 900, []string{"ACC-1,One,,,false"},
		[]string{"M1,ACC-1,RETAILER-A,HB_NORTH,1.000000," + always + ","}).market(noEstimation)
	f.reads("M1", "import", "2026-10-31T15:00:00Z", 900, "2")
	f.add(readsTopic, 0, `{"meter_id":"M1","start":"2026-10-31T15:15:00Z","interval_seconds":900,"values":["1"],"quality":["E"]}`)
	f.prices("HB_NORTH", "2026-10-31T15:00:00Z", 900, "50", "40", "30")
	first := f.snapshot()
	f.add(readsTopic, 0, `{"meter_id":"M1","start":"2026-10-31T15:00:00Z","interval_seconds":900,"values":["3.5"],"version":2}`)
	f.add(readsTopic, 0, `{"meter_id":"M1","start":"2026-10-31T15:15:00Z","interval_seconds":900,"values":["1.000"],"quality":["A"],"version":2}`)
	f.reads("M1", "import", "2026-10-31T15:30:00Z", 900, "0.8")
	f.add(pricesTopic, 0, `{"market":"RT","settlement_point":"HB_NORTH","start":"2026-10-31T15:15:00Z","interval_seconds":900,"price":"45","version":2}`)
	var err error
	if v1, err = f.o.Ingest(f.log, first); err != nil {
		t.Fatal(err)
	}
	return f, v1, f.ingest()
}

func TestExplainCorrectionLateReadQualityAndPrice(t *testing.T) {
	_, v1, v2 := correctionFixture(t)
	// 15:00: 0.002 → 0.0035 MWh at 50: +0.0015, 0.075. 15:15: 0.001 both
	// (quality and version only: effect 0); price 40 → 45 on E0 = 0.001:
	// 0.005. 15:30: the late 0.0008 at 30: 0.024.
	ex := explain(t, v1, v2, "RETAILER-A", "HB_NORTH", "0.0023", "0.104")
	eq(t, "changes", changeRows(ex), rows(
		"15:00 read M1 import 15:00 [2 lf1 v1 A ami.interval-reads/0@0] -> [3.5 lf1 v2 A ami.interval-reads/0@4] 0.0015 0.075",
		"15:15 price 40 -> 45 0 0.005",
		"15:15 read M1 import 15:15 [1 lf1 v1 E ami.interval-reads/0@2] -> [1 lf1 v2 A ami.interval-reads/0@6] 0 0",
		"15:30 read M1 import 15:30 nil -> [0.8 lf1 v1 A ami.interval-reads/0@8] 0.0008 0.024",
	))
	// Against itself nothing differs.
	ex = explain(t, v2, v2, "RETAILER-A", "HB_NORTH", "0", "0")
	eq(t, "changes against itself", len(ex.Changes), 0)
}

func TestExplainAgainstNothing(t *testing.T) {
	_, v1, _ := correctionFixture(t)
	// Every read appears; every price appears, each on E0 = 0.
	ex := explain(t, nil, v1, "RETAILER-A", "HB_NORTH", "0.003", "0.14")
	eq(t, "changes", changeRows(ex), rows(
		"15:00 price nil -> 50 0 0",
		"15:00 read M1 import 15:00 nil -> [2 lf1 v1 A ami.interval-reads/0@0] 0.002 0.1",
		"15:15 price nil -> 40 0 0",
		"15:15 read M1 import 15:15 nil -> [1 lf1 v1 E ami.interval-reads/0@2] 0.001 0.04",
		"15:30 price nil -> 30 0 0",
	))
	// A line the run does not have: only the prices of its point.
	ex = explain(t, nil, v1, "RETAILER-B", "HB_NORTH", "0", "0")
	eq(t, "prices only", len(ex.Changes), 3)
}

func TestExplainHourlyReadLossFactorChange(t *testing.T) {
	f0, f1 := twoRegistries(t, []string{"ACC-3,Three,,,false"},
		[]string{"M3,ACC-3,RETAILER-A,HB_NORTH,1.000000," + always + ","},
		[]string{"M3,ACC-3,RETAILER-A,HB_NORTH,1.020000," + always + ","})
	f0.reads("M3", "import", "2026-10-31T15:00:00Z", 3600, "100")
	f0.prices("HB_NORTH", "2026-10-31T15:00:00Z", 900, "10", "20", "30", "40")
	f1.log = f0.log
	// 25 kWh per quarter hour: 0.025 → 0.0255 MWh, +0.0005 each at 10, 20,
	// 30, 40; the whole read's value is shown, not its piece.
	ex := explain(t, f0.ingest(), f1.ingest(), "RETAILER-A", "HB_NORTH", "0.002", "0.05")
	side := func(lf string) string { return "[100 lf" + lf + " v1 A ami.interval-reads/0@0]" }
	eq(t, "changes", changeRows(ex), rows(
		"15:00 read M3 import 15:00 "+side("1")+" -> "+side("1.02")+" 0.0005 0.005",
		"15:15 read M3 import 15:00 "+side("1")+" -> "+side("1.02")+" 0.0005 0.01",
		"15:30 read M3 import 15:00 "+side("1")+" -> "+side("1.02")+" 0.0005 0.015",
		"15:45 read M3 import 15:00 "+side("1")+" -> "+side("1.02")+" 0.0005 0.02",
	))
}

func TestExplainFiveMinuteSplitCorrection(t *testing.T) {
	f := newFixture(t, 300, []string{"ACC-3,Three,,,false"},
		[]string{"M3,ACC-3,RETAILER-A,HB_NORTH,1.000000," + always + ","}).market(noEstimation)
	f.reads("M3", "export", "2026-10-31T15:00:00Z", 900, "1")
	f.prices("HB_NORTH", "2026-10-31T15:00:00Z", 300, "10", "10", "10")
	first := f.snapshot()
	f.add(readsTopic, 0, `{"meter_id":"M3","channel":"export","start":"2026-10-31T15:00:00Z","interval_seconds":900,"values":["2"],"version":2}`)
	v1, err := f.o.Ingest(f.log, first)
	if err != nil {
		t.Fatal(err)
	}
	// Export pieces 0.333333333, 0.333333333, 0.333333334 → 0.666666667,
	// 0.666666667, 0.666666666 kWh, negative.
	ex := explain(t, v1, f.ingest(), "RETAILER-A", "HB_NORTH", "-0.001", "-0.01")
	eq(t, "changes", changeRows(ex), rows(
		"15:00 read M3 export 15:00 [1 lf1 v1 A ami.interval-reads/0@0] -> [2 lf1 v2 A ami.interval-reads/0@2] -0.000333333334 -0.00333333334",
		"15:05 read M3 export 15:00 [1 lf1 v1 A ami.interval-reads/0@0] -> [2 lf1 v2 A ami.interval-reads/0@2] -0.000333333334 -0.00333333334",
		"15:10 read M3 export 15:00 [1 lf1 v1 A ami.interval-reads/0@0] -> [2 lf1 v2 A ami.interval-reads/0@2] -0.000333333332 -0.00333333332",
	))
}

func TestExplainRetailerSwitch(t *testing.T) {
	f0, f1 := twoRegistries(t, []string{"ACC-4,Four,,,false"},
		[]string{"M4,ACC-4,RETAILER-A,HB_NORTH,1.000000," + always + ","},
		[]string{
			"M4,ACC-4,RETAILER-A,HB_NORTH,1.000000," + always + ",2026-10-31T17:00:00Z",
			"M4,ACC-4,RETAILER-B,HB_NORTH,1.000000,2026-10-31T17:00:00Z,",
		})
	f0.reads("M4", "import", "2026-10-31T16:00:00Z", 900, repeat("0.5", 8)...)
	f0.prices("HB_NORTH", "2026-10-31T16:00:00Z", 3600, "40", "40")
	f1.log = f0.log
	before, after := f0.ingest(), f1.ingest()
	// The four reads from 17:00 leave RETAILER-A's line and join
	// RETAILER-B's: 0.0005 MWh each at 40.
	side := "[0.5 lf1 v1 A ami.interval-reads/0@0]"
	ex := explain(t, before, after, "RETAILER-A", "HB_NORTH", "-0.002", "-0.08")
	eq(t, "RETAILER-A", changeRows(ex), rows(
		"17:00 read M4 import 17:00 "+side+" -> nil -0.0005 -0.02",
		"17:15 read M4 import 17:15 "+side+" -> nil -0.0005 -0.02",
		"17:30 read M4 import 17:30 "+side+" -> nil -0.0005 -0.02",
		"17:45 read M4 import 17:45 "+side+" -> nil -0.0005 -0.02",
	))
	ex = explain(t, before, after, "RETAILER-B", "HB_NORTH", "0.002", "0.08")
	eq(t, "RETAILER-B", changeRows(ex), rows(
		"17:00 read M4 import 17:00 nil -> "+side+" 0.0005 0.02",
		"17:15 read M4 import 17:15 nil -> "+side+" 0.0005 0.02",
		"17:30 read M4 import 17:30 nil -> "+side+" 0.0005 0.02",
		"17:45 read M4 import 17:45 nil -> "+side+" 0.0005 0.02",
	))
}

func TestExplainEstimateReplacedByActual(t *testing.T) {
	f := newFixture(t, 900, []string{"ACC-1,One,,,false"},
		[]string{"M1,ACC-1,RETAILER-A,HB_NORTH,1.000000,2026-10-31T15:00:00Z,2026-10-31T16:00:00Z"})
	f.reads("M1", "import", "2026-10-31T15:00:00Z", 900, "0.1")
	f.reads("M1", "import", "2026-10-31T15:45:00Z", 900, "0.4")
	f.prices("HB_NORTH", "2026-10-31T15:00:00Z", 3600, "100")
	first := f.snapshot()
	f.reads("M1", "import", "2026-10-31T15:15:00Z", 900, "0.25")
	v1, err := f.o.Ingest(f.log, first)
	if err != nil {
		t.Fatal(err)
	}
	// Version 1 interpolates 0.2 and 0.3; version 2 has the actual 0.25
	// and interpolates 15:30 between 0.25 and 0.4: 0.325.
	ex := explain(t, v1, f.ingest(), "RETAILER-A", "HB_NORTH", "0.000075", "0.0075")
	eq(t, "changes", changeRows(ex), rows(
		"15:15 read M1 import 15:15 [0.2 lf1 LIN] -> [0.25 lf1 v1 A ami.interval-reads/0@4] 0.00005 0.005",
		"15:30 read M1 import 15:30 [0.3 lf1 LIN] -> [0.325 lf1 LIN] 0.000025 0.0025",
	))
}

func TestExplainRefusesWhatItCannotCompare(t *testing.T) {
	_, v1, _ := correctionFixture(t)
	if _, err := Explain(v1, nil, "2026-10-31", "RETAILER-A", "HB_NORTH"); err == nil {
		t.Error("no run to explain: no error")
	}
	if _, err := Explain(nil, v1, "31 Oct", "RETAILER-A", "HB_NORTH"); err == nil {
		t.Error("bad day: no error")
	}
	f5 := newFixture(t, 300, []string{"ACC-1,One,,,false"},
		[]string{"M1,ACC-1,RETAILER-A,HB_NORTH,1.000000," + always + ","}).market(noEstimation)
	if _, err := Explain(f5.ingest(), v1, "2026-10-31", "RETAILER-A", "HB_NORTH"); err == nil {
		t.Error("runs of different settlement intervals: no error")
	}
}

func TestExplainRetailerSwitchMovesEstimatesToo(t *testing.T) {
	f0, f1 := twoRegistries(t, []string{"ACC-4,Four,,,false"},
		[]string{"M4,ACC-4,RETAILER-A,HB_NORTH,1.000000," + always + ","},
		[]string{
			"M4,ACC-4,RETAILER-A,HB_NORTH,1.000000," + always + ",2026-10-31T17:00:00Z",
			"M4,ACC-4,RETAILER-B,HB_NORTH,1.000000,2026-10-31T17:00:00Z,",
		})
	f0.market(func(m *Market) { m.Estimation.Off = false })
	f1.market(func(m *Market) { m.Estimation.Off = false })
	f0.reads("M4", "import", "2026-10-31T16:00:00Z", 900, repeat("0.5", 8)...)
	f0.prices("HB_NORTH", "2026-10-31T16:00:00Z", 3600, "40", "40")
	f1.log = f0.log
	// From 17:00Z to the day's end (05:00Z) 48 quarter hours leave
	// RETAILER-A: the 4 reads and 44 zero estimates (the gap is far longer
	// than PT1H and has no earlier weeks), the estimates with effect 0.
	ex := explain(t, f0.ingest(), f1.ingest(), "RETAILER-A", "HB_NORTH", "-0.002", "-0.08")
	eq(t, "changes", len(ex.Changes), 48)
	eq(t, "first estimate", changeRows(&Explanation{Changes: ex.Changes[4:5]}),
		rows("18:00 read M4 import 18:00 [0 lf1 ZER] -> nil 0 0"))
}

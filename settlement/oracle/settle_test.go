package oracle

import (
	"testing"
)

const always = "2026-01-01T06:00:00Z"

func TestFallBackDayHas100Intervals(t *testing.T) {
	f := newFixture(t, 900, []string{"ACC-1,One,,,false"},
		[]string{"M1,ACC-1,RETAILER-A,HB_NORTH,1.031200," + always + ","})
	// 00:00 CDT on 1 Nov is 05:00Z; 00:00 CST on 2 Nov is 06:00Z: 25 hours.
	f.reads("M1", "import", "2026-11-01T05:00:00Z", 900, repeat("0.25", 100)...)
	f.reads("M1", "import", "2026-11-01T04:45:00Z", 900, "7")   // 23:45 CDT on 31 Oct
	f.reads("M1", "import", "2026-11-02T06:00:00Z", 900, "9")   // 00:00 CST on 2 Nov
	f.reads("M1", "import", "2026-03-08T12:00:00Z", 900, "0.1") // spring-forward day
	f.prices("HB_NORTH", "2026-11-01T05:00:00Z", 3600, repeat("20", 25)...)

	st := f.statement("2026-11-01")
	l := line(t, st, "HB_NORTH", "RETAILER-A")
	// 100 × 0.25 kWh × 1.0312 / 1000 = 0.02578 MWh; × 20 = 0.5156.
	eq(t, "energy_mwh", l.EnergyMWh, "0.025780")
	eq(t, "amount", l.Amount, "0.52")
	eq(t, "unpriced_energy_mwh", l.UnpricedEnergyMWh, "0.000000")
	eq(t, "intervals", l.Intervals, 100)
	eq(t, "priced_intervals", l.PricedIntervals, 100)
	eq(t, "reads", l.Reads, ReadCounts{Actual: 100})
	eq(t, "statement_id", l.StatementID, "HB_NORTH/RETAILER-A/2026-11-01/1")
	eq(t, "previous_version", l.PreviousVersion, (*int)(nil))
	eq(t, "delta_amount", l.DeltaAmount, "0.52")
	eq(t, "interval rows", len(st.Intervals), 100)

	eq(t, "spring-forward intervals", line(t, f.statement("2026-03-08"), "HB_NORTH", "RETAILER-A").Intervals, 92)
	eq(t, "31 Oct energy", line(t, f.statement("2026-10-31"), "HB_NORTH", "RETAILER-A").EnergyMWh, "0.007218")
}

func TestFiveMinutePriceAverageRoundsHalfEven(t *testing.T) {
	f := newFixture(t, 1800, []string{"ACC-2,Two,,,false"},
		[]string{"M2,ACC-2,RETAILER-A,HB_NORTH,1.000000," + always + ","})
	f.reads("M2", "import", "2026-10-31T15:00:00Z", 1800, "1000", "1000", "1000")
	f.prices("HB_NORTH", "2026-10-31T15:00:00Z", 300,
		"10.000001", "10.000001", "10.000001", "10", "10", "10", // 10.0000005: a tie, to even
		"10.000003", "10.000003", "10.000003", "10", "10", "10", // 10.0000015: a tie, to even
		"10.000001", "10", "10", "10", "10", "10") // 10.00000016…
	st := f.statement("2026-10-31")
	for _, c := range []struct{ start, price string }{
		{"2026-10-31T15:00:00Z", "10"},
		{"2026-10-31T15:30:00Z", "10.000002"},
		{"2026-10-31T16:00:00Z", "10"},
	} {
		iv := interval(t, st, "HB_NORTH", "RETAILER-A", c.start)
		eq(t, c.start+" price", decPtr(t, iv.Price), c.price)
		eq(t, c.start+" amount", decPtr(t, iv.Amount), c.price) // 1 MWh
	}
	eq(t, "amount", line(t, st, "HB_NORTH", "RETAILER-A").Amount, "30.00")
	eq(t, "priced_intervals", line(t, st, "HB_NORTH", "RETAILER-A").PricedIntervals, 3)
}

func TestHourlyReadIsSplitAcrossQuarterHours(t *testing.T) {
	f := newFixture(t, 900, []string{"ACC-3,Three,,,false"},
		[]string{"M3,ACC-3,RETAILER-A,HB_NORTH,1.000000," + always + ","}).market(noEstimation)
	f.reads("M3", "import", "2026-10-31T15:00:00Z", 3600, "100")
	f.prices("HB_NORTH", "2026-10-31T15:00:00Z", 900, "10", "20", "30", "40")
	st := f.statement("2026-10-31")
	for _, c := range []struct{ start, amount string }{
		{"2026-10-31T15:00:00Z", "0.25"}, {"2026-10-31T15:15:00Z", "0.5"},
		{"2026-10-31T15:30:00Z", "0.75"}, {"2026-10-31T15:45:00Z", "1"},
	} {
		iv := interval(t, st, "HB_NORTH", "RETAILER-A", c.start)
		eq(t, c.start+" energy", iv.EnergyMWh, "0.025")
		eq(t, c.start+" amount", decPtr(t, iv.Amount), c.amount)
		eq(t, c.start+" actual reads", iv.ActualReads, 1)
	}
	l := line(t, st, "HB_NORTH", "RETAILER-A")
	eq(t, "energy", l.EnergyMWh, "0.100000")
	eq(t, "amount", l.Amount, "2.50")
	eq(t, "reads", l.Reads, ReadCounts{Actual: 1})

	// With 5-minute settlement a 15-minute read of 1 kWh splits into pieces
	// rounded to 9 places, the last taking the remainder.
	f5 := newFixture(t, 300, []string{"ACC-3,Three,,,false"},
		[]string{"M3,ACC-3,RETAILER-A,HB_NORTH,1.000000," + always + ","})
	f5.reads("M3", "import", "2026-10-31T15:00:00Z", 900, "1")
	st = f5.statement("2026-10-31")
	for _, c := range []struct{ start, mwh string }{
		{"2026-10-31T15:00:00Z", "0.000333333333"},
		{"2026-10-31T15:05:00Z", "0.000333333333"},
		{"2026-10-31T15:10:00Z", "0.000333333334"},
	} {
		eq(t, c.start+" energy", interval(t, st, "HB_NORTH", "RETAILER-A", c.start).EnergyMWh, c.mwh)
	}
	eq(t, "energy", line(t, st, "HB_NORTH", "RETAILER-A").EnergyMWh, "0.001000")
	eq(t, "5-minute day", line(t, st, "HB_NORTH", "RETAILER-A").Intervals, 288)
}

func TestRetailerSwitchMidDay(t *testing.T) {
	f := newFixture(t, 900, []string{"ACC-4,Four,,,false"}, []string{
		"M4,ACC-4,RETAILER-A,HB_NORTH,1.000000," + always + ",2026-10-31T17:00:00Z",
		"M4,ACC-4,RETAILER-B,HB_NORTH,1.000000,2026-10-31T17:00:00Z,",
	}).market(noEstimation)
	f.reads("M4", "import", "2026-10-31T16:00:00Z", 900, repeat("0.5", 8)...)
	f.prices("HB_NORTH", "2026-10-31T16:00:00Z", 3600, "40", "40")
	st := f.statement("2026-10-31")
	for _, p := range []string{"RETAILER-A", "RETAILER-B"} {
		l := line(t, st, "HB_NORTH", p)
		eq(t, p+" energy", l.EnergyMWh, "0.002000")
		eq(t, p+" amount", l.Amount, "0.08")
		eq(t, p+" reads", l.Reads, ReadCounts{Actual: 4})
		c := charge(t, st, "ACC-4", p)
		eq(t, p+" import", c.ImportKWh, "2.000000")
		eq(t, p+" cost", c.EnergyCost, "0.08")
		eq(t, p+" charge id", c.ChargeID, "ACC-4/"+p+"/2026-10-31/1")
	}
	eq(t, "lines", len(st.Lines), 2)
	eq(t, "charges", len(st.Charges), 2)
}

func TestProsumerExport(t *testing.T) {
	f := newFixture(t, 900, []string{"ACC-5,Five,,,false"},
		[]string{"M5,ACC-5,RETAILER-A,HB_NORTH,1.018500," + always + ","}).market(noEstimation)
	f.reads("M5", "import", "2026-10-31T15:00:00Z", 900, "0.5", "0.2", "0", "0")
	f.reads("M5", "export", "2026-10-31T15:00:00Z", 900, "0", "0.3", "0.8", "1.0")
	f.prices("HB_NORTH", "2026-10-31T15:00:00Z", 900, "30", "-10", "25", "50")
	st := f.statement("2026-10-31")
	l := line(t, st, "HB_NORTH", "RETAILER-A")
	// Net kWh 0.5, −0.1, −0.8, −1.0 (Σ −1.4) × 1.0185 / 1000.
	eq(t, "energy", l.EnergyMWh, "-0.001426")
	// 0.0152775 + 0.0010185 − 0.02037 − 0.050925 = −0.054999.
	eq(t, "amount", l.Amount, "-0.05")
	eq(t, "reads", l.Reads, ReadCounts{Actual: 8})
	c := charge(t, st, "ACC-5", "RETAILER-A")
	eq(t, "import", c.ImportKWh, "0.700000")
	eq(t, "export", c.ExportKWh, "2.100000")
	eq(t, "net", c.NetKWh, "-1.400000")
	eq(t, "cost", c.EnergyCost, "-0.05")
	eq(t, "second interval amount", decPtr(t, interval(t, st, "HB_NORTH", "RETAILER-A", "2026-10-31T15:15:00Z").Amount), "0.0010185")
}

func TestMissingFiveMinutePriceLeavesIntervalUnpriced(t *testing.T) {
	f := newFixture(t, 900, []string{"ACC-6,Six,,,false"},
		[]string{"M6,ACC-6,RETAILER-A,HB_NORTH,1.000000," + always + ","})
	f.reads("M6", "import", "2026-10-31T15:00:00Z", 900, "4", "4")
	f.prices("HB_NORTH", "2026-10-31T15:00:00Z", 300, "30", "31", "32", "33", "", "35")
	st := f.statement("2026-10-31")
	l := line(t, st, "HB_NORTH", "RETAILER-A")
	eq(t, "energy", l.EnergyMWh, "0.008000")
	eq(t, "unpriced", l.UnpricedEnergyMWh, "0.004000")
	eq(t, "amount", l.Amount, "0.12") // 0.004 × 31 = 0.124
	eq(t, "intervals", l.Intervals, 96)
	eq(t, "priced_intervals", l.PricedIntervals, 1)
	iv := interval(t, st, "HB_NORTH", "RETAILER-A", "2026-10-31T15:15:00Z")
	eq(t, "unpriced price", decPtr(t, iv.Price), "unpriced")
	eq(t, "unpriced amount", decPtr(t, iv.Amount), "unpriced")
	eq(t, "unpriced energy", iv.EnergyMWh, "0.004")
	eq(t, "charge cost", charge(t, st, "ACC-6", "RETAILER-A").EnergyCost, "0.12")
}

func TestCorrectionBetweenRunsGivesDeltas(t *testing.T) {
	f := newFixture(t, 900, []string{"ACC-7,Seven,,,false", "ACC-8,Eight,,,false"}, []string{
		"M7,ACC-7,RETAILER-A,HB_NORTH,1.000000," + always + ",",
		"M8,ACC-8,RETAILER-B,LZ_WEST,1.000000," + always + ",",
	})
	f.reads("M7", "import", "2026-10-31T15:00:00Z", 900, "2")
	f.prices("HB_NORTH", "2026-10-31T15:00:00Z", 3600, "50")
	first := f.snapshot()
	f.add(readsTopic, 0, `{"meter_id":"M7","start":"2026-10-31T15:00:00Z","interval_seconds":900,"values":["3.5"],"version":2}`)
	f.add(readsTopic, 0, `{"meter_id":"M7","start":"2026-10-31T15:00:00Z","interval_seconds":900,"values":["2"]}`) // stale
	f.add(readsTopic, 1, `{"meter_id":"M8","start":"2026-10-31T15:00:00Z","interval_seconds":900,"values":["1"]}`)
	f.prices("LZ_WEST", "2026-10-31T15:00:00Z", 3600, "20")

	sts, err := f.o.Runs(f.log, "2026-10-31", []Run{{Type: "initial", Snapshot: first}, {Type: "final"}, {Type: "true-up"},
		{Type: "resettlement", Version: 5}}) // version 4 failed
	if err != nil {
		t.Fatal(err)
	}
	l := line(t, sts[0], "HB_NORTH", "RETAILER-A")
	eq(t, "v1 energy", l.EnergyMWh, "0.002000")
	eq(t, "v1 amount", l.Amount, "0.10")
	eq(t, "v1 lines", len(sts[0].Lines), 1)

	l = line(t, sts[1], "HB_NORTH", "RETAILER-A")
	eq(t, "v2 id", l.StatementID, "HB_NORTH/RETAILER-A/2026-10-31/2")
	eq(t, "v2 run", l.RunID, "run-2026-10-31-final-2")
	eq(t, "v2 energy", l.EnergyMWh, "0.003500")
	eq(t, "v2 amount", l.Amount, "0.18") // 0.175, half-even
	eq(t, "v2 previous_version", *l.PreviousVersion, 1)
	eq(t, "v2 previous energy", l.PreviousEnergyMWh, "0.002000")
	eq(t, "v2 previous amount", l.PreviousAmount, "0.10")
	eq(t, "v2 delta energy", l.DeltaEnergyMWh, "0.001500")
	eq(t, "v2 delta amount", l.DeltaAmount, "0.08")
	n := line(t, sts[1], "LZ_WEST", "RETAILER-B") // new in version 2
	eq(t, "new line previous_version", *n.PreviousVersion, 1)
	eq(t, "new line previous amount", n.PreviousAmount, "0.00")
	eq(t, "new line delta amount", n.DeltaAmount, "0.02")
	c := charge(t, sts[1], "ACC-7", "RETAILER-A")
	eq(t, "v2 import", c.ImportKWh, "3.500000")
	eq(t, "v2 cost", c.EnergyCost, "0.18")
	eq(t, "v2 previous cost", c.PreviousEnergyCost, "0.10")
	eq(t, "v2 delta cost", c.DeltaEnergyCost, "0.08")

	for _, l := range sts[2].Lines {
		eq(t, l.StatementID+" v3 delta", l.DeltaAmount+" "+l.DeltaEnergyMWh, "0.00 0.000000")
		eq(t, l.StatementID+" v3 previous_version", *l.PreviousVersion, 2)
	}
	for _, c := range sts[2].Charges {
		eq(t, c.ChargeID+" v3 delta", c.DeltaEnergyCost, "0.00")
	}
	l = line(t, sts[3], "HB_NORTH", "RETAILER-A")
	eq(t, "v5 id", l.StatementID, "HB_NORTH/RETAILER-A/2026-10-31/5")
	eq(t, "v5 previous_version", *l.PreviousVersion, 3)
}

func TestStatementNeedsThePreviousVersion(t *testing.T) {
	f := newFixture(t, 900, []string{"ACC-7,Seven,,,false"},
		[]string{"M7,ACC-7,RETAILER-A,HB_NORTH,1.000000," + always + ","})
	s := f.ingest()
	v2, err := s.Statement("2026-10-31", "final", 2, nil) // version 1 failed
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Statement("2026-10-31", "final", 2, v2); err == nil {
		t.Error("version 2 after version 2: no error")
	}
	if _, err := s.Statement("2026-11-01", "final", 3, v2); err == nil {
		t.Error("previous statement of another day: no error")
	}
	if _, err := s.Statement("31 Oct", "initial", 1, nil); err == nil {
		t.Error("bad day: no error")
	}
}

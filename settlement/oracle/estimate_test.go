package oracle

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Day 2026-10-31 in Chicago (CDT) is [05:00Z, 05:00Z next day). Meters are
// assigned only around the intervals under test, so that the rest of the
// day has nothing missing.

// estimateRows are a statement's estimates, one line each: meter, channel,
// start, length, value, method, account, participant, point, loss factor.
func estimateRows(st *Statement) string {
	var b strings.Builder
	for _, e := range st.Estimates {
		fmt.Fprintf(&b, "%s %s %s %d %s %s %s %s %s %s\n", e.MeterID, e.Channel, e.Start.Format(time.RFC3339),
			e.IntervalSeconds, e.ValueKWh.StringFixed(6), e.Method, e.AccountID, e.ParticipantID, e.SettlementPoint,
			e.LossFactor.StringFixed(6))
	}
	return b.String()
}

func rows(r ...string) string {
	if len(r) == 0 {
		return ""
	}
	return strings.Join(r, "\n") + "\n"
}

// linearFixture: M1 with two missing quarter hours on each channel between
// reads, the thirds of 0.1 → 0.2 rounding half-even both ways; M2 and M3
// each with one missing interval whose half is an exact tie.
func linearFixture(t *testing.T) *fixture {
	f := newFixture(t, 900, []string{"ACC-1,One,,,false", "ACC-2,Two,,,false"}, []string{
		"M1,ACC-1,RETAILER-A,HB_NORTH,1.000000,2026-10-31T15:00:00Z,2026-10-31T16:00:00Z",
		"M2,ACC-2,RETAILER-B,LZ_WEST,1.000000,2026-10-31T15:00:00Z,2026-10-31T15:45:00Z",
		"M3,ACC-2,RETAILER-B,LZ_WEST,1.000000,2026-10-31T15:00:00Z,2026-10-31T15:45:00Z",
	})
	f.reads("M1", "import", "2026-10-31T15:00:00Z", 900, "0.1")
	f.reads("M1", "import", "2026-10-31T15:45:00Z", 900, "0.2")
	f.reads("M1", "export", "2026-10-31T15:00:00Z", 900, "0.03")
	f.reads("M1", "export", "2026-10-31T15:45:00Z", 900, "0")
	f.reads("M2", "import", "2026-10-31T15:00:00Z", 900, "0")
	f.reads("M2", "import", "2026-10-31T15:30:00Z", 900, "0.000001")
	f.reads("M3", "import", "2026-10-31T15:00:00Z", 900, "0.000002")
	f.reads("M3", "import", "2026-10-31T15:30:00Z", 900, "0.000001")
	f.prices("HB_NORTH", "2026-10-31T15:00:00Z", 3600, "100")
	return f
}

func TestLinearInterpolationRoundsHalfEven(t *testing.T) {
	st := linearFixture(t).statement("2026-10-31")
	eq(t, "estimates", estimateRows(st), rows(
		"M1 export 2026-10-31T15:15:00Z 900 0.020000 LIN ACC-1 RETAILER-A HB_NORTH 1.000000",
		"M1 export 2026-10-31T15:30:00Z 900 0.010000 LIN ACC-1 RETAILER-A HB_NORTH 1.000000",
		"M1 import 2026-10-31T15:15:00Z 900 0.133333 LIN ACC-1 RETAILER-A HB_NORTH 1.000000",
		"M1 import 2026-10-31T15:30:00Z 900 0.166667 LIN ACC-1 RETAILER-A HB_NORTH 1.000000",
		"M2 import 2026-10-31T15:15:00Z 900 0.000000 LIN ACC-2 RETAILER-B LZ_WEST 1.000000", // 0.0000005
		"M3 import 2026-10-31T15:15:00Z 900 0.000002 LIN ACC-2 RETAILER-B LZ_WEST 1.000000", // 0.0000015
	))
	l := line(t, st, "HB_NORTH", "RETAILER-A")
	// Import 0.1 + 0.133333 + 0.166667 + 0.2 = 0.6, export 0.03 + 0.02 +
	// 0.01 = 0.06 kWh; the estimates' part 0.3 − 0.03.
	eq(t, "energy", l.EnergyMWh, "0.000540")
	eq(t, "estimated energy", l.EstimatedEnergyMWh, "0.000270")
	eq(t, "amount", l.Amount, "0.05") // 0.054
	eq(t, "reads", l.Reads, ReadCounts{Actual: 4, GridsettleEstimated: EstimateCounts{LIN: 4}})
	eq(t, "LZ_WEST reads", line(t, st, "LZ_WEST", "RETAILER-B").Reads,
		ReadCounts{Actual: 4, GridsettleEstimated: EstimateCounts{LIN: 2}})
	c := charge(t, st, "ACC-1", "RETAILER-A")
	eq(t, "charge", []string{c.ImportKWh, c.ExportKWh, c.NetKWh, c.EstimatedKWh, c.EnergyCost},
		[]string{"0.600000", "0.060000", "0.540000", "0.270000", "0.05"})
	iv := interval(t, st, "HB_NORTH", "RETAILER-A", "2026-10-31T15:15:00Z")
	eq(t, "15:15 energy", iv.EnergyMWh, "0.000113333")
	eq(t, "15:15 estimated energy", iv.EstimatedEnergyMWh, "0.000113333")
	eq(t, "15:15 reads", []int{iv.ActualReads, iv.EstimatedReads, iv.GridsettleEstimatedReads}, []int{0, 0, 2})
	iv = interval(t, st, "HB_NORTH", "RETAILER-A", "2026-10-31T15:00:00Z")
	eq(t, "15:00 estimated energy", iv.EstimatedEnergyMWh, "0")
	eq(t, "15:00 reads", []int{iv.ActualReads, iv.EstimatedReads, iv.GridsettleEstimatedReads}, []int{2, 0, 0})
}

func TestEstimationOffIsAsBefore(t *testing.T) {
	st := linearFixture(t).market(noEstimation).statement("2026-10-31")
	eq(t, "estimates", len(st.Estimates), 0)
	l := line(t, st, "HB_NORTH", "RETAILER-A")
	eq(t, "energy", l.EnergyMWh, "0.000270")
	eq(t, "estimated energy", l.EstimatedEnergyMWh, "0.000000")
	eq(t, "amount", l.Amount, "0.03") // 0.027
	eq(t, "reads", l.Reads, ReadCounts{Actual: 4})
	c := charge(t, st, "ACC-1", "RETAILER-A")
	eq(t, "charge", []string{c.ImportKWh, c.ExportKWh, c.NetKWh, c.EstimatedKWh, c.EnergyCost},
		[]string{"0.300000", "0.030000", "0.270000", "0.000000", "0.03"})
	iv := interval(t, st, "HB_NORTH", "RETAILER-A", "2026-10-31T15:15:00Z")
	eq(t, "15:15", []any{iv.EnergyMWh, iv.EstimatedEnergyMWh, iv.GridsettleEstimatedReads}, []any{"0", "0", 0})
}

func TestGapAcrossMidnightUsesTheNextDaysRead(t *testing.T) {
	// 04:30Z is 23:30 CDT on 31 Oct; 05:00Z is 00:00 CDT on 1 Nov.
	f := newFixture(t, 900, []string{"ACC-1,One,,,false"},
		[]string{"M1,ACC-1,RETAILER-A,HB_NORTH,1.000000,2026-11-01T04:30:00Z,2026-11-01T05:30:00Z"})
	f.reads("M1", "import", "2026-11-01T04:30:00Z", 900, "1")
	f.reads("M1", "import", "2026-11-01T05:15:00Z", 900, "4")
	// The gap is 04:45Z and 05:00Z (n = 2); each day estimates its own.
	st := f.statement("2026-10-31")
	eq(t, "31 Oct", estimateRows(st), rows("M1 import 2026-11-01T04:45:00Z 900 2.000000 LIN ACC-1 RETAILER-A HB_NORTH 1.000000"))
	eq(t, "31 Oct energy", line(t, st, "HB_NORTH", "RETAILER-A").EnergyMWh, "0.003000")
	st = f.statement("2026-11-01")
	eq(t, "1 Nov", estimateRows(st), rows("M1 import 2026-11-01T05:00:00Z 900 3.000000 LIN ACC-1 RETAILER-A HB_NORTH 1.000000"))
	eq(t, "1 Nov energy", line(t, st, "HB_NORTH", "RETAILER-A").EnergyMWh, "0.007000")
	eq(t, "1 Nov estimated", line(t, st, "HB_NORTH", "RETAILER-A").EstimatedEnergyMWh, "0.003000")
}

// likeDayFixture: M1 has five missing quarter hours on 31 Oct (75 minutes,
// more than PT1H) between reads 1 and 2, and reads 1 to 4 weeks earlier.
// Its assignments cover only the intervals used.
func likeDayFixture(t *testing.T) *fixture {
	assigned := func(day string) string {
		return "M1,ACC-1,RETAILER-A,HB_NORTH,1.000000," + day + "T15:00:00Z," + day + "T16:45:00Z"
	}
	f := newFixture(t, 900, []string{"ACC-1,One,,,false"}, []string{
		assigned("2026-10-03"), assigned("2026-10-10"), assigned("2026-10-17"), assigned("2026-10-24"), assigned("2026-10-31"),
	})
	f.reads("M1", "import", "2026-10-31T15:00:00Z", 900, "1")
	f.reads("M1", "import", "2026-10-31T16:30:00Z", 900, "2")
	f.add(readsTopic, 0, `{"meter_id":"M1","start":"2026-10-24T15:15:00Z","interval_seconds":900,"values":["0.7","0.8"],"quality":["A","E"]}`)
	f.reads("M1", "import", "2026-10-17T15:45:00Z", 900, "1.4")
	f.reads("M1", "import", "2026-10-10T16:00:00Z", 900, "2.1")
	f.reads("M1", "import", "2026-10-03T15:15:00Z", 900, "9") // behind the −7d read
	f.reads("M1", "import", "2026-10-03T16:00:00Z", 900, "9") // behind the −21d read
	f.reads("M1", "import", "2026-10-03T16:15:00Z", 900, "2.8")
	return f
}

func TestLongGapTakesTheLikeDay(t *testing.T) {
	st := likeDayFixture(t).statement("2026-10-31")
	eq(t, "estimates", estimateRows(st), rows(
		"M1 import 2026-10-31T15:15:00Z 900 0.700000 LDY ACC-1 RETAILER-A HB_NORTH 1.000000",
		"M1 import 2026-10-31T15:30:00Z 900 0.800000 LDY ACC-1 RETAILER-A HB_NORTH 1.000000", // an E read
		"M1 import 2026-10-31T15:45:00Z 900 1.400000 LDY ACC-1 RETAILER-A HB_NORTH 1.000000", // −14d
		"M1 import 2026-10-31T16:00:00Z 900 2.100000 LDY ACC-1 RETAILER-A HB_NORTH 1.000000", // −21d
		"M1 import 2026-10-31T16:15:00Z 900 2.800000 LDY ACC-1 RETAILER-A HB_NORTH 1.000000", // −28d
	))
	l := line(t, st, "HB_NORTH", "RETAILER-A")
	eq(t, "energy", l.EnergyMWh, "0.010800") // 3 + 7.8 kWh
	eq(t, "estimated energy", l.EstimatedEnergyMWh, "0.007800")
	eq(t, "reads", l.Reads, ReadCounts{Actual: 2, GridsettleEstimated: EstimateCounts{LDY: 5}})
	eq(t, "estimated kWh", charge(t, st, "ACC-1", "RETAILER-A").EstimatedKWh, "7.800000")

	// With --estimation-max-linear PT2H the same gap is linear: 1 + k/6.
	st = likeDayFixture(t).market(func(m *Market) { m.Estimation.MaxLinear = 2 * time.Hour }).statement("2026-10-31")
	var got []string
	for _, e := range st.Estimates {
		got = append(got, e.Method+" "+e.ValueKWh.StringFixed(6))
	}
	eq(t, "PT2H", got, []string{"LIN 1.166667", "LIN 1.333333", "LIN 1.500000", "LIN 1.666667", "LIN 1.833333"})
}

func TestSilentNewMeterIsSettledOnZeros(t *testing.T) {
	// Commissioned on 29 Oct; its only read is its first interval.
	f := newFixture(t, 900, []string{"ACC-1,One,,,false"},
		[]string{"M1,ACC-1,RETAILER-A,HB_NORTH,1.000000,2026-10-29T15:00:00Z,"})
	f.reads("M1", "import", "2026-10-29T15:00:00Z", 900, "5")
	st := f.statement("2026-10-31")
	eq(t, "estimates", len(st.Estimates), 96)
	for _, e := range st.Estimates {
		if e.Method != MethodZero || !e.ValueKWh.IsZero() {
			t.Fatalf("%+v, want ZER 0", e)
		}
	}
	l := line(t, st, "HB_NORTH", "RETAILER-A")
	eq(t, "energy", l.EnergyMWh, "0.000000")
	eq(t, "reads", l.Reads, ReadCounts{GridsettleEstimated: EstimateCounts{ZER: 96}})
	c := charge(t, st, "ACC-1", "RETAILER-A")
	eq(t, "charge", []string{c.ImportKWh, c.NetKWh, c.EstimatedKWh}, []string{"0.000000", "0.000000", "0.000000"})
	eq(t, "interval", interval(t, st, "HB_NORTH", "RETAILER-A", "2026-10-31T05:00:00Z").GridsettleEstimatedReads, 1)
}

func TestNeighbourOutsideEveryAssignmentIsNoBound(t *testing.T) {
	// No assignment covers 15:00Z: that interval is neither a read nor
	// missing, so the gap 15:15Z has no neighbour before it.
	f := newFixture(t, 900, []string{"ACC-1,One,,,false"}, []string{
		"M1,ACC-1,RETAILER-A,HB_NORTH,1.000000,2026-10-31T14:45:00Z,2026-10-31T15:00:00Z",
		"M1,ACC-1,RETAILER-A,HB_NORTH,1.000000,2026-10-31T15:15:00Z,2026-10-31T15:45:00Z",
	})
	f.reads("M1", "import", "2026-10-31T14:45:00Z", 900, "1")
	f.reads("M1", "import", "2026-10-31T15:30:00Z", 900, "3")
	eq(t, "estimates", estimateRows(f.statement("2026-10-31")),
		rows("M1 import 2026-10-31T15:15:00Z 900 0.000000 ZER ACC-1 RETAILER-A HB_NORTH 1.000000"))
}

func TestHourlyEstimateIsSplitLikeARead(t *testing.T) {
	f := newFixture(t, 900, []string{"ACC-1,One,,,false"},
		[]string{"M1,ACC-1,RETAILER-A,HB_NORTH,1.000000,2026-10-31T15:00:00Z,2026-10-31T18:00:00Z"})
	f.reads("M1", "import", "2026-10-31T15:00:00Z", 3600, "4")
	f.reads("M1", "import", "2026-10-31T17:00:00Z", 3600, "10")
	st := f.statement("2026-10-31")
	eq(t, "estimates", estimateRows(st), rows("M1 import 2026-10-31T16:00:00Z 3600 7.000000 LIN ACC-1 RETAILER-A HB_NORTH 1.000000"))
	for _, at := range []string{"2026-10-31T16:00:00Z", "2026-10-31T16:15:00Z", "2026-10-31T16:30:00Z", "2026-10-31T16:45:00Z"} {
		iv := interval(t, st, "HB_NORTH", "RETAILER-A", at)
		eq(t, at, []any{iv.EnergyMWh, iv.EstimatedEnergyMWh, iv.ActualReads, iv.GridsettleEstimatedReads},
			[]any{"0.00175", "0.00175", 0, 1})
	}
	l := line(t, st, "HB_NORTH", "RETAILER-A")
	eq(t, "estimated energy", l.EstimatedEnergyMWh, "0.007000")
	eq(t, "reads", l.Reads, ReadCounts{Actual: 2, GridsettleEstimated: EstimateCounts{LIN: 1}})
}

func TestHourlyEstimateAcrossMidnightCountsInBothDays(t *testing.T) {
	// Kolkata is UTC+05:30: 31 Oct ends at 18:30Z, inside the channel
	// interval [18:00Z, 19:00Z).
	f := newFixture(t, 900, []string{"ACC-1,One,,,false"},
		[]string{"M1,ACC-1,RETAILER-A,HB_NORTH,1.000000,2026-10-31T16:00:00Z,2026-10-31T21:00:00Z"})
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	f.market(func(m *Market) { m.Location = kolkata })
	f.reads("M1", "import", "2026-10-31T16:00:00Z", 3600, "1", "2")
	f.reads("M1", "import", "2026-10-31T19:00:00Z", 3600, "3", "4")
	for _, c := range []struct{ day, energy, first string }{
		{"2026-10-31", "0.004250", "2026-10-31T18:00:00Z"}, // 1 + 2 + 2.5/2
		{"2026-11-01", "0.008250", "2026-10-31T18:30:00Z"}, // 2.5/2 + 3 + 4
	} {
		st := f.statement(c.day)
		eq(t, c.day+" estimates", estimateRows(st),
			rows("M1 import 2026-10-31T18:00:00Z 3600 2.500000 LIN ACC-1 RETAILER-A HB_NORTH 1.000000"))
		l := line(t, st, "HB_NORTH", "RETAILER-A")
		eq(t, c.day+" energy", l.EnergyMWh, c.energy)
		eq(t, c.day+" estimated energy", l.EstimatedEnergyMWh, "0.001250")
		eq(t, c.day+" LIN", l.Reads.GridsettleEstimated, EstimateCounts{LIN: 1})
		eq(t, c.day+" first piece", interval(t, st, "HB_NORTH", "RETAILER-A", c.first).EstimatedEnergyMWh, "0.000625")
	}
}

func TestEstimatesOfAGapFollowTheirAssignments(t *testing.T) {
	f := newFixture(t, 900, []string{"ACC-1,One,,,false"}, []string{
		"M1,ACC-1,RETAILER-A,HB_NORTH,1.000000,2026-10-31T15:00:00Z,2026-10-31T15:30:00Z",
		"M1,ACC-1,RETAILER-B,HB_NORTH,1.020000,2026-10-31T15:30:00Z,2026-10-31T16:00:00Z",
	})
	f.reads("M1", "import", "2026-10-31T15:00:00Z", 900, "1")
	f.reads("M1", "import", "2026-10-31T15:45:00Z", 900, "4")
	st := f.statement("2026-10-31")
	eq(t, "estimates", estimateRows(st), rows(
		"M1 import 2026-10-31T15:15:00Z 900 2.000000 LIN ACC-1 RETAILER-A HB_NORTH 1.000000",
		"M1 import 2026-10-31T15:30:00Z 900 3.000000 LIN ACC-1 RETAILER-B HB_NORTH 1.020000",
	))
	for _, c := range []struct{ participant, energy, estimated, imp, estKWh string }{
		{"RETAILER-A", "0.003000", "0.002000", "3.000000", "2.000000"},
		{"RETAILER-B", "0.007140", "0.003060", "7.000000", "3.000000"},
	} {
		l := line(t, st, "HB_NORTH", c.participant)
		eq(t, c.participant+" line", []any{l.EnergyMWh, l.EstimatedEnergyMWh, l.Reads},
			[]any{c.energy, c.estimated, ReadCounts{Actual: 1, GridsettleEstimated: EstimateCounts{LIN: 1}}})
		ch := charge(t, st, "ACC-1", c.participant)
		eq(t, c.participant+" charge", []string{ch.ImportKWh, ch.EstimatedKWh}, []string{c.imp, c.estKWh})
	}
}

func TestActualReadReplacesTheEstimate(t *testing.T) {
	f := newFixture(t, 900, []string{"ACC-1,One,,,false"},
		[]string{"M1,ACC-1,RETAILER-A,HB_NORTH,1.000000,2026-10-31T15:00:00Z,2026-10-31T16:00:00Z"})
	f.reads("M1", "import", "2026-10-31T15:00:00Z", 900, "0.1")
	f.reads("M1", "import", "2026-10-31T15:45:00Z", 900, "0.2")
	f.prices("HB_NORTH", "2026-10-31T15:00:00Z", 3600, "100")
	initial := f.snapshot()
	f.reads("M1", "import", "2026-10-31T15:15:00Z", 900, "0.5")
	final := f.snapshot()
	f.reads("M1", "import", "2026-10-31T15:30:00Z", 900, "0.1")
	sts, err := f.o.Runs(f.log, "2026-10-31", []Run{{Type: "initial", Snapshot: initial}, {Type: "final", Snapshot: final},
		{Type: "true-up"}})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "v2 estimates", estimateRows(sts[1]), // 0.5 → 0.2 over one interval
		rows("M1 import 2026-10-31T15:30:00Z 900 0.350000 LIN ACC-1 RETAILER-A HB_NORTH 1.000000"))
	eq(t, "v3 estimates", len(sts[2].Estimates), 0)
	for i, c := range []struct{ energy, estimated, delta, deltaAmount string }{
		{"0.000600", "0.000300", "0.000600", "0.06"},
		{"0.001150", "0.000350", "0.000550", "0.06"},   // 0.5 actual − 0.133333, 0.35 − 0.166667
		{"0.000900", "0.000000", "-0.000250", "-0.03"}, // 0.1 actual − 0.35
	} {
		l := line(t, sts[i], "HB_NORTH", "RETAILER-A")
		eq(t, fmt.Sprintf("v%d", i+1), []string{l.EnergyMWh, l.EstimatedEnergyMWh, l.DeltaEnergyMWh, l.DeltaAmount},
			[]string{c.energy, c.estimated, c.delta, c.deltaAmount})
	}
	eq(t, "v3 reads", line(t, sts[2], "HB_NORTH", "RETAILER-A").Reads, ReadCounts{Actual: 4})
}

package postgres

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gridsettle/gridsettle/settlement"
)

// The estimation day: 2026-11-10 in America/Chicago (CST), 96 intervals of
// 15 minutes from 06:00Z, every one priced at 40 at P1.
var (
	estDay   = settlement.Day{Year: 2026, Month: time.November, Day: 10}
	estStart = time.Date(2026, 11, 10, 6, 0, 0, 0, time.UTC)
)

func estIv(i int) time.Time { return estStart.Add(time.Duration(i) * 15 * time.Minute) }

// ones are n reads of 1 kWh in micro-kWh.
func ones(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = 1_000_000
	}
	return out
}

// estimationScenario loads the reads of the day with a gap of each kind:
//   - M1 (RET-A, P1, ACC-1) 15-min import, 1 kWh a read, intervals 10 and
//     11 missing between 1 kWh and 4 kWh: LIN 2 and 3 kWh;
//   - M2 (RET-A, P1, ACC-2) 15-min import, 1 kWh a read, intervals 20-27
//     missing (2 hours > PT1H): LDY 5 kWh at -7d for 20-23 (not the 99 at
//     -14d), 6 kWh of quality E at -14d for 24-25, 9 kWh at -28d for 26,
//     and ZER for 27;
//   - M3 (RET-B, P1, ACC-3, loss factor 1.02) 60-min export, 10 kWh a read
//     but 20 kWh in hour 6, hour 5 missing between 10 and 20 kWh: LIN 15 kWh (an hour is at most
//     PT1H); the day's last hour missing with nothing after it: ZER;
//   - M4 (RET-B, P1, ACC-4) 15-min import with no block in the window at
//     all (its channel is known from a read 7 days back): LDY 3 kWh for
//     interval 0, ZER for the other 95;
//   - M5 (RET-A, P2, ACC-5) 15-min import, read until its assignment ends
//     at interval 48: nothing after that is missing.
func estimationScenario(e *env) {
	e.registry([]string{"RET-A", "RET-B"}, []string{"P1", "P2"}, []string{"ACC-1", "ACC-2", "ACC-3", "ACC-4", "ACC-5"})
	e.assign("M1", "ACC-1", "RET-A", "P1", "1", longAgo, time.Time{})
	e.assign("M2", "ACC-2", "RET-A", "P1", "1", longAgo, time.Time{})
	e.assign("M3", "ACC-3", "RET-B", "P1", "1.02", longAgo, time.Time{})
	e.assign("M4", "ACC-4", "RET-B", "P1", "1", longAgo, time.Time{})
	e.assign("M5", "ACC-5", "RET-A", "P2", "1", longAgo, estIv(48))
	for i := range 96 {
		e.price("P1", estIv(i), 900, "40", 1)
	}
	// Blocks never cross a UTC day: the day's 15-minute reads are 72 on
	// 2026-11-10 (06:00Z-24:00Z) and 24 on 2026-11-11.
	m1 := ones(96)
	m1[10], m1[11], m1[12] = -1, -1, 4_000_000
	m2 := ones(96)
	for i := 20; i < 28; i++ {
		m2[i] = -1
	}
	for _, s := range []struct {
		meter string
		v     []int64
	}{{"M1", m1}, {"M2", m2}, {"M5", ones(48)}} {
		e.block(s.meter, "import", estIv(0), 900, 1, s.v[:min(72, len(s.v))]...)
		if len(s.v) > 72 {
			e.block(s.meter, "import", estIv(72), 900, 1, s.v[72:]...)
		}
	}
	week := 7 * 24 * time.Hour
	for i := 20; i < 24; i++ {
		e.read("M2", "import", estIv(i).Add(-week), 900, "5", "A", 1)
		e.read("M2", "import", estIv(i).Add(-2*week), 900, "99", "A", 1)
	}
	e.read("M2", "import", estIv(24).Add(-2*week), 900, "6", "E", 1)
	e.read("M2", "import", estIv(25).Add(-2*week), 900, "6", "E", 1)
	e.read("M2", "import", estIv(26).Add(-4*week), 900, "9", "A", 1)
	e.read("M2", "import", estIv(27).Add(-5*week), 900, "7", "A", 1) // too far back
	e.read("M4", "import", estIv(0).Add(-week), 900, "3", "A", 1)
	m3 := make([]int64, 24)
	for h := range m3 {
		m3[h] = 10_000_000
	}
	m3[5], m3[6], m3[23] = -1, 20_000_000, -1
	e.block("M3", "export", estIv(0), 3600, 1, m3[:18]...)
	e.block("M3", "export", estIv(72), 3600, 1, m3[18:]...)
}

// lineFigures is a line's figures as the API serves them, one string.
func lineFigures(l settlement.StatementLine) string {
	m := l.Message()
	g := m.Reads.GridsettleEstimated
	return fmt.Sprintf("%s/%s energy=%s est=%s amount=%s unpriced=%s delta=%s/%s reads=%d/%d/%d LIN=%d LDY=%d ZER=%d",
		m.ParticipantID, m.SettlementPoint, m.EnergyMWh, m.EstimatedEnergyMWh, m.Amount, m.UnpricedEnergyMWh,
		m.DeltaEnergyMWh, m.DeltaAmount, m.Reads.Actual, m.Reads.Estimated, m.Reads.Substituted, g.LIN, g.LDY, g.ZER)
}

func chargeFigures(c settlement.AccountCharge) string {
	m := c.Message()
	return fmt.Sprintf("%s/%s import=%s export=%s net=%s est=%s cost=%s delta=%s",
		m.AccountID, m.ParticipantID, m.ImportKWh, m.ExportKWh, m.NetKWh, m.EstimatedKWh, m.EnergyCost, m.DeltaEnergyCost)
}

func (e *env) figures(day settlement.Day, version int) (lines, charges []string) {
	e.t.Helper()
	ls, err := e.runs.Statements(e.t.Context(), StatementQuery{Day: &day, Version: version})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, l := range ls {
		lines = append(lines, lineFigures(l))
	}
	for _, a := range []string{"ACC-1", "ACC-2", "ACC-3", "ACC-4", "ACC-5"} {
		cs, err := e.runs.Charges(e.t.Context(), ChargeQuery{AccountID: a, From: &day, To: &day, Version: version})
		if err != nil {
			e.t.Fatal(err)
		}
		for _, c := range cs {
			charges = append(charges, chargeFigures(c))
		}
	}
	return lines, charges
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s\n got\n\t%s\nwant\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// TestEstimationInARun settles a day with a gap of each kind, figures
// computed by hand from settlement/README.md "Estimation of missing reads
// (VEE)"; then the actual reads arrive and the next run has no estimate left,
// each line's delta being actuals − estimates.
func TestEstimationInARun(t *testing.T) {
	t.Parallel()
	m := settlement.Market{Location: chicago(t), Currency: "USD", IntervalSeconds: 900}
	e := newEnv(t, m)
	estimationScenario(e)
	r1 := e.start(estDay, settlement.Initial)
	if r1.Status != Completed {
		t.Fatalf("run 1: %+v", r1)
	}
	lines, charges := e.figures(estDay, 1)
	// RET-A/P1: reads 94 + 3 (M1: 93 × 1 + 4) and 88 (M2), estimates 5
	// (M1 LIN) and 41 (M2 LDY 4×5 + 2×6 + 9, ZER 0): 231 kWh at 40/MWh.
	// RET-B/P1: M3 exports 21 × 10 + 20 read and 15 LIN, × 1.02; M4
	// imports 3 LDY: −249.9 + 3 = −246.9 kWh, estimated −15.3 + 3.
	// RET-A/P2: M5's 48 reads, unpriced, nothing missing after its
	// assignment ends.
	sameLines(t, "run 1 lines", lines, []string{
		"RET-A/P1 energy=0.231000 est=0.046000 amount=9.24 unpriced=0.000000 delta=0.231000/9.24 reads=182/0/0 LIN=2 LDY=7 ZER=1",
		"RET-A/P2 energy=0.048000 est=0.000000 amount=0.00 unpriced=0.048000 delta=0.048000/0.00 reads=48/0/0 LIN=0 LDY=0 ZER=0",
		"RET-B/P1 energy=-0.246900 est=-0.012300 amount=-9.88 unpriced=0.000000 delta=-0.246900/-9.88 reads=22/0/0 LIN=1 LDY=1 ZER=96",
	})
	sameLines(t, "run 1 charges", charges, []string{
		"ACC-1/RET-A import=102.000000 export=0.000000 net=102.000000 est=5.000000 cost=4.08 delta=4.08",
		"ACC-2/RET-A import=129.000000 export=0.000000 net=129.000000 est=41.000000 cost=5.16 delta=5.16",
		"ACC-3/RET-B import=0.000000 export=245.000000 net=-245.000000 est=-15.000000 cost=-10.00 delta=-10.00",
		"ACC-4/RET-B import=3.000000 export=0.000000 net=3.000000 est=3.000000 cost=0.12 delta=0.12",
		"ACC-5/RET-A import=48.000000 export=0.000000 net=48.000000 est=0.000000 cost=0.00 delta=0.00",
	})
	// One row per estimated channel interval, with its whole value and the
	// covering assignment.
	var rows []string
	r, err := e.pool.Query(t.Context(), `
		SELECT meter_id || ' ' || channel || ' ' || to_char(interval_start AT TIME ZONE 'UTC', 'HH24:MI') || ' ' ||
		       interval_seconds || ' ' || value_kwh || ' ' || method || ' ' || account_id || ' ' || participant_id || ' ' ||
		       settlement_point || ' ' || loss_factor
		FROM run_estimates WHERE run_id = $1 AND (meter_id <> 'M4' OR interval_start < $2)
		ORDER BY meter_id, interval_start`, r1.RunID, estIv(2))
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var s string
		if err := r.Scan(&s); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, s)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	sameLines(t, "run 1 estimates", rows, []string{
		"M1 import 08:30 900 2.000000 LIN ACC-1 RET-A P1 1",
		"M1 import 08:45 900 3.000000 LIN ACC-1 RET-A P1 1",
		"M2 import 11:00 900 5.000000 LDY ACC-2 RET-A P1 1",
		"M2 import 11:15 900 5.000000 LDY ACC-2 RET-A P1 1",
		"M2 import 11:30 900 5.000000 LDY ACC-2 RET-A P1 1",
		"M2 import 11:45 900 5.000000 LDY ACC-2 RET-A P1 1",
		"M2 import 12:00 900 6.000000 LDY ACC-2 RET-A P1 1",
		"M2 import 12:15 900 6.000000 LDY ACC-2 RET-A P1 1",
		"M2 import 12:30 900 9.000000 LDY ACC-2 RET-A P1 1",
		"M2 import 12:45 900 0.000000 ZER ACC-2 RET-A P1 1",
		"M3 export 11:00 3600 15.000000 LIN ACC-3 RET-B P1 1.02",
		"M3 export 05:00 3600 0.000000 ZER ACC-3 RET-B P1 1.02",
		"M4 import 06:00 900 3.000000 LDY ACC-4 RET-B P1 1",
		"M4 import 06:15 900 0.000000 ZER ACC-4 RET-B P1 1",
	})
	if n := e.count(`SELECT count(*) FROM run_estimates WHERE run_id = $1`, r1.RunID); n != 2+8+2+96 {
		t.Fatalf("%d estimates, want 108", n)
	}
	// At 11:00Z (interval 20) RET-B/P1 has a quarter of M3's LIN hour
	// (−3.75 kWh × 1.02) and M4's ZER: two estimate pieces; RET-A/P1 has
	// M2's LDY 5 kWh beside M1's read.
	var iv20 []string
	r, err = e.pool.Query(t.Context(), `SELECT participant_id || ' ' || energy_mwh || ' ' || estimated_energy_mwh || ' ' ||
		actual_reads || ' ' || gridsettle_estimated_reads FROM run_intervals
		WHERE run_id = $1 AND settlement_point = 'P1' AND interval_start = $2 ORDER BY participant_id`, r1.RunID, estIv(20))
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var s string
		if err := r.Scan(&s); err != nil {
			t.Fatal(err)
		}
		iv20 = append(iv20, s)
	}
	sameLines(t, "run 1 interval 20", iv20, []string{
		"RET-A 0.006 0.005 1 1",
		"RET-B -0.00382500000000 -0.00382500000000 0 2",
	})

	// The actual reads arrive: 2.5 and 3 kWh for M1, 1 kWh for each of
	// M2's, 15 and 10 kWh for M3, 1 kWh in every interval of M4.
	e.read("M1", "import", estIv(10), 900, "2.5", "A", 2)
	e.read("M1", "import", estIv(11), 900, "3", "A", 2)
	for i := 20; i < 28; i++ {
		e.read("M2", "import", estIv(i), 900, "1", "A", 2)
	}
	e.read("M3", "export", estIv(20), 3600, "15", "A", 2)
	e.read("M3", "export", estIv(92), 3600, "10", "A", 2)
	e.block("M4", "import", estIv(0), 900, 2, ones(72)...)
	e.block("M4", "import", estIv(72), 900, 2, ones(24)...)
	r2 := e.start(estDay, settlement.Final)
	lines, charges = e.figures(estDay, 2)
	// RET-A/P1: M1 5.5 read for 5 estimated, M2 8 for 41: −32.5 kWh.
	// RET-B/P1: M3 25 exported for 15 (× 1.02: −10.2), M4 96 for 3: +82.8.
	sameLines(t, "run 2 lines", lines, []string{
		"RET-A/P1 energy=0.198500 est=0.000000 amount=7.94 unpriced=0.000000 delta=-0.032500/-1.30 reads=192/0/0 LIN=0 LDY=0 ZER=0",
		"RET-A/P2 energy=0.048000 est=0.000000 amount=0.00 unpriced=0.048000 delta=0.000000/0.00 reads=48/0/0 LIN=0 LDY=0 ZER=0",
		"RET-B/P1 energy=-0.164100 est=0.000000 amount=-6.56 unpriced=0.000000 delta=0.082800/3.32 reads=120/0/0 LIN=0 LDY=0 ZER=0",
	})
	sameLines(t, "run 2 charges", charges, []string{
		"ACC-1/RET-A import=102.500000 export=0.000000 net=102.500000 est=0.000000 cost=4.10 delta=0.02",
		"ACC-2/RET-A import=96.000000 export=0.000000 net=96.000000 est=0.000000 cost=3.84 delta=-1.32",
		"ACC-3/RET-B import=0.000000 export=255.000000 net=-255.000000 est=0.000000 cost=-10.40 delta=-0.40",
		"ACC-4/RET-B import=96.000000 export=0.000000 net=96.000000 est=0.000000 cost=3.84 delta=3.72",
		"ACC-5/RET-A import=48.000000 export=0.000000 net=48.000000 est=0.000000 cost=0.00 delta=0.00",
	})
	if n := e.count(`SELECT count(*) FROM run_estimates WHERE run_id = $1`, r2.RunID); n != 0 {
		t.Fatalf("run 2 made %d estimates", n)
	}
}

// TestEstimationOff: with --estimation none the same day settles its reads
// only, every estimate figure zero, as before estimation existed.
func TestEstimationOff(t *testing.T) {
	t.Parallel()
	m := settlement.Market{Location: chicago(t), Currency: "USD", IntervalSeconds: 900, Estimation: settlement.Estimation{Off: true}}
	e := newEnv(t, m)
	estimationScenario(e)
	r := e.start(estDay, settlement.Initial)
	lines, charges := e.figures(estDay, 1)
	// RET-A/P1: 97 + 88 kWh; RET-B/P1: M3's 230 kWh exported × 1.02; M4
	// has no read in the day and no charge.
	sameLines(t, "lines", lines, []string{
		"RET-A/P1 energy=0.185000 est=0.000000 amount=7.40 unpriced=0.000000 delta=0.185000/7.40 reads=182/0/0 LIN=0 LDY=0 ZER=0",
		"RET-A/P2 energy=0.048000 est=0.000000 amount=0.00 unpriced=0.048000 delta=0.048000/0.00 reads=48/0/0 LIN=0 LDY=0 ZER=0",
		"RET-B/P1 energy=-0.234600 est=0.000000 amount=-9.38 unpriced=0.000000 delta=-0.234600/-9.38 reads=22/0/0 LIN=0 LDY=0 ZER=0",
	})
	sameLines(t, "charges", charges, []string{
		"ACC-1/RET-A import=97.000000 export=0.000000 net=97.000000 est=0.000000 cost=3.88 delta=3.88",
		"ACC-2/RET-A import=88.000000 export=0.000000 net=88.000000 est=0.000000 cost=3.52 delta=3.52",
		"ACC-3/RET-B import=0.000000 export=230.000000 net=-230.000000 est=0.000000 cost=-9.38 delta=-9.38",
		"ACC-5/RET-A import=48.000000 export=0.000000 net=48.000000 est=0.000000 cost=0.00 delta=0.00",
	})
	if n := e.count(`SELECT count(*) FROM run_estimates WHERE run_id = $1`, r.RunID); n != 0 {
		t.Fatalf("%d estimates with estimation off", n)
	}
	if n := e.count(`SELECT count(*) FROM run_intervals WHERE run_id = $1 AND (estimated_energy_mwh <> 0 OR gridsettle_estimated_reads <> 0)`, r.RunID); n != 0 {
		t.Fatalf("%d intervals with estimate figures with estimation off", n)
	}
}

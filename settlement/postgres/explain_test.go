package postgres

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// explainEnv stores inputs as ingest does, each from its own input record
// with an offset the next run's lineage includes: reads on partition 0 of
// the reads topic, prices on partition 0 of the prices topic, a superseded
// price moved to price_versions.
type explainEnv struct {
	*env
	readOffset, priceOffset int64
}

func (e *explainEnv) reads(meter, channel string, start time.Time, seconds int, version int, quality string, micro ...int64) readstore.Origin {
	e.t.Helper()
	o := readstore.Origin{Topic: "ami.interval-reads", Offset: e.readOffset}
	e.readOffset++
	e.appendBlock(meter, channel, start, seconds, version, quality, o, micro...)
	e.offsets("ami.interval-reads", 0, e.readOffset)
	return o
}

func (e *explainEnv) appendBlock(meter, channel string, start time.Time, seconds int, version int, quality string, o readstore.Origin, micro ...int64) {
	e.t.Helper()
	b := readstore.StoredBlock{MeterID: meter, Channel: meters.Channel(channel), Start: start.Unix(),
		IntervalSeconds: int64(seconds), Version: int64(version), Values: micro, Quality: quality, Origin: o}
	if err := readstore.EnsurePartitions(e.t.Context(), e.pool, []int64{b.Start}); err != nil {
		e.t.Fatal(err)
	}
	if err := readstore.AppendBlocks(e.t.Context(), e.pool, []readstore.StoredBlock{b}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *explainEnv) rtPrice(point string, start time.Time, price string, version int) {
	e.t.Helper()
	off := e.priceOffset
	e.priceOffset++
	e.rtPriceFrom(off, point, start, price, version)
	e.offsets("market.prices", 0, e.priceOffset)
}

// rtPriceFrom stores a price version as ingest does, from the record at
// offset off of the prices topic.
func (e *explainEnv) rtPriceFrom(off int64, point string, start time.Time, price string, version int) {
	e.t.Helper()
	e.exec(`INSERT INTO price_versions SELECT market, settlement_point, interval_start, interval_seconds, price, currency,
			version, topic, partition, "offset", 'market.prices', 0, $3
		FROM prices WHERE market = 'RT' AND settlement_point = $1 AND interval_start = $2`, point, start, off)
	e.exec(`INSERT INTO prices (market, settlement_point, interval_start, interval_seconds, price, currency, version, topic, partition, "offset")
		VALUES ('RT', $1, $2, 900, $3, 'USD', $4, 'market.prices', 0, $5)
		ON CONFLICT (market, settlement_point, interval_start) DO UPDATE
		SET price = excluded.price, version = excluded.version, "offset" = excluded."offset"`,
		point, start, decimal.RequireFromString(price), version, off)
}

func micros(n int, v int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

var explainDay = settlement.Day{Year: 2026, Month: time.November, Day: 2}

// TestExplain settles a day twice with every kind of restatement between
// the runs and checks the explanations: the engine itself refuses to
// answer when the changes do not add up to what the runs stored in every
// interval, so each answer below is also a check of the rebuilt inputs.
func TestExplain(t *testing.T) {
	t.Parallel()
	m := settlement.Market{Location: chicago(t), Currency: "USD", IntervalSeconds: 900}
	e := &explainEnv{env: newEnv(t, m)}
	dayStart, _ := m.Bounds(explainDay)
	at := func(i int) time.Time { return dayStart.Add(time.Duration(i) * 15 * time.Minute) }
	e.registry([]string{"RA", "RB"}, []string{"P1"}, []string{"A1", "A2", "A3"})
	e.assign("M1", "A1", "RA", "P1", "1.0125", dayStart.AddDate(0, 0, -30), time.Time{})
	e.assign("M2", "A2", "RA", "P1", "1", dayStart.AddDate(0, 0, -30), time.Time{})
	e.assign("M3", "A3", "RA", "P1", "1", dayStart.AddDate(0, 0, -30), time.Time{})
	for i := range 96 {
		e.rtPrice("P1", at(i), fmt.Sprintf("%d.125", 20+i%7), 1)
	}
	// M1: 15-minute imports all day, in 6 records of 16.
	for r := range 6 {
		e.reads("M1", "import", at(16*r), 900, 1, "", micros(16, 250_000)...)
	}
	// M2: 60-minute imports (each split over 4 intervals).
	e.reads("M2", "import", at(0), 3600, 1, "", micros(18, 1_000_001)...)
	e.reads("M2", "import", at(72), 3600, 1, "", micros(6, 1_000_001)...)
	// M3: imports with a gap at intervals 40–41 (a LIN estimate).
	e.reads("M3", "import", at(0), 900, 1, "", micros(40, 100_000)...)
	e.reads("M3", "import", at(42), 900, 1, "", micros(54, 200_000)...)
	// A record that ingest quarantined (unknown meter) at offset q, replayed
	// only after run 1: run 1's lineage passes its offset, yet it did not
	// include it.
	q := readstore.Origin{Topic: "ami.interval-reads", Offset: e.readOffset}
	e.readOffset++
	e.offsets("ami.interval-reads", 0, e.readOffset)
	// Another, replayed only after run 2.
	q2 := readstore.Origin{Topic: "ami.interval-reads", Offset: e.readOffset}
	e.readOffset++
	e.offsets("ami.interval-reads", 0, e.readOffset)
	// And a price record of a point the registry did not know yet, replayed
	// with q after run 1.
	qp := readstore.Origin{Topic: "market.prices", Offset: e.priceOffset}
	e.priceOffset++
	e.offsets("market.prices", 0, e.priceOffset)
	for _, o := range []readstore.Origin{q, q2, qp} {
		e.exec(`INSERT INTO quarantine (reason, detail, topic, partition, "offset", value) VALUES ('unknown_meter', '', $1, 0, $2, '\x7b7d')`,
			o.Topic, o.Offset)
	}
	r1 := e.start(explainDay, settlement.Initial)
	if r1.Status != Completed || r1.Lineage.RegistryVersion == nil || r1.Lineage.ReplaysThrough == nil {
		t.Fatalf("run 1: %+v", r1)
	}

	// Between the runs:
	e.reads("M1", "import", at(40), 900, 2, "E", 300_000)                                  // a correction, estimated by the head end
	e.reads("M1", "export", at(50), 900, 1, "", 50_000, 60_000)                            // late reads of a new channel
	e.reads("M1", "import", at(60), 900, 2, "", 250_000)                                   // a new version, same value and quality
	e.reads("M3", "import", at(40), 900, 1, "", 150_000, 160_000)                          // the gap filled: estimates replaced
	e.rtPrice("P1", at(30), "99.5", 2)                                                     // a price correction
	e.exec(`UPDATE meter_assignments SET effective_to = $1 WHERE meter_id = 'M2'`, at(48)) // M2 switches retailer
	e.assign("M2", "A2", "RB", "P1", "1", at(48), time.Time{})
	e.exec(`UPDATE meter_assignments SET effective_to = $1 WHERE meter_id = 'M3'`, dayStart) // M3's loss factor corrected
	e.assign("M3", "A3", "RA", "P1", "1.02", dayStart, time.Time{})
	e.appendBlock("M1", "import", at(70), 900, 3, "", q, 400_000) // the replayed records' reads and price
	e.rtPriceFrom(qp.Offset, "P1", at(20), "55.25", 2)
	tx, err := e.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var qid int64
	var replayed []int64
	for _, o := range []readstore.Origin{q, qp} {
		if err := tx.QueryRow(t.Context(), `SELECT id FROM quarantine WHERE topic = $1 AND "offset" = $2`, o.Topic, o.Offset).Scan(&qid); err != nil {
			t.Fatal(err)
		}
		replayed = append(replayed, qid)
	}
	if err := readstore.MarkReplayed(t.Context(), tx, replayed); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(time.Hour)
	r2 := e.start(explainDay, settlement.Final)
	if r2.Status != Completed {
		t.Fatalf("run 2: %+v", r2)
	}

	ra := settlement.StatementID("P1", "RA", explainDay, 2)
	x := explain(t, e.env, ra, nil)
	if x.Against != settlement.StatementID("P1", "RA", explainDay, 1) {
		t.Errorf("against = %s", x.Against)
	}
	got := changeLines(x)
	// RA: M1's correction, its new export channel (2 reads, and the run's
	// estimates of the channel's 94 other intervals: zero, but listed), its
	// same-valued new version (zero effect), the replayed read; M2's 48 60-minute pieces after the
	// switch leave the line (12 reads × 4 intervals); M3's 94 reads change
	// loss factor and its 2 estimates are replaced; two prices, a correction
	// and the replayed record's.
	counts := map[string]int{}
	for _, c := range x.Changes {
		counts[c.Kind+" "+c.MeterID]++
	}
	want := map[string]int{"price ": 2, "read M1": 99, "read M2": 48, "read M3": 96}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("changes by kind and meter = %v, want %v", counts, want)
	}
	for _, w := range []string{
		// E0 × ΔP: interval 30's energy in run 1 is M1 0.25 × 1.0125 + M2 0.25000025 + M3 0.1 kWh.
		// M3 at 40: LIN 0.1 + 0.1 × 1/3 at loss factor 1, then 0.15 × 1.02.
		at(30).Format(time.RFC3339) + " price P1 22.125→99.5 energy 0 amount " +
			decimal.RequireFromString("0.00060312525").Mul(decimal.RequireFromString("77.375")).StringFixedBank(24),
		at(20).Format(time.RFC3339) + " price P1 26.125→55.25 energy 0 amount " +
			decimal.RequireFromString("0.00060312525").Mul(decimal.RequireFromString("29.125")).StringFixedBank(24),
		at(40).Format(time.RFC3339) + " read M1 import 0.250000 v1 A lf 1.012500 → 0.300000 v2 E lf 1.012500 energy 0.000050625000000000",
		at(60).Format(time.RFC3339) + " read M1 import 0.250000 v1 A lf 1.012500 → 0.250000 v2 A lf 1.012500 energy 0.000000000000000000",
		at(70).Format(time.RFC3339) + " read M1 import 0.250000 v1 A lf 1.012500 → 0.400000 v3 A lf 1.012500 energy 0.000151875000000000",
		at(50).Format(time.RFC3339) + " read M1 export - → 0.050000 v1 A lf 1.012500 energy -0.000050625000000000",
		at(40).Format(time.RFC3339) + " read M3 import 0.133333 LIN lf 1.000000 → 0.150000 v1 A lf 1.020000 energy 0.000019667000000000",
		at(48).Format(time.RFC3339) + " read M2 import 1.000001 v1 A lf 1.000000 → - energy -0.000250000250000000",
		at(10).Format(time.RFC3339) + " read M3 import 0.100000 v1 A lf 1.000000 → 0.100000 v1 A lf 1.020000 energy 0.000002000000000000",
	} {
		if !strings.Contains(got, w+"\n") {
			t.Errorf("no change %q in\n%s", w, got)
		}
	}
	checkSums(t, x)
	var dEnergy, dAmount decimal.Decimal
	if err := e.pool.QueryRow(t.Context(), `SELECT delta_energy_mwh, delta_amount FROM statement_lines WHERE statement_id = $1`, ra).
		Scan(&dEnergy, &dAmount); err != nil {
		t.Fatal(err)
	}
	if !x.DeltaAmount.Equal(dAmount) || !x.DeltaEnergyMWh.Equal(dEnergy) {
		t.Errorf("deltas %s / %s, the line says %s / %s", x.DeltaEnergyMWh, x.DeltaAmount, dEnergy, dAmount)
	}

	// RB's line is new in run 2: against run 1 (no line: zero) its reads
	// all appear, and the two price changes cost nothing (E0 = 0) but are
	// listed.
	rb := explain(t, e.env, settlement.StatementID("P1", "RB", explainDay, 2), nil)
	checkSums(t, rb)
	if rb.Summary["read"].Changes != 48 || rb.Summary["price"].Changes != 2 || !rb.Summary["price"].AmountEffect.IsZero() {
		t.Errorf("RB summary %+v", rb.Summary)
	}
	// Against nothing: every read appears and every priced interval's price.
	zero := 0
	x0 := explain(t, e.env, ra, &zero)
	checkSums(t, x0)
	if x0.Summary["price"].Changes != 96 || !x0.ExactDeltaAmount.Equal(sumAmounts(t, e.env, r2.RunID, "RA")) {
		t.Errorf("against 0: %d price changes, exact delta %s", x0.Summary["price"].Changes, x0.ExactDeltaAmount)
	}

	// What an earlier run explains never moves: a registry correction and a
	// replay after run 2 leave the explanation byte for byte.
	before, _ := json.Marshal(x)
	e.exec(`DELETE FROM meter_assignments WHERE meter_id = 'M1'`)
	e.assign("M1", "A1", "RA", "P1", "1.5", dayStart.AddDate(0, 0, -30), time.Time{})
	e.appendBlock("M1", "import", at(80), 900, 9, "", q2, 900_000)
	tx, err = e.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(t.Context(), `SELECT id FROM quarantine WHERE topic = $1 AND "offset" = $2`, q2.Topic, q2.Offset).Scan(&qid); err != nil {
		t.Fatal(err)
	}
	if err := readstore.MarkReplayed(t.Context(), tx, []int64{qid}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	after, _ := json.Marshal(explain(t, e.env, ra, nil))
	if string(before) != string(after) {
		t.Errorf("the explanation moved after a later registry correction and replay:\n%s\n%s", before, after)
	}

	// Pages, each continuing after the last change of the one before, are
	// the whole explanation, with its totals on every page.
	whole, _ := json.Marshal(x.Changes)
	var paged []settlement.Change
	var next *settlement.ChangeKey
	for pages := 0; ; pages++ {
		p, remaining, err := e.runs.ExplainPage(t.Context(), ra, nil, next, 37)
		if err != nil {
			t.Fatal(err)
		}
		if remaining != len(x.Changes)-len(paged) || !p.ExactDeltaAmount.Equal(x.ExactDeltaAmount) ||
			fmt.Sprint(p.Summary) != fmt.Sprint(x.Summary) || len(p.Changes) != min(37, remaining) {
			t.Fatalf("page %d: %d changes, %d remaining, after %d of %d", pages, len(p.Changes), remaining, len(paged), len(x.Changes))
		}
		paged = append(paged, p.Changes...)
		if remaining <= 37 {
			break
		}
		k := p.Changes[len(p.Changes)-1].Key()
		next = &k
	}
	if got, _ := json.Marshal(paged); string(got) != string(whole) {
		t.Errorf("the pages differ from the whole explanation")
	}

	for _, tc := range []struct {
		id      string
		against int
	}{{ra, 2}, {ra, 3}, {ra, -1}, {"P1/RA/2026-11-02/9", 1}, {"nope", 0}} {
		if _, err := e.runs.Explain(t.Context(), tc.id, &tc.against); !errors.Is(err, ErrNotFound) {
			t.Errorf("explain %s against %d: %v, want ErrNotFound", tc.id, tc.against, err)
		}
	}
	e.exec(`UPDATE runs SET lineage = lineage - 'registry_version' WHERE version = 1`)
	if _, err := e.runs.Explain(t.Context(), ra, nil); !errors.Is(err, ErrNotExplainable) {
		t.Errorf("explain against a run without registry version: %v", err)
	}
}

func explain(t *testing.T, e *env, id string, against *int) *settlement.Explanation {
	t.Helper()
	x, err := e.runs.Explain(t.Context(), id, against)
	if err != nil {
		t.Fatalf("explain %s: %v", id, err)
	}
	return x
}

// checkSums holds the contract's identities, recomputed here from the
// answer alone.
func checkSums(t *testing.T, x *settlement.Explanation) {
	t.Helper()
	var energy, amount decimal.Decimal
	for _, c := range x.Changes {
		energy, amount = energy.Add(c.EnergyMWhEffect), amount.Add(c.AmountEffect)
	}
	if !energy.Equal(x.ExactDeltaEnergyMWh) || !amount.Equal(x.ExactDeltaAmount) {
		t.Errorf("%s: effects sum to %s MWh / %s, exact deltas %s / %s", x.StatementID, energy, amount,
			x.ExactDeltaEnergyMWh, x.ExactDeltaAmount)
	}
	if !x.Rounding.Equal(x.DeltaAmount.Sub(x.ExactDeltaAmount)) || x.Rounding.Abs().GreaterThan(decimal.New(5, -3)) {
		t.Errorf("%s: rounding %s for delta %s and exact %s", x.StatementID, x.Rounding, x.DeltaAmount, x.ExactDeltaAmount)
	}
	if x.ExactDeltaEnergyMWh.RoundBank(6).Sub(x.DeltaEnergyMWh).Abs().GreaterThan(decimal.New(1, -6)) {
		t.Errorf("%s: exact energy delta %s, rounded delta %s", x.StatementID, x.ExactDeltaEnergyMWh, x.DeltaEnergyMWh)
	}
}

func sumAmounts(t *testing.T, e *env, runID, participant string) decimal.Decimal {
	t.Helper()
	var s decimal.Decimal
	if err := e.pool.QueryRow(t.Context(), `SELECT coalesce(sum(amount), 0) FROM run_intervals WHERE run_id = $1 AND participant_id = $2`,
		runID, participant).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// changeLines prints the changes one per line, compactly.
func changeLines(x *settlement.Explanation) string {
	var b strings.Builder
	side := func(s *settlement.ReadState) string {
		if s == nil {
			return "-"
		}
		v := s.Value.StringFixedBank(6)
		if s.Estimate != nil {
			return fmt.Sprintf("%s %s lf %s", v, *s.Estimate, s.LossFactor.StringFixedBank(6))
		}
		return fmt.Sprintf("%s v%d %s lf %s", v, *s.Version, *s.Quality, s.LossFactor.StringFixedBank(6))
	}
	for _, c := range x.Changes {
		at := c.SettlementInterval.UTC().Format(time.RFC3339)
		if c.Kind == settlement.ChangePrice {
			fmt.Fprintf(&b, "%s price %s %s→%s energy 0 amount %s\n", at, c.SettlementPoint, c.PriceBefore.Decimal,
				c.PriceAfter.Decimal, c.AmountEffect.StringFixedBank(24))
			continue
		}
		fmt.Fprintf(&b, "%s read %s %s %s → %s energy %s\n", at, c.MeterID, c.Channel, side(c.Before), side(c.After),
			c.EnergyMWhEffect.StringFixedBank(18))
	}
	return b.String()
}

package readstore

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// series is the record of n reads of meter's channel from start, every
// seconds, at version, value i being the i-th of values (cycling).
func series(meter, channel, start string, seconds, version, n int, values ...string) string {
	vs := make([]string, n)
	for i := range vs {
		vs[i] = values[i%len(values)]
	}
	return read(meter, channel, start, seconds, version, vs...)
}

// assignedAt is the registry of registry(): who holds meter's energy of a
// read starting at start, and its loss factor.
func assignedAt(meter string, start time.Time) (participant, point string, lossFactor decimal.Decimal) {
	if meter == "M2" {
		return "RETAILER-A", "HB_SOUTH", decimal.RequireFromString("1.031200")
	}
	if start.Before(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)) {
		return "RETAILER-A", "HB_NORTH", decimal.RequireFromString("1.5")
	}
	return "RETAILER-B", "HB_NORTH", decimal.NewFromInt(1)
}

// recomputed are the positions the current reads make, computed afresh
// from the contract (settlement/README.md steps 1-4): each current read mapped
// onto settlement intervals of L, import positive, export negative, times
// the loss factor of the assignment at its start, in MWh; keyed
// "participant/point/RFC 3339 start".
func recomputed(t *testing.T, b *batch, L int) map[string]decimal.Decimal {
	t.Helper()
	out := map[string]decimal.Decimal{}
	for _, meter := range []string{"M1", "M2"} {
		rs, err := CurrentReads(t.Context(), b.pool, ReadFilter{MeterID: meter}, 100000)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			participant, point, lf := assignedAt(meter, r.Start)
			for _, s := range meters.ToSettlementIntervals(r.Start, r.IntervalSeconds, r.Value, L) {
				v := s.KWh.Mul(lf).Shift(-3)
				if r.Channel == meters.Export {
					v = v.Neg()
				}
				k := participant + "/" + point + "/" + s.Start.UTC().Format(time.RFC3339)
				out[k] = out[k].Add(v)
			}
		}
	}
	return out
}

// TestPositionsFollowCurrentReads applies batches of 5-minute and hourly
// reads (across a UTC midnight and a retailer switch) with corrections,
// stale resends, a correction corrected again in its batch and reads
// corrected to zero, from three slots, under each settlement interval that
// is shorter, equal and longer than the reads: after every batch the live
// positions are exactly what the current reads make, whole and page by
// page, and the positions view agrees.
func TestPositionsFollowCurrentReads(t *testing.T) {
	t.Parallel()
	batches := []struct {
		slot int32
		recs []string
	}{
		{0, []string{
			series("M1", "import", "2026-10-31T21:00:00Z", 300, 1, 192, "0.038", "1.5", "0.000001", "12.25", "0"),
			series("M1", "export", "2026-10-31T23:00:00Z", 300, 1, 48, "0.5", "0.012345"),
			series("M2", "import", "2026-10-31T21:00:00Z", 3600, 1, 16, "1.234567", "4", "0.1"),
			series("M2", "export", "2026-10-31T22:00:00Z", 3600, 1, 5, "0.333333"),
		}},
		{0, []string{
			// across midnight, and across the 12:00 switch
			series("M1", "import", "2026-10-31T23:30:00Z", 300, 2, 12, "2.000001", "7"),
			series("M1", "import", "2026-11-01T11:50:00Z", 300, 2, 4, "3.3"),
			series("M1", "import", "2026-10-31T23:30:00Z", 300, 1, 3, "9"), // stale
			series("M2", "import", "2026-11-01T11:00:00Z", 3600, 2, 2, "0.000003"),
		}},
		{ReplaySlot, []string{
			series("M1", "export", "2026-11-01T00:00:00Z", 300, 3, 6, "1"),
			series("M1", "export", "2026-11-01T00:10:00Z", 300, 4, 2, "0.25"), // corrected again in the batch
			series("M2", "export", "2026-10-31T23:00:00Z", 3600, 2, 2, "2.5"),
			series("M2", "import", "2026-11-01T13:00:00Z", 3600, 1, 1, "6"),
			series("M1", "import", "2026-11-01T13:00:00Z", 300, 1, 12, "0.7"),
		}},
		{1, []string{
			// to zero, and import equal to export: positions of 0
			series("M1", "import", "2026-11-01T00:00:00Z", 300, 5, 3, "0"),
			series("M1", "import", "2026-11-01T00:15:00Z", 300, 5, 3, "0.5"),
			series("M1", "export", "2026-11-01T00:15:00Z", 300, 5, 3, "0.5"),
			series("M2", "import", "2026-10-31T22:00:00Z", 3600, 3, 1, "0"),
			series("M2", "export", "2026-10-31T22:00:00Z", 3600, 3, 1, "0"),
		}},
	}
	for _, L := range []int{300, 900, 3600} {
		t.Run(fmt.Sprint(L), func(t *testing.T) {
			t.Parallel()
			pool, _ := pgtest.New(t)
			registry(t, pool)
			b := &batch{pool: pool, settlement: L}
			for i, bt := range batches {
				b.slot = bt.slot
				if out := b.reads(t, bt.recs...); len(out.Quarantined) != 0 {
					t.Fatalf("batch %d: quarantined %+v", i, out.Quarantined)
				}
				want := recomputed(t, b, L)
				checkPositions(t, b, fmt.Sprintf("L %d, after batch %d", L, i), want)
			}
			// One row per participant, point, UTC day and slot: 3 pairs × 2
			// days in slot 0, those the replay and slot 1 moved.
			var rows, keys int
			if err := pool.QueryRow(t.Context(), `SELECT count(*), count(DISTINCT (participant_id, settlement_point, day, slot)) FROM position_days`).
				Scan(&rows, &keys); err != nil {
				t.Fatal(err)
			}
			if rows != keys || rows > 3*2*3 {
				t.Errorf("position_days: %d rows for %d keys, want one per key and at most 18", rows, keys)
			}
		})
	}
}

// checkPositions holds PositionEnergies and the positions view to want.
func checkPositions(t *testing.T, b *batch, what string, want map[string]decimal.Decimal) {
	t.Helper()
	from, to := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	all, err := PositionEnergies(t.Context(), b.pool, PositionFilter{From: from, To: to}, 100000)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]decimal.Decimal{}
	for _, p := range all {
		got[p.ParticipantID+"/"+p.SettlementPoint+"/"+p.IntervalStart.Format(time.RFC3339)] = p.EnergyMWh
	}
	sameEnergies(t, what, got, want)

	view := map[string]decimal.Decimal{}
	rows, err := b.pool.Query(t.Context(), `SELECT participant_id, settlement_point, interval_start, energy_mwh FROM positions`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var participant, point string
		var start time.Time
		var e decimal.Decimal
		if err := rows.Scan(&participant, &point, &start, &e); err != nil {
			t.Fatal(err)
		}
		k := participant + "/" + point + "/" + start.UTC().Format(time.RFC3339)
		view[k] = view[k].Add(e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sameEnergies(t, what+", positions view", view, want)

	// Pages of 7 over a window cut inside intervals and days, in
	// (participant, point, interval) order.
	wFrom, wTo := time.Date(2026, 10, 31, 23, 20, 0, 0, time.UTC), time.Date(2026, 11, 1, 12, 10, 1, 0, time.UTC)
	var wantKeys []string
	for k := range want {
		parts := strings.Split(k, "/")
		at, _ := time.Parse(time.RFC3339, parts[2])
		if !at.Before(wFrom) && at.Before(wTo) {
			wantKeys = append(wantKeys, k)
		}
	}
	slices.Sort(wantKeys) // RFC 3339 UTC sorts as time
	var gotKeys []string
	f := PositionFilter{From: wFrom, To: wTo}
	for {
		page, err := PositionEnergies(t.Context(), b.pool, f, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page {
			gotKeys = append(gotKeys, p.ParticipantID+"/"+p.SettlementPoint+"/"+p.IntervalStart.Format(time.RFC3339))
		}
		if len(page) < 7 {
			break
		}
		last := page[len(page)-1]
		f.After = &PositionKey{ParticipantID: last.ParticipantID, SettlementPoint: last.SettlementPoint, IntervalStart: last.IntervalStart}
	}
	equal(t, what+", pages of the window", gotKeys, wantKeys)
	// One participant and point, as the API filters.
	one, err := PositionEnergies(t.Context(), b.pool, PositionFilter{From: from, To: to, ParticipantID: "RETAILER-A", SettlementPoint: "HB_SOUTH"}, 100000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for k := range want {
		if strings.HasPrefix(k, "RETAILER-A/HB_SOUTH/") {
			n++
		}
	}
	if len(one) != n {
		t.Errorf("%s: %d positions of RETAILER-A at HB_SOUTH, want %d", what, len(one), n)
	}
}

func sameEnergies(t *testing.T, what string, got, want map[string]decimal.Decimal) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok || !g.Equal(w) {
			t.Errorf("%s: position %s = %v (stored: %t), want %s", what, k, g, ok, w)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: position %s = %s, but no current read makes it", what, k, g)
		}
	}
}

// The literal of a delta is its decimal at its own scale, as a numeric
// parameter was.
func TestAppendNumeric(t *testing.T) {
	for _, c := range []struct {
		d    decimal.Decimal
		want string
	}{
		{decimal.New(150, -5), "0.00150"},
		{decimal.New(-150, -5), "-0.00150"},
		{decimal.New(0, -9), "0.000000000"},
		{decimal.New(0, 0), "0"},
		{decimal.New(-7, 0), "-7"},
		{decimal.New(12, 2), "1200"},
		{decimal.New(123456789, -3), "123456.789"},
		{decimal.New(-123, -3), "-0.123"},
		{decimal.RequireFromString("-123456789012345678901234567890.123456789012345"), "-123456789012345678901234567890.123456789012345"},
	} {
		if got := string(appendNumeric([]byte("x"), c.d)); got != "x"+c.want {
			t.Errorf("appendNumeric(%v) = %q, want %q", c.d, got, "x"+c.want)
		}
	}
}

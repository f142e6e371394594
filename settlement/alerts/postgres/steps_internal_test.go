package postgres

import (
	"math"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/kafka"
)

func testHook(t testing.TB) *Hook {
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{Market: settlement.Market{Location: loc, Currency: "USD", IntervalSeconds: 900,
		PriceSpikeThreshold: decimal.NewFromInt(1000)}, Topics: kafka.DefaultTopics()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestCellsOf(t *testing.T) {
	h := testHook(t)
	for _, c := range []struct {
		start   string
		seconds int
		want    []string
	}{
		{"2026-11-10T06:05:00Z", 300, []string{"06:00"}},
		{"2026-11-10T06:15:00Z", 900, []string{"06:15"}},
		{"2026-11-10T06:00:00Z", 3600, []string{"06:00", "06:15", "06:30", "06:45"}},
	} {
		var got []string
		for _, x := range h.cellsOf(meters.Price{SettlementPoint: "P", Start: at(c.start), IntervalSeconds: c.seconds}) {
			got = append(got, time.Unix(x.start, 0).UTC().Format("15:04"))
		}
		if len(got) != len(c.want) {
			t.Errorf("%s/%d: %v, want %v", c.start, c.seconds, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s/%d: %v, want %v", c.start, c.seconds, got, c.want)
			}
		}
	}
}

func TestMonths(t *testing.T) {
	h := testHook(t)
	for _, c := range []struct{ month, from, to string }{
		{"2026-11", "2026-11-01T05:00:00Z", "2026-12-01T06:00:00Z"}, // CDT to CST
		{"2026-03", "2026-03-01T06:00:00Z", "2026-04-01T05:00:00Z"},
		{"2026-12", "2026-12-01T06:00:00Z", "2027-01-01T06:00:00Z"},
	} {
		from, to, err := h.monthBounds(c.month)
		if err != nil || !from.Equal(at(c.from)) || !to.Equal(at(c.to)) {
			t.Errorf("%s: [%s, %s) %v", c.month, from, to, err)
		}
		cal := h.calendar()
		if m := cal.month(from); m != c.month {
			t.Errorf("month of %s = %s", from, m)
		}
		if m := cal.month(from.Add(-time.Second)); m == c.month {
			t.Errorf("month of %s = %s", from.Add(-time.Second), m)
		}
	}
}

// FuzzStepsSumToCurrentReads: whatever versions arrive in whatever order,
// the differences the steps add up to are the figures recomputed from the
// reads that end up current (the aggregates' invariant).
func FuzzStepsSumToCurrentReads(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{7, 7, 7, 200, 13, 99, 1, 0, 255, 31, 64})
	h := testHook(f)
	a := &meters.Assignment{MeterID: "M", AccountID: "A", SettlementPoint: "P", LossFactor: decimal.RequireFromString("1.031200")}
	f.Fuzz(func(t *testing.T, data []byte) {
		type key struct {
			ch    meters.Channel
			start int64
		}
		current := map[key]meters.Read{}
		var changes []readstore.ReadChange
		for i := 0; i+2 < len(data) && i < 300; i += 3 {
			ch, seconds := meters.Import, 900
			if data[i]&1 == 1 {
				ch, seconds = meters.Export, 3600 // longer than L: split
			}
			// Starts around a local midnight, so reads fall on two days.
			base := at("2026-11-11T04:00:00Z").Unix()
			start := base + int64(data[i]>>1%6)*int64(seconds)
			q := meters.Actual
			if data[i+1]%3 == 1 {
				q = meters.Estimated
			}
			r := meters.Read{MeterID: "M", Channel: ch, Start: time.Unix(start, 0).UTC(), IntervalSeconds: seconds,
				Value: decimal.New(int64(data[i+2])*7919, -5), Quality: q, Version: int64(data[i+1]%4) + 1}
			k := key{ch, start}
			prev, ok := current[k]
			if ok && r.Version <= prev.Version {
				continue // stale or duplicate: no change
			}
			var replaced *meters.Read
			if ok {
				replaced = &prev
			}
			current[k] = r
			changes = append(changes, changeOf(t, r, replaced, a, int64(i)))
		}
		var ends []ingest.RecordEnd
		for _, c := range changes {
			ends = append(ends, ingest.RecordEnd{Offset: c.Origin().Offset, End: c.Read().Start.Add(time.Hour)})
		}
		sumUsage := map[dayKey]usage{}
		sumEnergy := map[energyKey]flow{}
		sum := totals{usage: sumUsage, energy: sumEnergy, meters: map[string]meterTouch{}}
		watching := map[string]limits{"A": {daily: decimal.NullDecimal{Valid: true}, budget: decimal.NullDecimal{Valid: true}}}
		steps, err := h.readSteps(ingest.Applied{Reads: changes, Ends: ends}, h.calendar(), watching)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			if err := sum.add(s); err != nil {
				t.Fatal(err)
			}
		}
		type dayFigure struct {
			kwh       decimal.Decimal
			estimated int
		}
		wantUsage := map[dayKey]dayFigure{}
		wantEnergy := map[accountCell]energy{}
		for _, r := range current {
			bad := 0
			if r.Quality != meters.Actual {
				bad = 1
			}
			if r.Channel == meters.Import {
				k := dayKey{"A", h.market.DayOf(r.Start).String()}
				u := wantUsage[k]
				wantUsage[k] = dayFigure{u.kwh.Add(r.Value), u.estimated + bad}
			}
			for _, sl := range meters.ToSettlementIntervals(r.Start, r.IntervalSeconds, r.Value, 900) {
				kwh := sl.KWh
				if r.Channel == meters.Export {
					kwh = kwh.Neg()
				}
				k := accountCell{"A", cell{"P", sl.Start.Unix()}}
				e := wantEnergy[k]
				e.add(energy{mwh: kwh.Mul(a.LossFactor).Shift(-3), estimated: bad})
				wantEnergy[k] = e
			}
		}
		for k, u := range sumUsage {
			w := wantUsage[k]
			if !u.kwh().Equal(w.kwh) || u.estimated != w.estimated {
				t.Errorf("usage %v: %s kWh, %d estimated; current reads %s, %d", k, u.kwh(), u.estimated, w.kwh, w.estimated)
			}
		}
		for k, w := range wantUsage {
			if _, ok := sumUsage[k]; !ok {
				t.Errorf("usage %v missing (want %s)", k, w.kwh)
			}
		}
		gotEnergy := map[accountCell]energy{}
		for k, f := range sumEnergy {
			if !decimal.New(k.lossMicro, -6).Equal(a.LossFactor) {
				t.Errorf("energy %v: loss factor %d millionths, want %s", k, k.lossMicro, a.LossFactor)
			}
			gotEnergy[accountCell{k.account, k.cell}] = energy{mwh: mwhOf(f.nano, a.LossFactor), estimated: f.estimated}
		}
		for k, e := range gotEnergy {
			w := wantEnergy[k]
			if !e.mwh.Equal(w.mwh) || e.estimated != w.estimated {
				t.Errorf("energy %v: %s MWh, %d estimated; current reads %s, %d", k, e.mwh, e.estimated, w.mwh, w.estimated)
			}
		}
		for k, w := range wantEnergy {
			if _, ok := gotEnergy[k]; !ok {
				t.Errorf("energy %v missing (want %s)", k, w.mwh)
			}
		}
	})
}

// changeOf is r, replacing prev (nil: none), as the change of a record of
// its own at offset, as the read store makes it.
func changeOf(t *testing.T, r meters.Read, prev *meters.Read, a *meters.Assignment, offset int64) readstore.ReadChange {
	micro := func(r meters.Read) int64 {
		m, ok := scaled(r.Value, 6)
		if !ok {
			t.Fatalf("%s kWh is not a whole number of micro-kWh", r.Value)
		}
		return m
	}
	rec := &readstore.ReadRecord{Source: readstore.Source{Origin: readstore.Origin{Offset: offset}},
		Block: meters.ReadBlock{MeterID: r.MeterID, Channel: r.Channel, Start: r.Start, IntervalSeconds: r.IntervalSeconds,
			Values: []decimal.Decimal{r.Value}, Micro: []int64{micro(r)}, Quality: []meters.Quality{r.Quality},
			Version: r.Version, Source: r.Source}}
	c := readstore.ReadChange{Record: rec, Assignment: a}
	if prev != nil {
		c.Old = readstore.OldRead{Micro: micro(*prev), Version: prev.Version, Quality: prev.Quality, Source: prev.Source}
	}
	return c
}

// TestScaled: a decimal is a whole number of 10^-places units exactly when
// scaled says so, whatever its representation (trailing zeros, a positive
// exponent), and never wraps around an int64.
func TestScaled(t *testing.T) {
	for _, c := range []struct {
		in     string
		places int32
		want   int64
		ok     bool
	}{
		{"1.5", 9, 1_500_000_000, true},
		{"-0.000000001", 9, -1, true},
		{"1.0000000000", 9, 1_000_000_000, true}, // 10 decimal places, all zero
		{"0.0000000001", 9, 0, false},
		{"12E3", 6, 12_000_000_000, true},
		{"1.0125", 6, 1_012_500, true},
		{"9223372036.854775807", 9, 9_223_372_036_854_775_807, true},
		{"9223372036.854775808", 9, 0, false},
		{"10000000000", 9, 0, false},
		{"99999999999999999999", 0, 0, false},
	} {
		got, ok := scaled(decimal.RequireFromString(c.in), c.places)
		if got != c.want || ok != c.ok {
			t.Errorf("scaled(%s, %d) = %d, %v; want %d, %v", c.in, c.places, got, ok, c.want, c.ok)
		}
	}
}

// TestSumsNeverWrap: a batch whose energy for one account and interval
// leaves an int64 of nano-kWh fails (and is then applied in parts), never
// stores a wrapped sum; below the bound, sums are exact.
func TestSumsNeverWrap(t *testing.T) {
	for _, c := range []struct {
		a, b int64
		ok   bool
	}{
		{1, 2, true}, {math.MaxInt64, 0, true}, {math.MaxInt64, 1, false}, {math.MinInt64, -1, false},
		{math.MinInt64, math.MaxInt64, true}, {-5, 5, true}, {math.MaxInt64 - 10, 10, true},
	} {
		s, ok := addInt64(c.a, c.b)
		if ok != c.ok || ok && s != c.a+c.b {
			t.Errorf("addInt64(%d, %d) = %d, %v", c.a, c.b, s, ok)
		}
	}
	k := energyKey{"A", cell{"P", 0}, 1_000_000}
	max := step{energy: []energyDelta{{k, flow{nano: 1_000_000_000_000_000}}}} // 10^6 kWh, the largest read
	total := totals{usage: map[dayKey]usage{}, energy: map[energyKey]flow{}, meters: map[string]meterTouch{}}
	var err error
	n := 0
	for ; err == nil && n < 10_000; n++ {
		err = total.add(max)
	}
	if err == nil || n != 9_224 {
		t.Errorf("after %d of the largest reads: %v; want an error at the 9,224th", n, err)
	}
}

package postgres

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

func TestChannelEstimates(t *testing.T) {
	t.Parallel()
	// T is the first settlement interval of a day of 2026-11-01 in
	// America/Chicago (05:00Z, a 25-hour day); every case settles a small
	// window after it unless it says otherwise.
	T := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC).Unix()
	all := func(int64) bool { return true }
	from := func(at int64) func(int64) bool { return func(t int64) bool { return t >= at } }
	// reads are len-spaced reads from start, -1 for none.
	reads := func(start, len int64, vals ...int64) []chanRead {
		var out []chanRead
		for i, v := range vals {
			if v >= 0 {
				out = append(out, chanRead{start + int64(i)*len, v})
			}
		}
		return out
	}
	lin := func(t, v int64) chanEstimate { return chanEstimate{t, v, methodLIN} }
	pend := func(ts ...int64) []chanEstimate {
		var out []chanEstimate
		for _, t := range ts {
			out = append(out, chanEstimate{start: t, method: methodPending})
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		c         chanDay
		maxLinear int64
		want      []chanEstimate
	}{
		{
			name: "one missing, half-even down to the even micro-kWh",
			c:    chanDay{len: 900, lo: T - 900, hi: T + 3600, reads: reads(T, 900, 1_000_000, -1, 2_000_001, 5, 5)},
			want: []chanEstimate{lin(T+900, 1_500_000)},
		},
		{
			name: "one missing, half-even up to the even micro-kWh",
			c:    chanDay{len: 900, lo: T - 900, hi: T + 3600, reads: reads(T, 900, 1_000_000, -1, 2_000_003, 5, 5)},
			want: []chanEstimate{lin(T+900, 1_500_002)},
		},
		{
			name: "three missing: k/(n+1) of the way, each rounded",
			c:    chanDay{len: 900, lo: T - 900, hi: T + 3600 + 900, reads: reads(T, 900, 0, -1, -1, -1, 1)},
			want: []chanEstimate{lin(T+900, 0), lin(T+1800, 0), lin(T+2700, 1)},
		},
		{
			name: "a falling gap",
			c:    chanDay{len: 900, lo: T - 900, hi: T + 3600, reads: reads(T, 900, 10, -1, -1, 1)},
			want: []chanEstimate{lin(T+900, 7), lin(T+1800, 4)},
		},
		{
			name: "gap across the day's start: its day part is the k-th of the whole gap",
			c:    chanDay{len: 900, lo: T - 900, hi: T + 3600, reads: reads(T-1800, 900, 0, -1, -1, 3_000_000, 1, 1)},
			want: []chanEstimate{lin(T, 2_000_000)},
		},
		{
			name: "gap across the day's end",
			c:    chanDay{len: 900, lo: T - 900, hi: T + 1800, reads: reads(T, 900, 4, -1, -1, -1, 0)},
			want: []chanEstimate{lin(T+900, 3)},
		},
		{
			name: "exactly max_linear is linear",
			c:    chanDay{len: 900, lo: T - 900, hi: T + 6*900, reads: reads(T, 900, 5, -1, -1, -1, -1, 5)},
			want: []chanEstimate{lin(T+900, 5), lin(T+1800, 5), lin(T+2700, 5), lin(T+3600, 5)},
		},
		{
			name: "longer than max_linear: each missing interval on its own",
			c:    chanDay{len: 900, lo: T - 900, hi: T + 7*900, reads: reads(T, 900, 5, -1, -1, -1, -1, -1, 5)},
			want: pend(T+900, T+1800, T+2700, T+3600, T+4500),
		},
		{
			name: "longer than max_linear only with its part before the day",
			c:    chanDay{len: 900, lo: T - 900, hi: T + 1800, reads: reads(T-5*900, 900, 5, -1, -1, -1, -1, -1, 5, 5)},
			want: pend(T),
		},
		{
			name:      "a longer max_linear makes it linear",
			c:         chanDay{len: 900, lo: T - 900, hi: T + 7*900, reads: reads(T, 900, 0, -1, -1, -1, -1, -1, 6)},
			maxLinear: 5 * 900,
			want:      []chanEstimate{lin(T+900, 1), lin(T+1800, 2), lin(T+2700, 3), lin(T+3600, 4), lin(T+4500, 5)},
		},
		{
			name: "no neighbour before the day's first read",
			c:    chanDay{len: 900, lo: T - 900, hi: T + 1800, reads: reads(T+900, 900, 5)},
			want: pend(T),
		},
		{
			name: "the neighbour before has no assignment: no neighbour, and not missing itself",
			c: chanDay{len: 900, lo: T - 900, hi: T + 3600, reads: reads(T-900, 900, 5, -1, 5, 5, 5),
				covered: from(T)},
			want: pend(T),
		},
		{
			name: "the neighbour after has no assignment",
			c: chanDay{len: 900, lo: T - 900, hi: T + 3600, reads: reads(T, 900, 5, -1, 5, 5),
				covered: func(t int64) bool { return t != T+1800 }},
			want: pend(T + 900),
		},
		{
			name: "without an assignment nothing is missing",
			c: chanDay{len: 900, lo: T - 900, hi: T + 3600, reads: reads(T, 900, 5, -1, -1, 5),
				covered: func(t int64) bool { return t < T+900 || t >= T+2700 }},
		},
		{
			name: "gap across an assignment change is one gap",
			c: chanDay{len: 900, lo: T - 900, hi: T + 3600, reads: reads(T, 900, 0, -1, -1, 3),
				covered: from(T - 900)},
			want: []chanEstimate{lin(T+900, 1), lin(T+1800, 2)},
		},
		{
			name: "no reads at all",
			c:    chanDay{len: 900, lo: T - 900, hi: T + 3600},
			want: pend(T, T+900, T+1800, T+2700),
		},
		{
			name: "60-minute channel, 15-minute settlement: the read across the day's start is the day's",
			c: chanDay{len: 3600, lo: T + 900 - 3600, hi: T + 3*3600,
				reads: reads(T-3600, 3600, 1_000_000, -1, 3_000_000, -1)},
			want: []chanEstimate{lin(T, 2_000_000), chanEstimate{start: T + 2*3600, method: methodPending}},
		},
		{
			name: "5-minute channel: twelve missing are an hour",
			c:    chanDay{len: 300, lo: T - 300, hi: T + 14*300, reads: reads(T, 300, 0, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 13)},
			want: func() []chanEstimate {
				var out []chanEstimate
				for k := int64(1); k <= 12; k++ {
					out = append(out, lin(T+k*300, k))
				}
				return out
			}(),
		},
		{
			name: "5-minute channel: thirteen missing are more",
			c:    chanDay{len: 300, lo: T - 300, hi: T + 15*300, reads: reads(T, 300, 0, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 14)},
			want: pend(T+300, T+600, T+900, T+1200, T+1500, T+1800, T+2100, T+2400, T+2700, T+3000, T+3300, T+3600, T+3900),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.c.covered == nil {
				tc.c.covered = all
			}
			if tc.maxLinear == 0 {
				tc.maxLinear = 3600
			}
			got := tc.c.estimate(tc.maxLinear, nil)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got  %v\nwant %v", fmtEstimates(got, T), fmtEstimates(tc.want, T))
			}
		})
	}
}

// TestChannelEstimatesAcrossDST: the 25-hour day of the fall-back change
// has 100 channel intervals of 15 minutes, 25 of 60 minutes and 300 of
// 5 minutes, all missing when nothing was read.
func TestChannelEstimatesAcrossDST(t *testing.T) {
	t.Parallel()
	loc := chicago(t)
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, loc).Unix()
	end := time.Date(2026, 11, 2, 0, 0, 0, 0, loc).Unix()
	for secs, want := range map[int64]int{900: 100, 3600: 25, 300: 300} {
		c := chanDay{len: secs, lo: start - secs, hi: end, covered: func(int64) bool { return true }}
		got := c.estimate(3600, nil)
		if len(got) != want || got[0].start != start || got[want-1].start != end-secs {
			t.Errorf("%d-second channel: %d estimates, want %d from %d to %d", secs, len(got), want, start, end-secs)
		}
	}
	// A two-hour gap over the repeated 01:00 is not linear; a 45-minute one
	// in it is, the hour counted in UTC.
	first := time.Date(2026, 11, 1, 1, 0, 0, 0, loc).Unix() // 01:00 CDT
	c := chanDay{len: 900, lo: start - 900, hi: end, covered: func(int64) bool { return true }}
	for t0 := start; t0 < end; t0 += 900 {
		if t0 < first || t0 >= first+45*60 {
			c.reads = append(c.reads, chanRead{t0, 8})
		}
	}
	got := c.estimate(3600, nil)
	want := []chanEstimate{{first, 8, methodLIN}, {first + 900, 8, methodLIN}, {first + 1800, 8, methodLIN}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func fmtEstimates(es []chanEstimate, base int64) string {
	s := ""
	for _, e := range es {
		s += fmt.Sprintf("[%+ds %s %d] ", e.start-base, e.method, e.micro)
	}
	return s
}

func TestInterpolate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ vb, va, k, n, want int64 }{
		{0, 1, 1, 1, 0},  // 0.5 → 0
		{1, 2, 1, 1, 2},  // 1.5 → 2
		{0, 3, 1, 1, 2},  // 1.5 → 2
		{3, 0, 1, 1, 2},  // 1.5 → 2
		{5, 0, 1, 1, 2},  // 2.5 → 2
		{0, 1, 2, 3, 0},  // 0.5 → 0
		{0, 10, 1, 2, 3}, // 3.33… → 3
		{0, 10, 2, 2, 7}, // 6.66… → 7
		{1_000_000_000_000, 0, 1, 8639, 999_884_259_259}, // 10^12 · 8639/8640 = …259.26, the largest values
	} {
		if got := interpolate(tc.vb, tc.va, tc.k, tc.n); got != tc.want {
			t.Errorf("interpolate(%d, %d, %d, %d) = %d, want %d", tc.vb, tc.va, tc.k, tc.n, got, tc.want)
		}
	}
}

// TestAnswerLikeDays: each pending estimate takes the read exactly 1, else
// 2, 3, 4 UTC weeks back, unchanged, else zero; each week asks only for
// those still pending; LIN estimates are left alone. Across the fall-back
// change the like day is the same UTC instant, a local hour off.
func TestAnswerLikeDays(t *testing.T) {
	t.Parallel()
	loc := chicago(t)
	at := time.Date(2026, 11, 3, 9, 0, 0, 0, loc).Unix() // 15:00Z, CST
	w := int64(secondsPerWeek)
	key := func(meter string, start int64) readstore.ValueKey {
		return readstore.ValueKey{MeterID: meter, Channel: meters.Import, Start: start}
	}
	stored := map[readstore.ValueKey]int64{
		key("M1", at-w):   7_000_000, // 10:00 CDT a week back
		key("M1", at-2*w): 1,
		key("M2", at-2*w): 2_500_000,
		key("M3", at-4*w): 0, // a zero read is a like day
		key("M4", at-5*w): 9, // too far back
		key("M5", at):     8, // the day itself is never a like day
	}
	var asked [][]string
	lookup := func(keys []readstore.ValueKey) ([]int64, error) {
		var names []string
		out := make([]int64, len(keys))
		for i, k := range keys {
			names = append(names, k.MeterID)
			v, ok := stored[k]
			if !ok {
				v = readstore.NoRead
			}
			out[i] = v
		}
		asked = append(asked, names)
		return out, nil
	}
	made := []madeEstimate{
		{meter: "M1", channel: meters.Import, startUnix: at, method: methodPending},
		{meter: "M2", channel: meters.Import, startUnix: at, method: methodPending},
		{meter: "M6", channel: meters.Import, startUnix: at, microKWh: 4, method: methodLIN},
		{meter: "M3", channel: meters.Import, startUnix: at, method: methodPending},
		{meter: "M4", channel: meters.Import, startUnix: at, method: methodPending},
		{meter: "M5", channel: meters.Import, startUnix: at, method: methodPending},
	}
	if err := answerLikeDays(made, lookup); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range made {
		got = append(got, fmt.Sprintf("%s %s %d", m.meter, m.method, m.microKWh))
	}
	want := []string{"M1 LDY 7000000", "M2 LDY 2500000", "M6 LIN 4", "M3 LDY 0", "M4 ZER 0", "M5 ZER 0"}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	wantAsked := "[[M1 M2 M3 M4 M5] [M2 M3 M4 M5] [M3 M4 M5] [M3 M4 M5]]"
	if fmt.Sprint(asked) != wantAsked {
		t.Errorf("asked %v, want %s", asked, wantAsked)
	}
}

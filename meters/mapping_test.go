package meters

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func TestToSettlementIntervals(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		start      time.Time
		len, L     int
		value      string
		wantStarts []time.Time
		wantKWh    []string
	}{
		{"equal", t0, 900, 900, "0.4215", []time.Time{t0}, []string{"0.4215"}},
		{"5-minute into its quarter hour", t0.Add(10 * time.Minute), 300, 900, "0.1", []time.Time{t0}, []string{"0.1"}},
		{"hourly split in four, exact", t0, 3600, 900, "1.000001",
			[]time.Time{t0, t0.Add(15 * time.Minute), t0.Add(30 * time.Minute), t0.Add(45 * time.Minute)},
			[]string{"0.25000025", "0.25000025", "0.25000025", "0.25000025"}},
		{"hourly into 20-minute settlement, uneven", t0, 3600, 1200, "1",
			[]time.Time{t0, t0.Add(20 * time.Minute), t0.Add(40 * time.Minute)},
			[]string{"0.333333333", "0.333333333", "0.333333334"}},
		{"half-even tie at 9 places", t0, 1800, 900, "0.000000001",
			[]time.Time{t0, t0.Add(15 * time.Minute)}, []string{"0", "0.000000001"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ToSettlementIntervals(tc.start, tc.len, d(tc.value), tc.L)
			if len(got) != len(tc.wantKWh) {
				t.Fatalf("got %d slices, want %d", len(got), len(tc.wantKWh))
			}
			sum := decimal.Zero
			for i, s := range got {
				if !s.Start.Equal(tc.wantStarts[i]) || !s.KWh.Equal(d(tc.wantKWh[i])) {
					t.Errorf("slice %d = %s %s, want %s %s", i, s.Start, s.KWh, tc.wantStarts[i], tc.wantKWh[i])
				}
				sum = sum.Add(s.KWh)
			}
			if !sum.Equal(d(tc.value)) {
				t.Errorf("slices sum to %s, want %s", sum, tc.value)
			}
		})
	}
}

func TestDivRoundBank(t *testing.T) {
	for _, tc := range []struct {
		v     string
		n     int64
		scale int32
		want  string
	}{
		{"1", 3, 2, "0.33"}, {"2", 3, 2, "0.67"}, {"0.125", 1, 2, "0.12"}, {"0.135", 1, 2, "0.14"},
		{"0.25", 10, 2, "0.02"}, {"0.35", 10, 2, "0.04"}, {"-0.35", 10, 2, "-0.04"},
		{"-0.25", 10, 2, "-0.02"}, {"7", -2, 0, "-4"}, {"5", 2, 0, "2"},
	} {
		if got := DivRoundBank(d(tc.v), tc.n, tc.scale); !got.Equal(d(tc.want)) {
			t.Errorf("DivRoundBank(%s, %d, %d) = %s, want %s", tc.v, tc.n, tc.scale, got, tc.want)
		}
	}
}

// TestSplitNanoIsToSettlementIntervals: splitting integers of nano-kWh
// gives exactly the pieces ToSettlementIntervals gives for the decimal,
// ties, remainders and signs included (a negative value splits as its
// magnitude, negated: how the alert steps split export).
func TestSplitNanoIsToSettlementIntervals(t *testing.T) {
	start := time.Date(2026, 11, 11, 4, 0, 0, 0, time.UTC)
	values := []int64{0, 1, 2, 3, 5, 6, 7, 10, 11, 12, 13, 15, 16, 17, 18, 19, 20, 23, 24, 25, 30, 31, 36, 999_999, 1_000_000_000_000}
	for v := int64(1); v < 1<<40; v = v*7 + 3 {
		values = append(values, v)
	}
	for _, micro := range values {
		for _, secs := range []int{600, 900, 1800, 3600, 7200, 86400} {
			for _, L := range []int{300, 900} {
				if secs <= L || secs%L != 0 {
					continue
				}
				n := int64(secs / L)
				piece, last := SplitNano(micro*1000, n)
				for _, sign := range []int64{1, -1} {
					want := ToSettlementIntervals(start, secs, decimal.New(sign*micro, -6), L)
					if int64(len(want)) != n {
						t.Fatalf("%d pieces of %d, want %d", n, micro, len(want))
					}
					for i, w := range want {
						got := piece
						if int64(i) == n-1 {
							got = last
						}
						if nano := w.KWh.Shift(9); !nano.IsInteger() || nano.IntPart() != sign*got {
							t.Fatalf("SplitNano(%d, %d) piece %d = %d (sign %d), want %s kWh", micro*1000, n, i, got, sign, w.KWh)
						}
					}
				}
			}
		}
	}
}

// FuzzFloorCeil holds Floor and Ceil, the one rounding of an instant to an
// interval (the kernel, prices, alerts, the market's intervals and the
// simulator use them), to their definition: an aligned start within one
// interval, below or above t, on either side of the epoch.
func FuzzFloorCeil(f *testing.F) {
	f.Add(int64(0), int64(900))
	f.Add(int64(-1), int64(900))
	f.Add(int64(1_761_000_123), int64(3600))
	f.Add(int64(-946_684_800_000_001), int64(900_000_000))
	f.Fuzz(func(t *testing.T, v, n int64) {
		if n <= 0 || n > 1<<40 || v < -1<<60 || v > 1<<60 {
			return
		}
		fl, ce := Floor(v, n), Ceil(v, n)
		if fl%n != 0 || fl > v || v-fl >= n {
			t.Fatalf("Floor(%d, %d) = %d", v, n, fl)
		}
		if ce%n != 0 || ce < v || ce-v >= n {
			t.Fatalf("Ceil(%d, %d) = %d", v, n, ce)
		}
		if (fl == ce) != (v%n == 0) {
			t.Fatalf("Floor %d, Ceil %d of %d at %d", fl, ce, v, n)
		}
	})
}

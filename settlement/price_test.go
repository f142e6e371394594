package settlement

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func chicago(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// series builds a price series of length seconds from start, one price per
// interval; "" leaves that interval without a price.
func series(t *testing.T, start time.Time, seconds int, prices ...string) *Prices {
	t.Helper()
	var p Prices
	for i, s := range prices {
		if s == "" {
			continue
		}
		if err := p.Add(start.Add(time.Duration(i*seconds)*time.Second), seconds, dec(s)); err != nil {
			t.Fatal(err)
		}
	}
	return &p
}

func TestSettlementPrice(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		prices *Prices
		L      int
		at     time.Time
		want   string // "" = unpriced
	}{
		{"same length", series(t, t0, 900, "25.5", "-3.25"), 900, t0.Add(15 * time.Minute), "-3.25"},
		{"same length, missing", series(t, t0, 900, "25.5"), 900, t0.Add(15 * time.Minute), ""},
		// 30.000004 / 3 = 10.0000013333…
		{"5-minute mean rounds down", series(t, t0, 300, "10.000001", "10.000001", "10.000002"), 900, t0, "10.000001"},
		// 30.000005 / 3 = 10.0000016666…
		{"5-minute mean rounds up", series(t, t0, 300, "10.000002", "10.000001", "10.000002"), 900, t0, "10.000002"},
		// -37.4 / 3 = -12.4666666…
		{"negative 5-minute mean", series(t, t0, 300, "-12.5", "-12.5", "-12.4"), 900, t0, "-12.466667"},
		// 60.000003 / 6 = 10.0000005: a tie, to the even 10.000000
		{"5-minute mean, tie to even (down)", series(t, t0, 300, "10.000001", "10.000002", "10", "10", "10", "10"), 1800, t0, "10.000000"},
		// 60.000009 / 6 = 10.0000015: a tie, to the even 10.000002
		{"5-minute mean, tie to even (up)", series(t, t0, 300, "10.000004", "10.000005", "10", "10", "10", "10"), 1800, t0, "10.000002"},
		{"negative tie to even", series(t, t0, 300, "-10.000001", "-10.000002", "-10", "-10", "-10", "-10"), 1800, t0, "-10.000000"},
		{"5-minute, one missing", series(t, t0, 300, "10", "", "10"), 900, t0, ""},
		{"5-minute, last of the interval missing", series(t, t0, 300, "10", "10"), 900, t0, ""},
		{"5-minute, second interval", series(t, t0, 300, "1", "1", "1", "4", "5", "7"), 900, t0.Add(15 * time.Minute), "5.333333"},
		{"hourly, first quarter", series(t, t0, 3600, "42.17"), 900, t0, "42.17"},
		{"hourly, last quarter", series(t, t0, 3600, "42.17", "50"), 900, t0.Add(45 * time.Minute), "42.17"},
		{"hourly, next hour", series(t, t0, 3600, "42.17", "-50"), 900, t0.Add(75 * time.Minute), "-50"},
		{"hourly, missing hour", series(t, t0, 3600, "42.17"), 900, t0.Add(60 * time.Minute), ""},
		{"15-minute into 5-minute settlement", series(t, t0, 900, "7"), 300, t0.Add(10 * time.Minute), "7"},
		{"empty series", &Prices{}, 900, t0, ""},
		{"nil series", nil, 900, t0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.prices.At(tc.L, tc.at)
			if tc.want == "" {
				if got.Valid {
					t.Fatalf("priced at %s, want unpriced", got.Decimal)
				}
				return
			}
			if !got.Valid {
				t.Fatalf("unpriced, want %s", tc.want)
			}
			if got.Decimal.StringFixedBank(6) != dec(tc.want).StringFixedBank(6) {
				t.Fatalf("price %s, want %s", got.Decimal, tc.want)
			}
		})
	}
}

func TestPricesRefuseMixedLengths(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	p := series(t, t0, 300, "1")
	if err := p.Add(t0.Add(time.Hour), 900, dec("2")); err == nil {
		t.Fatal("a 900 s price joined a 300 s series")
	}
}

// TestDayPricesAcrossDST prices whole DST days: on the fall-back day hourly
// prices cover 25 hours and 100 intervals; on spring-forward 5-minute prices
// cover 23 hours and 92 intervals, one of which has a missing price.
func TestDayPricesAcrossDST(t *testing.T) {
	m := Market{Location: chicago(t), IntervalSeconds: 900}

	fall := Day{2026, 11, 1}
	start, end := m.Bounds(fall)
	if h := end.Sub(start); h != 25*time.Hour {
		t.Fatalf("fall-back day lasts %s", h)
	}
	hourly := make([]string, 25)
	for h := range hourly {
		hourly[h] = decimal.NewFromInt(int64(h)).String() // hour h costs h per MWh
	}
	got := m.DayPrices(fall, series(t, start, 3600, hourly...))
	if len(got) != 100 {
		t.Fatalf("fall-back day has %d prices, want 100", len(got))
	}
	for i, p := range got {
		if !p.Valid || !p.Decimal.Equal(decimal.NewFromInt(int64(i/4))) {
			t.Fatalf("interval %d priced %v, want %d", i, p, i/4)
		}
	}

	spring := Day{2026, 3, 8}
	start, _ = m.Bounds(spring)
	fiveMin := make([]string, 92*3)
	for i := range fiveMin {
		fiveMin[i] = "-1.5"
	}
	fiveMin[3*40+1] = "" // the middle 5 minutes of interval 40
	got = m.DayPrices(spring, series(t, start, 300, fiveMin...))
	if len(got) != 92 {
		t.Fatalf("spring-forward day has %d prices, want 92", len(got))
	}
	for i, p := range got {
		if i == 40 {
			if p.Valid {
				t.Fatalf("interval 40 priced %s despite a missing 5-minute price", p.Decimal)
			}
			continue
		}
		if !p.Valid || p.Decimal.StringFixedBank(6) != "-1.500000" {
			t.Fatalf("interval %d priced %v, want -1.500000", i, p)
		}
	}
}

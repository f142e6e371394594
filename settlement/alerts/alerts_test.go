package alerts

import (
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func locale(t *testing.T) Locale {
	chi, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	return Locale{Location: chi, Currency: "USD"}
}

func TestDailyUsage(t *testing.T) {
	loc := locale(t)
	ev := time.Date(2026, 11, 1, 21, 15, 0, 0, time.UTC)
	u := Usage{AccountID: "ACC-0042", OperatingDay: "2026-11-01", KWh: dec("31.204"), AllActual: true, EventTime: ev}
	a, ok := CheckDailyUsage(u, dec("30"), loc)
	if !ok {
		t.Fatal("31.204 kWh against 30 did not fire")
	}
	want := Alert{AlertID: "daily_usage/ACC-0042/2026-11-01", Type: DailyUsage, AccountID: "ACC-0042",
		OperatingDay: "2026-11-01", Observed: "31.204000", Threshold: "30", Unit: "kWh", DataQuality: "actual", EventTime: ev,
		Message: "Your electricity use on Sun 1 Nov 2026 reached 31.2 kWh, above your alert level of 30 kWh."}
	if a != want {
		t.Errorf("got  %+v\nwant %+v", a, want)
	}
	// Exactly at the threshold counts as reaching it.
	u.KWh, u.AllActual = dec("30.000000"), false
	a, ok = CheckDailyUsage(u, dec("30"), loc)
	if !ok || a.DataQuality != QualityEstimated || !strings.Contains(a.Message, "estimated") {
		t.Errorf("at threshold with estimates: ok=%v %+v", ok, a)
	}
	u.KWh = dec("29.999999")
	if _, ok := CheckDailyUsage(u, dec("30"), loc); ok {
		t.Error("below threshold fired")
	}
}

func TestMonthlyBudget(t *testing.T) {
	s := Spend{AccountID: "A", Month: "2026-11", Amount: dec("50.005"), AllActual: true, EventTime: time.Unix(0, 0)}
	a, ok := CheckMonthlyBudget(s, dec("50"), locale(t))
	if !ok || a.AlertID != "monthly_budget/A/2026-11" || a.Observed != "50.00" || a.Unit != "USD" {
		t.Fatalf("ok=%v %+v", ok, a)
	}
	if want := "Your estimated electricity cost for November 2026 has reached $50.00, which meets or exceeds your monthly budget of $50.00."; a.Message != want {
		t.Errorf("message %q\nwant    %q", a.Message, want)
	}
}

func TestPrices(t *testing.T) {
	loc := locale(t)
	start := time.Date(2026, 11, 1, 20, 0, 0, 0, time.UTC) // 2:00 PM CST
	p := PriceEvent{AccountID: "A", OperatingDay: "2026-11-01", SettlementPoint: "HB_NORTH",
		IntervalStart: start, IntervalEnd: start.Add(15 * time.Minute), Price: dec("1250")}
	a, ok := CheckPrice(p, dec("1000"), loc)
	if !ok || a.Type != PriceSpike || a.AlertID != "price_spike/A/2026-11-01" || !strings.Contains(a.Message, "125.00¢/kWh") ||
		!strings.Contains(a.Message, "2:00 PM") {
		t.Fatalf("spike: ok=%v %+v", ok, a)
	}
	p.Price = dec("-12.5")
	a, ok = CheckPrice(p, dec("1000"), loc)
	if !ok || a.Type != NegativePrice || a.AlertID != "negative_price/A/2026-11-01" || !strings.Contains(a.Message, "-1.25¢/kWh") {
		t.Fatalf("negative: ok=%v %+v", ok, a)
	}
	for _, price := range []string{"0", "999.999999"} {
		p.Price = dec(price)
		if _, ok := CheckPrice(p, dec("1000"), loc); ok {
			t.Errorf("price %s fired", price)
		}
	}
}

func TestMissingData(t *testing.T) {
	last := time.Date(2026, 11, 1, 20, 0, 0, 0, time.UTC)
	s := Silence{MeterID: "M-1", AccountID: "A", LastEnd: last, Watermark: last.Add(6 * time.Hour)}
	a, ok := CheckMissingData(s, 6*time.Hour, locale(t))
	if !ok || a.AlertID != "missing_data/M-1/2026-11-01T20:00:00Z" || a.Observed != "6.00" || *a.GapStart != last {
		t.Fatalf("ok=%v %+v", ok, a)
	}
	s.Watermark = last.Add(6*time.Hour - time.Second)
	if _, ok := CheckMissingData(s, 6*time.Hour, locale(t)); ok {
		t.Error("gap shorter than the window fired")
	}
}

func TestMoney(t *testing.T) {
	for _, tc := range []struct{ v, cur, want string }{
		{"1234.5", "USD", "$1234.50"}, {"-3.456", "EUR", "-€3.46"}, {"7", "CHF", "7.00 CHF"},
	} {
		if got := money(dec(tc.v), tc.cur); got != tc.want {
			t.Errorf("money(%s, %s) = %s, want %s", tc.v, tc.cur, got, tc.want)
		}
	}
}

package settlement

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func price(s string) decimal.NullDecimal {
	if s == "" {
		return decimal.NullDecimal{}
	}
	return decimal.NullDecimal{Decimal: dec(s), Valid: true}
}

func TestMWh(t *testing.T) {
	for _, tc := range []struct{ kwh, lf, want string }{
		{"1.5", "1.0312", "0.0015468"},
		{"0.4215", "1", "0.0004215"},
		{"-4.1", "1.031200", "-0.00422792"},           // a prosumer exporting more than it imports
		{"0.000001", "0.999999", "0.000000000999999"}, // exact to 15 places, no rounding
		{"0", "1.5", "0"},
	} {
		if got := MWh(dec(tc.kwh), dec(tc.lf)); !got.Equal(dec(tc.want)) {
			t.Errorf("MWh(%s, %s) = %s, want %s", tc.kwh, tc.lf, got, tc.want)
		}
	}
}

func TestLineFigures(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
	iv := func(mwh, p string) Interval { return Interval{Start: t0, MWh: dec(mwh), Price: price(p)} }
	tests := []struct {
		name                     string
		intervals                []Interval
		energy, unpriced, amount string
		priced                   int
	}{
		{"one priced interval", []Interval{iv("0.0015468", "25.5")}, "0.001547", "0.000000", "0.04", 1},
		// 1 × 0.125 = 0.125: a tie, to the even 0.12
		{"amount tie rounds to even (down)", []Interval{iv("1", "0.125")}, "1.000000", "0.000000", "0.12", 1},
		// 0.135 to the even 0.14
		{"amount tie rounds to even (up)", []Interval{iv("1", "0.135")}, "1.000000", "0.000000", "0.14", 1},
		// rounding happens once, on the sum: 0.004 + 0.004 = 0.008 -> 0.01, never 0.00 + 0.00
		{"one rounding per line", []Interval{iv("0.0004", "10"), iv("0.0004", "10")}, "0.000800", "0.000000", "0.01", 2},
		// 0.0000005 ties to 0.000000; unpriced energy counts in energy_mwh too
		{"energy tie and unpriced", []Interval{iv("0.00000025", "100"), iv("0.00000025", "")}, "0.000000", "0.000000", "0.00", 1},
		{"energy tie up", []Interval{iv("0.0000015", "")}, "0.000002", "0.000002", "0.00", 0},
		// negative price: a load paid to consume
		{"negative price", []Interval{iv("2.5", "-12.466667")}, "2.500000", "0.000000", "-31.17", 1},
		// prosumer net export at a positive price: a credit
		{"net export", []Interval{iv("-0.00422792", "30"), iv("0.001", "")}, "-0.003228", "0.001000", "-0.13", 1},
		{"zero energy, still priced", []Interval{iv("0", "30"), iv("0", "")}, "0.000000", "0.000000", "0.00", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := LineFiguresOf(tc.intervals)
			check := func(field string, got decimal.Decimal, want string, scale int32) {
				if got.StringFixedBank(scale) != want {
					t.Errorf("%s = %s, want %s", field, got.StringFixedBank(scale), want)
				}
			}
			check("energy_mwh", got.EnergyMWh, tc.energy, 6)
			check("unpriced_energy_mwh", got.UnpricedEnergyMWh, tc.unpriced, 6)
			check("amount", got.Amount, tc.amount, 2)
			if got.PricedIntervals != tc.priced || got.Intervals != len(tc.intervals) {
				t.Errorf("intervals %d priced %d, want %d priced %d", got.Intervals, got.PricedIntervals, len(tc.intervals), tc.priced)
			}
		})
	}
}

// TestLineFiguresDSTDays settles whole DST days: every interval of the day
// counts, 92 on spring-forward and 100 on fall-back.
func TestLineFiguresDSTDays(t *testing.T) {
	m := Market{Location: chicago(t), IntervalSeconds: 900}
	tests := []struct {
		day                      Day
		prices                   func(i int) string
		mwh                      string // in every interval
		intervals, priced        int
		energy, unpriced, amount string
	}{
		// 100 × 0.25 MWh at hour h's price h: 0.25 × 4 × (0+1+…+24) = 300
		{Day{2026, 11, 1}, func(i int) string { return decimal.NewFromInt(int64(i / 4)).String() },
			"0.25", 100, 100, "25.000000", "0.000000", "300.00"},
		// 92 intervals, interval 40 unpriced: 91 × 0.1 × -1.5 = -13.65
		{Day{2026, 3, 8}, func(i int) string {
			if i == 40 {
				return ""
			}
			return "-1.5"
		}, "0.1", 92, 91, "9.200000", "0.100000", "-13.65"},
		{Day{2026, 6, 15}, func(int) string { return "20" }, "0.01", 96, 96, "0.960000", "0.000000", "19.20"},
	}
	for _, tc := range tests {
		t.Run(tc.day.String(), func(t *testing.T) {
			var ivs []Interval
			for i, s := range m.Intervals(tc.day) {
				ivs = append(ivs, Interval{Start: s, MWh: dec(tc.mwh), Price: price(tc.prices(i))})
			}
			got := LineFiguresOf(ivs)
			if got.Intervals != tc.intervals || got.PricedIntervals != tc.priced {
				t.Fatalf("intervals %d priced %d, want %d and %d", got.Intervals, got.PricedIntervals, tc.intervals, tc.priced)
			}
			if e, u, a := got.EnergyMWh.StringFixedBank(6), got.UnpricedEnergyMWh.StringFixedBank(6), got.Amount.StringFixedBank(2); e != tc.energy || u != tc.unpriced || a != tc.amount {
				t.Fatalf("energy %s unpriced %s amount %s, want %s %s %s", e, u, a, tc.energy, tc.unpriced, tc.amount)
			}
		})
	}
}

func TestChargeFigures(t *testing.T) {
	for _, tc := range []struct {
		imp, exp, cost               string
		wantImp, wantExp, net, wantC string
	}{
		{"31.2040004", "4.1000005", "1.225", "31.204000", "4.100000", "27.104000", "1.22"},
		{"31.2040005", "4.1000015", "-1.235", "31.204000", "4.100002", "27.103998", "-1.24"},
		// net is import − export after each is rounded
		{"0.0000005", "0.0000015", "0", "0.000000", "0.000002", "-0.000002", "0.00"},
		{"0", "12.5", "-0.375", "0.000000", "12.500000", "-12.500000", "-0.38"},
	} {
		got := ChargeFiguresOf(dec(tc.imp), dec(tc.exp), decimal.Zero, dec(tc.cost))
		if got.ImportKWh.StringFixedBank(6) != tc.wantImp || got.ExportKWh.StringFixedBank(6) != tc.wantExp ||
			got.NetKWh.StringFixedBank(6) != tc.net || got.EnergyCost.StringFixedBank(2) != tc.wantC {
			t.Errorf("ChargeFiguresOf(%s, %s, %s) = %s %s %s %s, want %s %s %s %s", tc.imp, tc.exp, tc.cost,
				got.ImportKWh, got.ExportKWh, got.NetKWh, got.EnergyCost, tc.wantImp, tc.wantExp, tc.net, tc.wantC)
		}
	}
}

func TestStatementLineJSON(t *testing.T) {
	prev := 1
	run := RunRef{
		RunID: RunID(Day{2026, 11, 1}, Final, 2), Day: Day{2026, 11, 1}, Type: Final, Version: 2,
		PreviousVersion: &prev, Currency: "USD", ComputedAt: time.Date(2026, 12, 27, 6, 0, 0, 0, time.UTC),
	}
	fig := LineFigures{EnergyMWh: dec("1234.56789"), UnpricedEnergyMWh: dec("0"), Amount: dec("45678.9"), Intervals: 100, PricedIntervals: 100}
	line := run.Line("RETAILER-A", "HB_NORTH", fig, ReadCounts{Actual: 9600}, dec("1230"), dec("45500"))
	got, err := json.Marshal(line.Message())
	if err != nil {
		t.Fatal(err)
	}
	// the example of meters/README.md, field for field
	want := `{"statement_id":"HB_NORTH/RETAILER-A/2026-11-01/2","participant_id":"RETAILER-A","settlement_point":"HB_NORTH",` +
		`"operating_day":"2026-11-01","run_type":"final","version":2,"previous_version":1,"currency":"USD",` +
		`"energy_mwh":"1234.567890","amount":"45678.90","unpriced_energy_mwh":"0.000000","previous_energy_mwh":"1230.000000",` +
		`"previous_amount":"45500.00","delta_energy_mwh":"4.567890","delta_amount":"178.90","intervals":100,"priced_intervals":100,"estimated_energy_mwh":"0.000000",` +
		`"reads":{"actual":9600,"estimated":0,"substituted":0,"gridsettle_estimated":{"LIN":0,"LDY":0,"ZER":0}},"run_id":"run-2026-11-01-final-2","computed_at":"2026-12-27T06:00:00Z"}`
	if string(got) != want {
		t.Fatalf("statement line\n got %s\nwant %s", got, want)
	}

	first := RunRef{RunID: RunID(Day{2026, 11, 1}, Initial, 1), Day: Day{2026, 11, 1}, Type: Initial, Version: 1, Currency: "USD"}
	v1, err := json.Marshal(first.Line("P", "S", fig, ReadCounts{}, decimal.Zero, decimal.Zero).Message())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(v1, &m); err != nil {
		t.Fatal(err)
	}
	if m["previous_version"] != nil || m["previous_amount"] != "0.00" || m["previous_energy_mwh"] != "0.000000" || m["delta_amount"] != "45678.90" {
		t.Fatalf("version 1 line %s", v1)
	}
}

func TestAccountChargeJSON(t *testing.T) {
	run := RunRef{RunID: "run-2026-11-01-final-2", Day: Day{2026, 11, 1}, Type: Final, Version: 2, Currency: "USD"}
	c := run.Charge("ACC-0042", "RETAILER-A", ChargeFiguresOf(dec("31.204"), dec("4.1"), decimal.Zero, dec("1.234")), dec("1.2"))
	got, err := json.Marshal(c.Message())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"charge_id":"ACC-0042/RETAILER-A/2026-11-01/2","account_id":"ACC-0042","participant_id":"RETAILER-A",` +
		`"operating_day":"2026-11-01","run_type":"final","version":2,"import_kwh":"31.204000","export_kwh":"4.100000",` +
		`"net_kwh":"27.104000","estimated_kwh":"0.000000","energy_cost":"1.23","previous_energy_cost":"1.20","delta_energy_cost":"0.03","currency":"USD"}`
	if string(got) != want {
		t.Fatalf("account charge\n got %s\nwant %s", got, want)
	}
}

func TestScheduleAndDue(t *testing.T) {
	m := Market{Location: chicago(t), IntervalSeconds: 900}
	s := DefaultSchedule()
	if len(s) != 3 || s[0].Type != Initial || s[1].Type != Final || s[2].Type != TrueUp {
		t.Fatalf("default schedule %+v", s)
	}
	utc := func(y int, mo time.Month, d, h int) time.Time { return time.Date(y, mo, d, h, 0, 0, 0, time.UTC) }
	tests := []struct {
		day  Day
		lag  string
		want time.Time
	}{
		// fall-back day ends 2026-11-02 00:00 CST = 06:00Z; five local days later is again midnight CST
		{Day{2026, 11, 1}, "P5D", utc(2026, 11, 7, 6)},
		// a lag crossing spring-forward: 00:00 CST on 03-04 to 00:00 CDT on 03-09, 119 hours
		{Day{2026, 3, 3}, "P5D", utc(2026, 3, 9, 5)},
		{Day{2026, 3, 7}, "PT36H", utc(2026, 3, 9, 18)},
		{Day{2026, 11, 1}, "P55D", utc(2026, 12, 27, 6)},
		{Day{2026, 11, 1}, "P1W", utc(2026, 11, 9, 6)},
	}
	for _, tc := range tests {
		lag, err := ParseLag(tc.lag)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.DueAt(tc.day, lag); !got.Equal(tc.want) {
			t.Errorf("%s + %s due %s, want %s", tc.day, tc.lag, got, tc.want)
		}
	}
	for _, bad := range []string{"", "P", "5D", "PT", "P1.5D", "initial=P5D", "-P5D"} {
		if _, err := ParseLag(bad); err == nil {
			t.Errorf("ParseLag(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"initial", "initial=P5D,initial=P6D", "resettlement=P1D", "weekly=P7D", "final=5"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", bad)
		}
	}
}

//go:build linux

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/oracle"
)

func ptr[T any](v T) *T { return &v }

// oracleReadChange is a read change as the oracle gives it: a corrected
// read replacing an estimate.
func oracleReadChange() oracle.Change {
	return oracle.Change{Kind: oracle.KindRead, SettlementInterval: time.Date(2026, 11, 1, 14, 0, 0, 0, time.UTC),
		MeterID: "MTR-000003", Channel: "import", Start: time.Date(2026, 11, 1, 14, 0, 0, 0, time.UTC),
		Before: &oracle.ReadSide{Value: decimal.RequireFromString("0.412"), LossFactor: decimal.RequireFromString("1.0125"),
			Estimate: ptr("LIN")},
		After: &oracle.ReadSide{Value: decimal.RequireFromString("0.498"), LossFactor: decimal.RequireFromString("1.0125"),
			Version: ptr(int64(2)), Quality: ptr("A"),
			Position: &oracle.Position{Topic: "ami.interval-reads", Partition: 3, Offset: 5810}},
		EnergyMWhEffect: decimal.RequireFromString("0.000087075"), AmountEffect: decimal.RequireFromString("0.0031347")}
}

func TestChangeText(t *testing.T) {
	read := oracleChange(oracleReadChange(), "HB_NORTH")
	want := "read 2026-11-01T14:00:00Z MTR-000003 import 2026-11-01T14:00:00Z" +
		" before {value 0.412000 lf 1.012500 vnull q null est LIN src null}" +
		" after {value 0.498000 lf 1.012500 v2 q A est null src ami.interval-reads/3@5810}" +
		" energy 0.000087075000000000 amount 0.003134700000000000000000"
	if got := changeText(read); got != want {
		t.Errorf("read change:\n got  %s\n want %s", got, want)
	}
	price := oracleChange(oracle.Change{Kind: oracle.KindPrice, SettlementInterval: time.Date(2026, 11, 1, 16, 0, 0, 0, time.UTC),
		PriceAfter: ptr(decimal.RequireFromString("171")), EnergyMWhEffect: decimal.Zero,
		AmountEffect: decimal.RequireFromString("0.014321")}, "HB_NORTH")
	want = "price 2026-11-01T16:00:00Z HB_NORTH before null after 171.000000 energy 0.000000000000000000" +
		" amount 0.014321000000000000000000"
	if got := changeText(price); got != want {
		t.Errorf("price change:\n got  %s\n want %s", got, want)
	}

	// Every field of a change shows: changing any one changes the text.
	side := func(f func(s *settlement.ReadState)) func(c *settlement.Change) {
		return func(c *settlement.Change) { s := *c.After; f(&s); c.After = &s }
	}
	for name, mutate := range map[string]func(c *settlement.Change){
		"kind":            func(c *settlement.Change) { c.Kind = "other" },
		"interval":        func(c *settlement.Change) { c.SettlementInterval = c.SettlementInterval.Add(time.Hour) },
		"meter":           func(c *settlement.Change) { c.MeterID = "MTR-000004" },
		"channel":         func(c *settlement.Change) { c.Channel = "export" },
		"start":           func(c *settlement.Change) { c.Start = c.Start.Add(-time.Hour) },
		"before absent":   func(c *settlement.Change) { c.Before = nil },
		"value":           side(func(s *settlement.ReadState) { s.Value = s.Value.Add(decimal.New(1, -6)) }),
		"loss factor":     side(func(s *settlement.ReadState) { s.LossFactor = decimal.RequireFromString("1.0126") }),
		"version":         side(func(s *settlement.ReadState) { s.Version = ptr(int64(3)) }),
		"quality":         side(func(s *settlement.ReadState) { s.Quality = ptr("E") }),
		"estimate":        side(func(s *settlement.ReadState) { s.Estimate = ptr("LDY") }),
		"topic":           side(func(s *settlement.ReadState) { s.Topic = ptr("other") }),
		"partition":       side(func(s *settlement.ReadState) { s.Partition = ptr(int32(4)) }),
		"offset":          side(func(s *settlement.ReadState) { s.Offset = ptr(int64(5811)) }),
		"energy effect":   func(c *settlement.Change) { c.EnergyMWhEffect = c.EnergyMWhEffect.Add(decimal.New(1, -18)) },
		"amount effect":   func(c *settlement.Change) { c.AmountEffect = c.AmountEffect.Add(decimal.New(1, -24)) },
		"more places":     func(c *settlement.Change) { c.AmountEffect = c.AmountEffect.Add(decimal.New(1, -25)) },
		"price point":     func(c *settlement.Change) { c.Kind, c.SettlementPoint = settlement.ChangePrice, "HB_SOUTH" },
		"price before":    func(c *settlement.Change) { c.Kind, c.PriceBefore = settlement.ChangePrice, price.PriceAfter },
		"price after nil": func(c *settlement.Change) { c.Kind, c.PriceAfter = settlement.ChangePrice, decimal.NullDecimal{} },
	} {
		base := read
		if strings.HasPrefix(name, "price") {
			base = price
		}
		c := base
		mutate(&c)
		if changeText(c) == changeText(base) {
			t.Errorf("%s: the text does not change: %s", name, changeText(c))
		}
	}
	// Decimal equality, not representation, is what compares.
	same := read
	same.EnergyMWhEffect = decimal.RequireFromString("0.0000870750")
	if changeText(same) != changeText(read) {
		t.Errorf("0.0000870750 and 0.000087075 differ: %s", changeText(same))
	}
}

func TestChangeDiffs(t *testing.T) {
	a := []string{"x", "y", "z"}
	if d := changeDiffs(a, a, 3); d != "" {
		t.Errorf("equal lists: %q", d)
	}
	d := changeDiffs([]string{"x", "Y", "z"}, []string{"x", "y", "z", "w"}, 3)
	if !strings.Contains(d, "change 1:\n      engine Y\n      oracle y") || !strings.Contains(d, "change 3:\n      engine (none)\n      oracle w") ||
		strings.Contains(d, "change 0") {
		t.Errorf("diffs:%s", d)
	}
	if d := changeDiffs([]string{"1", "2", "3"}, []string{"a", "b", "c"}, 2); strings.Count(d, "change ") != 2 || !strings.HasSuffix(d, "…") {
		t.Errorf("bounded diffs:%s", d)
	}
}

func TestExplanationSums(t *testing.T) {
	dec := decimal.RequireFromString
	ok := func() *settlement.Explanation {
		return &settlement.Explanation{DeltaAmount: dec("0.07"), ExactDeltaEnergyMWh: dec("0.002"), ExactDeltaAmount: dec("0.0712345"),
			Rounding: dec("-0.0012345"), Changes: []settlement.Change{
				{Kind: settlement.ChangeRead, EnergyMWhEffect: dec("0.002"), AmountEffect: dec("0.0572345")},
				{Kind: settlement.ChangePrice, EnergyMWhEffect: decimal.Zero, AmountEffect: dec("0.014")}}}
	}
	line := oracle.Line{StatementID: "HB_NORTH/RETAILER-A/2026-11-01/2", Amount: "10.07"}
	prev := oracle.Line{StatementID: "HB_NORTH/RETAILER-A/2026-11-01/1", Amount: "10.00"}
	if got := explanationSums(ok(), line, prev); len(got) != 0 {
		t.Errorf("consistent explanation: %v", got)
	}
	// A line new in this version is explained against zero.
	fresh := ok()
	fresh.DeltaAmount, fresh.Rounding = dec("10.07"), dec("9.9987655")
	if got := explanationSums(fresh, line, oracle.Line{}); len(got) != 0 {
		t.Errorf("line against nothing: %v", got)
	}
	for name, mutate := range map[string]func(e *settlement.Explanation){
		"energy effects": func(e *settlement.Explanation) { e.Changes[0].EnergyMWhEffect = dec("0.0021") },
		"amount effects": func(e *settlement.Explanation) { e.Changes[1].AmountEffect = dec("0.0141") },
		"rounding":       func(e *settlement.Explanation) { e.Rounding = dec("-0.0012") },
		"delta amount":   func(e *settlement.Explanation) { e.DeltaAmount, e.Rounding = dec("0.08"), dec("0.0087655") },
	} {
		e := ok()
		mutate(e)
		if got := explanationSums(e, line, prev); len(got) != 1 {
			t.Errorf("%s: %v, want one problem", name, got)
		}
	}
}

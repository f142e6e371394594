package simulate_test

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gridsettle/gridsettle/settlement/simulate"
)

// TestScenarioHasEveryFeature checks, through the oracle, that a default
// scenario holds everything the chaos suite needs of the workload
// (settlement/README.md "Exactly-once", "What proves it"), and the gaps of
// every kind estimation needs (settlement/README.md "Which intervals are
// missing").
func TestScenarioHasEveryFeature(t *testing.T) {
	sc := generate(t, simulate.Config{Seed: 3, Meters: 80})
	w := newWorld(t, sc, 4, time.Time{})
	final := w.ingest(t, nil)

	t.Run("registry", func(t *testing.T) {
		if len(sc.SettlementPoints) < 3 {
			t.Errorf("%d settlement points", len(sc.SettlementPoints))
		}
		perMeter := map[string][]string{}
		lossOther, closed := 0, 0
		for _, a := range sc.Assignments {
			perMeter[a.MeterID] = append(perMeter[a.MeterID], a.ParticipantID+"/"+a.AccountID)
			if a.LossFactor.String() != "1" {
				lossOther++
			}
			if a.EffectiveTo != nil {
				closed++
			}
		}
		switches := 0
		for _, ps := range perMeter {
			if len(ps) == 2 && ps[0] != ps[1] && strings.Split(ps[0], "/")[1] == strings.Split(ps[1], "/")[1] {
				switches++
			}
		}
		if switches == 0 || lossOther == 0 || closed < 2 {
			t.Errorf("retailer switches %d, loss factors other than 1: %d, closed assignments %d", switches, lossOther, closed)
		}
		var thr, budget, prices int
		for _, a := range sc.Accounts {
			if a.DailyKWhThreshold != nil {
				thr++
			}
			if a.MonthlyBudget != nil {
				budget++
			}
			if a.PriceAlerts {
				prices++
			}
		}
		if thr == 0 || budget == 0 || prices == 0 {
			t.Errorf("accounts with thresholds %d, budgets %d, price alerts %d", thr, budget, prices)
		}
	})

	t.Run("reads", func(t *testing.T) {
		lengths, quality, channels := map[int64]bool{}, map[string]bool{}, map[string]bool{}
		corrected := 0
		for _, r := range final.Reads {
			lengths[r.IntervalSeconds] = true
			quality[r.Quality] = true
			channels[r.Channel] = true
			if r.Version > 1 {
				corrected++
			}
		}
		if len(lengths) != 4 || len(quality) != 3 || len(channels) != 2 || corrected == 0 {
			t.Errorf("lengths %v, quality %v, channels %v, corrected reads %d", lengths, quality, channels, corrected)
		}
		c := final.Counts
		if c.ReadsStale == 0 || c.ReadsDuplicate == 0 || c.PricesStale == 0 || c.PricesDuplicate == 0 {
			t.Errorf("counts %+v: want stale and duplicate reads and prices", c)
		}
	})

	t.Run("prices", func(t *testing.T) {
		rtLength := map[string]map[int64]bool{}
		var da, negative, spike, corrected int
		for _, p := range final.Prices {
			if p.Market == "DA" {
				da++
				continue
			}
			if rtLength[p.SettlementPoint] == nil {
				rtLength[p.SettlementPoint] = map[int64]bool{}
			}
			rtLength[p.SettlementPoint][p.IntervalSeconds] = true
			if p.Price.Sign() < 0 {
				negative++
			}
			if p.Price.GreaterThanOrEqual(sc.Config.Market.PriceSpikeThreshold) {
				spike++
			}
			if p.Version > 1 {
				corrected++
			}
		}
		all := map[int64]bool{}
		for point, ls := range rtLength {
			if len(ls) != 1 {
				t.Errorf("%s has real-time prices of lengths %v", point, ls)
			}
			for l := range ls {
				all[l] = true
			}
		}
		if len(all) != 3 || da == 0 || negative == 0 || spike == 0 || corrected == 0 {
			t.Errorf("RT lengths %v, DA %d, negative %d, spikes %d, corrected %d", all, da, negative, spike, corrected)
		}
	})

	t.Run("wire", func(t *testing.T) {
		numValues := regexp.MustCompile(`"values":\[[0-9]`)
		numPrice := regexp.MustCompile(`"price":-?[0-9]`)
		var nv, np bool
		for _, r := range sc.Records {
			nv = nv || (r.Reason == "" && numValues.Match(r.Value))
			np = np || (r.Reason == "" && numPrice.Match(r.Value))
		}
		if !nv || !np {
			t.Errorf("JSON numbers: values %v, prices %v", nv, np)
		}
		for _, r := range sc.Late {
			if r.Reason != "" || !bytes.HasPrefix(r.Value, []byte("{")) {
				t.Errorf("late record %s is not a good record", r.Value)
			}
		}
	})

	t.Run("statements", func(t *testing.T) {
		days := final.Days() // with those of the like-day history before them
		if len(days) < 2 || !slices.Equal(days[len(days)-2:], []string{"2026-10-31", "2026-11-01"}) {
			t.Fatalf("days %v", days)
		}
		st, err := final.Statement("2026-11-01", "initial", 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		unpriced, negative := 0, 0
		for _, l := range st.Lines {
			if l.Intervals != 100 {
				t.Errorf("%s: %d intervals on the fall-back day", l.StatementID, l.Intervals)
			}
			if l.PricedIntervals < l.Intervals {
				unpriced++
			}
			if strings.HasPrefix(l.EnergyMWh, "-") {
				negative++
			}
		}
		if unpriced == 0 || negative == 0 {
			t.Errorf("lines with unpriced intervals %d, with net export %d", unpriced, negative)
		}
	})

	t.Run("gaps", func(t *testing.T) {
		checkGaps(t, sc, w.ingest(t, w.mainOnly), final)
	})

	t.Run("restatement", func(t *testing.T) {
		initial := w.ingest(t, w.mainOnly)
		for _, day := range []string{"2026-10-31", "2026-11-01"} {
			v1, err := initial.Statement(day, "initial", 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			v2, err := final.Statement(day, "final", 2, v1)
			if err != nil {
				t.Fatal(err)
			}
			moved := 0
			for _, l := range v2.Lines {
				if l.DeltaAmount != "0.00" {
					moved++
				}
			}
			if moved == 0 {
				t.Errorf("%s: the late part moves no statement line", day)
			}
		}
	})

	t.Run("alerts", func(t *testing.T) {
		must := map[string]int{}
		for id, a := range final.Alerts {
			if a.Must {
				must[a.Type]++
			} else if a.Type != "missing_data" {
				// Only an outage's backfill may depend on batching.
				t.Errorf("%s fires or not depending on batching", id)
			}
		}
		for _, typ := range []string{"daily_usage", "monthly_budget", "price_spike", "negative_price", "missing_data"} {
			if must[typ] == 0 {
				t.Errorf("no %s alert that must fire (%v)", typ, must)
			}
		}
		if a, ok := final.Alerts["missing_data/MTR-000002/2026-11-01T12:00:00Z"]; !ok || !a.Must {
			t.Errorf("the silent meter's missing_data alert: %+v", a)
		}
	})
}

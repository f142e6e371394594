package simulate_test

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/oracle"
	"github.com/gridsettle/gridsettle/settlement/simulate"
)

// seenGap is a maximal run of a channel's missing intervals in the days of
// a scenario, as the first run sees it (main stream only). It says which
// method of settlement/README.md "Estimation of missing reads (VEE)" applies,
// not the estimates: those are the oracle's.
type seenGap struct {
	meter, channel string
	length         int64
	from, to       int64 // unix seconds, [from, to)
	before, after  bool  // a read right before and right after, under an assignment
	likeDay        bool  // some missing interval has a read 1 to 4 weeks earlier
	filledLate     bool  // some missing interval is read in the late part
	participants   map[string]bool
	commissioned   int64 // start of the first assignment of the meter
	toTheEnd       bool  // the gap reaches the end of the last day
}

func (g seenGap) linear() bool { return (g.to-g.from) <= 3600 && g.before && g.after }

func (g seenGap) String() string {
	return fmt.Sprintf("%s/%s len %d %s..%s", g.meter, g.channel, g.length,
		time.Unix(g.from, 0).UTC().Format(time.RFC3339), time.Unix(g.to, 0).UTC().Format(time.RFC3339))
}

// gapsOf finds the gaps of every channel the first run knows, from the
// reads of main (the main stream) and final (with the late part).
func gapsOf(sc *simulate.Scenario, main, final *oracle.State) []seenGap {
	m := sc.Config.Market
	start, _ := m.Bounds(sc.Config.StartDay)
	_, end := m.Bounds(sc.Config.StartDay.AddDays(sc.Config.Days - 1))
	lengths := map[[2]string]int64{}
	for k, r := range main.Reads {
		lengths[[2]string{k.MeterID, k.Channel}] = r.IntervalSeconds
	}
	asg := map[string][]meters.Assignment{}
	for _, a := range sc.Assignments {
		asg[a.MeterID] = append(asg[a.MeterID], a)
	}
	covering := func(meter string, t int64) (string, bool) {
		for _, a := range asg[meter] {
			if a.EffectiveFrom.Unix() <= t && (a.EffectiveTo == nil || t < a.EffectiveTo.Unix()) {
				return a.ParticipantID, true
			}
		}
		return "", false
	}
	channels := slices.Collect(maps.Keys(lengths))
	slices.SortFunc(channels, func(a, b [2]string) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	var out []seenGap
	for _, ch := range channels {
		l := lengths[ch]
		has := func(s *oracle.State, t int64) bool {
			_, ok := s.Reads[oracle.ReadKey{MeterID: ch[0], Channel: ch[1], Start: t}]
			return ok
		}
		missing := func(t int64) bool {
			_, covered := covering(ch[0], t)
			return covered && !has(main, t)
		}
		// Channel intervals of the days: those with a piece in them.
		for t := start.Unix() / l * l; t < end.Unix(); t += l {
			if !missing(t) || t > start.Unix() && missing(t-l) {
				continue // not missing, or inside a gap found already
			}
			g := seenGap{meter: ch[0], channel: ch[1], length: l, from: t, participants: map[string]bool{},
				commissioned: asg[ch[0]][0].EffectiveFrom.Unix()}
			u := t
			// Past the days, an hour more tells whether the gap is short.
			for ; missing(u) && u < end.Unix()+3600; u += l {
				if u >= end.Unix() {
					continue
				}
				p, _ := covering(ch[0], u)
				g.participants[p] = true
				g.filledLate = g.filledLate || has(final, u)
				for k := int64(1); k <= 4; k++ {
					g.likeDay = g.likeDay || has(main, u-k*7*24*3600)
				}
			}
			g.to, g.toTheEnd = u, u >= end.Unix()
			_, cb := covering(ch[0], t-l)
			_, ca := covering(ch[0], u)
			g.before, g.after = cb && has(main, t-l), ca && has(main, u)
			out = append(out, g)
		}
	}
	return out
}

// dstChange is the instant the market's UTC offset changes inside the
// scenario's days, or 0.
func dstChange(sc *simulate.Scenario) int64 {
	m := sc.Config.Market
	start, _ := m.Bounds(sc.Config.StartDay)
	_, end := m.Bounds(sc.Config.StartDay.AddDays(sc.Config.Days - 1))
	_, off := start.In(m.Location).Zone()
	for t := start.Unix(); t < end.Unix(); t += 300 {
		if _, o := time.Unix(t, 0).In(m.Location).Zone(); o != off {
			return t
		}
	}
	return 0
}

// checkGaps: the scenario has a gap of every kind settlement/README.md
// "Estimation of missing reads (VEE)" tells apart, on the channels, days and
// instants where estimates are hard. The scenario must have two days or more
// and cross a DST change.
func checkGaps(t *testing.T, sc *simulate.Scenario, main, final *oracle.State) []seenGap {
	t.Helper()
	gaps := gapsOf(sc, main, final)
	midnight, _ := sc.Config.Market.Bounds(sc.Config.StartDay.AddDays(1))
	dst := dstChange(sc)
	across := func(g seenGap, t int64) bool { return g.from < t && t < g.to }
	kinds := []struct {
		name string
		is   func(seenGap) bool
	}{
		{"LIN", seenGap.linear},
		{"LIN filled in the late part", func(g seenGap) bool { return g.linear() && g.filledLate }},
		{"LIN left estimated", func(g seenGap) bool { return g.linear() && !g.filledLate }},
		{"LDY (several hours, like-day history)", func(g seenGap) bool { return !g.linear() && g.likeDay && g.to-g.from >= 4*3600 }},
		{"LDY filled in the late part", func(g seenGap) bool { return !g.linear() && g.likeDay && g.filledLate }},
		{"ZER", func(g seenGap) bool { return !g.linear() && !g.likeDay }},
		{"ZER of a meter commissioned less than a week before, silent to the end", func(g seenGap) bool {
			return !g.linear() && !g.likeDay && g.toTheEnd && g.from-g.commissioned < 7*24*3600
		}},
		{"5-minute channel", func(g seenGap) bool { return g.length == 300 }},
		{"60-minute channel", func(g seenGap) bool { return g.length == 3600 }},
		{"across midnight", func(g seenGap) bool { return across(g, midnight.Unix()) }},
		{"LIN across midnight", func(g seenGap) bool { return g.linear() && across(g, midnight.Unix()) }},
		{"across the DST change", func(g seenGap) bool { return dst != 0 && across(g, dst) }},
		{"LIN across the DST change", func(g seenGap) bool { return dst != 0 && g.linear() && across(g, dst) }},
		{"across a retailer switch", func(g seenGap) bool { return len(g.participants) > 1 }},
		{"on an export channel", func(g seenGap) bool { return g.channel == string(meters.Export) }},
	}
	for _, k := range kinds {
		if !slices.ContainsFunc(gaps, k.is) {
			t.Errorf("no gap %s among %d gaps", k.name, len(gaps))
		}
	}
	return gaps
}

// adelaideSpringForward is a 23-hour day in a market with a half-hour
// offset.
var adelaideSpringForward = settlement.Day{Year: 2026, Month: time.October, Day: 4}

// TestHalfHourOffsetMarket generates a scenario in Australia/Adelaide
// (UTC+9:30, then +10:30 from the spring-forward day) and checks that the
// oracle accepts every good record, that days have their intervals, and
// that the gaps include a 60-minute read straddling local midnight, which
// the runs of both days estimate.
func TestHalfHourOffsetMarket(t *testing.T) {
	loc, err := time.LoadLocation("Australia/Adelaide")
	if err != nil {
		t.Fatal(err)
	}
	cfg := simulate.Config{Seed: 11, Meters: 40, StartDay: adelaideSpringForward.AddDays(-1)}
	cfg.Market.Location = loc
	sc := generate(t, cfg)
	w := newWorld(t, sc, 4, time.Time{})
	final := w.ingest(t, nil)
	for i, in := range w.log {
		q := final.Quarantine[oracle.Position{Topic: in.Topic, Partition: in.Partition, Offset: in.Offset}]
		if want := slices.Concat(sc.Records, sc.Late)[i].Reason; q.Reason != want {
			t.Errorf("%s quarantined as %q (%s), built for %q", in.Value, q.Reason, q.Detail, want)
		}
	}
	for i, want := range []int{96, 92} {
		day := cfg.StartDay.AddDays(i).String()
		st, err := final.Statement(day, "initial", 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Lines) == 0 || st.Lines[0].Intervals != want {
			t.Errorf("%s: %d lines, want %d intervals each", day, len(st.Lines), want)
		}
	}
	gaps := checkGaps(t, sc, w.ingest(t, w.mainOnly), final)
	midnight, _ := sc.Config.Market.Bounds(cfg.StartDay.AddDays(1))
	if midnight.Unix()%3600 == 0 {
		t.Fatalf("midnight %v is a whole UTC hour", midnight)
	}
	if !slices.ContainsFunc(gaps, func(g seenGap) bool {
		return g.length == 3600 && g.from < midnight.Unix() && midnight.Unix() < g.to
	}) {
		t.Error("no 60-minute gap straddles local midnight")
	}
}

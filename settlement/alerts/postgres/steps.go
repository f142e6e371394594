package postgres

import (
	"cmp"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	meterspg "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest"
)

// cell is one settlement interval at one settlement point.
type cell struct {
	point string
	start int64 // unix seconds of the settlement interval's start
}

// dayKey is an account's operating day (YYYY-MM-DD).
type dayKey struct {
	account, day string
}

// monthKey is an account's local calendar month (YYYY-MM).
type monthKey struct {
	account, month string
}

// energyKey is an account's settlement energy in one cell.
type energyKey struct {
	account string
	cell
}

// usage is import kWh with the non-actual reads behind it and the latest
// interval end.
type usage struct {
	kwh       decimal.Decimal
	estimated int
	lastEnd   time.Time
}

func (u *usage) add(v usage) {
	u.kwh = u.kwh.Add(v.kwh)
	u.estimated += v.estimated
	if v.lastEnd.After(u.lastEnd) {
		u.lastEnd = v.lastEnd
	}
}

// energy is settlement energy in MWh with the non-actual reads behind it.
type energy struct {
	mwh       decimal.Decimal
	estimated int
}

func (e *energy) add(v energy) {
	e.mwh = e.mwh.Add(v.mwh)
	e.estimated += v.estimated
}

// meterTouch is what a record says about a meter: the partition its reads
// arrive on and the latest end of its changed reads.
type meterTouch struct {
	slot int32
	end  time.Time
}

// step is one input record's effect on the alert aggregates: the unit of
// evaluation, so that what fires depends on the records and their order,
// never on how they were cut into batches.
type step struct {
	usage  map[dayKey]usage
	energy map[energyKey]energy
	meters map[string]meterTouch
	// end is the record's block end, by which the partition watermark
	// advances; hasEnd is false for replayed records (no watermark).
	end    time.Time
	hasEnd bool
}

// readSteps cuts a's read changes into records: one step per decodable
// record in offset order (Ends), with the changes it made; for replays (no
// Ends) one step per consecutive run of changes of one input record.
func (h *Hook) readSteps(a ingest.Applied) []step {
	rs := a.Reads
	take := func(match func(meterspg.Origin) bool) []meterspg.ReadChange {
		n := 0
		for n < len(rs) && match(rs[n].Origin) {
			n++
		}
		out := rs[:n]
		rs = rs[n:]
		return out
	}
	steps := make([]step, 0, len(a.Ends))
	for _, e := range a.Ends {
		s := h.stepOf(take(func(o meterspg.Origin) bool { return o.Offset <= e.Offset }))
		s.end, s.hasEnd = e.End, true
		steps = append(steps, s)
	}
	for len(rs) > 0 {
		o := rs[0].Origin
		steps = append(steps, h.stepOf(take(func(x meterspg.Origin) bool { return x == o })))
	}
	return steps
}

// stepOf is how changes move the aggregates: each changed read adds its
// value and takes away the one it replaced (under the same assignment, as
// positions do).
func (h *Hook) stepOf(changes []meterspg.ReadChange) step {
	s := step{usage: map[dayKey]usage{}, energy: map[energyKey]energy{}, meters: map[string]meterTouch{}}
	for _, c := range changes {
		r := c.Read
		end := r.Start.Add(time.Duration(r.IntervalSeconds) * time.Second)
		if t, ok := s.meters[r.MeterID]; !ok || end.After(t.end) {
			s.meters[r.MeterID] = meterTouch{slot: c.Origin.Partition, end: end}
		}
		h.addRead(&s, c.Assignment, r, false)
		if c.Previous != nil {
			h.addRead(&s, c.Assignment, *c.Previous, true)
		}
	}
	return s
}

// addRead adds (or, with remove, takes away) read r under assignment a:
// import kWh to the account's operating day of the read's start, and
// settlement energy (import positive, export negative, times the loss
// factor) to each settlement interval the read maps onto.
func (h *Hook) addRead(s *step, a *meters.Assignment, r meters.Read, remove bool) {
	bad := 0
	if r.Quality != meters.Actual {
		bad = 1
	}
	if remove {
		bad = -bad
	}
	if r.Channel == meters.Import {
		k := dayKey{a.AccountID, h.market.DayOf(r.Start).String()}
		u := s.usage[k]
		v := r.Value
		if remove {
			v = v.Neg()
		}
		u.add(usage{kwh: v, estimated: bad, lastEnd: r.Start.Add(time.Duration(r.IntervalSeconds) * time.Second)})
		s.usage[k] = u
	}
	neg := (r.Channel == meters.Export) != remove
	for _, sl := range meters.ToSettlementIntervals(r.Start, r.IntervalSeconds, r.Value, h.market.IntervalSeconds) {
		kwh := sl.KWh
		if neg {
			kwh = kwh.Neg()
		}
		k := energyKey{a.AccountID, cell{a.SettlementPoint, sl.Start.Unix()}}
		e := s.energy[k]
		e.add(energy{mwh: settlement.MWh(kwh, a.LossFactor), estimated: bad})
		s.energy[k] = e
	}
}

// sortedKeys returns m's keys in the order cmp gives.
func sortedKeys[K comparable, V any](m map[K]V, c func(a, b K) int) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, c)
	return out
}

func cmpDay(a, b dayKey) int {
	return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.day, b.day))
}

func cmpMonth(a, b monthKey) int {
	return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.month, b.month))
}

func cmpEnergy(a, b energyKey) int {
	return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.start, b.start), cmp.Compare(a.point, b.point))
}

// monthOf is the local calendar month (YYYY-MM) holding the instant t.
func (h *Hook) monthOf(t time.Time) string {
	d := h.market.DayOf(t)
	return d.String()[:7]
}

// monthBounds is the month's [start, end) as UTC instants: local midnight
// of its first day to local midnight of the next month's first day.
func (h *Hook) monthBounds(month string) (time.Time, time.Time, error) {
	t, err := time.Parse("2006-01", month)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	start, _ := h.market.Bounds(settlement.Day{Year: t.Year(), Month: t.Month(), Day: 1})
	next := t.AddDate(0, 1, 0)
	end, _ := h.market.Bounds(settlement.Day{Year: next.Year(), Month: next.Month(), Day: 1})
	return start, end, nil
}

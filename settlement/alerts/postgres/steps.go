package postgres

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
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

// energyKey is an account's settlement energy in one cell under one loss
// factor.
type energyKey struct {
	account string
	cell
	lossMicro int64 // the loss factor × 10^6 (the registry keeps at most 6 decimal places)
}

// usage is import in exact integer micro-kWh (a read has at most 6
// decimal places) with the non-actual reads behind it and the latest
// interval end.
type usage struct {
	micro     int64
	estimated int
	lastEnd   time.Time
}

// kwh is the figure in kWh, without trailing zeros (as the reads were
// written: 1.5, not 1.500000).
func (u usage) kwh() decimal.Decimal { return readstore.KWh(u.micro) }

// addInt64 is a + b, and false when the sum leaves int64. Figures summed
// as integers cannot reach it from real meters (a read is at most 10^6 kWh,
// 10^15 nano-kWh), but a batch of thousands of such reads of one account in
// one interval could: the batch then fails and is applied in parts (see
// settlement/ingest), never with a wrapped sum.
func addInt64(a, b int64) (int64, bool) {
	s := a + b
	return s, (b > 0) == (s > a) || b == 0
}

// add adds v; false when the figure leaves an int64 (addInt64).
func (u *usage) add(v usage) bool {
	m, ok := addInt64(u.micro, v.micro)
	u.micro = m
	u.estimated += v.estimated
	if v.lastEnd.After(u.lastEnd) {
		u.lastEnd = v.lastEnd
	}
	return ok
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

// flow is net import before the loss factor, in exact integer nano-kWh,
// with the non-actual reads behind it: what a batch moves, summed without
// decimal arithmetic.
type flow struct {
	nano      int64
	estimated int
}

func (f *flow) add(v flow) bool {
	n, ok := addInt64(f.nano, v.nano)
	f.nano, f.estimated = n, f.estimated+v.estimated
	return ok
}

// mwhOf is the settlement energy of nano nano-kWh at loss factor lf
// (settlement.MWh, the one rule), exact.
func mwhOf(nano int64, lf decimal.Decimal) decimal.Decimal {
	return settlement.MWh(decimal.New(nano, -9), lf)
}

// scaled is d × 10^places as an integer; ok is false when that is not an
// integer or does not fit an int64. Reads have at most 6 decimal places
// (9 once split over shorter settlement intervals) and loss factors 6, so
// scaled never fails on what the registry and the decoder admit.
func scaled(d decimal.Decimal, places int32) (int64, bool) {
	exp := d.Exponent() + places
	if n := d.NumDigits(); n > 19 || n == 19 && !d.Coefficient().IsInt64() {
		return 0, false
	}
	v := d.CoefficientInt64()
	for ; exp < 0; exp++ {
		if v%10 != 0 {
			return 0, false
		}
		v /= 10
	}
	for ; exp > 0; exp-- {
		if v > math.MaxInt64/10 || v < math.MinInt64/10 {
			return 0, false
		}
		v *= 10
	}
	return v, true
}

// meterTouch is what a record says about a meter: the partition its reads
// arrive on and the latest end of its changed reads.
type meterTouch struct {
	slot int32
	end  time.Time
}

type usageDelta struct {
	key dayKey
	usage
}

type energyDelta struct {
	key energyKey
	flow
}

type meterDelta struct {
	id string
	meterTouch
}

// step is one input record's effect on the alert aggregates: the unit of
// evaluation, so that what fires depends on the records and their order,
// never on how they were cut into batches. A key may appear more than once;
// only the step's sum means something.
type step struct {
	usage  []usageDelta
	energy []energyDelta
	meters []meterDelta
	// end is the record's block end, by which the partition watermark
	// advances; hasEnd is false for replayed records (no watermark).
	end    time.Time
	hasEnd bool
}

// calendar caches the operating day of instants, which the reads of a batch
// share; one per AfterApply call.
type calendar struct {
	market settlement.Market
	days   map[int64]string
}

func (h *Hook) calendar() *calendar {
	return &calendar{market: h.market, days: map[int64]string{}}
}

// day is the operating day (YYYY-MM-DD) holding t.
func (c *calendar) day(t time.Time) string {
	k := t.Unix()
	d, ok := c.days[k]
	if !ok {
		d = c.market.DayOf(t).String()
		c.days[k] = d
	}
	return d
}

// month is the local calendar month (YYYY-MM) holding t.
func (c *calendar) month(t time.Time) string { return c.day(t)[:7] }

// readSteps cuts a's read changes into records: one step per decodable
// record in offset order (Ends), with the changes it made; for replays (no
// Ends) one step per consecutive run of changes of one input record. Each
// changed read adds its value and takes away the one it replaced (under the
// same assignment, as positions do). Only the deltas a setting in watching
// needs are made: daily usage for accounts with a threshold, energy for
// accounts with a budget.
func (h *Hook) readSteps(a ingest.Applied, cal *calendar, watching map[string]limits) ([]step, error) {
	// Sized for the common batch (one new read per change, a record's
	// usage in one or two operating days): growing these from empty copied
	// them over and over (the ingest profile).
	n := len(a.Reads)
	b := stepBuilder{usage: make([]usageDelta, 0, 2*len(a.Ends)), energy: make([]energyDelta, 0, n),
		meters: make([]meterDelta, 0, len(a.Ends)), cuts: make([]stepCut, 0, len(a.Ends)+1), watching: watching,
		cal: cal, L: int64(h.market.IntervalSeconds)}
	rs := a.Reads
	// take adds the changes of whole records, in order, while match holds
	// for their origin.
	take := func(match func(readstore.Origin) bool) error {
		for len(rs) > 0 && match(rs[0].Record.Origin) {
			j := 1
			for j < len(rs) && rs[j].Record == rs[0].Record {
				j++
			}
			if err := b.record(rs[:j]); err != nil {
				return err
			}
			rs = rs[j:]
		}
		return nil
	}
	for _, e := range a.Ends {
		if err := take(func(o readstore.Origin) bool { return o.Offset <= e.Offset }); err != nil {
			return nil, err
		}
		b.cut(e.End, true)
	}
	for len(rs) > 0 {
		o := rs[0].Record.Origin
		if err := take(func(x readstore.Origin) bool { return x == o }); err != nil {
			return nil, err
		}
		b.cut(time.Time{}, false)
	}
	return b.steps(), nil
}

// stepBuilder collects the deltas of every step in shared slices, each step
// a window of them.
type stepBuilder struct {
	usage    []usageDelta
	energy   []energyDelta
	meters   []meterDelta
	cuts     []stepCut
	watching map[string]limits // the settings of the accounts deltas are made for
	cal      *calendar
	L        int64 // the settlement interval, seconds
}

type stepCut struct {
	usage, energy, meters int // ends in the shared slices
	end                   time.Time
	hasEnd                bool
}

// from is where the current step's deltas begin.
func (b *stepBuilder) from() stepCut {
	if len(b.cuts) == 0 {
		return stepCut{}
	}
	return b.cuts[len(b.cuts)-1]
}

func (b *stepBuilder) cut(end time.Time, hasEnd bool) {
	b.cuts = append(b.cuts, stepCut{len(b.usage), len(b.energy), len(b.meters), end, hasEnd})
}

func (b *stepBuilder) steps() []step {
	out := make([]step, len(b.cuts))
	var from stepCut
	for i, c := range b.cuts {
		out[i] = step{usage: b.usage[from.usage:c.usage], energy: b.energy[from.energy:c.energy],
			meters: b.meters[from.meters:c.meters], end: c.end, hasEnd: c.hasEnd}
		from = c
	}
	return out
}

// record adds cs, the changes of one record (in the record's order), to the
// current step. Its settings are looked up once per assignment, not per
// read, and values stay integers of micro-kWh as the read store keeps
// them.
func (b *stepBuilder) record(cs []readstore.ReadChange) error {
	r := cs[0].Record
	blk := &r.Block
	secs := int64(blk.IntervalSeconds)
	// A record's reads are consecutive changes of one meter: one touch with
	// the latest end, its last change's, stands for them all (missing.go
	// eachMeterRun), merged into the step's previous touch of the meter.
	t := meterTouch{slot: r.Origin.Partition, end: time.Unix(cs[len(cs)-1].Start()+secs, 0).UTC()}
	if n := len(b.meters); n > b.from().meters && b.meters[n-1].id == blk.MeterID && b.meters[n-1].slot == t.slot {
		if t.end.After(b.meters[n-1].end) {
			b.meters[n-1].end = t.end
		}
	} else {
		b.meters = append(b.meters, meterDelta{blk.MeterID, t})
	}
	var a *meters.Assignment
	var l limits
	var lf int64
	for i := range cs {
		c := &cs[i]
		if c.Assignment != a {
			a = c.Assignment
			var err error
			if l, lf, err = b.settings(a); err != nil {
				return err
			}
		}
		if !l.daily.Valid && !l.budget.Valid {
			continue
		}
		start := c.Start()
		b.read(a, l, lf, blk.Channel, start, secs, c.Micro(), c.Quality(), false)
		if c.Old.Version > 0 {
			b.read(a, l, lf, blk.Channel, start, secs, c.Old.Micro, c.Old.Quality, true)
		}
	}
	return nil
}

// add adds one read of ch under a, outside any record (a rebuild from the
// stored reads, scope.go).
func (b *stepBuilder) add(a *meters.Assignment, ch meters.Channel, start, secs, micro int64, q meters.Quality) error {
	l, lf, err := b.settings(a)
	if err == nil && (l.daily.Valid || l.budget.Valid) {
		b.read(a, l, lf, ch, start, secs, micro, q, false)
	}
	return err
}

// settings are the limits of a's account and, when it has a budget, a's
// loss factor in millionths.
func (b *stepBuilder) settings(a *meters.Assignment) (limits, int64, error) {
	l := b.watching[a.AccountID]
	if !l.budget.Valid {
		return l, 0, nil
	}
	lf, ok := scaled(a.LossFactor, 6)
	if !ok {
		return l, 0, fmt.Errorf("alerts: loss factor %s of meter %s has more than 6 decimal places", a.LossFactor, a.MeterID)
	}
	return l, lf, nil
}

// read adds (or, with remove, takes away) the read of ch starting at start
// (unix seconds), secs long, of micro micro-kWh and quality q under
// assignment a, whose settings are l and loss factor lf millionths: import kWh to the account's
// operating day of the read's start if it has a threshold, and settlement
// energy (import positive, export negative, times the loss factor) to each
// settlement interval the read maps onto if it has a budget.
func (b *stepBuilder) read(a *meters.Assignment, l limits, lf int64, ch meters.Channel, start, secs, micro int64,
	q meters.Quality, remove bool) {
	bad := 0
	if q != meters.Actual {
		bad = 1
	}
	if remove {
		bad, micro = -bad, -micro
	}
	if ch == meters.Import && l.daily.Valid {
		t := time.Unix(start, 0).UTC()
		b.addUsage(dayKey{a.AccountID, b.cal.day(t)}, usage{micro: micro, estimated: bad, lastEnd: t.Add(time.Duration(secs) * time.Second)})
	}
	if !l.budget.Valid {
		return
	}
	if ch == meters.Export {
		micro = -micro
	}
	if secs <= b.L {
		// The whole read lands in one settlement interval: no split, and
		// nano-kWh are the micro-kWh × 1000.
		b.addEnergy(energyKey{a.AccountID, cell{a.SettlementPoint, meters.Floor(start, b.L)}, lf}, flow{nano: micro * 1000, estimated: bad})
		return
	}
	n := secs / b.L
	nano := micro * 1000
	neg := nano < 0
	if neg {
		nano = -nano
	}
	piece, last := meters.SplitNano(nano, n)
	for i := range n {
		p := piece
		if i == n-1 {
			p = last
		}
		if neg {
			p = -p
		}
		b.addEnergy(energyKey{a.AccountID, cell{a.SettlementPoint, start + i*b.L}, lf}, flow{nano: p, estimated: bad})
	}
}

// addUsage adds u to the current step's delta of k: a record's reads of
// one operating day make one delta, not one per read (only the step's sum
// means something). A sum that would leave an int64 starts a delta of its
// own, left for the books and totals to refuse.
func (b *stepBuilder) addUsage(k dayKey, u usage) {
	if n := len(b.usage); n > b.from().usage && b.usage[n-1].key == k {
		if s := b.usage[n-1].usage; s.add(u) {
			b.usage[n-1].usage = s
			return
		}
	}
	b.usage = append(b.usage, usageDelta{k, u})
}

// addEnergy adds f to the current step's delta of k when it is the step's
// latest (reads shorter than the settlement interval share one), else
// appends it.
func (b *stepBuilder) addEnergy(k energyKey, f flow) {
	if n := len(b.energy); n > b.from().energy && b.energy[n-1].key == k {
		if s := b.energy[n-1].flow; s.add(f) {
			b.energy[n-1].flow = s
			return
		}
	}
	b.energy = append(b.energy, energyDelta{k, f})
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

package oracle

import (
	"time"

	"github.com/shopspring/decimal"
)

// Alert is one alert identity of settlement/alerts/README.md that may be
// published.
//
// Alerts fire when a figure FIRST reaches its level while input is
// consumed, so which identities fire can depend on how far each partition
// had been applied when the figure was evaluated. The oracle evaluates after
// every record (the finest granularity: a record is applied whole) and
// takes partitions as advancing independently:
//   - an identity in State.Alerts may fire: its condition holds in some
//     state the consumer can pass through (per record, any interleaving of
//     partitions); an identity not in the map must never be published;
//   - Must is true when the condition holds in the final state, which every
//     consumer reaches and evaluates: the identity must be published.
type Alert struct {
	ID        string
	Type      string // daily_usage, monthly_budget, price_spike, negative_price, missing_data
	AccountID string // empty for missing_data
	MeterID   string // missing_data only
	Must      bool
}

// span is a figure with its current value and the extremes it took after
// any record (starting from zero: nothing consumed yet).
type span struct{ cur, min, max decimal.Decimal }

func (v *span) settle() {
	v.min = decimal.Min(v.min, v.cur)
	v.max = decimal.Max(v.max, v.cur)
}

type usageKey struct {
	tp      TopicPartition
	account string
	day     string
}

type energyKey struct {
	meter string
	asg   int   // index into Registry.Meters[meter]
	t     int64 // settlement interval
}

type pointT struct {
	point string
	t     int64
}

// priceSpan is a settlement price over time: extremes (zero standing for
// "unpriced", which contributes no amount) and whether it ever was a spike
// or negative.
type priceSpan struct {
	span
	priced         bool
	spike, negativ bool
}

type partTrack struct {
	w       int64 // watermark: latest end of an accepted record of the partition
	lastEnd map[string]int64
}

// tracker follows the figures the alerts depend on, record by record.
type tracker struct {
	s       *State
	usage   map[usageKey]*span  // import kWh per partition, account, day
	energy  map[energyKey]*span // net kWh per meter assignment and interval
	prices  map[pointT]*priceSpan
	parts   map[TopicPartition]*partTrack
	touched []*span
	missing map[string]Alert // may-fire missing_data identities
}

func newTracker(s *State) *tracker {
	return &tracker{s: s, usage: map[usageKey]*span{}, energy: map[energyKey]*span{},
		prices: map[pointT]*priceSpan{}, parts: map[TopicPartition]*partTrack{}, missing: map[string]Alert{}}
}

// readChanged follows one read of the record being applied from old (nil:
// none) to new.
func (k *tracker) readChanged(tp TopicPartition, old, new *Read) {
	s := k.s
	start := new.Start.Unix()
	asg := s.o.reg.assignment(new.MeterID, start)
	account := s.o.reg.Meters[new.MeterID][asg].AccountID
	add := func(r *Read, sign int64) {
		for _, p := range s.o.split(start, r.IntervalSeconds, r.Value) {
			kwh := p.kWh.Mul(decimal.NewFromInt(sign))
			net := kwh
			if r.Channel == "export" {
				net = net.Neg()
			} else {
				u := get(k, k.usage, usageKey{tp, account, s.day(p.t)})
				u.cur = u.cur.Add(kwh)
			}
			e := get(k, k.energy, energyKey{new.MeterID, asg, p.t})
			e.cur = e.cur.Add(net)
		}
	}
	if old != nil {
		add(old, -1)
	}
	add(new, 1)
}

// get is the span of key in m, created at zero, marked as touched by the
// record being applied.
func get[K comparable](k *tracker, m map[K]*span, key K) *span {
	v, ok := m[key]
	if !ok {
		v = &span{}
		m[key] = v
	}
	k.touched = append(k.touched, v)
	return v
}

// readRecordDone ends an accepted reads record: the figures it changed
// take their new extremes, the meter's last read end moves, and the
// partition sees the record's end.
func (k *tracker) readRecordDone(tp TopicPartition, meter string, end int64) {
	for _, v := range k.touched {
		v.settle()
	}
	k.touched = k.touched[:0]
	p := k.part(tp)
	if end > p.lastEnd[meter] {
		p.lastEnd[meter] = end
	}
	if !k.seen(tp, end) {
		k.checkMissing(p, meter)
	}
}

// seen moves the partition's watermark to the end of an accepted reads
// record (a quarantined one never moves it) and, when it moved, evaluates
// missing_data for every meter of the partition; it reports whether it
// moved.
func (k *tracker) seen(tp TopicPartition, end int64) bool {
	p := k.part(tp)
	if end <= p.w {
		return false
	}
	p.w = end
	for m := range p.lastEnd {
		k.checkMissing(p, m)
	}
	return true
}

func (k *tracker) part(tp TopicPartition) *partTrack {
	p := k.parts[tp]
	if p == nil {
		p = &partTrack{lastEnd: map[string]int64{}}
		k.parts[tp] = p
	}
	return p
}

func (k *tracker) checkMissing(p *partTrack, meter string) {
	if id, ok := k.missingAt(p, meter); ok {
		k.missing[id] = Alert{ID: id, Type: "missing_data", MeterID: meter}
	}
}

// missingAt is the missing_data identity of meter on p if its condition
// holds now.
func (k *tracker) missingAt(p *partTrack, meter string) (string, bool) {
	last := p.lastEnd[meter]
	if p.w-last < int64(k.s.o.m.MissingDataAfter/time.Second) || k.s.o.reg.assignment(meter, p.w) < 0 {
		return "", false
	}
	return "missing_data/" + meter + "/" + time.Unix(last, 0).UTC().Format(time.RFC3339), true
}

// priceChanged re-evaluates the settlement prices an RT price of point at
// start touches.
func (k *tracker) priceChanged(point string, start, length int64) {
	L := k.s.o.m.IntervalSeconds
	from, to := floorTo(start, L), start+length
	for t := from; t < to; t += L {
		ps := k.prices[pointT{point, t}]
		if ps == nil {
			ps = &priceSpan{}
			k.prices[pointT{point, t}] = ps
		}
		p, ok := k.s.settlementPrice(point, t)
		if !ok {
			continue
		}
		ps.cur, ps.priced = p, true
		ps.settle()
		ps.spike = ps.spike || p.GreaterThanOrEqual(k.s.o.m.PriceSpikeThreshold)
		ps.negativ = ps.negativ || p.Sign() < 0
	}
}

// alerts are the may-fire identities with Must set from the final state.
func (k *tracker) alerts() map[string]Alert {
	out := map[string]Alert{}
	add := func(a Alert, must bool) {
		a.Must = must || out[a.ID].Must
		out[a.ID] = a
	}
	k.usageAlerts(add)
	k.budgetAlerts(add)
	k.priceAlerts(add)
	for _, a := range k.missing {
		add(a, false)
	}
	for _, p := range k.parts {
		for m := range p.lastEnd {
			if id, ok := k.missingAt(p, m); ok {
				add(Alert{ID: id, Type: "missing_data", MeterID: m}, true)
			}
		}
	}
	return out
}

func (k *tracker) usageAlerts(add func(Alert, bool)) {
	type ad struct{ account, day string }
	final, most := map[ad]decimal.Decimal{}, map[ad]decimal.Decimal{}
	for key, v := range k.usage {
		a := ad{key.account, key.day}
		final[a] = final[a].Add(v.cur)
		most[a] = most[a].Add(v.max)
	}
	for a, m := range most {
		thr := k.s.o.reg.Accounts[a.account].DailyKWhThreshold
		if thr != nil && m.GreaterThanOrEqual(*thr) {
			add(Alert{ID: "daily_usage/" + a.account + "/" + a.day, Type: "daily_usage", AccountID: a.account},
				final[a].GreaterThanOrEqual(*thr))
		}
	}
}

// budgetAlerts bound the month-to-date cost from above by taking, for every
// meter interval, the largest product of the energy and the price it ever
// had (each may be at either extreme when the other partition is
// evaluated).
func (k *tracker) budgetAlerts(add func(Alert, bool)) {
	type am struct{ account, month string }
	final, most := map[am]decimal.Decimal{}, map[am]decimal.Decimal{}
	zero := &priceSpan{}
	for key, e := range k.energy {
		a := k.s.o.reg.Meters[key.meter][key.asg]
		ps := k.prices[pointT{a.SettlementPoint, key.t}]
		if ps == nil {
			ps = zero
		}
		scale := a.LossFactor.Shift(-3)
		m := am{a.AccountID, k.s.day(key.t)[:7]}
		if ps.priced {
			final[m] = final[m].Add(e.cur.Mul(scale).Mul(ps.cur))
		}
		best := decimal.Max(e.min.Mul(ps.min), e.min.Mul(ps.max), e.max.Mul(ps.min), e.max.Mul(ps.max))
		most[m] = most[m].Add(best.Mul(scale))
	}
	for m, v := range most {
		b := k.s.o.reg.Accounts[m.account].MonthlyBudget
		if b != nil && v.GreaterThanOrEqual(*b) {
			add(Alert{ID: "monthly_budget/" + m.account + "/" + m.month, Type: "monthly_budget", AccountID: m.account},
				final[m].GreaterThanOrEqual(*b))
		}
	}
}

func (k *tracker) priceAlerts(add func(Alert, bool)) {
	type flags struct{ maySpike, mustSpike, mayNeg, mustNeg bool }
	type pd struct{ point, day string }
	byDay := map[pd]*flags{}
	for key, ps := range k.prices {
		if !ps.spike && !ps.negativ {
			continue
		}
		d := pd{key.point, k.s.day(key.t)}
		f := byDay[d]
		if f == nil {
			f = &flags{}
			byDay[d] = f
		}
		f.maySpike = f.maySpike || ps.spike
		f.mayNeg = f.mayNeg || ps.negativ
		f.mustSpike = f.mustSpike || ps.cur.GreaterThanOrEqual(k.s.o.m.PriceSpikeThreshold)
		f.mustNeg = f.mustNeg || ps.cur.Sign() < 0
	}
	loc := k.s.o.m.Location
	for d, f := range byDay {
		day, _ := time.ParseInLocation(time.DateOnly, d.day, loc)
		from, to := day.Unix(), day.AddDate(0, 0, 1).Unix()
		for account, as := range k.s.o.byAccount {
			if !k.s.o.reg.Accounts[account].PriceAlerts {
				continue
			}
			for _, a := range as {
				if a.SettlementPoint != d.point || !a.overlaps(from, to) {
					continue
				}
				if f.maySpike {
					add(Alert{ID: "price_spike/" + account + "/" + d.day, Type: "price_spike", AccountID: account}, f.mustSpike)
				}
				if f.mayNeg {
					add(Alert{ID: "negative_price/" + account + "/" + d.day, Type: "negative_price", AccountID: account}, f.mustNeg)
				}
			}
		}
	}
}

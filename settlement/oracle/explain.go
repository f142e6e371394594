package oracle

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Change kinds of an Explanation.
const (
	KindRead  = "read"
	KindPrice = "price"
)

// Explanation is settlement/README.md "Explain a statement line", exact: what
// differs between two versions of one line and what each difference cost.
type Explanation struct {
	// Σ over the day's intervals of E1 − E0 and E1·P1 − E0·P0 (an
	// unpriced interval's price counts as 0).
	ExactDeltaEnergyMWh decimal.Decimal
	ExactDeltaAmount    decimal.Decimal
	// Changes are ordered by settlement interval, then kind (price first),
	// meter, channel, start.
	Changes []Change
}

// Change is one read change or one price change of an Explanation.
type Change struct {
	Kind               string // KindRead or KindPrice
	SettlementInterval time.Time
	// A read change: the read key and how the read contributed to the
	// interval in each version (nil: it did not).
	MeterID, Channel string
	Start            time.Time
	Before, After    *ReadSide
	// A price change: the settlement price in each version (nil: unpriced,
	// or no run).
	PriceBefore, PriceAfter *decimal.Decimal
	EnergyMWhEffect         decimal.Decimal
	AmountEffect            decimal.Decimal
}

// ReadSide is how one current read, or one estimate of the run, contributed
// to a settlement interval of the line in one version.
type ReadSide struct {
	Value      decimal.Decimal // the whole read's (estimate's) kWh, not its piece
	LossFactor decimal.Decimal
	Version    *int64    // nil for an estimate
	Quality    *string   // nil for an estimate
	Position   *Position // nil for an estimate
	Estimate   *string   // the estimate's method; nil for a read
}

// equal reports whether two sides show the same thing: values and loss
// factors by decimal equality (0.1 = 0.100), the rest exactly.
func (a *ReadSide) equal(b *ReadSide) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Value.Equal(b.Value) && a.LossFactor.Equal(b.LossFactor) && samePtr(a.Version, b.Version) &&
		samePtr(a.Quality, b.Quality) && samePtr(a.Position, b.Position) && samePtr(a.Estimate, b.Estimate)
}

func samePtr[T comparable](a, b *T) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// pieceKey is one read key in one settlement interval.
type pieceKey struct {
	meter, channel string
	start, t       int64
}

// contribution is one read's piece in one settlement interval of the line.
type contribution struct {
	side *ReadSide
	mwh  decimal.Decimal
}

// version is what one run says of the line: its read pieces, and per
// settlement interval its energy and price.
type version struct {
	pieces map[pieceKey]contribution
	energy map[int64]decimal.Decimal
	price  map[int64]*decimal.Decimal
}

// Explain is the explanation of the statement line (participant, point) of
// operating day day in the run whose inputs are after, against the run
// whose inputs are before (nil: version 0, "nothing"). Each State comes
// from Oracle.Ingest with that run's snapshot, and from an oracle whose
// registry is the one that run used.
func Explain(before, after *State, day, participant, point string) (*Explanation, error) {
	if after == nil {
		return nil, errors.New("oracle explain: no run to explain")
	}
	m := after.o.m
	if before != nil && (before.o.m.IntervalSeconds != m.IntervalSeconds || before.o.m.Location.String() != m.Location.String()) {
		return nil, errors.New("oracle explain: the two runs have different settlement intervals or time zones")
	}
	d, err := time.ParseInLocation(time.DateOnly, day, m.Location)
	if err != nil {
		return nil, fmt.Errorf("oracle explain: operating day %q: %w", day, err)
	}
	from, to := d.Unix(), d.AddDate(0, 0, 1).Unix()
	L := m.IntervalSeconds
	var ts []int64
	for t := floorTo(from+L-1, L); t < to; t += L {
		ts = append(ts, t)
	}
	v0 := &version{pieces: map[pieceKey]contribution{}, energy: map[int64]decimal.Decimal{}, price: map[int64]*decimal.Decimal{}}
	if before != nil {
		if v0, err = before.lineVersion(day, participant, point, from, to, ts); err != nil {
			return nil, err
		}
	}
	v1, err := after.lineVersion(day, participant, point, from, to, ts)
	if err != nil {
		return nil, err
	}

	keys := map[pieceKey]bool{}
	for k := range v0.pieces {
		keys[k] = true
	}
	for k := range v1.pieces {
		keys[k] = true
	}
	ex := &Explanation{ExactDeltaEnergyMWh: decimal.Zero, ExactDeltaAmount: decimal.Zero}
	readEffect := map[int64]decimal.Decimal{}
	for k := range keys {
		c0, c1 := v0.pieces[k], v1.pieces[k]
		if c0.side.equal(c1.side) {
			continue
		}
		effect := c1.mwh.Sub(c0.mwh)
		readEffect[k.t] = readEffect[k.t].Add(effect)
		ex.Changes = append(ex.Changes, Change{Kind: KindRead, SettlementInterval: time.Unix(k.t, 0).UTC(),
			MeterID: k.meter, Channel: k.channel, Start: time.Unix(k.start, 0).UTC(), Before: c0.side, After: c1.side,
			EnergyMWhEffect: effect, AmountEffect: effect.Mul(priceOrZero(v1.price[k.t]))})
	}
	for _, t := range ts {
		e0, e1 := v0.energy[t], v1.energy[t]
		p0, p1 := priceOrZero(v0.price[t]), priceOrZero(v1.price[t])
		ex.ExactDeltaEnergyMWh = ex.ExactDeltaEnergyMWh.Add(e1.Sub(e0))
		ex.ExactDeltaAmount = ex.ExactDeltaAmount.Add(e1.Mul(p1).Sub(e0.Mul(p0)))
		// A read whose side is unchanged contributes the same piece to both
		// versions, so the listed read changes alone make up E1 − E0.
		if got := readEffect[t]; !got.Equal(e1.Sub(e0)) {
			return nil, fmt.Errorf("oracle explain: %s: read effects %s, but E1 − E0 = %s",
				time.Unix(t, 0).UTC().Format(time.RFC3339), got, e1.Sub(e0))
		}
		if !samePrice(v0.price[t], v1.price[t]) {
			ex.Changes = append(ex.Changes, Change{Kind: KindPrice, SettlementInterval: time.Unix(t, 0).UTC(),
				PriceBefore: v0.price[t], PriceAfter: v1.price[t],
				EnergyMWhEffect: decimal.Zero, AmountEffect: e0.Mul(p1.Sub(p0))})
		}
	}
	energy, amount := decimal.Zero, decimal.Zero
	for _, c := range ex.Changes {
		energy, amount = energy.Add(c.EnergyMWhEffect), amount.Add(c.AmountEffect)
	}
	if !energy.Equal(ex.ExactDeltaEnergyMWh) || !amount.Equal(ex.ExactDeltaAmount) {
		return nil, fmt.Errorf("oracle explain: effects sum to %s MWh and %s, the exact deltas are %s MWh and %s",
			energy, amount, ex.ExactDeltaEnergyMWh, ex.ExactDeltaAmount)
	}
	kind := map[string]int{KindPrice: 0, KindRead: 1}
	slices.SortFunc(ex.Changes, func(a, b Change) int {
		return cmp.Or(a.SettlementInterval.Compare(b.SettlementInterval), cmp.Compare(kind[a.Kind], kind[b.Kind]),
			strings.Compare(a.MeterID, b.MeterID), strings.Compare(a.Channel, b.Channel), a.Start.Compare(b.Start))
	})
	return ex, nil
}

// lineVersion maps s's current reads and the run's estimates of the day
// onto the line (participant, point) as settlement does, and cross-checks
// the interval energies and amounts with the oracle's own statement.
func (s *State) lineVersion(day, participant, point string, from, to int64, ts []int64) (*version, error) {
	st, err := s.dayStatement(day)
	if err != nil {
		return nil, fmt.Errorf("oracle explain: %w", err)
	}
	v := &version{pieces: map[pieceKey]contribution{}, energy: map[int64]decimal.Decimal{}, price: map[int64]*decimal.Decimal{}}
	type source struct {
		meter, channel string
		start, length  int64
		side           ReadSide
	}
	var sources []source
	for _, r := range s.Reads {
		ver, quality, pos := r.Version, r.Quality, r.Position
		sources = append(sources, source{r.MeterID, r.Channel, r.Start.Unix(), r.IntervalSeconds,
			ReadSide{Value: r.Value, Version: &ver, Quality: &quality, Position: &pos}})
	}
	for _, e := range st.Estimates {
		method := e.Method
		sources = append(sources, source{e.MeterID, e.Channel, e.Start.Unix(), e.IntervalSeconds,
			ReadSide{Value: e.ValueKWh, Estimate: &method}})
	}
	for _, src := range sources {
		i := s.o.reg.assignment(src.meter, src.start)
		if i < 0 {
			continue
		}
		a := s.o.reg.Meters[src.meter][i]
		if a.ParticipantID != participant || a.SettlementPoint != point {
			continue
		}
		side := src.side
		side.LossFactor = a.LossFactor
		for _, p := range s.o.split(src.start, src.length, side.Value) {
			if p.t < from || p.t >= to {
				continue
			}
			mwh := p.kWh.Mul(a.LossFactor).Shift(-3) // exact, as settlement; Div would round
			if src.channel == "export" {
				mwh = mwh.Neg()
			}
			k := pieceKey{src.meter, src.channel, src.start, p.t}
			if _, dup := v.pieces[k]; dup {
				return nil, fmt.Errorf("oracle explain: %s %s at %d has two pieces in one interval", src.meter, src.channel, src.start)
			}
			v.pieces[k] = contribution{&side, mwh}
			v.energy[p.t] = v.energy[p.t].Add(mwh)
		}
	}
	figures := map[int64]IntervalFigure{}
	for _, f := range st.Intervals {
		if f.ParticipantID == participant && f.SettlementPoint == point {
			figures[f.Start.Unix()] = f
		}
	}
	// Any piece, zero ones included, gives the line a figure in every
	// interval of the day.
	if len(figures) == 0 && len(v.pieces) > 0 {
		return nil, fmt.Errorf("oracle explain: %d read pieces of %s/%s but the statement has no such line",
			len(v.pieces), point, participant)
	}
	for _, t := range ts {
		if p, ok := s.settlementPrice(point, t); ok {
			v.price[t] = &p
		}
		e := v.energy[t]
		f, ok := figures[t]
		if !ok {
			continue // no line, and so no pieces: checked above
		}
		if !f.EnergyMWh.Equal(e) || !samePrice(f.Price, v.price[t]) ||
			(f.Amount != nil && !f.Amount.Equal(e.Mul(*f.Price))) {
			return nil, fmt.Errorf("oracle explain: %s: mapped energy %s at price %v, the statement's interval figure is %s at %v",
				time.Unix(t, 0).UTC().Format(time.RFC3339), e, v.price[t], f.EnergyMWh, f.Price)
		}
	}
	return v, nil
}

// dayStatement is the statement of day over s that Explain maps lines with
// and cross-checks against, computed once per day: every line of the day
// explained with s shares it (a statement is the whole day's work).
func (s *State) dayStatement(day string) (*Statement, error) {
	if st, ok := s.explained[day]; ok {
		return st, nil
	}
	st, err := s.Statement(day, "explain", 1, nil)
	if err != nil {
		return nil, err
	}
	if s.explained == nil {
		s.explained = map[string]*Statement{}
	}
	s.explained[day] = st
	return st, nil
}

// samePrice compares two settlement prices, nil being unpriced.
func samePrice(a, b *decimal.Decimal) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func priceOrZero(p *decimal.Decimal) decimal.Decimal {
	if p == nil {
		return decimal.Zero
	}
	return *p
}

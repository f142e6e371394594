package settlement

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
)

// priceScale is where a mean of shorter prices is rounded (settlement/README.md
// "Prices").
const priceScale = 6

// Prices are the current real-time prices of one settlement point. Ingest
// fixes one price interval length per (market, point), so a series has one
// length; Add refuses a price of another.
type Prices struct {
	seconds int
	byStart map[int64]decimal.Decimal // unix seconds of the price interval start
}

// Add records the price of the interval [start, start+seconds).
func (p *Prices) Add(start time.Time, seconds int, price decimal.Decimal) error {
	if seconds <= 0 {
		return fmt.Errorf("price at %s: interval length %d", start.UTC().Format(time.RFC3339), seconds)
	}
	if p.byStart == nil {
		p.seconds = seconds
		p.byStart = map[int64]decimal.Decimal{}
	}
	if seconds != p.seconds {
		return fmt.Errorf("price at %s has interval length %d s, the series has %d s",
			start.UTC().Format(time.RFC3339), seconds, p.seconds)
	}
	p.byStart[start.Unix()] = price
	return nil
}

// At is the settlement price of the settlement interval [t, t+L), L in
// seconds; invalid when the interval is unpriced:
//   - prices of length L: the price of t;
//   - shorter prices: the mean of the L/len prices inside t, rounded
//     half-even to 6 places; unpriced if any of them is missing;
//   - longer prices: the price of the price interval that contains t.
func (p *Prices) At(L int, t time.Time) decimal.NullDecimal {
	none := decimal.NullDecimal{}
	if p == nil || p.byStart == nil {
		return none
	}
	s := t.Unix()
	switch {
	case p.seconds == L:
		v, ok := p.byStart[s]
		return decimal.NullDecimal{Decimal: v, Valid: ok}
	case p.seconds < L:
		n := L / p.seconds
		sum := decimal.Zero
		for k := range n {
			v, ok := p.byStart[s+int64(k*p.seconds)]
			if !ok {
				return none
			}
			sum = sum.Add(v)
		}
		return decimal.NullDecimal{Decimal: meters.DivRoundBank(sum, int64(n), priceScale), Valid: true}
	default:
		l := int64(p.seconds)
		v, ok := p.byStart[meters.Floor(s, l)]
		return decimal.NullDecimal{Decimal: v, Valid: ok}
	}
}

// DayPrices is the settlement price of each settlement interval of d, in
// the order of m.Intervals(d); an invalid entry is an unpriced interval.
func (m Market) DayPrices(d Day, p *Prices) []decimal.NullDecimal {
	iv := m.Intervals(d)
	out := make([]decimal.NullDecimal, len(iv))
	for i, t := range iv {
		out[i] = p.At(m.IntervalSeconds, t)
	}
	return out
}

package meters

import (
	"time"

	"github.com/shopspring/decimal"
)

// Slice is the part of one read that falls in one settlement interval.
type Slice struct {
	Start time.Time       // the settlement interval's start
	KWh   decimal.Decimal // the read's energy in that interval
}

// splitScale is where an uneven split of a long read is rounded
// (settlement/README.md "From reads to settlement intervals", step 2).
const splitScale = 9

// ToSettlementIntervals maps a read of lenSeconds starting at start onto
// settlement intervals of settlementSeconds:
//   - equal lengths: one slice with the whole value;
//   - a shorter read: one slice, the settlement interval containing it;
//   - a longer read: value × L / len to each contained interval, each piece
//     rounded half-even to 9 places and the last taking the remainder, so the
//     pieces always sum to the value. Values have at most 6 decimals, so an
//     even split (len/L of 2 or 4) is exact and the rounding never bites.
func ToSettlementIntervals(start time.Time, lenSeconds int, value decimal.Decimal, settlementSeconds int) []Slice {
	L := int64(settlementSeconds)
	if lenSeconds <= settlementSeconds {
		s := start.Unix()
		return []Slice{{Start: time.Unix(Floor(s, L), 0).UTC(), KWh: value}}
	}
	n := lenSeconds / settlementSeconds
	piece := DivRoundBank(value, int64(n), splitScale)
	out := make([]Slice, n)
	rest := value
	for i := range n {
		out[i].Start = start.Add(time.Duration(i*settlementSeconds) * time.Second).UTC()
		if i == n-1 {
			out[i].KWh = rest
			break
		}
		out[i].KWh = piece
		rest = rest.Sub(piece)
	}
	return out
}

// SplitNano is ToSettlementIntervals' split of a long read on integers of
// nano-kWh, its split scale: of nano ≥ 0 over n pieces, every piece but
// the last is nano / n rounded half-even, and the last the remainder. A
// read of at most 6 decimal places is a whole number of nano-kWh, so the
// pieces are exactly the decimal split's. The runs' kernel
// (settlement/postgres/energy.go) and the alert steps
// (settlement/alerts/postgres/steps.go) split with it.
func SplitNano(nano, n int64) (piece, last int64) {
	q, r := nano/n, nano%n
	if 2*r > n || 2*r == n && q%2 == 1 {
		q++
	}
	return q, nano - (n-1)*q
}

// Floor is the start of the interval of seconds length, counted from the
// unix epoch, that holds unix second t: the settlement interval of a read
// no longer than it, or (seconds 86400) the UTC day. It is the one rounding
// of an instant down to an interval; any unit works (unix microseconds
// with a length in microseconds), and t may be before the epoch.
func Floor(t, seconds int64) int64 { return t - floorMod(t, seconds) }

// Ceil is the first start of an interval of seconds length, counted from
// the unix epoch, at or after unix second t: Floor's mirror.
func Ceil(t, seconds int64) int64 { return -Floor(-t, seconds) }

func floorMod(a, m int64) int64 {
	r := a % m
	if r < 0 {
		r += m
	}
	return r
}

// DivRoundBank is v / n rounded half-even to scale places, computed exactly
// (no package-global division precision is involved).
func DivRoundBank(v decimal.Decimal, n int64, scale int32) decimal.Decimal {
	d := decimal.NewFromInt(n)
	q, r := v.QuoRem(d, scale) // v = q*n + r, q truncated toward zero at scale
	if r.IsZero() {
		return q
	}
	// Compare |r| with half a unit of the last place times n.
	unit := decimal.New(1, -scale)
	twice := r.Abs().Mul(decimal.NewFromInt(2))
	half := unit.Mul(d.Abs())
	c := twice.Cmp(half)
	step := unit
	if v.Sign()*d.Sign() < 0 {
		step = step.Neg()
	}
	if c > 0 || (c == 0 && !q.Shift(scale).Mod(decimal.NewFromInt(2)).IsZero()) {
		return q.Add(step)
	}
	return q
}

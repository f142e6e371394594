package exact

import (
	"encoding/binary"
	"math"
	"math/bits"

	"github.com/shopspring/decimal"
)

// NumericDecimal decodes a numeric in Postgres's binary form into the
// decimal pgx's binary numeric plan (which migrations registers) gives —
// the same value with the same exponent — with integer arithmetic instead
// of big.Int, when the coefficient fits an int64. ok is false for anything
// else (NaN, infinities, longer coefficients, malformed input): pgx then
// decodes it, or says what is wrong.
func NumericDecimal(b []byte) (d decimal.Decimal, ok bool) {
	if len(b) < 8 {
		return d, false
	}
	ndigits := int(binary.BigEndian.Uint16(b))
	weight := int(int16(binary.BigEndian.Uint16(b[2:])))
	sign := binary.BigEndian.Uint16(b[4:])
	dscale := int(int16(binary.BigEndian.Uint16(b[6:])))
	if sign != 0 && sign != 0x4000 || len(b) != 8+2*ndigits {
		return d, false
	}
	if ndigits == 0 {
		return decimal.New(0, 0), true // pgx: zero with exponent 0, whatever the scale
	}
	// The digits are base 10,000, most significant first.
	var v uint64
	for i := range ndigits {
		hi, lo := bits.Mul64(v, 10_000)
		lo, carry := bits.Add64(lo, uint64(binary.BigEndian.Uint16(b[8+2*i:])), 0)
		if hi != 0 || carry != 0 {
			return d, false
		}
		v = lo
	}
	exp := (weight - ndigits + 1) * 4
	// As pgx: the exponent is the display scale's, with the coefficient
	// scaled (or truncated) to it.
	if dscale > 0 {
		switch frac := (ndigits - weight - 1) * 4; {
		case dscale > frac:
			for range dscale - frac {
				hi, lo := bits.Mul64(v, 10)
				if hi != 0 {
					return d, false
				}
				v = lo
			}
			exp -= dscale - frac
		case dscale < frac:
			for range frac - dscale {
				v /= 10
			}
			exp += frac - dscale
		}
	}
	// As pgx: an integer loses its trailing zeros to the exponent.
	for exp >= 0 && v != 0 && v%10 == 0 {
		v /= 10
		exp++
	}
	if v > math.MaxInt64 {
		return d, false
	}
	c := int64(v)
	if sign != 0 {
		c = -c
	}
	return decimal.New(c, int32(exp)), true
}

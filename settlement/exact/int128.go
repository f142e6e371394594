package exact

import (
	"encoding/binary"
	"math/big"
	"math/bits"

	"github.com/shopspring/decimal"
)

// MaxDigits is the most decimal digits an Int128 holds for every value:
// 10^38 < 2^127.
const MaxDigits = 38

// Int128 is a two's-complement 128-bit integer: the exact sums of a run's
// kWh and amounts (settlement/postgres) and the unscaled values of an
// export's decimals (reporting).
type Int128 struct {
	hi int64
	lo uint64
}

// pow10 are 10^0 … 10^38 as Int128s.
var pow10 = func() (p [MaxDigits + 1]Int128) {
	p[0] = Int128{lo: 1}
	for i := 1; i < len(p); i++ {
		hi, lo := bits.Mul64(p[i-1].lo, 10)
		p[i] = Int128{hi: p[i-1].hi*10 + int64(hi), lo: lo}
	}
	return p
}()

// FromInt64 is v as an Int128.
func FromInt64(v int64) Int128 { return Int128{hi: v >> 63, lo: uint64(v)} }

// FromBytes decodes 16 big-endian two's-complement bytes (ok false when b
// has another length).
func FromBytes(b []byte) (Int128, bool) {
	if len(b) != 16 {
		return Int128{}, false
	}
	return Int128{hi: int64(binary.BigEndian.Uint64(b)), lo: binary.BigEndian.Uint64(b[8:])}, true
}

// Bytes is a as 16 big-endian two's-complement bytes.
func (a Int128) Bytes() [16]byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(a.hi))
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return b
}

// IsInt64 reports whether a fits an int64.
func (a Int128) IsInt64() bool { return a.hi == int64(a.lo)>>63 }

// Int64 is a's low 64 bits as an int64: a itself when IsInt64.
func (a Int128) Int64() int64 { return int64(a.lo) }

func (a Int128) neg() Int128 {
	lo, borrow := bits.Sub64(0, a.lo, 0)
	return Int128{hi: -a.hi - int64(borrow), lo: lo}
}

// quoRem10 is a / 10 truncated, and |a mod 10|.
func (a Int128) quoRem10() (Int128, uint64) {
	neg := a.hi < 0
	if neg {
		a = a.neg() // −2^127 stays itself, and its unsigned reading is right
	}
	hi, r := bits.Div64(0, uint64(a.hi), 10)
	lo, r := bits.Div64(r, a.lo, 10)
	q := Int128{hi: int64(hi), lo: lo}
	if neg {
		q = q.neg()
	}
	return q, r
}

// Add is a + b; ok is false when the sum overflows 128 bits.
func (a Int128) Add(b Int128) (sum Int128, ok bool) {
	lo, carry := bits.Add64(a.lo, b.lo, 0)
	sum = Int128{hi: a.hi + b.hi + int64(carry), lo: lo}
	// Overflow iff both addends have the same sign and the sum another.
	return sum, (a.hi < 0) != (b.hi < 0) || (sum.hi < 0) == (a.hi < 0)
}

// Add64 adds x to a in place, modulo 2^128. It is the settlement kernel's
// inner loop, so it does not check for overflow: its callers bound their
// values far inside 128 bits (settlement/postgres maxReadMicro).
func (a *Int128) Add64(x int64) {
	var c uint64
	a.lo, c = bits.Add64(a.lo, uint64(x), 0)
	a.hi += x>>63 + int64(c)
}

// Accumulate adds x to a in place, modulo 2^128: Add64 for a 128-bit x.
func (a *Int128) Accumulate(x Int128) {
	var c uint64
	a.lo, c = bits.Add64(a.lo, x.lo, 0)
	a.hi += x.hi + int64(c)
}

// Mul64 is the exact product of two int64s (math.MinInt64 excluded: its
// negation is itself).
func Mul64(x, y int64) Int128 {
	neg := (x < 0) != (y < 0)
	ux, uy := uint64(x), uint64(y)
	if x < 0 {
		ux = uint64(-x)
	}
	if y < 0 {
		uy = uint64(-y)
	}
	hi, lo := bits.Mul64(ux, uy)
	p := Int128{hi: int64(hi), lo: lo}
	if neg {
		p.lo, p.hi = ^p.lo+1, ^p.hi
		if p.lo == 0 {
			p.hi++
		}
	}
	return p
}

// AbsBelowPow10 reports whether |a| < 10^n, for 0 ≤ n ≤ MaxDigits.
func (a Int128) AbsBelowPow10(n int32) bool {
	if a.hi < 0 {
		if a == (Int128{hi: -1 << 63}) {
			return false // |−2^127| is beyond 10^38
		}
		a = a.neg()
	}
	p := pow10[n]
	return a.hi < p.hi || a.hi == p.hi && a.lo < p.lo
}

// Big is a as a big.Int.
func (a Int128) Big() *big.Int {
	if a.IsInt64() {
		return big.NewInt(a.Int64())
	}
	b := a.Bytes()
	v := new(big.Int).SetBytes(b[:])
	if a.hi < 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), 128))
	}
	return v
}

func (a Int128) String() string { return a.Big().String() }

// Decimal is a × 10^-scale. A value of more than 18 digits loses trailing
// zeros to the exponent first (an amount at 24 places has many): its
// coefficient then usually fits an int64, which is cheaper to build, and
// Unscaled takes it without big.Int arithmetic.
func (a Int128) Decimal(scale int32) decimal.Decimal {
	for !a.AbsBelowPow10(18) {
		q, r := a.quoRem10()
		if r != 0 {
			break
		}
		a, scale = q, scale-1
	}
	if a.IsInt64() {
		return decimal.New(a.Int64(), -scale)
	}
	return decimal.NewFromBigInt(a.Big(), -scale)
}

// Rescaled is a × 10^-from as a decimal with exponent -to, for to ≤ from:
// a divided by 10^(from-to), truncated, which is exact when a is a
// multiple of it (a numeric sum keeps the scale of its addends, so the
// exponent is part of the value a caller reports, unlike Decimal's).
func (a Int128) Rescaled(from, to int) decimal.Decimal {
	if a.IsInt64() {
		v := a.Int64()
		for range from - to {
			v /= 10
		}
		return decimal.New(v, int32(-to))
	}
	b := a.Big()
	b.Quo(b, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(from-to)), nil))
	return decimal.NewFromBigInt(b, int32(-to))
}

// pow10u64 are the powers of ten a uint64 holds.
var pow10u64 = func() (p [20]uint64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// Unscaled is d × 10^scale, exactly: d's count of 10^-scale units. ok is
// false when d has more decimal places than scale, when the result would
// not fit MaxDigits digits, and when d's coefficient has more than 18
// digits (big.Int arithmetic decides those; they do not occur in a run's
// rows).
func Unscaled(d decimal.Decimal, scale int32) (v Int128, ok bool) {
	n := int32(d.NumDigits()) // exact for coefficients that fit an int64, ≥ 19 otherwise
	if n > 18 {
		return v, false
	}
	c := d.CoefficientInt64()
	if c == 0 {
		return v, true // whatever its exponent
	}
	u := uint64(c)
	if c < 0 {
		u = -u
	}
	switch shift := d.Exponent() + scale; {
	case shift > 0:
		// |c| < 10^n, so the product has at most n + shift digits.
		if n+shift > MaxDigits {
			return v, false
		}
		p := pow10[shift]
		hi, lo := bits.Mul64(u, p.lo)
		v = Int128{hi: int64(hi + u*uint64(p.hi)), lo: lo}
	case shift < 0:
		if -shift >= n || u%pow10u64[-shift] != 0 {
			return v, false // more decimal places than scale (|c| < 10^n is no multiple of 10^n)
		}
		v = Int128{lo: u / pow10u64[-shift]}
	default:
		v = Int128{lo: u}
	}
	if c < 0 {
		v = v.neg()
	}
	return v, true
}

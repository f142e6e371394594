package exact

import (
	"math"
	"math/big"
	"testing"

	"github.com/shopspring/decimal"
)

var two128 = new(big.Int).Lsh(big.NewInt(1), 128)

// wrap is v modulo 2^128 as a signed value, as Int128 holds it.
func wrap(v *big.Int) *big.Int {
	w := new(big.Int).Mod(v, two128)
	if w.Bit(127) == 1 {
		w.Sub(w, two128)
	}
	return w
}

// FuzzUnscaled: whenever Unscaled accepts, its result is d × 10^scale
// computed with big.Int; it refuses only what big.Int arithmetic must
// decide (a fraction at that scale, more than 38 digits, a coefficient of
// more than 18 digits).
func FuzzUnscaled(f *testing.F) {
	for _, s := range []string{"0", "-0.000001", "999999999999.999999", "0.2209139300000000000", "-1e-24", "12.5",
		"123456789012345678", "-999999999999999999e20", "7E-30", "1e37", "-0.68834504350000000"} {
		f.Add(s, int32(24))
		f.Add(s, int32(18))
	}
	f.Fuzz(func(t *testing.T, s string, scale int32) {
		d, err := decimal.NewFromString(s)
		if err != nil || scale < 0 || scale > 40 || d.Exponent() < -80 || d.Exponent() > 80 {
			return
		}
		exact := d.Shift(scale)
		isInt := exact.Equal(exact.Truncate(0))
		fits := exact.Abs().LessThan(decimal.New(1, MaxDigits))
		v, ok := Unscaled(d, scale)
		if !ok {
			if isInt && fits && d.NumDigits() <= 18 {
				t.Fatalf("%s at scale %d refused", s, scale)
			}
			return
		}
		if !isInt || !fits {
			t.Fatalf("%s at scale %d accepted as %s", s, scale, v)
		}
		if want := exact.BigInt(); v.Big().Cmp(want) != 0 {
			t.Fatalf("%s at scale %d: %s, want %s", s, scale, v, want)
		}
		if back := v.Decimal(scale); !back.Equal(d) {
			t.Fatalf("%s at scale %d back as %s", s, scale, v.Decimal(scale))
		}
		b := v.Bytes()
		if back, ok := FromBytes(b[:]); !ok || back != v {
			t.Fatalf("%s: bytes round trip gave %s", s, back)
		}
		for n := int32(0); n <= MaxDigits; n++ {
			if want := exact.Abs().LessThan(decimal.New(1, n)); v.AbsBelowPow10(n) != want {
				t.Fatalf("|%s| < 10^%d: %t, want %t", v, n, !want, want)
			}
		}
	})
}

// TestAdd: sums wrap and report overflow exactly as 128-bit arithmetic.
func TestAdd(t *testing.T) {
	big127 := new(big.Int).Lsh(big.NewInt(1), 127)
	values := []*big.Int{big.NewInt(0), big.NewInt(1), big.NewInt(-1), big.NewInt(1 << 62), big.NewInt(-1 << 63),
		new(big.Int).Sub(big127, big.NewInt(1)), new(big.Int).Neg(big127), new(big.Int).Lsh(big.NewInt(3), 100),
		new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(5), 110)), pow10[38].Big(), new(big.Int).Neg(pow10[38].Big())}
	of := func(v *big.Int) Int128 {
		w := new(big.Int).Mod(v, two128).FillBytes(make([]byte, 16))
		i, _ := FromBytes(w)
		return i
	}
	for _, a := range values {
		for _, b := range values {
			sum, ok := of(a).Add(of(b))
			want := new(big.Int).Add(a, b)
			inRange := want.Cmp(new(big.Int).Neg(big127)) >= 0 && want.Cmp(big127) < 0
			if ok != inRange || sum.Big().Cmp(wrap(want)) != 0 {
				t.Errorf("%s + %s = %s (ok %t), want %s (ok %t)", a, b, sum, ok, wrap(want), inRange)
			}
		}
	}
	for _, v := range values {
		for _, scale := range []int32{0, 24} {
			if got, want := of(v).Decimal(scale), decimal.NewFromBigInt(wrap(v), -scale); !got.Equal(want) {
				t.Errorf("%s at scale %d: %s, want %s", v, scale, got, want)
			}
		}
	}
	// An amount at 24 places: trailing zeros go to the exponent until the
	// coefficient has 18 digits, so Unscaled takes it back.
	if a, _ := Unscaled(decimal.RequireFromString("-0.275752603125"), 24); a.IsInt64() ||
		a.Decimal(24).NumDigits() > 18 || !a.Decimal(24).Equal(decimal.RequireFromString("-0.275752603125")) {
		t.Errorf("-0.275752603125 at 24 places back as %s × 10^%d", a.Decimal(24).Coefficient(), a.Decimal(24).Exponent())
	}
	if v := FromInt64(-5); !v.IsInt64() || v.Int64() != -5 || v.Big().Int64() != -5 {
		t.Errorf("FromInt64(-5) = %s", v)
	}
}

// FuzzInt128 holds the 128-bit sums and products to math/big.
func FuzzInt128(f *testing.F) {
	f.Add(int64(1), int64(2), int64(3))
	f.Add(int64(math.MaxInt64), int64(math.MaxInt64), int64(-1))
	f.Add(int64(-1e18), int64(1e17), int64(-5))
	f.Fuzz(func(t *testing.T, a, b, c int64) {
		if a == math.MinInt64 || b == math.MinInt64 {
			return
		}
		var acc Int128
		acc.Add64(c)
		acc.Accumulate(Mul64(a, b))
		acc.Accumulate(Mul64(a, -b))
		acc.Accumulate(Mul64(a, b))
		want := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
		want.Add(want, big.NewInt(c))
		if got := acc.Rescaled(0, 0); got.BigInt().Cmp(want) != 0 {
			t.Fatalf("%d×%d+%d = %s, want %s", a, b, c, got, want)
		}
	})
}

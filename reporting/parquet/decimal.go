package parquet

import (
	"fmt"
	"math/big"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement/exact"
)

// decimalType is a Parquet DECIMAL(precision, scale) column type.
type decimalType struct {
	precision, scale int32
}

var (
	decimal18x6  = decimalType{18, 6}
	decimal18x2  = decimalType{18, 2}
	decimal38x18 = decimalType{38, 18}
	decimal38x24 = decimalType{38, 24}
)

// pow10s[i] is 10^i, for every exponent a 38-digit decimal can need.
var pow10s = func() [77]*big.Int {
	var p [77]*big.Int
	p[0] = big.NewInt(1)
	ten := big.NewInt(10)
	for i := 1; i < len(p); i++ {
		p[i] = new(big.Int).Mul(p[i-1], ten)
	}
	return p
}()

func pow10(n int32) (*big.Int, bool) {
	if n < 0 || int(n) >= len(pow10s) {
		return nil, false
	}
	return pow10s[n], true
}

func (t decimalType) String() string { return fmt.Sprintf("DECIMAL(%d,%d)", t.precision, t.scale) }

// unscaled is d × 10^scale as an integer, or an error when d has more
// decimal places than the scale or more digits than the precision.
func (t decimalType) unscaled(d decimal.Decimal) (*big.Int, error) {
	v := d.Coefficient()
	if v.Sign() == 0 {
		return v, nil // whatever its exponent
	}
	shift := d.Exponent() + t.scale
	switch {
	case shift > 0:
		p, ok := pow10(shift)
		if !ok {
			return nil, fmt.Errorf("%s does not fit %s", d, t)
		}
		v.Mul(v, p)
	case shift < 0:
		p, ok := pow10(-shift)
		if !ok {
			return nil, fmt.Errorf("%s has more than %d decimal places (%s)", d, t.scale, t)
		}
		var r big.Int
		v.QuoRem(v, p, &r)
		if r.Sign() != 0 {
			return nil, fmt.Errorf("%s has more than %d decimal places (%s)", d, t.scale, t)
		}
	}
	if limit, _ := pow10(t.precision); v.CmpAbs(limit) >= 0 {
		return nil, fmt.Errorf("%s does not fit %s", d, t)
	}
	return v, nil
}

// unscaled128 is unscaled without allocating, for every value whose
// coefficient has at most 18 digits; ok is false otherwise (and for every
// value unscaled refuses), and then unscaled decides.
func (t decimalType) unscaled128(d decimal.Decimal) (exact.Int128, bool) {
	v, ok := exact.Unscaled(d, t.scale)
	return v, ok && v.AbsBelowPow10(t.precision)
}

// int64Of is the INT64 unscaled value of d (precision ≤ 18).
func (t decimalType) int64Of(d decimal.Decimal) (int64, error) {
	if v, ok := t.unscaled128(d); ok {
		return v.Int64(), nil
	}
	v, err := t.unscaled(d)
	if err != nil {
		return 0, err
	}
	return v.Int64(), nil
}

// fixed16Of is the 16-byte big-endian two's-complement unscaled value of d
// (FIXED_LEN_BYTE_ARRAY(16), precision ≤ 38).
func (t decimalType) fixed16Of(d decimal.Decimal) (string, error) {
	if v, ok := t.unscaled128(d); ok {
		b := v.Bytes()
		return string(b[:]), nil
	}
	v, err := t.unscaled(d)
	if err != nil {
		return "", err
	}
	var b [16]byte
	if v.Sign() < 0 {
		// 2^128 + v, whose 16 low bytes are v's two's complement.
		v.Add(v, twoTo128)
	}
	v.FillBytes(b[:])
	return string(b[:]), nil
}

var twoTo128 = new(big.Int).Lsh(big.NewInt(1), 128)

func (t decimalType) fromInt64(v int64) decimal.Decimal { return decimal.New(v, -t.scale) }

func (t decimalType) fromFixed16(b []byte) (decimal.Decimal, error) {
	v, ok := exact.FromBytes(b)
	if !ok {
		return decimal.Decimal{}, fmt.Errorf("%s value has %d bytes, want 16", t, len(b))
	}
	if !v.AbsBelowPow10(t.precision) {
		return decimal.Decimal{}, fmt.Errorf("unscaled value %s does not fit %s", v, t)
	}
	return v.Decimal(t.scale), nil
}

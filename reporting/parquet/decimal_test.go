package parquet

import (
	"testing"

	"github.com/shopspring/decimal"
)

// FuzzDecimalRoundTrip: any decimal that is accepted comes back equal, in
// both encodings; refused ones really have too many places or digits.
func FuzzDecimalRoundTrip(f *testing.F) {
	for _, s := range []string{"0", "-0.000001", "999999999999.999999", "-12345678901234567890.123456789012345678", "1e-24", "12.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := decimal.NewFromString(s)
		if err != nil || d.Exponent() < -80 || d.Exponent() > 80 {
			return
		}
		for _, typ := range []decimalType{decimal18x6, decimal18x2, decimal38x18, decimal38x24} {
			exact := d.Equal(d.Truncate(typ.scale))
			fits := d.Abs().LessThan(decimal.New(1, typ.precision-typ.scale))
			fixed, err := typ.fixed16Of(d)
			if (err == nil) != (exact && fits) {
				t.Fatalf("%s as %s: exact %t, fits %t, error %v", d, typ, exact, fits, err)
			}
			if err != nil {
				continue
			}
			back, err := typ.fromFixed16([]byte(fixed))
			if err != nil || !back.Equal(d) {
				t.Fatalf("%s as %s came back as %s (%v)", d, typ, back, err)
			}
			if typ.precision <= 18 {
				v, err := typ.int64Of(d)
				if err != nil || !typ.fromInt64(v).Equal(d) {
					t.Fatalf("%s as INT64 %s came back as %s (%v)", d, typ, typ.fromInt64(v), err)
				}
			}
		}
	})
}

// TestFastPathAgrees: the allocation-free conversion gives the same
// unscaled value as the exact one wherever it applies.
func TestFastPathAgrees(t *testing.T) {
	for _, s := range []string{"0", "-0.000001", "999999999999.999999", "-999999999999.999999", "1e-24", "12.5",
		"123456789012345678", "-0.00422792", "0.2209139300000000000", "-0.68834504350000000", "99999999999999.99999999", "1000000000000", "0.1234567", "-9.99e11", "5e17", "7E-30"} {
		d := decimal.RequireFromString(s)
		for _, typ := range []decimalType{decimal18x6, decimal18x2, decimal38x18, decimal38x24, {9, 3}} {
			fast, ok := typ.unscaled128(d)
			exact, err := typ.unscaled(d)
			if ok && (err != nil || exact.Cmp(fast.Big()) != 0) {
				t.Errorf("%s as %s: fast %d, exact %v (%v)", s, typ, fast, exact, err)
			}
		}
	}
}

package oracle

import (
	"testing"

	"github.com/shopspring/decimal"
)

func TestDivHalfEven(t *testing.T) {
	for _, c := range []struct {
		v      string
		n      int64
		places int32
		want   string
	}{
		{"2.5", 1, 0, "2"},
		{"3.5", 1, 0, "4"},
		{"-2.5", 1, 0, "-2"},
		{"-3.5", 1, 0, "-4"},
		{"0.125", 1, 2, "0.12"},
		{"-0.135", 1, 2, "-0.14"},
		{"60.000003", 6, 6, "10"},        // 10.0000005
		{"60.000009", 6, 6, "10.000002"}, // 10.0000015
		{"1", 3, 9, "0.333333333"},
		{"2", 3, 9, "0.666666667"},
		{"-2", 3, 9, "-0.666666667"},
		{"0.000001", 4, 6, "0"}, // 0.00000025
		{"0.000003", 2, 6, "0.000002"},
		{"1234.5", 1, -1, "1230"},
		{"1235", 1, -1, "1240"},
	} {
		got := divHalfEven(decimal.RequireFromString(c.v), c.n, c.places)
		if !got.Equal(decimal.RequireFromString(c.want)) {
			t.Errorf("%s / %d at %d = %s, want %s", c.v, c.n, c.places, got, c.want)
		}
	}
}

// FuzzRoundHalfEven cross-checks the oracle's rounding with shopspring's
// RoundBank, which the streaming path uses, and checks that the division
// is the nearest value at its scale.
func FuzzRoundHalfEven(f *testing.F) {
	f.Add(int64(125), int32(-3), int32(2), int64(1))
	f.Add(int64(-60000009), int32(-6), int32(6), int64(6))
	f.Add(int64(1), int32(0), int32(9), int64(3))
	f.Fuzz(func(t *testing.T, coef int64, exp, places int32, n int64) {
		if exp < -20 || exp > 20 || places < 0 || places > 20 || n < 1 || n > 1_000_000 {
			return
		}
		d := decimal.New(coef, exp)
		if n == 1 {
			if got, want := roundHalfEven(d, places), d.RoundBank(places); !got.Equal(want) {
				t.Fatalf("round %s at %d: %s, RoundBank %s", d, places, got, want)
			}
		}
		q := divHalfEven(d, n, places)
		// |q·n − d| ≤ unit·n/2: q is a nearest value at its scale.
		unit := decimal.New(1, -places)
		diff := q.Mul(decimal.NewFromInt(n)).Sub(d).Abs().Mul(decimal.NewFromInt(2))
		if diff.GreaterThan(unit.Mul(decimal.NewFromInt(n))) {
			t.Fatalf("%s / %d at %d = %s: not the nearest", d, n, places, q)
		}
	})
}

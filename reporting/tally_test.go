package reporting

import (
	"testing"

	"github.com/shopspring/decimal"
)

// TestExactSum: the sum is exact whichever way each addend goes: at the
// sum's scale, with more places, with a coefficient of more than 18
// digits, or past the 128-bit range.
func TestExactSum(t *testing.T) {
	dec := decimal.RequireFromString
	for _, addends := range [][]string{
		{},
		{"0.000000000000000001", "-0.5", "12.25"},
		{"0.0000000000000000001", "1", "-0.00000000000000000000000000001"},
		{"12345678901234567890.5", "0.5", "-1"},
		{"99999999999999.999999999999999999999999", "99999999999999.999999999999999999999999",
			"99999999999999.999999999999999999999999", "-0.000000000000000000000001"},
		{"-99999999999999.999999999999999999999999", "-99999999999999.999999999999999999999999", "-1e13"},
	} {
		var s exactSum
		want := decimal.Zero
		for _, a := range addends {
			s.add(dec(a), amountScale)
			want = want.Add(dec(a))
		}
		if got := s.value(amountScale); !got.Equal(want) {
			t.Errorf("Σ %v = %s, want %s", addends, got, want)
		}
	}
}

package migrations_test

import (
	"testing"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// Numerics scan into shopspring decimals exactly, keeping the column's
// scale (trailing zeros included), whatever the magnitude; NULL scans into
// an invalid NullDecimal, and decimals written come back unchanged.
func TestDecimalsScanExactlyWithTheirScale(t *testing.T) {
	pool, _ := pgtest.New(t)
	for _, text := range []string{"0", "1.500", "-0.000000001", "999999.999999", "123456789012345678901234567890.123456789",
		"0.10", "-42", "1e-20", "100000000000000000000"} {
		var d, back decimal.Decimal
		var n decimal.NullDecimal
		if err := pool.QueryRow(t.Context(), `SELECT $1::numeric, $1::numeric, $2::numeric`, text,
			decimal.RequireFromString(text)).Scan(&d, &n, &back); err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		var want string
		if err := pool.QueryRow(t.Context(), `SELECT $1::numeric::text`, text).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if w := decimal.RequireFromString(want); d.String() != w.String() || scale(d) != scale(w) {
			t.Errorf("%s: scanned %s (exponent %d), Postgres says %s", text, d, d.Exponent(), want)
		}
		if !n.Valid || !n.Decimal.Equal(d) || scale(n.Decimal) != scale(d) {
			t.Errorf("%s: null decimal %v, want %s", text, n, d)
		}
		if !back.Equal(decimal.RequireFromString(text)) {
			t.Errorf("%s: round trip gave %s", text, back)
		}
	}
	var n decimal.NullDecimal
	if err := pool.QueryRow(t.Context(), `SELECT NULL::numeric`).Scan(&n); err != nil || n.Valid {
		t.Fatalf("NULL scanned as %v, %v", n, err)
	}
}

// scale is the number of decimal places d carries.
func scale(d decimal.Decimal) int32 { return max(0, -d.Exponent()) }

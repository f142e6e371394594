package exact

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	pgxdecimal "github.com/jackc/pgx-shopspring-decimal"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
)

// pgNumeric is a numeric in Postgres's binary form.
func pgNumeric(weight int16, sign uint16, dscale int16, digits ...uint16) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(digits)))
	b = binary.BigEndian.AppendUint16(b, uint16(weight))
	b = binary.BigEndian.AppendUint16(b, sign)
	b = binary.BigEndian.AppendUint16(b, uint16(dscale))
	for _, d := range digits {
		b = binary.BigEndian.AppendUint16(b, d)
	}
	return b
}

// FuzzNumericDecimal: whatever NumericDecimal decodes, pgx's binary plan
// (the one migrations registers, through pgxdecimal) decodes to the same
// value with the same exponent.
func FuzzNumericDecimal(f *testing.F) {
	m := pgtype.NewMap()
	pgxdecimal.Register(m)
	for _, s := range []string{"0", "0.0074810000000000", "0.220913930000000000", "-52.75", "1000", "-12345678.9",
		"0.000000000000000001", "99999999999999.999999999999999999999999", "1e20", "123456789012345678", "-0.5"} {
		b, err := m.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, pgxdecimal.Decimal(decimal.RequireFromString(s)), nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	// As Postgres sends them: trailing zero digits dropped, the scale kept.
	f.Add(pgNumeric(-1, 0, 16, 74, 8100))                   // 0.0074810000000000
	f.Add(pgNumeric(-1, 0, 18, 2209, 1393))                 // 0.220913930000000000
	f.Add(pgNumeric(0, 0x4000, 2, 52, 7500))                // -52.75
	f.Add(pgNumeric(1, 0, 0, 1))                            // 10000
	f.Add(pgNumeric(0, 0, 4, 0))                            // 0.0000 with a digit
	f.Add(pgNumeric(0, 0, 0))                               // 0
	f.Add(pgNumeric(0, 0xC000, 0))                          // NaN
	f.Add(pgNumeric(4, 0, 0, 9999, 9999, 9999, 9999, 9999)) // 20 digits
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 48 || len(b) >= 8 && int16(binary.BigEndian.Uint16(b[6:])) > 64 {
			return // pgx takes a step per decimal place: keep inputs quick
		}
		got, ok := NumericDecimal(b)
		var want pgxdecimal.Decimal
		err := m.Scan(pgtype.NumericOID, pgtype.BinaryFormatCode, b, &want)
		if !ok {
			return
		}
		w := decimal.Decimal(want)
		if err != nil || got.Cmp(w) != 0 || got.Exponent() != w.Exponent() {
			t.Fatalf("% x: %s (exponent %d), pgx %s (exponent %d, %v)", b, got, got.Exponent(), w, w.Exponent(), err)
		}
	})
}

// TestNumericDecimalRandom runs the fuzz property over many random
// numerics of the shapes Postgres sends (digits 0 – 9,999, scales up to
// 30), signs and weights included.
func TestNumericDecimalRandom(t *testing.T) {
	m := pgtype.NewMap()
	pgxdecimal.Register(m)
	r := rand.New(rand.NewPCG(1, 9))
	decoded := 0
	for range 200_000 {
		digits := make([]uint16, r.IntN(7))
		for i := range digits {
			digits[i] = uint16(r.IntN(10_000))
		}
		b := pgNumeric(int16(r.IntN(12)-6), []uint16{0, 0x4000}[r.IntN(2)], int16(r.IntN(31)), digits...)
		got, ok := NumericDecimal(b)
		if !ok {
			continue
		}
		decoded++
		var want pgxdecimal.Decimal
		err := m.Scan(pgtype.NumericOID, pgtype.BinaryFormatCode, b, &want)
		if w := decimal.Decimal(want); err != nil || got.Cmp(w) != 0 || got.Exponent() != w.Exponent() {
			t.Fatalf("% x: %s (exponent %d), pgx %s (exponent %d, %v)", b, got, got.Exponent(), w, w.Exponent(), err)
		}
	}
	if decoded < 50_000 {
		t.Fatalf("only %d of 200,000 decoded", decoded)
	}
}

// TestNumericDecimalDecodes: the forms a run's numerics come in take the
// fast path.
func TestNumericDecimalDecodes(t *testing.T) {
	for _, b := range [][]byte{pgNumeric(-1, 0, 16, 74, 8100), pgNumeric(-1, 0, 18, 2209, 1393),
		pgNumeric(0, 0x4000, 2, 52, 7500), pgNumeric(1, 0, 0, 1), pgNumeric(0, 0, 6)} {
		if _, ok := NumericDecimal(b); !ok {
			t.Errorf("% x not decoded", b)
		}
	}
}

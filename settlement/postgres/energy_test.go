package postgres

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement"
)

// FuzzNumericNano: every numeric of at most 9 decimal places (its scale,
// trailing zeros included) and below 10^9 decodes exactly from Postgres's
// binary form, with its scale; anything else is refused, never rounded.
func FuzzNumericNano(f *testing.F) {
	for _, s := range []string{"0", "1", "0.000001", "999999.999999", "0.000000003", "12.5", "100000000", "0.0000000001", "1.10"} {
		d := decimal.RequireFromString(s)
		f.Add(d.CoefficientInt64(), int8(d.Exponent()))
	}
	m := pgtype.NewMap()
	f.Fuzz(func(t *testing.T, coef int64, exp int8) {
		if coef < 0 || coef > 1e15 || exp < -12 || exp > 6 {
			return
		}
		n := pgtype.Numeric{Int: big.NewInt(coef), Exp: int32(exp), Valid: true}
		raw, err := m.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		d := decimal.New(coef, int32(exp))
		nano, scale, err := numericNano(raw)
		exact := d.Shift(nanoScale)
		if exp < -nanoScale || !exact.IsInteger() || exact.GreaterThan(decimal.New(1, 18)) {
			if err == nil {
				t.Fatalf("%s: decoded as %d nano, want a refusal", d, nano)
			}
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if !decimal.New(nano, -nanoScale).Equal(d) {
			t.Fatalf("%s: decoded as %d nano", d, nano)
		}
		if want := max(0, -int(exp)); int(scale) != want {
			t.Fatalf("%s: scale %d, want %d", d, scale, want)
		}
	})
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
		var acc int128
		acc.add64(c)
		acc.add(mul(a, b))
		acc.add(mul(a, -b))
		acc.add(mul(a, b))
		want := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
		want.Add(want, big.NewInt(c))
		if got := acc.decimal(0, 0); got.BigInt().Cmp(want) != 0 {
			t.Fatalf("%d×%d+%d = %s, want %s", a, b, c, got, want)
		}
	})
}

// BenchmarkDayReadsRead is the per-read cost of settling a day in Go
// (assignment lookup, mapping, exact sums) on reads already fetched: what a
// run adds to one scan of its reads. Run with
//
//	go test ./settlement/postgres -run '^$' -bench DayReadsRead -benchmem
func BenchmarkDayReadsRead(b *testing.B) {
	const meters, intervals = 1000, 96
	m := pgtype.NewMap()
	first := toPG(time.Date(2026, 10, 20, 5, 0, 0, 0, time.UTC))
	d := &dayReads{first: first, end: first + intervals*900e6, lµ: 900e6, l: 900, n: intervals,
		meters: map[string][]assignment{}, lineKeys: []lineGroupKey{{"P", "S", "1"}}, lines: []lineKey{{"P", "S"}},
		chgKeys: make([]chargeGroupKey, meters), prices: [][]priceCell{make([]priceCell, intervals)}}
	d.cells, d.reads, d.charges = make([]energyCell, intervals), make([]settlement.ReadCounts, 1), make([]chargeAcc, meters)
	for i := range intervals {
		d.prices[0][i] = priceCell{coef: int64(25_000_000 + i), scale: 6, valid: i%10 != 0}
	}
	rows := make([][][]byte, 0, meters*intervals)
	for i := range meters {
		id := fmt.Sprintf("MTR-%07d", i)
		d.meters[id] = []assignment{{from: 0, to: noEnd, chg: int32(i)}}
		for k := range intervals {
			v, err := m.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, decimal.New(int64(50+(i*k)%2400), -3), nil)
			if err != nil {
				b.Fatal(err)
			}
			rows = append(rows, [][]byte{[]byte(id), []byte("import"), binary.BigEndian.AppendUint64(nil, uint64(first+int64(k)*900e6)),
				binary.BigEndian.AppendUint32(nil, 900), v, []byte("A")})
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := d.read(rows[i%len(rows)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

package postgres

import (
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// FuzzDayReadsRead holds the integer kernel to meters.ToSettlementIntervals:
// a read of any stored value (micro-kWh, read back as readstore.KWh) and
// contract length, starting anywhere from an hour before the day to its end,
// adds exactly the mapped decimal pieces that fall in the day to its
// intervals, digit for digit, and the same sums to its account, nothing
// else.
func FuzzDayReadsRead(f *testing.F) {
	f.Add(int64(1_500_500), uint8(3), int16(0), false)
	f.Add(int64(1), uint8(3), int16(-3), true)
	f.Add(int64(999_999_999_999), uint8(2), int16(95), false)
	f.Add(int64(7), uint8(0), int16(40), true)
	f.Add(int64(1_500_000), uint8(1), int16(30), false) // 1.5: one decimal place
	f.Add(int64(2_000_000), uint8(0), int16(55), true)  // 2: none
	f.Add(int64(1_000_000_000_001), uint8(1), int16(2), false)
	f.Fuzz(func(t *testing.T, micro int64, lenIdx uint8, slot int16, export bool) {
		const intervals = 96
		lengths := []int64{300, 900, 1800, 3600}
		secs := lengths[int(lenIdx)%len(lengths)]
		dayStart := time.Date(2026, 10, 20, 5, 0, 0, 0, time.UTC)
		first := toPG(dayStart)
		// 5-minute slots from an hour before the day to its end
		startAt := dayStart.Add(time.Duration((int64(slot)-meters.Floor(int64(slot), 12*(intervals/4+1)))*300-3600) * time.Second)
		d := &dayReads{firstMicros: first, endMicros: first + intervals*900e6, intervalMicros: 900e6, intervalSeconds: 900, n: intervals,
			lineKeys: []lineGroupKey{{"P", "S", "1"}}, lines: []lineKey{{"P", "S"}}, chgKeys: []chargeGroupKey{{"A", "P", "1"}},
			prices: [][]priceCell{nil}}
		d.cells, d.reads, d.charges = make([]energyCell, intervals), make([]settlement.ReadCounts, 1), make([]chargeAcc, 1)
		as := []assignment{{fromMicros: 0, toMicros: noEnd}}
		err := d.read(as, toPG(startAt), secs, micro, export, 'A')
		if micro < 0 || micro > maxReadMicro {
			if err == nil {
				t.Fatalf("%d micro-kWh accepted", micro)
			}
			return
		}
		if err != nil {
			t.Fatalf("%d micro-kWh at %s for %d s: %v", micro, startAt.Format(time.RFC3339), secs, err)
		}
		want := make([]decimal.Decimal, intervals)
		total := decimal.Zero
		for _, p := range meters.ToSettlementIntervals(startAt, int(secs), readstore.KWh(micro), 900) {
			i := p.Start.Sub(dayStart) / (900 * time.Second)
			if p.Start.Before(dayStart) || i >= intervals {
				continue
			}
			want[i] = want[i].Add(p.KWh)
			total = total.Add(p.KWh)
		}
		sign := decimal.NewFromInt(1)
		if export {
			sign = decimal.NewFromInt(-1)
		}
		for i := range d.cells {
			// the digits too: a stored value at its shortest scale, a split
			// piece at 9 places
			if got := d.cells[i].net.value(nanoScale); !sameDigits(got, want[i].Mul(sign)) {
				t.Fatalf("%d micro-kWh at %s for %d s: interval %d has %s, want %s", micro, startAt.Format(time.RFC3339), secs, i,
					digits(got), digits(want[i].Mul(sign)))
			}
		}
		got, other := d.charges[0].imp.value(nanoScale), d.charges[0].exp.value(nanoScale)
		if export {
			got, other = other, got
		}
		if !sameDigits(got, total) || !other.IsZero() {
			t.Fatalf("%d micro-kWh at %s for %d s: account sums %s and %s, want %s and 0", micro, startAt.Format(time.RFC3339), secs,
				digits(got), other, digits(total))
		}
	})
}

// sameDigits: a and b are equal and written with as many decimal places
// (decimal.String drops the zeros that end a fraction).
func sameDigits(a, b decimal.Decimal) bool { return a.Equal(b) && a.Exponent() == b.Exponent() }

// digits writes d with all its decimal places.
func digits(d decimal.Decimal) string { return d.StringFixed(max(0, -d.Exponent())) }

// TestMapReadTies reaches the half-even ties of a split at 9 places with
// values of more places than ingest allows (read_blocks cannot hold them):
// with L = 300, 3e-9 kWh over 30 minutes is 0.5e-9 per piece, which rounds
// to 0, and 9e-9 is 1.5e-9, which rounds to 2e-9, the last piece taking
// the remainder, as meters.ToSettlementIntervals does.
func TestMapReadTies(t *testing.T) {
	const intervals = 288
	dayStart := time.Date(2026, 10, 31, 18, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		nano   int64
		pieces []string
	}{
		{3, []string{"0", "0", "0", "0", "0", "0.000000003"}},
		{9, []string{"0.000000002", "0.000000002", "0.000000002", "0.000000002", "0.000000002", "-0.000000001"}},
	} {
		first := toPG(dayStart)
		d := &dayReads{firstMicros: first, endMicros: first + intervals*300e6, intervalMicros: 300e6, intervalSeconds: 300, n: intervals,
			lineKeys: []lineGroupKey{{"P", "S", "1"}}, lines: []lineKey{{"P", "S"}}, chgKeys: []chargeGroupKey{{"A", "P", "1"}},
			prices: [][]priceCell{nil}}
		d.cells, d.reads, d.charges = make([]energyCell, intervals), make([]settlement.ReadCounts, 1), make([]chargeAcc, 1)
		at := dayStart.Add(2 * time.Hour)
		if err := d.mapRead(&assignment{toMicros: noEnd}, toPG(at), 1800, tc.nano, nanoScale, false, 'A'); err != nil {
			t.Fatal(err)
		}
		mapped := meters.ToSettlementIntervals(at, 1800, decimal.New(tc.nano, -nanoScale), 300)
		for k, want := range tc.pieces {
			i := 24 + k
			got := d.cells[i].net.value(nanoScale)
			if !got.Equal(decimal.RequireFromString(want)) || !mapped[k].KWh.Equal(got) {
				t.Errorf("%d nano: piece %d is %s, want %s (meters: %s)", tc.nano, k, got, want, mapped[k].KWh)
			}
		}
	}
}

// BenchmarkDayReadsRead is the per-read cost of settling a day in Go
// (assignment lookup, mapping, exact sums) on reads already fetched: what a
// run adds to one scan of its reads. Run with
//
//	go test ./settlement/postgres -run '^$' -bench DayReadsRead -benchmem
func BenchmarkDayReadsRead(b *testing.B) {
	const meters, intervals = 1000, 96
	first := toPG(time.Date(2026, 10, 20, 5, 0, 0, 0, time.UTC))
	d := &dayReads{firstMicros: first, endMicros: first + intervals*900e6, intervalMicros: 900e6, intervalSeconds: 900, n: intervals,
		meters: map[string][]assignment{}, lineKeys: []lineGroupKey{{"P", "S", "1"}}, lines: []lineKey{{"P", "S"}},
		chgKeys: make([]chargeGroupKey, meters), prices: [][]priceCell{make([]priceCell, intervals)}}
	d.cells, d.reads, d.charges = make([]energyCell, intervals), make([]settlement.ReadCounts, 1), make([]chargeAcc, meters)
	for i := range intervals {
		d.prices[0][i] = priceCell{coef: int64(25_000_000 + i), scale: 6, valid: i%10 != 0}
	}
	type read struct {
		meter string
		start int64
		micro int64
	}
	reads := make([]read, 0, meters*intervals)
	for i := range meters {
		id := fmt.Sprintf("MTR-%07d", i)
		d.meters[id] = []assignment{{fromMicros: 0, toMicros: noEnd, chg: int32(i)}}
		for k := range intervals {
			reads = append(reads, read{id, first + int64(k)*900e6, int64(50+(i*k)%2400) * 1000})
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r := &reads[i%len(reads)]
		if err := d.read(d.meters[r.meter], r.start, 900, r.micro, false, 'A'); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

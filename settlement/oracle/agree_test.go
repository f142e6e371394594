package oracle

import (
	"strings"
	"testing"
	"time"

	"github.com/gridsettle/gridsettle/meters"
)

// FuzzAgreesWithTheDecoder: the oracle and meters.Decoder, written apart
// from one contract, give every record the same verdict on the checks that
// need only the record and the clock (malformed_json … the decimals, and
// quality_length_mismatch for reads). Only the test imports meters: the
// oracle itself stays independent.
func FuzzAgreesWithTheDecoder(f *testing.F) {
	for _, s := range []string{
		`{"meter_id":"M1","start":"2026-12-06T07:30:00Z","interval_seconds":900,"values":["0.5"]}`,
		`{"meter_id":"M1","start":"1999-12-31T23:45:00Z","interval_seconds":900,"values":["0.5"]}`,
		`{"meter_id":"M9","start":"9999-12-31T20:00:00Z","interval_seconds":900,"values":["0.5",1.0000000]}`,
		`{"meter_id":"M1","channel":"` + strings.Repeat("é", 20) + `","start":"2026-10-31T15:00:00Z","interval_seconds":900,"values":["0.5"]}`,
		`{"meter_id":"M1","start":"2026-10-31T15:00:00Z","interval_seconds":300,"values":["0.1234567","-1"],"quality":["A"],"source":"caf` + "\xe9" + `"}`,
		`{"meter_id":"M1","start":"2026-10-31T15:00:00Z","interval_seconds":900,"values":["0.5"],"source":"a\u0000b"}`,
	} {
		f.Add([]byte(s), false)
	}
	for _, s := range []string{
		`{"market":"DA","settlement_point":"HB_NORTH","start":"2026-12-13T07:00:00Z","interval_seconds":3600,"price":"30"}`,
		`{"market":"RT","settlement_point":"HB_NORTH","start":"2026-12-13T07:30:00Z","interval_seconds":300,"price":30.0000000,"currency":"EUR"}`,
		`{"market":"RT","settlement_point":"HB_NORTH","start":"1999-12-31T23:55:00Z","interval_seconds":300,"price":"-1000000.5"}`,
	} {
		f.Add([]byte(s), true)
	}
	c := clock{now: fixtureNow, maxFuture: 15 * time.Minute, maxFutureP: 7 * 24 * time.Hour}
	d := meters.Decoder{Bounds: meters.Bounds{Now: func() time.Time { return fixtureNow }}}
	f.Fuzz(func(t *testing.T, data []byte, price bool) {
		var q *Quarantined
		var rej *meters.Rejection
		if price {
			_, q = decodePrice(data, c)
			_, rej = d.Price(data, "USD")
		} else {
			_, q = decodeRead(data, c)
			_, rej = d.ReadBlock(data)
		}
		var want, got string
		if q != nil {
			want = q.Reason
		}
		if rej != nil {
			got = string(rej.Reason)
		}
		if got != want {
			t.Fatalf("%s\ndecoder %q (%v), oracle %q (%v)", data, got, rej, want, q)
		}
	})
}

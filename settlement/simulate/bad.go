package simulate

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gridsettle/gridsettle/meters"
)

// badRecords adds, one window after the reference window, records that
// must be quarantined (one or more of every reason of meters/README.md), plus a
// few good records that only look suspicious (a resend whose decimals are
// written differently is a duplicate, not a conflict). They refer to
// instants of the reference window, which their partition has already seen.
func (g *gen) badRecords() {
	w := g.windowOf(g.refStart) + 1
	ref := g.meters[roleRef]
	tb := time.Unix(g.refStart, 0).UTC()
	ts := tb.Format(time.RFC3339)
	read := func(reason meters.Reason, key, value string) {
		g.emit(w, Record{Topic: g.cfg.Topics.Reads, Key: []byte(key), Value: []byte(value), Reason: string(reason)})
	}
	price := func(reason meters.Reason, key, value string) {
		g.emit(w, Record{Topic: g.cfg.Topics.Prices, Key: []byte(key), Value: []byte(value), Reason: string(reason)})
	}
	id := ref.id
	block := func(fields string) string {
		return fmt.Sprintf(`{"meter_id":%q,"channel":"import","start":%q,"interval_seconds":900,%s}`, id, ts, fields)
	}

	read(meters.MalformedJSON, id, block(`"values":["0.4215","0.3980"]`)[:70])
	read(meters.MalformedJSON, id, fmt.Sprintf(`[%q,"import",%q,900,["0.4215"]]`, id, ts))
	read(meters.MalformedJSON, id, block(`"values":[NaN]`))
	read(meters.SchemaViolation, id, fmt.Sprintf(`{"channel":"import","start":%q,"interval_seconds":900,"values":["0.5"]}`, ts))
	read(meters.SchemaViolation, id, strings.Replace(block(`"values":["0.5"]`), id, "MTR 000009/B", 1))
	read(meters.SchemaViolation, id, strings.Replace(block(`"values":["0.5"]`), `"import"`, `"reactive"`, 1))
	read(meters.SchemaViolation, id, strings.Replace(block(`"values":["0.5"]`), ts, tb.Format(time.DateTime), 1))
	read(meters.SchemaViolation, id, strings.Replace(block(`"values":["0.5"]`), `900`, `"900"`, 1))
	read(meters.SchemaViolation, id, block(`"values":["3E+2"]`))
	read(meters.SchemaViolation, id, block(`"values":[6e-05]`))
	read(meters.SchemaViolation, id, block(`"values":[]`))
	read(meters.SchemaViolation, id, block(`"values":["0.5","0.6"],"quality":["A","X"]`))
	read(meters.SchemaViolation, id, block(`"values":["0.5"],"version":0`))
	read(meters.SchemaViolation, id, block(`"values":["0.5"],"version":1.5`))
	read(meters.SchemaViolation, id, block(`"values":["0.5"],"source":"`+strings.Repeat("s", 200)+`"`))
	read(meters.UnsupportedInterval, id, strings.Replace(block(`"values":["0.5","0.6"]`), `900`, `600`, 1))
	read(meters.MisalignedStart, id, strings.Replace(block(`"values":["0.5"]`), ts, tb.Add(7*time.Minute).Format(time.RFC3339), 1))
	// start_out_of_range: a head-end whose clock runs a century ahead (its
	// meter's assignment is open-ended, so nothing else would stop it), a
	// block in the last hours of 9999 whose end is in year 10000, and a read
	// that ends exactly at 2000-01-01T00:00:00Z, so starts before it.
	read(meters.StartOutOfRange, id, strings.Replace(block(`"values":["0.5","0.6"]`), ts, tb.Add(farAhead).Format(time.RFC3339), 1))
	read(meters.StartOutOfRange, "MTR-999999", fmt.Sprintf(`{"meter_id":"MTR-999999","start":"9999-12-31T20:00:00Z","interval_seconds":900,"values":[%s"0.5"]}`,
		strings.Repeat(`"0.5",`, 15)))
	read(meters.StartOutOfRange, id, strings.Replace(block(`"values":["0.5"]`), ts, "1999-12-31T23:45:00Z", 1))
	read(meters.ValueOutOfRange, id, block(`"values":["0.5","-0.5"]`))
	read(meters.ValueOutOfRange, id, block(`"values":["1000000.5"]`))
	read(meters.TooManyDecimals, id, block(`"values":["0.1234567"]`))
	read(meters.QualityLengthMismatch, id, block(`"values":["0.5","0.6","0.7","0.8"],"quality":["A","A","E"]`))
	read(meters.UnknownMeter, "MTR-999999", strings.Replace(block(`"values":["0.5","0.6"]`), id, "MTR-999999", 1))
	short := g.readRecord(ref, meters.Import, g.refStart, 300, []int64{1000, 1200, 1100}, []byte("AAA"), 1)
	read(meters.IntervalLengthMismatch, id, string(short.Value))

	vals := append([]int64(nil), g.refVals...)
	vals[len(vals)/2] += 11_000
	conflict := g.readRecord(ref, meters.Import, g.refStart, ref.length, vals, g.refQuality, 1)
	read(meters.ConflictingDuplicate, id, string(conflict.Value))
	q := append([]byte(nil), g.refQuality...)
	q[1] = map[byte]byte{'A': 'E', 'E': 'A', 'S': 'A'}[q[1]]
	conflict = g.readRecord(ref, meters.Import, g.refStart, ref.length, g.refVals, q, 1)
	read(meters.ConflictingDuplicate, id, string(conflict.Value))
	// A correction of the reference block whose source holds U+0000, which
	// PostgreSQL text cannot store: it passes every other check, so it is
	// unprocessable, and the block it would correct stands.
	nul := g.readRecord(ref, meters.Import, g.refStart, ref.length, vals, g.refQuality, 2)
	nul.Value = bytes.Replace(nul.Value, []byte(`"source":`+strconv.Quote(ref.source)), []byte(`"source":"head\u0000end"`), 1)
	read(meters.Unprocessable, id, string(nul.Value))
	// The same block with its decimals written as trimmed JSON numbers: equal
	// values, so a duplicate.
	read("", id, string(g.renotated(ref, g.refVals, g.refQuality)))

	// A block that starts an hour before the new connection's assignment.
	nc := g.meters[roleNewConn]
	straddle := g.readRecord(nc, meters.Import, g.newConnAt-hour, 900,
		[]int64{200_000, 210_000, 190_000, 205_000, 300_000, 310_000, 290_000, 305_000}, []byte("AAAAAAAA"), 1)
	straddle.Reason = string(meters.UnknownMeter)
	g.emit(g.windowOf(g.newConnAt)+1, straddle)

	hub, hou := pointSpecs[hub].id, pointSpecs[houston].id
	pr := func(point, market string, length int, rest string) string {
		return fmt.Sprintf(`{"market":%q,"settlement_point":%q,"start":%q,"interval_seconds":%d,%s}`, market, point, ts, length, rest)
	}
	price(meters.MalformedJSON, hub, pr(hub, "RT", 300, `"price":NaN,"currency":"USD"`))
	price(meters.SchemaViolation, hub, pr(hub, "RT", 300, `"currency":"USD"`))
	price(meters.SchemaViolation, hub, pr(hub, "ID", 300, `"price":"35.10"`))
	price(meters.SchemaViolation, hub, pr(hub, "RT", 300, `"price":1.5e3`))
	price(meters.SchemaViolation, hub, pr("HB NORTH", "RT", 300, `"price":"35.10"`))
	price(meters.UnsupportedInterval, hou, pr(hou, "RT", 1800, `"price":"35.10"`))
	price(meters.MisalignedStart, hub, strings.Replace(pr(hub, "RT", 300, `"price":"35.10"`), ts, tb.Add(150*time.Second).Format(time.RFC3339), 1))
	price(meters.StartOutOfRange, hub, strings.Replace(pr(hub, "DA", 3600, `"price":"35.10"`), ts, tb.Add(farAhead).Format(time.RFC3339), 1))
	price(meters.StartOutOfRange, hub, strings.Replace(pr(hub, "RT", 300, `"price":"35.10"`), ts, "1999-12-31T23:55:00Z", 1))
	price(meters.ValueOutOfRange, hub, pr(hub, "RT", 300, `"price":"-1000000.01"`))
	price(meters.TooManyDecimals, hub, pr(hub, "RT", 300, `"price":"41.1234567"`))
	price(meters.UnknownSettlementPoint, "HB_SOUTH", pr("HB_SOUTH", "RT", 300, `"price":"35.10"`))
	price(meters.CurrencyMismatch, hub, pr(hub, "RT", 300, `"price":"35.10","currency":"`+otherCurrency(g.cfg.Market.Currency)+`"`))
	price(meters.IntervalLengthMismatch, hub, pr(hub, "RT", 900, `"price":"35.10"`))
	price(meters.IntervalLengthMismatch, pointSpecs[west].id, pr(pointSpecs[west].id, "DA", 900, `"price":"28.40"`))
	price(meters.ConflictingDuplicate, hou, pr(hou, "RT", 900, `"price":"`+string(appendMicro(nil, g.refPrice+1_000_000, 2, false))+`","version":1`))
	// Houston's reference price again as a string with six decimals: equal
	// value, a duplicate.
	price("", hou, pr(hou, "RT", 900, `"price":"`+string(appendMicro(nil, g.refPrice, 6, false))+`"`))
}

// farAhead puts a bad record's start a century (of whole days, so it stays
// aligned) past the reference window: out of range whatever the wall clock
// of the ingest that reads it, as long as it runs before 2126, which keeps
// the scenario deterministic.
const farAhead = 36_525 * 24 * time.Hour

// renotated is the reads block of m with values as JSON numbers without
// trailing zeros.
func (g *gen) renotated(m *meterSpec, vals []int64, q []byte) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"meter_id":%q,"start":%q,"interval_seconds":%d,"values":[`, m.id,
		time.Unix(g.refStart, 0).UTC().Format(time.RFC3339), m.length)
	for i, v := range vals {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(appendMicro(nil, v, 6, true))
	}
	b.WriteString(`],"quality":[`)
	for i, c := range q {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(string(c)))
	}
	b.WriteString(`],"version":1}`)
	return []byte(b.String())
}

// otherCurrency is a valid ISO 4217 code that is not the market's.
func otherCurrency(c string) string {
	if c == "EUR" {
		return "GBP"
	}
	return "EUR"
}

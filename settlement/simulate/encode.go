package simulate

import (
	"strconv"
	"time"

	"github.com/gridsettle/gridsettle/meters"
)

// readRecord encodes one block of the ami.interval-reads topic in the
// meter's style (strings or JSON numbers, 4 or 6 decimals, defaults spelled
// out or left out).
func (g *gen) readRecord(m *meterSpec, ch meters.Channel, start int64, length int, vals []int64, q []byte, version int) Record {
	b := make([]byte, 0, 160+len(vals)*14)
	b = append(b, `{"meter_id":`...)
	b = strconv.AppendQuote(b, m.id)
	if !m.terse || ch != meters.Import {
		b = append(b, `,"channel":`...)
		b = strconv.AppendQuote(b, string(ch))
	}
	b = append(b, `,"start":"`...)
	b = time.Unix(start, 0).UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `","interval_seconds":`...)
	b = strconv.AppendInt(b, int64(length), 10)
	b = append(b, `,"values":[`...)
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		if !m.numeric {
			b = append(b, '"')
		}
		if v == 0 {
			b = append(b, '0')
		} else {
			b = appendMicro(b, v, m.places, false)
		}
		if !m.numeric {
			b = append(b, '"')
		}
	}
	b = append(b, ']')
	if !m.terse || !allActual(q) {
		b = append(b, `,"quality":[`...)
		for i, c := range q {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '"', c, '"')
		}
		b = append(b, ']')
	}
	if !m.terse || version != 1 {
		b = append(b, `,"version":`...)
		b = strconv.AppendInt(b, int64(version), 10)
	}
	b = append(b, `,"source":`...)
	b = strconv.AppendQuote(b, m.source)
	b = append(b, '}')
	return Record{Topic: g.cfg.Topics.Reads, Key: []byte(m.id), Value: b}
}

func allActual(q []byte) bool {
	for _, c := range q {
		if c != 'A' {
			return false
		}
	}
	return true
}

// priceRecord encodes one price of the market.prices topic in the point's
// style; price is in millionths of the currency per MWh.
func (g *gen) priceRecord(p *pointSpec, market meters.Market, start int64, length int, price int64, version int) Record {
	b := make([]byte, 0, 192)
	b = append(b, `{"market":`...)
	b = strconv.AppendQuote(b, string(market))
	b = append(b, `,"settlement_point":`...)
	b = strconv.AppendQuote(b, p.id)
	b = append(b, `,"start":"`...)
	b = time.Unix(start, 0).UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `","interval_seconds":`...)
	b = strconv.AppendInt(b, int64(length), 10)
	b = append(b, `,"price":`...)
	if !p.numeric {
		b = append(b, '"')
	}
	b = appendMicro(b, price, p.places, p.terse)
	if !p.numeric {
		b = append(b, '"')
	}
	if !p.terse {
		b = append(b, `,"currency":`...)
		b = strconv.AppendQuote(b, g.cfg.Market.Currency)
	}
	if !p.terse || version != 1 {
		b = append(b, `,"version":`...)
		b = strconv.AppendInt(b, int64(version), 10)
	}
	b = append(b, '}')
	return Record{Topic: g.cfg.Topics.Prices, Key: []byte(p.id), Value: b}
}

var pow10 = [...]int64{1, 10, 100, 1000, 10_000, 100_000, 1_000_000}

// appendMicro appends v millionths as plain decimal text with places
// fraction digits (v must be a multiple of 10^(6-places)); trim drops
// trailing zeros, and the point with them, as "-12.5" or "35".
func appendMicro(b []byte, v int64, places int, trim bool) []byte {
	if v < 0 {
		b = append(b, '-')
		v = -v
	}
	b = strconv.AppendInt(b, v/1_000_000, 10)
	frac := v % 1_000_000 / pow10[6-places]
	digits := places
	if trim {
		for digits > 0 && frac%10 == 0 {
			frac /= 10
			digits--
		}
	}
	if digits == 0 {
		return b
	}
	b = append(b, '.')
	var buf [6]byte
	for i := digits - 1; i >= 0; i-- {
		buf[i] = byte('0' + frac%10)
		frac /= 10
	}
	return append(b, buf[:digits]...)
}

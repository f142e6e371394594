package meters

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

const goodRead = `{"meter_id":"MTR-000123","channel":"import","start":"2026-11-01T05:00:00Z","interval_seconds":900,` +
	`"values":["0.4215","0.3980",0.4102],"quality":["A","A","E"],"version":2,"source":"headend-east"}`

func TestDecodeReadBlockAccepts(t *testing.T) {
	b, rej := DecodeReadBlock([]byte(goodRead))
	if rej != nil {
		t.Fatalf("rejected: %v", rej)
	}
	want := ReadBlock{
		MeterID: "MTR-000123", Channel: Import,
		Start:           time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC),
		IntervalSeconds: 900,
		Values:          []decimal.Decimal{decimal.RequireFromString("0.4215"), decimal.RequireFromString("0.3980"), decimal.RequireFromString("0.4102")},
		Quality:         []Quality{Actual, Actual, Estimated},
		Version:         2, Source: "headend-east",
	}
	assertBlock(t, b, want)
	// The written scale is kept: "0.3980" is stored as 0.3980.
	if got := b.Values[1].String(); got != "0.398" || b.Values[1].Exponent() != -4 {
		t.Errorf("value 1 = %s exp %d, want 0.3980 at scale 4", got, b.Values[1].Exponent())
	}
}

func TestDecodeReadBlockDefaults(t *testing.T) {
	// An offset is normalised to UTC; optional fields take their defaults,
	// null counts as absent, unknown fields are ignored, the last duplicate
	// key wins and escaped keys and strings are understood.
	in := `{"meter_id":"M\u002d1","start":"2026-11-01t00:00:00-05:00","interval_seconds":3600,"values":[1,"2.5"],` +
		`"quality":null,"extra":{"nested":[1,2,{"x":"]"}]},"source":null,"interval_seconds":300}`
	b, rej := DecodeReadBlock([]byte(in))
	if rej != nil {
		t.Fatalf("rejected: %v", rej)
	}
	assertBlock(t, b, ReadBlock{
		MeterID: "M-1", Channel: Import,
		Start:           time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC),
		IntervalSeconds: 300,
		Values:          []decimal.Decimal{decimal.RequireFromString("1"), decimal.RequireFromString("2.5")},
		Quality:         []Quality{Actual, Actual},
		Version:         1,
	})
	if b.Start.Location() != time.UTC {
		t.Errorf("start location %v, want UTC", b.Start.Location())
	}
}

// TestDecodeReadBlockKeepsNULInSource: a source is free text, U+0000
// included, so the decoder accepts it as it is; a store that cannot hold it
// says unprocessable, after the checks that need state (settlement/ingest/readstore).
// Its other rules still hold, and a raw NUL byte is not JSON.
func TestDecodeReadBlockKeepsNULInSource(t *testing.T) {
	b, rej := DecodeReadBlock([]byte(readWith("source", `"a\u0000b"`)))
	if rej != nil {
		t.Fatalf("rejected: %v", rej)
	}
	if b.Source != "a\x00b" {
		t.Errorf("source %q, want %q", b.Source, "a\x00b")
	}
	for _, tt := range []struct {
		name, raw string
		reason    Reason
	}{
		{"129 characters with a NUL", `"` + strings.Repeat(`\u0000`, MaxSourceChars+1) + `"`, SchemaViolation},
		{"raw NUL byte", "\"a\x00b\"", MalformedJSON},
	} {
		in := strings.Replace(goodRead, `"headend-east"`, tt.raw, 1)
		if _, rej := DecodeReadBlock([]byte(in)); rej == nil || rej.Reason != tt.reason {
			t.Errorf("%s: got %v, want %s", tt.name, rej, tt.reason)
		} else {
			checkRejection(t, []byte(in), rej)
		}
	}
	if _, rej := DecodeReadBlock([]byte(readWith("source", `"`+strings.Repeat(`\u0000`, MaxSourceChars)+`"`))); rej != nil {
		t.Errorf("128 NULs rejected: %v", rej)
	}
}

func assertBlock(t *testing.T, got, want ReadBlock) {
	t.Helper()
	if got.MeterID != want.MeterID || got.Channel != want.Channel || !got.Start.Equal(want.Start) ||
		got.IntervalSeconds != want.IntervalSeconds || got.Version != want.Version || got.Source != want.Source {
		t.Errorf("block = %+v\nwant    %+v", got, want)
	}
	if len(got.Values) != len(want.Values) || len(got.Quality) != len(want.Values) {
		t.Fatalf("values %v quality %v, want %v %v", got.Values, got.Quality, want.Values, want.Quality)
	}
	for i := range want.Values {
		if !got.Values[i].Equal(want.Values[i]) || got.Quality[i] != want.Quality[i] {
			t.Errorf("read %d = %s %s, want %s %s", i, got.Values[i], got.Quality[i], want.Values[i], want.Quality[i])
		}
	}
}

// readWith is goodRead with field set to raw JSON (or removed when raw is "").
func readWith(field, raw string) string {
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal([]byte(goodRead), &m); err != nil {
		panic(err)
	}
	if raw == "" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(raw)
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("%s=%s: %v", field, raw, err))
	}
	return string(b)
}

func TestDecodeReadBlockRejects(t *testing.T) {
	many := `[` + strings.Repeat(`"1",`, MaxBlockValues) + `"1"]`
	tests := []struct {
		name   string
		in     string
		reason Reason
		detail string // a substring of the detail: the field it names
	}{
		{"not json", `{"meter_id":`, MalformedJSON, ""},
		{"array", `[1,2]`, MalformedJSON, "object"},
		{"string", `"x"`, MalformedJSON, "object"},
		{"NaN", `{"values":[NaN]}`, MalformedJSON, ""},
		{"empty", ``, MalformedJSON, ""},
		{"invalid utf8", "{\"meter_id\":\"M\xff\"}", MalformedJSON, "UTF-8"},
		{"invalid utf8 in an ignored field", readWith("extra", "\"\xc3\""), MalformedJSON, "UTF-8"},
		{"missing meter", readWith("meter_id", ""), SchemaViolation, "meter_id"},
		{"null meter", readWith("meter_id", `null`), SchemaViolation, "meter_id"},
		{"bad identifier", readWith("meter_id", `"MTR 1"`), SchemaViolation, "meter_id"},
		{"long identifier", readWith("meter_id", `"`+strings.Repeat("M", 65)+`"`), SchemaViolation, "meter_id"},
		{"numeric meter", readWith("meter_id", `123`), SchemaViolation, "meter_id"},
		{"bad channel", readWith("channel", `"both"`), SchemaViolation, "channel"},
		{"missing start", readWith("start", ""), SchemaViolation, "start"},
		{"bad start", readWith("start", `"2026-11-01 05:00:00"`), SchemaViolation, "start"},
		{"start without zone", readWith("start", `"2026-11-01T05:00:00"`), SchemaViolation, "start"},
		{"one-digit hour", readWith("start", `"2026-11-01T5:00:00Z"`), SchemaViolation, "start"},
		{"comma before the fraction", readWith("start", `"2026-11-01T05:00:00,0Z"`), SchemaViolation, "start"},
		{"empty fraction", readWith("start", `"2026-11-01T05:00:00.Z"`), SchemaViolation, "start"},
		{"one-digit offset", readWith("start", `"2026-11-01T05:00:00+1:00"`), SchemaViolation, "start"},
		{"offset without colon", readWith("start", `"2026-11-01T05:00:00+0100"`), SchemaViolation, "start"},
		{"missing interval", readWith("interval_seconds", ""), SchemaViolation, "interval_seconds"},
		{"string interval", readWith("interval_seconds", `"900"`), SchemaViolation, "interval_seconds"},
		{"fractional interval", readWith("interval_seconds", `900.5`), SchemaViolation, "interval_seconds"},
		{"exponent interval", readWith("interval_seconds", `9e2`), SchemaViolation, "interval_seconds"},
		{"missing values", readWith("values", ""), SchemaViolation, "values"},
		{"empty values", readWith("values", `[]`), SchemaViolation, "values"},
		{"too many values", readWith("values", many), SchemaViolation, "values"},
		{"exponent string", readWith("values", `["1","3E+2","1"]`), SchemaViolation, "values[1]"},
		{"exponent number", readWith("values", `[1,1,6e-05]`), SchemaViolation, "values[2]"},
		{"plus sign", readWith("values", `["+1","1","1"]`), SchemaViolation, "values[0]"},
		{"blank", readWith("values", `[" 1","1","1"]`), SchemaViolation, "values[0]"},
		{"trailing point", readWith("values", `["1.","1","1"]`), SchemaViolation, "values[0]"},
		{"leading point", readWith("values", `[".5","1","1"]`), SchemaViolation, "values[0]"},
		{"empty string", readWith("values", `["","1","1"]`), SchemaViolation, "values[0]"},
		{"bool value", readWith("values", `[true,"1","1"]`), SchemaViolation, "values[0]"},
		{"null value", readWith("values", `[null,"1","1"]`), SchemaViolation, "values[0]"},
		{"bad quality", readWith("quality", `["A","X","A"]`), SchemaViolation, "quality[1]"},
		{"lower quality", readWith("quality", `["A","a","A"]`), SchemaViolation, "quality[1]"},
		{"quality string", readWith("quality", `"AAA"`), SchemaViolation, "quality"},
		{"version zero", readWith("version", `0`), SchemaViolation, "version"},
		{"version negative", readWith("version", `-1`), SchemaViolation, "version"},
		{"version fraction", readWith("version", `1.5`), SchemaViolation, "version"},
		{"version string", readWith("version", `"2"`), SchemaViolation, "version"},
		{"version huge", readWith("version", `99999999999999999999`), SchemaViolation, "version"},
		{"long source", readWith("source", `"`+strings.Repeat("é", MaxSourceChars+1)+`"`), SchemaViolation, "source"},
		{"numeric source", readWith("source", `7`), SchemaViolation, "source"},
		{"unsupported interval", readWith("interval_seconds", `600`), UnsupportedInterval, "600"},
		{"huge interval", readWith("interval_seconds", `99999999999999999999`), UnsupportedInterval, ""},
		{"misaligned", readWith("start", `"2026-11-01T05:05:00Z"`), MisalignedStart, "start"},
		{"fractional second", readWith("start", `"2026-11-01T05:00:00.5Z"`), MisalignedStart, "start"},
		{"a fraction finer than a nanosecond", readWith("start", `"2026-11-01T05:00:00.0000000001Z"`), MisalignedStart, "fraction of a nanosecond"},
		{"negative", readWith("values", `["1","-0.1","1"]`), ValueOutOfRange, "values[1]"},
		{"too large", readWith("values", `["1","1","1000000.000001"]`), ValueOutOfRange, "values[2]"},
		{"too many decimals", readWith("values", `["1","0.1234567","1"]`), TooManyDecimals, "values[1]"},
		{"decimals past zeros", readWith("values", `["1","0.10000001","1"]`), TooManyDecimals, "values[1]"},
		{"quality short", readWith("quality", `["A","A"]`), QualityLengthMismatch, "2"},
		{"quality empty", readWith("quality", `[]`), QualityLengthMismatch, ""},
		// Several faults: the first in the contract's order wins.
		{"schema before interval", `{"meter_id":"M1","start":"2026-11-01T05:05:00Z","interval_seconds":600,"values":["-1"],"version":0}`, SchemaViolation, "version"},
		{"interval before alignment", `{"meter_id":"M1","start":"2026-11-01T05:05:00Z","interval_seconds":600,"values":["-1"]}`, UnsupportedInterval, ""},
		{"alignment before range", `{"meter_id":"M1","start":"2026-11-01T05:05:00Z","interval_seconds":900,"values":["-1"]}`, MisalignedStart, ""},
		{"range before decimals", `{"meter_id":"M1","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["0.1234567","-1"]}`, ValueOutOfRange, "values[1]"},
		{"decimals before quality", `{"meter_id":"M1","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["0.1234567"],"quality":[]}`, TooManyDecimals, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rej := DecodeReadBlock([]byte(tt.in))
			if rej == nil {
				t.Fatalf("accepted %s", tt.in)
			}
			sameWithoutDecimals(t, &Decoder{}, []byte(tt.in))
			if rej.Reason != tt.reason || !strings.Contains(rej.Detail, tt.detail) {
				t.Errorf("got %s %q, want %s naming %q", rej.Reason, rej.Detail, tt.reason, tt.detail)
			}
			checkRejection(t, []byte(tt.in), rej)
		})
	}
}

// now is the wall clock of the start_out_of_range tests.
var now = time.Date(2026, 12, 6, 7, 30, 0, 0, time.UTC)

var fixedNow = Bounds{Now: func() time.Time { return now }}

func TestStartOutOfRange(t *testing.T) {
	at := func(d time.Duration) Bounds { return Bounds{Now: func() time.Time { return now.Add(d) }} }
	block := func(start string, interval, n int) string {
		return fmt.Sprintf(`{"meter_id":"M1","start":%q,"interval_seconds":%d,"values":[%s"1"]}`,
			start, interval, strings.Repeat(`"1",`, n-1))
	}
	price := func(start string) string { return priceWith("start", `"`+start+`"`) }
	for _, tc := range []struct {
		name   string
		bounds Bounds
		read   string // or
		price  string
		detail string // "" = accepted, else a substring of the detail
	}{
		{name: "read ends at now + 15m", bounds: fixedNow, read: block("2026-12-06T07:30:00Z", 900, 1)},
		{name: "read ends 1 s past now + 15m", bounds: at(-time.Second), read: block("2026-12-06T07:30:00Z", 900, 1),
			detail: "start: 2026-12-06T07:30:00Z: the last interval ends 2026-12-06T07:45:00Z, after now + PT15M (2026-12-06T07:44:59Z)"},
		{name: "the last interval counts, not the first", bounds: fixedNow, read: block("2026-12-06T07:00:00Z", 300, 10),
			detail: "ends 2026-12-06T07:50:00Z, after now + PT15M"},
		{name: "configured bound", bounds: Bounds{MaxFuture: time.Hour, Now: fixedNow.Now}, read: block("2026-12-06T07:00:00Z", 300, 10)},
		{name: "configured bound exceeded", bounds: Bounds{MaxFuture: 90 * time.Minute, Now: fixedNow.Now}, read: block("2026-12-06T09:00:00Z", 3600, 1),
			detail: "after now + PT1H30M (2026-12-06T09:00:00Z)"},
		{name: "read at 2000", bounds: fixedNow, read: block("2000-01-01T00:00:00Z", 900, 1)},
		{name: "read ending at 2000", bounds: fixedNow, read: block("1999-12-31T23:45:00Z", 900, 1),
			detail: "start: 1999-12-31T23:45:00Z is before 2000-01-01T00:00:00Z"},
		{name: "year 0", bounds: fixedNow, read: block("0000-01-01T00:00:00+01:00", 3600, 1), detail: "is before 2000"},
		{name: "9999", bounds: fixedNow, read: strings.Replace(block("9999-12-31T20:00:00Z", 900, 16), "M1", "UNKNOWN-9", 1),
			detail: "start: 9999-12-31T20:00:00Z: the last interval ends 10000-01-01T00:00:00Z, after now + PT15M (2026-12-06T07:45:00Z)"},
		{name: "9999, 10,000 hours", bounds: fixedNow, read: block("9999-12-31T00:00:00Z", 3600, MaxBlockValues), detail: "ends 10001-02-19T16:00:00Z"},
		{name: "10,000 values up to now", bounds: fixedNow, read: block(now.Add(-MaxBlockValues*300*time.Second).Format(time.RFC3339), 300, MaxBlockValues)},
		{name: "misaligned first", bounds: fixedNow, read: block("9999-12-31T20:05:00Z", 900, 1), detail: "multiple of 900"},
		{name: "before value_out_of_range", bounds: fixedNow, read: `{"meter_id":"M1","start":"2030-01-01T00:00:00Z","interval_seconds":900,"values":["-1"]}`, detail: "2030"},

		{name: "price at now + 7d - 1s", bounds: at(time.Second), price: price("2026-12-13T07:30:00Z")},
		{name: "price at now + 7d", bounds: fixedNow, price: price("2026-12-13T07:30:00Z"),
			detail: "start: 2026-12-13T07:30:00Z is not before now + P7D (2026-12-13T07:30:00Z)"},
		{name: "configured price bound", bounds: Bounds{MaxFuturePrices: 36 * time.Hour, Now: fixedNow.Now}, price: price("2026-12-07T19:30:00Z"),
			detail: "now + P1DT12H"},
		{name: "price at 2000", bounds: fixedNow, price: price("2000-01-01T00:00:00Z")},
		{name: "price before 2000", bounds: fixedNow, price: price("1999-12-31T23:55:00Z"), detail: "is before 2000-01-01T00:00:00Z"},
		{name: "price in 9999", bounds: fixedNow, price: price("9999-12-31T23:55:00Z"), detail: "9999-12-31T23:55:00Z is not before"},
		{name: "price before value_out_of_range", bounds: fixedNow, price: strings.Replace(price("2099-01-01T00:00:00Z"), `"-12.5"`, `"-1000000.5"`, 1), detail: "2099"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decoder{Bounds: tc.bounds}
			in := tc.read
			var rej *Rejection
			if in != "" {
				_, rej = d.ReadBlock([]byte(in))
			} else {
				in = tc.price
				_, rej = d.Price([]byte(in), "USD")
			}
			switch {
			case tc.detail == "" && rej != nil:
				t.Errorf("rejected %s: %v", in, rej)
			case tc.detail == "":
			case rej == nil:
				t.Errorf("accepted %s", in)
			case rej.Reason != StartOutOfRange && !strings.Contains(tc.detail, "multiple"):
				t.Errorf("got %v, want %s", rej, StartOutOfRange)
			case !strings.Contains(rej.Detail, tc.detail):
				t.Errorf("detail %q, want it to hold %q", rej.Detail, tc.detail)
			}
			if rej != nil {
				checkRejection(t, []byte(in), rej)
			}
		})
	}
}

// TestDetailsAreSafe: however long or strange the value a detail quotes,
// the detail is valid UTF-8 of at most 200 characters with control
// characters escaped, and still names its field.
func TestDetailsAreSafe(t *testing.T) {
	e20 := `"` + strings.Repeat("é", 20) + `"`
	long := strings.Repeat("😀", 5000)
	for _, tc := range []struct {
		name, in, detail string
	}{
		// A channel of 20 × é once cut a detail inside a character: its
		// quarantine insert failed and stopped the partition.
		{"channel of 20 é", readWith("channel", e20), "channel: " + e20},
		{"channel of 21 é", readWith("channel", `"`+strings.Repeat("é", 21)+`"`), "channel: "},
		{"long channel", readWith("channel", `"`+long+`"`), "channel: \"" + strings.Repeat("😀", excerptChars-1) + "…"},
		{"market of 20 é", priceWith("market", e20), "market: " + e20},
		{"long identifier", readWith("meter_id", `"`+long+`"`), "meter_id: \"" + strings.Repeat("😀", excerptChars) + "…\""},
		{"control characters", readWith("values", "[\n\t1,\n\"x\"]"), `values[1]: "x"`},
		{"newlines", strings.Replace(goodRead, `"quality":["A","A","E"]`, "\"quality\":\n\"A\"\n", 1), `quality: "A"`},
		{"newlines inside", strings.Replace(goodRead, `"quality":["A","A","E"]`, "\"quality\":{\n\t\"A\":1}", 1), `quality: {\u000A\u0009"A":1}`},
		{"long number", readWith("values", `["1`+strings.Repeat("0", 100000)+`"]`), "values[0]: 1" + strings.Repeat("0", excerptChars-1) + "…"},
		{"long fraction", priceWith("price", `"0.`+strings.Repeat("1", 100000)+`"`), "price: 0.1"},
		{"escaped value", readWith("channel", `"\u0000\u00e9"`), `channel: "\u0000\u00e9"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rej *Rejection
			if strings.Contains(tc.in, `"market"`) {
				_, rej = DecodePrice([]byte(tc.in), "USD")
			} else {
				_, rej = DecodeReadBlock([]byte(tc.in))
			}
			if rej == nil {
				t.Fatalf("accepted %.100s", tc.in)
			}
			checkRejection(t, []byte(tc.in), rej)
			if !strings.Contains(rej.Detail, tc.detail) {
				t.Errorf("detail %q, want it to hold %q", rej.Detail, tc.detail)
			}
		})
	}
}

// TestDecimalsByValue: trailing zeros do not count as decimal places, for
// reads and prices, as strings and as JSON numbers.
func TestDecimalsByValue(t *testing.T) {
	for _, v := range []string{`"1.0000000"`, `1.0000000`, `"0.1234560000"`, `0.000001000`} {
		b, rej := DecodeReadBlock([]byte(readWith("values", `[`+v+`,1,1]`)))
		if rej != nil {
			t.Errorf("read %s rejected: %v", v, rej)
		} else if want := strings.Trim(v, `"`); !b.Values[0].Equal(decimal.RequireFromString(want)) {
			t.Errorf("read %s decoded as %s", v, b.Values[0])
		}
		p, rej := DecodePrice([]byte(priceWith("price", v)), "USD")
		if rej != nil {
			t.Errorf("price %s rejected: %v", v, rej)
		} else if want := strings.Trim(v, `"`); !p.Price.Equal(decimal.RequireFromString(want)) {
			t.Errorf("price %s decoded as %s", v, p.Price)
		}
	}
	for _, v := range []string{`"1.0000001"`, `1.0000001`, `"0.0000000010"`} {
		if _, rej := DecodeReadBlock([]byte(readWith("values", `[`+v+`,1,1]`))); rej == nil || rej.Reason != TooManyDecimals {
			t.Errorf("read %s: %v, want %s", v, rej, TooManyDecimals)
		}
		if _, rej := DecodePrice([]byte(priceWith("price", v)), "USD"); rej == nil || rej.Reason != TooManyDecimals {
			t.Errorf("price %s: %v, want %s", v, rej, TooManyDecimals)
		}
	}
}

func TestISODuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		15 * time.Minute: "PT15M", 7 * 24 * time.Hour: "P7D", 36 * time.Hour: "P1DT12H",
		time.Second: "PT1S", 1500 * time.Millisecond: "PT1.5S", 0: "PT0S", 366*24*time.Hour + time.Hour + 2*time.Minute + 3*time.Second: "P366DT1H2M3S",
	} {
		if got := isoDuration(d); got != want {
			t.Errorf("isoDuration(%s) = %s, want %s", d, got, want)
		}
	}
}

func TestDecodeReadBlockBounds(t *testing.T) {
	for _, start := range []string{`"2026-11-01T05:00:00.000000000000Z"`, `"2026-11-01t06:00:00+01:00"`, `"2026-11-01T00:00:00.0-05:00"`} {
		if b, rej := DecodeReadBlock([]byte(readWith("start", start))); rej != nil || !b.Start.Equal(time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)) {
			t.Errorf("start %s: %v %v", start, b.Start, rej)
		}
	}
	for _, v := range []string{`"0.1000000"`, `0.123456000`, `"0"`, `"-0"`, `"1000000"`, `"1000000.000000"`, `"0001000000"`, `"0.000001"`, `999999.999999`, `0`} {
		if _, rej := DecodeReadBlock([]byte(readWith("values", `[`+v+`,1,1]`))); rej != nil {
			t.Errorf("%s rejected: %v", v, rej)
		}
	}
	// 10,000 values is the most a block may have.
	max := `[` + strings.Repeat(`"1",`, MaxBlockValues-1) + `"1"]`
	b, rej := DecodeReadBlock([]byte(`{"meter_id":"M","start":"2026-01-01T00:00:00Z","interval_seconds":300,"values":` + max + `}`))
	if rej != nil || len(b.Values) != MaxBlockValues {
		t.Errorf("max block: %d values, %v", len(b.Values), rej)
	}
}

const goodPrice = `{"market":"RT","settlement_point":"HB_NORTH","start":"2026-11-01T05:00:00Z","interval_seconds":300,"price":"-12.5","currency":"USD","version":1}`

func priceWith(field, raw string) string {
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal([]byte(goodPrice), &m); err != nil {
		panic(err)
	}
	if raw == "" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(raw)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestDecodePrice(t *testing.T) {
	p, rej := DecodePrice([]byte(goodPrice), "EUR")
	if rej != nil {
		t.Fatal(rej)
	}
	if p.Market != RealTime || p.SettlementPoint != "HB_NORTH" || !p.Start.Equal(time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)) ||
		p.IntervalSeconds != 300 || p.Price.String() != "-12.5" || p.Currency != "USD" || p.Version != 1 {
		t.Errorf("price = %+v", p)
	}
	p, rej = DecodePrice([]byte(priceWith("currency", "")), "EUR")
	if rej != nil || p.Currency != "EUR" {
		t.Errorf("default currency: %+v %v", p, rej)
	}
	p, rej = DecodePrice([]byte(priceWith("price", `-1000000`)), "USD")
	if rej != nil || !p.Price.Equal(decimal.NewFromInt(-1000000)) {
		t.Errorf("price -1000000 as a number: %+v %v", p, rej)
	}
}

func TestDecodePriceRejects(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		reason Reason
		detail string
	}{
		{"malformed", `{"market":"RT",}`, MalformedJSON, ""},
		{"missing market", priceWith("market", ""), SchemaViolation, "market"},
		{"bad market", priceWith("market", `"ID"`), SchemaViolation, "market"},
		{"bad point", priceWith("settlement_point", `"HB NORTH"`), SchemaViolation, "settlement_point"},
		{"bad start", priceWith("start", `"yesterday"`), SchemaViolation, "start"},
		{"missing price", priceWith("price", ""), SchemaViolation, "price"},
		{"exponent price", priceWith("price", `"-1.2e1"`), SchemaViolation, "price"},
		{"bad currency", priceWith("currency", `"usd"`), SchemaViolation, "currency"},
		{"bad version", priceWith("version", `0`), SchemaViolation, "version"},
		{"1800 not for prices", priceWith("interval_seconds", `1800`), UnsupportedInterval, "1800"},
		{"misaligned", priceWith("start", `"2026-11-01T05:01:00Z"`), MisalignedStart, ""},
		{"out of range", priceWith("price", `"-1000000.5"`), ValueOutOfRange, "price"},
		{"decimals", priceWith("price", `"1.0000001"`), TooManyDecimals, "price"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rej := DecodePrice([]byte(tt.in), "USD")
			if rej == nil {
				t.Fatalf("accepted %s", tt.in)
			}
			if rej.Reason != tt.reason || !strings.Contains(rej.Detail, tt.detail) {
				t.Errorf("got %s %q, want %s naming %q", rej.Reason, rej.Detail, tt.reason, tt.detail)
			}
			checkRejection(t, []byte(tt.in), rej)
		})
	}
}

// sameWithoutDecimals: d with MicroOnly rejects data with the same
// rejection, or accepts the same block without its Values.
func sameWithoutDecimals(t *testing.T, d *Decoder, data []byte) {
	t.Helper()
	b, rej := d.ReadBlock(data)
	micro := *d
	micro.MicroOnly = true
	mb, mrej := micro.ReadBlock(data)
	if !reflect.DeepEqual(mrej, rej) {
		t.Fatalf("without decimals: %v, with: %v", mrej, rej)
	}
	if rej != nil {
		return
	}
	if mb.Values != nil || mb.Len() != b.Len() || !mb.End().Equal(b.End()) {
		t.Fatalf("without decimals: %d values, %d long, ending %s; with: %d long, ending %s",
			len(mb.Values), mb.Len(), mb.End(), b.Len(), b.End())
	}
	mb.Values = b.Values
	if !reflect.DeepEqual(mb, b) {
		t.Fatalf("without decimals: %+v, with: %+v", mb, b)
	}
}

// exactValue parses plain notation independently of the decoder.
func exactValue(s string) (*big.Rat, bool) {
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}

func FuzzDecodeReadBlock(f *testing.F) {
	f.Add([]byte(goodRead))
	f.Add([]byte(readWith("values", `["1e3"]`)))
	f.Add([]byte(`{"meter_id":"a","start":"1970-01-01T00:00:00Z","interval_seconds":300,"values":[0.000001,"1000000"]}`))
	f.Add([]byte(`{"values":[[],{}],"meter_id":"\u0041"}`))
	f.Add([]byte(readWith("channel", `"`+strings.Repeat("é", 20)+`"`)))
	f.Add([]byte(readWith("start", `"9999-12-31T20:00:00Z"`)))
	f.Add([]byte(readWith("source", "\"\xe9\"")))
	d := Decoder{Bounds: fixedNow}
	f.Fuzz(func(t *testing.T, data []byte) {
		sameWithoutDecimals(t, &d, data)
		b, rej := d.ReadBlock(data)
		if rej != nil {
			checkRejection(t, data, rej)
			return
		}
		checkAccepted(t, b)
		// Round trip: the accepted block, written back as JSON strings, decodes
		// to exactly the same block.
		again, rej := d.ReadBlock(encodeBlock(b))
		if rej != nil {
			t.Fatalf("re-encoded block rejected: %v", rej)
		}
		assertBlock(t, again, b)
		for i := range b.Values {
			if again.Values[i].Exponent() != b.Values[i].Exponent() {
				t.Fatalf("value %d scale changed: %s -> %s", i, b.Values[i], again.Values[i])
			}
		}
	})
}

// FuzzDecodeValue checks that every accepted value equals, exactly, the
// number its text denotes.
func FuzzDecodeValue(f *testing.F) {
	for _, s := range []string{"0.4215", "0", "1000000", "000.1", "-0", "1e3", "0.1234567", "12.", "999999.999999"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	d := Decoder{Bounds: fixedNow}
	f.Fuzz(func(t *testing.T, s string, quoted bool) {
		lit := s
		if quoted {
			q, _ := json.Marshal(s)
			lit = string(q)
		}
		in := `{"meter_id":"M","start":"2026-01-01T00:00:00Z","interval_seconds":900,"values":[` + lit + `]}`
		b, rej := d.ReadBlock([]byte(in))
		if rej != nil {
			checkRejection(t, []byte(in), rej)
			return
		}
		checkAccepted(t, b)
		if !quoted {
			if len(b.Values) != 1 {
				return // s was several elements, not one number
			}
			s = strings.Trim(s, " \t\r\n") // JSON whitespace around a number
		}
		want, ok := exactValue(s)
		if !ok {
			t.Fatalf("accepted %q, which is not a number", s)
		}
		if b.Values[0].Rat().Cmp(want) != 0 {
			t.Fatalf("%q decoded as %s", s, b.Values[0])
		}
		if strings.ContainsAny(s, "eE+ ") {
			t.Fatalf("accepted non-plain notation %q", s)
		}
	})
}

func FuzzDecodePrice(f *testing.F) {
	f.Add([]byte(goodPrice))
	f.Add([]byte(priceWith("price", `-0.000001`)))
	f.Add([]byte(priceWith("price", `1.0000000`)))
	f.Add([]byte(priceWith("market", `"`+strings.Repeat("é", 20)+`"`)))
	f.Add([]byte(priceWith("start", `"2026-12-13T07:30:00Z"`)))
	f.Add([]byte(priceWith("start", `"1999-12-31T23:55:00Z"`)))
	d := Decoder{Bounds: fixedNow}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, rej := d.Price(data, "USD")
		if rej != nil {
			checkRejection(t, data, rej)
			return
		}
		if !ValidIdentifier(p.SettlementPoint) || (p.Market != RealTime && p.Market != DayAhead) || p.Version < 1 ||
			p.Price.Abs().GreaterThan(decimal.NewFromInt(1000000)) || p.Price.Exponent() < -MaxDecimals ||
			p.Start.Unix()%int64(p.IntervalSeconds) != 0 || p.Start.Location() != time.UTC || len(p.Currency) != 3 ||
			p.Start.Before(Earliest) || !p.Start.Before(fixedNow.Now().Add(DefaultMaxFuturePrices)) {
			t.Fatalf("accepted an invalid price: %+v", p)
		}
	})
}

// checkRejection checks what every rejection must be, whatever the input:
// a reason of the contract, malformed_json for invalid UTF-8, and a detail
// that is valid UTF-8 of at most MaxDetailChars characters without a raw
// control character.
func checkRejection(t *testing.T, data []byte, rej *Rejection) {
	t.Helper()
	if rej.Reason == "" || rej.Detail == "" {
		t.Fatalf("rejection without reason or detail: %+v", rej)
	}
	if !utf8.Valid(data) && rej.Reason != MalformedJSON {
		t.Fatalf("invalid UTF-8 rejected as %s, want %s", rej.Reason, MalformedJSON)
	}
	if !utf8.ValidString(rej.Detail) || utf8.RuneCountInString(rej.Detail) > MaxDetailChars {
		t.Fatalf("detail %q: not valid UTF-8 of at most %d characters", rej.Detail, MaxDetailChars)
	}
	if i := strings.IndexFunc(rej.Detail, func(r rune) bool { return r < 0x20 }); i >= 0 {
		t.Fatalf("detail %q holds a raw control character", rej.Detail)
	}
}

func checkAccepted(t *testing.T, b ReadBlock) {
	t.Helper()
	end := b.Start.Add(time.Duration(len(b.Values)*b.IntervalSeconds) * time.Second)
	if !ValidIdentifier(b.MeterID) || (b.Channel != Import && b.Channel != Export) || b.Version < 1 ||
		b.Start.Location() != time.UTC || b.Start.Nanosecond() != 0 || floorMod(b.Start.Unix(), int64(b.IntervalSeconds)) != 0 ||
		len(b.Values) == 0 || len(b.Values) > MaxBlockValues || len(b.Quality) != len(b.Values) ||
		b.Start.Before(Earliest) || end.After(fixedNow.Now().Add(DefaultMaxFuture)) {
		t.Fatalf("accepted an invalid block: %+v", b)
	}
	for i, v := range b.Values {
		if v.Sign() < 0 || v.GreaterThan(decimal.NewFromInt(1000000)) || v.Exponent() < -MaxDecimals {
			t.Fatalf("accepted value %d = %s", i, v)
		}
		if len(b.Micro) != len(b.Values) || !decimal.New(b.Micro[i], -MaxDecimals).Equal(v) {
			t.Fatalf("value %d = %s, in micro-kWh %v", i, v, b.Micro)
		}
		switch b.Quality[i] {
		case Actual, Estimated, Substituted:
		default:
			t.Fatalf("accepted quality %q", b.Quality[i])
		}
	}
}

func encodeBlock(b ReadBlock) []byte {
	vals := make([]string, len(b.Values))
	for i, v := range b.Values {
		vals[i] = v.StringFixed(-v.Exponent())
	}
	out, _ := json.Marshal(map[string]any{
		"meter_id": b.MeterID, "channel": b.Channel, "start": b.Start.Format(time.RFC3339Nano),
		"interval_seconds": b.IntervalSeconds, "values": vals, "quality": b.Quality,
		"version": b.Version, "source": b.Source,
	})
	return out
}

func BenchmarkDecodeReadBlock(b *testing.B) {
	in := []byte(`{"meter_id":"MTR-000123","channel":"import","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["0.4215","0.3980","0.4102","0.4215","0.3980","0.4102","0.4215","0.3980","0.4102","0.4215","0.3980","0.4102","0.4215","0.3980","0.4102","0.5"],"quality":["A","A","E","A","A","E","A","A","E","A","A","E","A","A","E","A"],"version":1,"source":"headend-east"}`)
	var d Decoder
	b.ReportAllocs()
	for b.Loop() {
		if _, rej := d.ReadBlock(in); rej != nil {
			b.Fatal(rej)
		}
	}
}

// TestLongestPrice: LongestPrice is the longest interval a price may have.
func TestLongestPrice(t *testing.T) {
	if got := time.Duration(slices.Max(PriceIntervals)) * time.Second; got != LongestPrice {
		t.Fatalf("longest of PriceIntervals %s, LongestPrice %s", got, LongestPrice)
	}
}

// identifierSpec is the contract's identifier rule as written:
// [A-Za-z0-9._:-]{1,64}.
var identifierSpec = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// FuzzValidIdentifier holds ValidIdentifier, the one identifier rule (read
// and price records, the registry's CSV and JSON rows, the API's path and
// query parameters, the bridge and Green Button keys), to the rule as the
// contract writes it.
func FuzzValidIdentifier(f *testing.F) {
	for _, s := range []string{"", "MTR-000123", "HB_NORTH", "a:b.c", "QSE D", "é", strings.Repeat("x", 64),
		strings.Repeat("x", 65), "M\n", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidIdentifier(s), identifierSpec.MatchString(s); got != want {
			t.Fatalf("ValidIdentifier(%q) = %t, want %t", s, got, want)
		}
	})
}

// plainDecimal is plain notation as ParseDecimal's contract writes it.
var plainDecimal = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)

// FuzzParseDecimal holds ParseDecimal, the one parser of decimals given as
// text, to its rule computed another way: plain notation only, at most
// places decimal places by value (trailing zeros do not count), the same
// value back, its written scale kept up to places. AtMostDecimals, the rule
// for decimals that did not come from text, agrees.
func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"0", "12.5", "1.5000000", "1.0000001", "-0.000001", "2.", ".5", "1e3", "+1", " 1",
		"0.1000000000000000055511151231257827", "007.10", "-0", "99999999999999999999.1"} {
		f.Add(s, 6)
	}
	f.Add("1.50", 0)
	f.Fuzz(func(t *testing.T, s string, places int) {
		if places < 0 || places > 40 || len(s) > 200 {
			return
		}
		d, err := ParseDecimal(s, places)
		if !plainDecimal.MatchString(s) {
			if !errors.Is(err, ErrNotDecimal) {
				t.Fatalf("ParseDecimal(%q) = %s, %v; want ErrNotDecimal", s, d, err)
			}
			return
		}
		want := decimal.RequireFromString(s)
		byValue := want.Equal(want.Truncate(int32(places)))
		if byValue != AtMostDecimals(want, int32(places)) {
			t.Fatalf("AtMostDecimals(%s, %d) = %t", want, places, !byValue)
		}
		if !byValue {
			if !errors.Is(err, ErrTooManyDecimals) {
				t.Fatalf("ParseDecimal(%q, %d) = %s, %v; want ErrTooManyDecimals", s, places, d, err)
			}
			return
		}
		if err != nil || !d.Equal(want) {
			t.Fatalf("ParseDecimal(%q, %d) = %s, %v", s, places, d, err)
		}
		if written := min(int32(places), max(0, -want.Exponent())); -d.Exponent() != written {
			t.Fatalf("ParseDecimal(%q, %d) = %s: %d places, want %d", s, places, d, -d.Exponent(), written)
		}
	})
}

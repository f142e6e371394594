package oracle

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// validationFixture has M1 (15-minute import reads at 15:00Z and 15:15Z),
// M2 (assigned from 16:00Z), HB_NORTH real-time 5-minute and day-ahead
// hourly prices.
func validationFixture(t *testing.T) *fixture {
	f := newFixture(t, 900, []string{"ACC-1,One,,,false"}, []string{
		"M1,ACC-1,RETAILER-A,HB_NORTH,1.000000," + always + ",",
		"M2,ACC-1,RETAILER-A,HB_NORTH,1.000000,2026-10-31T16:00:00Z,",
	})
	f.add(readsTopic, 0, `{"meter_id":"M1","start":"2026-10-31T15:00:00Z","interval_seconds":900,"values":["0.5","0.6"],"quality":["A","E"]}`)
	f.add(pricesTopic, 0, `{"market":"RT","settlement_point":"HB_NORTH","start":"2026-10-31T15:00:00Z","interval_seconds":300,"price":"30"}`)
	f.add(pricesTopic, 0, `{"market":"DA","settlement_point":"HB_NORTH","start":"2026-10-31T15:00:00Z","interval_seconds":3600,"price":"25","currency":"USD"}`)
	return f
}

func TestValidationReasons(t *testing.T) {
	read := func(fields string) string {
		return `{"meter_id":"M1","start":"2026-10-31T15:00:00Z","interval_seconds":900,` + fields + `}`
	}
	at := func(start, fields string) string {
		return `{"meter_id":"M1","start":"` + start + `","interval_seconds":900,` + fields + `}`
	}
	price := func(fields string) string {
		return `{"market":"RT","settlement_point":"HB_NORTH","start":"2026-10-31T15:00:00Z","interval_seconds":300,` + fields + `}`
	}
	for _, c := range []struct {
		name, topic, value, reason string
	}{
		{"not json", readsTopic, `meter M1`, MalformedJSON},
		{"array", readsTopic, `["M1",900]`, MalformedJSON},
		{"string", readsTopic, `"M1"`, MalformedJSON},
		{"null", readsTopic, `null`, MalformedJSON},
		{"empty", readsTopic, ``, MalformedJSON},
		{"not UTF-8", readsTopic, read(`"values":["0.5"],"source":"caf` + "\xe9" + `"`), MalformedJSON},
		{"not UTF-8 in an unknown member", readsTopic, read(`"values":["0.5"],"x":"` + "\xc3" + `"`), MalformedJSON},
		{"escaped lone surrogate is UTF-8", readsTopic, at("2026-10-31T16:30:00Z", `"values":["0.5"],"source":"\ud800"`), ""},
		{"NaN", readsTopic, read(`"values":[NaN]`), MalformedJSON},
		{"Infinity", readsTopic, read(`"values":[Infinity]`), MalformedJSON},
		{"trailing garbage", readsTopic, read(`"values":["0.5"]`) + ` x`, MalformedJSON},
		{"missing meter_id", readsTopic, `{"start":"2026-10-31T15:00:00Z","interval_seconds":900,"values":["0.5"]}`, SchemaViolation},
		{"member names are case-sensitive", readsTopic, strings.Replace(read(`"values":["0.5"]`), "meter_id", "Meter_ID", 1), SchemaViolation},
		{"null meter_id", readsTopic, strings.Replace(read(`"values":["0.5"]`), `"M1"`, `null`, 1), SchemaViolation},
		{"numeric meter_id", readsTopic, strings.Replace(read(`"values":["0.5"]`), `"M1"`, `1`, 1), SchemaViolation},
		{"empty identifier", readsTopic, strings.Replace(read(`"values":["0.5"]`), `"M1"`, `""`, 1), SchemaViolation},
		{"65-character identifier", readsTopic, strings.Replace(read(`"values":["0.5"]`), `"M1"`, `"`+strings.Repeat("M", 65)+`"`, 1), SchemaViolation},
		{"space in identifier", readsTopic, strings.Replace(read(`"values":["0.5"]`), `"M1"`, `"M 1"`, 1), SchemaViolation},
		{"channel", readsTopic, read(`"channel":"both","values":["0.5"]`), SchemaViolation},
		{"start without zone", readsTopic, at("2026-10-31T15:00:00", `"values":["0.5"]`), SchemaViolation},
		{"start with a space", readsTopic, at("2026-10-31 15:00:00Z", `"values":["0.5"]`), SchemaViolation},
		{"start month 13", readsTopic, at("2026-13-31T15:00:00Z", `"values":["0.5"]`), SchemaViolation},
		{"start as a number", readsTopic, strings.Replace(read(`"values":["0.5"]`), `"2026-10-31T15:00:00Z"`, `1793458800`, 1), SchemaViolation},
		{"interval as a string", readsTopic, strings.Replace(read(`"values":["0.5"]`), `900`, `"900"`, 1), SchemaViolation},
		{"interval with a fraction", readsTopic, strings.Replace(read(`"values":["0.5"]`), `900`, `900.0`, 1), SchemaViolation},
		{"interval in exponent notation", readsTopic, strings.Replace(read(`"values":["0.5"]`), `900`, `9e2`, 1), SchemaViolation},
		{"values not an array", readsTopic, read(`"values":"0.5"`), SchemaViolation},
		{"no values", readsTopic, read(`"values":[]`), SchemaViolation},
		{"too many values", readsTopic, read(`"values":["0"` + strings.Repeat(`,"0"`, 10_000) + `]`), SchemaViolation},
		{"exponent string", readsTopic, read(`"values":["3E+2"]`), SchemaViolation},
		{"exponent number", readsTopic, read(`"values":[6e-05]`), SchemaViolation},
		{"plus sign", readsTopic, read(`"values":["+1"]`), SchemaViolation},
		{"no leading digit", readsTopic, read(`"values":[".5"]`), SchemaViolation},
		{"trailing space", readsTopic, read(`"values":["0.5 "]`), SchemaViolation},
		{"boolean value", readsTopic, read(`"values":[true]`), SchemaViolation},
		{"null value", readsTopic, read(`"values":[null]`), SchemaViolation},
		{"quality code", readsTopic, read(`"values":["0.5","0.6"],"quality":["A","Q"]`), SchemaViolation},
		{"quality code before its length", readsTopic, read(`"values":["0.5","0.6"],"quality":["Q"]`), SchemaViolation},
		{"quality not an array", readsTopic, read(`"values":["0.5"],"quality":"A"`), SchemaViolation},
		{"version 0", readsTopic, read(`"values":["0.5"],"version":0`), SchemaViolation},
		{"version as a string", readsTopic, read(`"values":["0.5"],"version":"2"`), SchemaViolation},
		{"version with a fraction", readsTopic, read(`"values":["0.5"],"version":2.0`), SchemaViolation},
		{"source of 129 characters", readsTopic, read(`"values":["0.5"],"source":"` + strings.Repeat("é", 129) + `"`), SchemaViolation},
		{"source of 128 characters", readsTopic, read(`"values":["0.5","0.6"],"quality":["A","E"],"source":"` + strings.Repeat("é", 128) + `"`), ""},
		{"schema before interval", readsTopic, strings.Replace(read(`"values":["3E+2"]`), `900`, `600`, 1), SchemaViolation},
		{"600 seconds", readsTopic, strings.Replace(read(`"values":["0.5"]`), `900`, `600`, 1), UnsupportedInterval},
		{"negative interval", readsTopic, strings.Replace(read(`"values":["0.5"]`), `900`, `-900`, 1), UnsupportedInterval},
		{"misaligned", readsTopic, at("2026-10-31T15:05:00Z", `"values":["0.5"]`), MisalignedStart},
		{"fractional second", readsTopic, at("2026-10-31T15:00:00.5Z", `"values":["0.5"]`), MisalignedStart},
		{"a fraction finer than a nanosecond", readsTopic, at("2026-10-31T15:00:00.0000000001Z", `"values":["0.5"]`), MisalignedStart},
		{"one-digit hour", readsTopic, at("2026-10-31T5:00:00Z", `"values":["0.5"]`), SchemaViolation},
		{"comma before the fraction", readsTopic, at("2026-10-31T15:00:00,0Z", `"values":["0.5"]`), SchemaViolation},
		{"zero fraction is aligned", readsTopic, at("2026-10-31T15:00:00.000Z", `"values":["0.5","0.6"],"quality":["A","E"]`), ""},
		{"lower-case t and z", readsTopic, at("2026-10-31t15:00:00z", `"values":["0.5","0.6"],"quality":["A","E"]`), ""},
		{"offset", readsTopic, at("2026-10-31T10:00:00-05:00", `"values":["0.5","0.6"],"quality":["A","E"]`), ""},
		{"misaligned before range", readsTopic, at("2026-10-31T15:05:00Z", `"values":["-1"]`), MisalignedStart},
		{"negative", readsTopic, read(`"values":["0.5","-0.001"]`), ValueOutOfRange},
		{"above a million", readsTopic, at("2026-10-31T16:30:00Z", `"values":["1000000.000001"]`), ValueOutOfRange},
		{"a million", readsTopic, at("2026-10-31T16:30:00Z", `"values":["1000000"]`), ""},
		{"range before decimals", readsTopic, read(`"values":["0.1234567","-0.5"]`), ValueOutOfRange},
		{"seven decimals", readsTopic, read(`"values":["0.1234567"]`), TooManyDecimals},
		{"seven decimals, trailing zeros", readsTopic, at("2026-10-31T16:30:00Z", `"values":["1.0000000"]`), ""},
		{"seven decimals, trailing zeros, as a number", readsTopic, at("2026-10-31T16:30:00Z", `"values":[0.1234560]`), ""},
		{"decimals past zeros", readsTopic, read(`"values":["0.10000001"]`), TooManyDecimals},
		{"seven decimals as a number", readsTopic, read(`"values":[0.1234567]`), TooManyDecimals},
		{"quality length", readsTopic, read(`"values":["0.5","0.6"],"quality":["A"]`), QualityLengthMismatch},
		{"quality length before the registry", readsTopic, strings.Replace(read(`"values":["0.5","0.6"],"quality":["A"]`), `"M1"`, `"M9"`, 1), QualityLengthMismatch},
		{"unknown meter", readsTopic, strings.Replace(read(`"values":["0.5"]`), `"M1"`, `"M9"`, 1), UnknownMeter},
		{"partly assigned", readsTopic, `{"meter_id":"M2","start":"2026-10-31T15:45:00Z","interval_seconds":900,"values":["1","1"]}`, UnknownMeter},
		{"other length", readsTopic, strings.Replace(read(`"values":["0.5"]`), `900`, `300`, 1), IntervalLengthMismatch},
		{"other channel, own length", readsTopic, strings.Replace(read(`"channel":"export","values":["0.5"]`), `900`, `300`, 1), ""},
		{"conflicting value", readsTopic, read(`"values":["0.5","0.7"],"quality":["A","E"]`), ConflictingDuplicate},
		{"conflicting quality", readsTopic, read(`"values":["0.5","0.6"]`), ConflictingDuplicate},
		{"equal values written differently", readsTopic, read(`"values":["0.50",0.600],"quality":["A","E"],"version":1`), ""},
		{"nulls and unknown fields", readsTopic, read(`"values":["0.5","0.6"],"quality":["A","E"],"channel":null,"version":null,"source":null,"extra":{"a":1}`), ""},
		{"correction", readsTopic, read(`"values":["0.5","0.7"],"version":2`), ""},
		// U+0000 in a source: every other reason first, then unprocessable.
		{"NUL source", readsTopic, at("2026-10-31T16:30:00Z", `"values":["0.5"],"source":"head\u0000end"`), Unprocessable},
		{"NUL source, resend", readsTopic, read(`"values":["0.5","0.6"],"quality":["A","E"],"source":"\u0000"`), Unprocessable},
		{"NUL source, unknown meter", readsTopic, strings.Replace(read(`"values":["0.5"],"source":"\u0000"`), `"M1"`, `"M9"`, 1), UnknownMeter},
		{"NUL source, other length", readsTopic, strings.Replace(read(`"values":["0.5"],"source":"\u0000"`), `900`, `300`, 1), IntervalLengthMismatch},
		{"NUL source, conflicting", readsTopic, read(`"values":["0.5","0.7"],"quality":["A","E"],"source":"\u0000"`), ConflictingDuplicate},
		{"NUL source, 129 characters", readsTopic, read(`"values":["0.5"],"source":"` + strings.Repeat(`\u0000`, 129) + `"`), SchemaViolation},
		{"raw NUL in source", readsTopic, read(`"values":["0.5"],"source":"a` + "\x00" + `b"`), MalformedJSON},
		{"source U+0001", readsTopic, at("2026-10-31T16:30:00Z", `"values":["0.5"],"source":"\u0001"`), ""},

		{"price NaN", pricesTopic, price(`"price":NaN`), MalformedJSON},
		{"no market", pricesTopic, `{"settlement_point":"HB_NORTH","start":"2026-10-31T15:00:00Z","interval_seconds":300,"price":"30"}`, SchemaViolation},
		{"intraday market", pricesTopic, strings.Replace(price(`"price":"30"`), `"RT"`, `"ID"`, 1), SchemaViolation},
		{"bad point", pricesTopic, strings.Replace(price(`"price":"30"`), `"HB_NORTH"`, `"HB NORTH"`, 1), SchemaViolation},
		{"no price", pricesTopic, price(`"currency":"USD"`), SchemaViolation},
		{"price exponent", pricesTopic, price(`"price":1.5E3`), SchemaViolation},
		{"price exponent string", pricesTopic, price(`"price":"1e3"`), SchemaViolation},
		{"lower-case currency", pricesTopic, price(`"price":"30","currency":"usd"`), SchemaViolation},
		{"numeric currency", pricesTopic, price(`"price":"30","currency":840`), SchemaViolation},
		{"price version 0", pricesTopic, price(`"price":"30","version":0`), SchemaViolation},
		{"30-minute price", pricesTopic, strings.Replace(price(`"price":"30"`), `300`, `1800`, 1), UnsupportedInterval},
		{"misaligned price", pricesTopic, strings.Replace(price(`"price":"30"`), `15:00:00Z`, `15:02:30Z`, 1), MisalignedStart},
		{"price below -1e6", pricesTopic, price(`"price":"-1000000.01"`), ValueOutOfRange},
		{"price -1e6", pricesTopic, strings.Replace(price(`"price":"-1000000"`), `15:00:00Z`, `15:05:00Z`, 1), ""},
		{"price decimals", pricesTopic, price(`"price":"30.1234567"`), TooManyDecimals},
		{"price decimals as a number", pricesTopic, price(`"price":30.1234567`), TooManyDecimals},
		{"price trailing zeros", pricesTopic, strings.Replace(price(`"price":30.0000000`), `15:00:00Z`, `15:05:00Z`, 1), ""},
		{"price trailing zeros as a string", pricesTopic, strings.Replace(price(`"price":"-30.10000000"`), `15:00:00Z`, `15:05:00Z`, 1), ""},
		{"unknown point", pricesTopic, strings.Replace(price(`"price":"30","currency":"EUR"`), `"HB_NORTH"`, `"HB_SOUTH"`, 1), UnknownSettlementPoint},
		{"currency", pricesTopic, price(`"price":"30","currency":"EUR"`), CurrencyMismatch},
		{"market currency", pricesTopic, price(`"price":"30","currency":"USD"`), ""},
		{"price length", pricesTopic, strings.Replace(price(`"price":"30"`), `300`, `900`, 1), IntervalLengthMismatch},
		{"day-ahead length", pricesTopic, `{"market":"DA","settlement_point":"HB_NORTH","start":"2026-10-31T15:00:00Z","interval_seconds":900,"price":"30"}`, IntervalLengthMismatch},
		{"first day-ahead length of a point", pricesTopic, `{"market":"DA","settlement_point":"LZ_WEST","start":"2026-10-31T15:00:00Z","interval_seconds":900,"price":"30"}`, ""},
		{"conflicting price", pricesTopic, price(`"price":"31","version":1`), ConflictingDuplicate},
		{"equal price", pricesTopic, price(`"price":30.000`), ""},
		{"price correction", pricesTopic, price(`"price":"31","version":2`), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := validationFixture(t)
			pos := f.add(c.topic, 0, c.value)
			q := f.ingest().Quarantine[pos]
			if q.Reason != c.reason {
				t.Errorf("reason %q (%s), want %q", q.Reason, q.Detail, c.reason)
			}
		})
	}
}

// TestStartOutOfRange: reads end by now + PT15M, prices start before
// now + P7D, everything starts in 2000 or later; start_out_of_range comes
// after misaligned_start and before every later reason.
func TestStartOutOfRange(t *testing.T) {
	read := func(meter, start string, length, n int) string {
		return fmt.Sprintf(`{"meter_id":%q,"start":%q,"interval_seconds":%d,"values":[%s"1"]}`,
			meter, start, length, strings.Repeat(`"1",`, n-1))
	}
	price := func(start, rest string) string {
		return `{"market":"DA","settlement_point":"HB_NORTH","start":"` + start + `","interval_seconds":3600,` + rest + `}`
	}
	for _, c := range []struct {
		name   string
		now    time.Duration // the clock, from fixtureNow
		topic  string
		value  string
		reason string
	}{
		{"read ends at now + 15m", 0, readsTopic, read("M1", "2026-12-06T07:30:00Z", 900, 1), ""},
		{"read ends 1 s past now + 15m", -time.Second, readsTopic, read("M1", "2026-12-06T07:30:00Z", 900, 1), StartOutOfRange},
		{"the last interval counts", 0, readsTopic, read("M1", "2026-12-06T07:00:00Z", 300, 10), StartOutOfRange},
		{"10,000 values up to now", 0, readsTopic, strings.Replace(read("M1", "2026-11-01T14:10:00Z", 300, 10_000), `"M1"`, `"M1","channel":"export"`, 1), ""},
		{"read at 2000, unknown meter", 0, readsTopic, read("M9", "2000-01-01T00:00:00Z", 900, 1), UnknownMeter},
		{"read before 2000", 0, readsTopic, read("M1", "1999-12-31T23:45:00Z", 900, 1), StartOutOfRange},
		{"read before 2000 by its offset", 0, readsTopic, read("M1", "2000-01-01T00:30:00+01:00", 900, 1), StartOutOfRange},
		{"9999, unknown meter", 0, readsTopic, read("M9", "9999-12-31T20:00:00Z", 900, 16), StartOutOfRange},
		{"9999, 10,000 hours", 0, readsTopic, read("M1", "9999-12-31T00:00:00Z", 3600, 10_000), StartOutOfRange},
		{"misaligned first", 0, readsTopic, read("M1", "9999-12-31T20:05:00Z", 900, 1), MisalignedStart},
		{"before value_out_of_range", 0, readsTopic, `{"meter_id":"M1","start":"2030-01-01T00:00:00Z","interval_seconds":900,"values":["-1"]}`, StartOutOfRange},
		{"price at now + 7d - 1s", time.Second, pricesTopic, price("2026-12-13T07:00:00Z", `"price":"30"`), ""},
		{"price at now + 7d", 30 * time.Minute, pricesTopic, price("2026-12-13T08:00:00Z", `"price":"30"`), StartOutOfRange},
		{"price before 2000", 0, pricesTopic, price("1999-12-31T23:00:00Z", `"price":"30"`), StartOutOfRange},
		{"price in 9999, before value_out_of_range", 0, pricesTopic, price("9999-12-31T23:00:00Z", `"price":"-1000000.5"`), StartOutOfRange},
		{"price in 9999, unknown point", 0, pricesTopic, strings.Replace(price("9999-12-31T23:00:00Z", `"price":"1"`), "HB_NORTH", "HB_SOUTH", 1), StartOutOfRange},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := validationFixture(t)
			f.o.m.Now = fixtureNow.Add(c.now)
			pos := f.add(c.topic, 0, c.value)
			q := f.ingest().Quarantine[pos]
			if q.Reason != c.reason {
				t.Errorf("reason %q (%s), want %q", q.Reason, q.Detail, c.reason)
			}
		})
	}
}

func TestVersioning(t *testing.T) {
	f := validationFixture(t)
	v1 := `{"meter_id":"M1","start":"2026-10-31T15:00:00Z","interval_seconds":900,"values":["0.5","0.6"],"quality":["A","E"]}`
	f.add(readsTopic, 0, v1) // resend: two duplicate reads
	v2 := f.add(readsTopic, 0, `{"meter_id":"M1","start":"2026-10-31T15:15:00Z","interval_seconds":900,"values":["0.9","1.1"],"version":2}`)
	f.add(readsTopic, 0, v1) // 15:00 a duplicate, 15:15 stale
	s := f.ingest()
	eq(t, "counts", s.Counts, Counts{ReadsApplied: 4, ReadsStale: 1, ReadsDuplicate: 3, PricesApplied: 2})
	r := s.Reads[ReadKey{"M1", "import", mustTime(t, "2026-10-31T15:15:00Z").Unix()}]
	eq(t, "current", r.Value.String()+" "+r.Quality, "0.9 A")
	eq(t, "version", r.Version, 2)
	eq(t, "position", r.Position, v2)
	eq(t, "reads on the day", len(s.ReadsOn("2026-10-31")), 3)
	eq(t, "days", s.Days(), []string{"2026-10-31"})
}

func TestSnapshotAndDuplicateOffsets(t *testing.T) {
	f := validationFixture(t)
	snap := f.snapshot()
	f.add(readsTopic, 0, `{"meter_id":"M1","start":"2026-10-31T16:00:00Z","interval_seconds":900,"values":["1"]}`)
	s, err := f.o.Ingest(f.log, snap)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "reads before the snapshot", len(s.Reads), 2)
	s, err = f.o.Ingest(f.log, Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "reads of an empty snapshot", len(s.Reads), 0)
	if _, err := f.o.Ingest(append(f.log, f.log[0]), nil); err == nil {
		t.Error("an offset given twice: no error")
	}
	if _, err := f.o.Ingest(append(f.log, Input{Topic: "other"}), nil); err == nil {
		t.Error("a record of another topic: no error")
	}
}

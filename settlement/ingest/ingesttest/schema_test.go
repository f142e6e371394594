package ingesttest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/kafka/schemas"
)

// agreement compares the decoder's verdict on one input record with its
// schema's (meters/README.md "Schemas and CloudEvents"): a record valid against
// the schema is neither malformed_json nor schema_violation, except an
// integer field written with a fraction or an exponent; and conversely a
// record the decoder accepts, or refuses for a reason after the schema's,
// is valid, except a decimal given as a JSON number (the schema takes
// strings only), an interval the schema's enum already refuses, and a
// start with a UTC offset of 24 hours, which RFC 3339 (and so the schema)
// refuses but both decoders (Go's time.Parse) take. It returns "" or what
// disagrees.
type agreement struct {
	v    *schemas.Validator
	dec  meters.Decoder
	seen map[string]int // outcomes, to show the test saw each kind
}

func (a *agreement) check(topic string, value []byte) string {
	var (
		name string
		rej  *meters.Rejection
	)
	if topic == kafka.DefaultTopics().Reads {
		name = meters.ReadsSchema
		_, rej = a.dec.ReadBlock(value)
	} else {
		name = meters.PricesSchema
		_, rej = a.dec.Price(value, "USD")
	}
	verr := a.v.Value(name, value)
	valid := verr == nil
	structural := rej != nil && (rej.Reason == meters.MalformedJSON || rej.Reason == meters.SchemaViolation)
	intFrac, numDecimal, offset24 := exceptions(value)
	switch {
	case valid && structural && !intFrac:
		return "valid against " + name + " but " + string(rej.Reason) + ": " + rej.Detail
	case valid && structural:
		a.seen["integer written with a fraction or exponent"]++
	case !valid && !structural && offset24:
		a.seen["offset of 24 hours"]++
	case !valid && !structural && !numDecimal && (rej == nil || rej.Reason != meters.UnsupportedInterval):
		verdict := "accepted"
		if rej != nil {
			verdict = string(rej.Reason)
		}
		return verdict + " by the decoder but invalid against " + name + ": " + verr.Error()
	case !valid && !structural && numDecimal:
		a.seen["decimal as a JSON number"]++
	case !valid:
		a.seen["both refuse"]++
	default:
		a.seen["both accept"]++
	}
	return ""
}

// exceptions reports the two departures meters/README.md names: an integer
// field (interval_seconds, version) written with a fraction or an exponent,
// and a decimal (values, price) given as a JSON number; and a start whose
// offset is 24 hours.
func exceptions(value []byte) (intFrac, numDecimal, offset24 bool) {
	d := json.NewDecoder(bytes.NewReader(value))
	d.UseNumber()
	var m map[string]any
	if d.Decode(&m) != nil {
		return false, false, false
	}
	if s, ok := m["start"].(string); ok {
		offset24 = len(s) > 6 && (s[len(s)-6] == '+' || s[len(s)-6] == '-') && s[len(s)-5:len(s)-3] == "24"
	}
	for _, k := range []string{"interval_seconds", "version"} {
		if n, ok := m[k].(json.Number); ok && strings.ContainsAny(string(n), ".eE") {
			intFrac = true
		}
	}
	if _, ok := m["price"].(json.Number); ok {
		numDecimal = true
	}
	if vs, ok := m["values"].([]any); ok {
		for _, v := range vs {
			if _, ok := v.(json.Number); ok {
				numDecimal = true
			}
		}
	}
	return intFrac, numDecimal, offset24
}

func newAgreement(t testing.TB) *agreement {
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	return &agreement{v: v, seen: map[string]int{}}
}

// extraCases are records the suite does not hold that sit on the line
// between the schema and the decoder.
var extraCases = []struct{ topic, value string }{
	{"r", `{"meter_id":"M1","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["1"],"channel":null,"quality":null,"version":null,"source":null}`},
	{"r", `{"meter_id":"M1","start":"2026-11-01t05:00:00z","interval_seconds":900,"values":["1"]}`},
	{"r", `{"meter_id":"M1","start":"2026-11-01T05:00:00.000000000001+01:00","interval_seconds":900,"values":["1"]}`},
	{"r", `{"meter_id":"M1","start":"2026-02-30T05:00:00Z","interval_seconds":900,"values":["1"]}`},
	{"r", `{"meter_id":"M1","start":"2026-12-31T23:59:60Z","interval_seconds":900,"values":["1"]}`},
	{"r", `{"meter_id":"M1","start":"2026-11-01T24:00:00Z","interval_seconds":900,"values":["1"]}`},
	{"r", `{"meter_id":"M1","start":"2026-11-01T05:00:00+24:00","interval_seconds":900,"values":["1"]}`},
	{"r", `{"meter_id":"M1","start":"2026-11-01T5:00:00Z","interval_seconds":900,"values":["1"]}`},
	{"r", `{"meter_id":"M1","start":"2026-11-01T05:00:00,5Z","interval_seconds":900,"values":["1"]}`},
	{"r", `{"meter_id":"M1","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["1."]}`},
	{"r", `{"meter_id":"M1","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":[".5"]}`},
	{"r", `{"meter_id":"M1","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["1"],"quality":["A","X"]}`},
	{"r", `{"meter_id":"M1","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["1"],"source":"` + strings.Repeat("é", 129) + `"}`},
	{"r", `{"meter_id":"` + strings.Repeat("M", 65) + `","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["1"]}`},
	{"r", `{"meter_id":"M\u00e9","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["1"]}`},
	{"r", `{"meter_id":"M1","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["1"],"version":9223372036854775808}`},
	{"r", `{"meter_id":"M1","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["1"],"version":2.0}`},
	{"p", `{"market":"RT","settlement_point":"HB_NORTH","start":"2026-11-01T05:00:00Z","interval_seconds":3600,"price":"1","currency":null}`},
	{"p", `{"market":"RT","settlement_point":"HB_NORTH","start":"2026-11-01T05:00:00Z","interval_seconds":3600,"price":"1","currency":"usd"}`},
	{"p", `{"market":"rt","settlement_point":"HB_NORTH","start":"2026-11-01T05:00:00Z","interval_seconds":3600,"price":"1"}`},
	{"p", `{"market":"RT","settlement_point":"HB_NORTH","start":"2026-11-01T05:00:00Z","interval_seconds":36E2,"price":"1"}`},
	{"p", `{"market":"RT","settlement_point":"HB_NORTH","start":"2026-11-01T05:00:00Z","interval_seconds":3600,"price":-1.5}`},
	{"p", `{"market":"RT","settlement_point":"HB_NORTH","start":"2026-11-01T05:00:00Z","interval_seconds":3600,"price":null}`},
}

func topicOf(short string) string {
	if short == "r" {
		return kafka.DefaultTopics().Reads
	}
	return kafka.DefaultTopics().Prices
}

// TestSchemasAgreeWithTheDecoder runs every record of the hostile suite, and
// records on the line between the two, through both.
func TestSchemasAgreeWithTheDecoder(t *testing.T) {
	a := newAgreement(t)
	topics := kafka.DefaultTopics()
	for _, c := range New(topics, time.Now(), 15).Cases {
		if msg := a.check(c.Record.Topic, c.Record.Value); msg != "" {
			t.Errorf("%s: %s", c, msg)
		}
	}
	for _, c := range extraCases {
		if msg := a.check(topicOf(c.topic), []byte(c.value)); msg != "" {
			t.Errorf("%s: %s", c.value, msg)
		}
	}
	for _, kind := range []string{"both accept", "both refuse", "decimal as a JSON number", "integer written with a fraction or exponent"} {
		if a.seen[kind] == 0 {
			t.Errorf("no record where %s: %v", kind, a.seen)
		}
	}
	t.Logf("outcomes: %v", a.seen)
}

// FuzzSchemasAgreeWithTheDecoder: the same agreement on any record; the
// seeds are the suite's small records and the records above.
func FuzzSchemasAgreeWithTheDecoder(f *testing.F) {
	for _, c := range New(kafka.DefaultTopics(), time.Now(), 15).Cases {
		if len(c.Record.Value) < 4096 {
			f.Add(c.Record.Topic == kafka.DefaultTopics().Reads, c.Record.Value)
		}
	}
	for _, c := range extraCases {
		f.Add(c.topic == "r", []byte(c.value))
	}
	a := newAgreement(f)
	f.Fuzz(func(t *testing.T, reads bool, value []byte) {
		topic := kafka.DefaultTopics().Prices
		if reads {
			topic = kafka.DefaultTopics().Reads
		}
		if msg := a.check(topic, value); msg != "" {
			t.Errorf("%q: %s", value, msg)
		}
	})
}

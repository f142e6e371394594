package oracle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// The quarantine reasons of meters/README.md, in check order.
const (
	MalformedJSON          = "malformed_json"
	SchemaViolation        = "schema_violation"
	UnsupportedInterval    = "unsupported_interval"
	MisalignedStart        = "misaligned_start"
	StartOutOfRange        = "start_out_of_range"
	ValueOutOfRange        = "value_out_of_range"
	TooManyDecimals        = "too_many_decimals"
	QualityLengthMismatch  = "quality_length_mismatch"
	UnknownMeter           = "unknown_meter"
	UnknownSettlementPoint = "unknown_settlement_point"
	CurrencyMismatch       = "currency_mismatch"
	IntervalLengthMismatch = "interval_length_mismatch"
	ConflictingDuplicate   = "conflicting_duplicate"
	Unprocessable          = "unprocessable"
)

// Reasons lists the quarantine reasons in the contract's check order.
var Reasons = []string{MalformedJSON, SchemaViolation, UnsupportedInterval, MisalignedStart,
	StartOutOfRange, ValueOutOfRange, TooManyDecimals, QualityLengthMismatch, UnknownMeter, UnknownSettlementPoint,
	CurrencyMismatch, IntervalLengthMismatch, ConflictingDuplicate, Unprocessable}

// Quarantined is why one input record was rejected.
type Quarantined struct {
	Reason string
	Detail string
}

var (
	identRE   = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
	plainRE   = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?$`)
	integerRE = regexp.MustCompile(`^-?[0-9]+$`)
	// RFC 3339 date-time (section 5.6), T and Z in either case.
	rfc3339RE  = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$`)
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
	million    = decimal.NewFromInt(1_000_000)
)

var (
	readLengths  = []int64{300, 900, 1800, 3600}
	priceLengths = []int64{300, 900, 3600}
)

// fields is a JSON object's members, unparsed.
type fields map[string]json.RawMessage

// object parses raw as one JSON object, or reports false (malformed_json):
// bytes that are not UTF-8 (which encoding/json would quietly turn into
// U+FFFD), invalid JSON (NaN and Infinity included) and any other JSON value.
func object(raw []byte) (fields, bool) {
	if !utf8.Valid(raw) {
		return nil, false
	}
	t := bytes.Trim(raw, " \t\r\n")
	if len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		return nil, false
	}
	var f fields
	if err := json.Unmarshal(t, &f); err != nil {
		return nil, false
	}
	return f, true
}

// present reports whether name is there and not null; a null optional
// member is taken as absent.
func (f fields) present(name string) bool {
	v, ok := f[name]
	return ok && string(bytes.TrimSpace(v)) != "null"
}

type schemaError string

func (f fields) str(name string) (string, error) {
	v := bytes.TrimSpace(f[name])
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", schemaError(name + ": not a string")
	}
	return s, nil
}

func (f fields) ident(name string) (string, error) {
	if !f.present(name) {
		return "", schemaError(name + ": missing")
	}
	s, err := f.str(name)
	if err != nil {
		return "", err
	}
	if !identRE.MatchString(s) {
		return "", schemaError(fmt.Sprintf("%s: %q is not an identifier", name, s))
	}
	return s, nil
}

// integer reads a JSON number without fraction or exponent.
func integer(name string, v json.RawMessage) (int64, error) {
	v = bytes.TrimSpace(v)
	if !integerRE.Match(v) {
		return 0, schemaError(fmt.Sprintf("%s: %s is not an integer", name, v))
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, schemaError(fmt.Sprintf("%s: %s is out of range", name, v))
	}
	return n, nil
}

// number reads a decimal given as a JSON string or a JSON number, in plain
// notation only; the text is kept to count its decimal places.
func number(name string, v json.RawMessage) (decimal.Decimal, string, error) {
	v = bytes.TrimSpace(v)
	text := string(v)
	if len(v) > 0 && v[0] == '"' {
		if json.Unmarshal(v, &text) != nil {
			return decimal.Decimal{}, "", schemaError(name + ": not a string")
		}
	}
	if !plainRE.MatchString(text) {
		return decimal.Decimal{}, "", schemaError(fmt.Sprintf("%s: %s is not a plain decimal", name, v))
	}
	d, err := decimal.NewFromString(text)
	if err != nil {
		return decimal.Decimal{}, "", schemaError(fmt.Sprintf("%s: %s: %v", name, v, err))
	}
	return d, text, nil
}

// places counts the decimal places of text's value: zeros that end the
// fraction do not count ("1.0000000" has none).
func places(text string) int {
	_, frac, ok := strings.Cut(text, ".")
	if !ok {
		return 0
	}
	return len(strings.TrimRight(frac, "0"))
}

// start reads the start timestamp. Its fraction of a second is judged from
// the text: time.Time keeps nanoseconds, a fraction may be finer.
func (f fields) start() (t time.Time, fraction bool, err error) {
	if !f.present("start") {
		return time.Time{}, false, schemaError("start: missing")
	}
	s, err := f.str("start")
	if err != nil {
		return time.Time{}, false, err
	}
	m := rfc3339RE.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false, schemaError(fmt.Sprintf("start: %q is not an RFC 3339 timestamp", s))
	}
	t, err = time.Parse(time.RFC3339Nano, strings.ToUpper(s))
	if err != nil {
		return time.Time{}, false, schemaError(fmt.Sprintf("start: %q is not an RFC 3339 timestamp", s))
	}
	return t, strings.Trim(m[1], ".0") != "", nil
}

func (f fields) intervalSeconds() (int64, error) {
	if !f.present("interval_seconds") {
		return 0, schemaError("interval_seconds: missing")
	}
	return integer("interval_seconds", f["interval_seconds"])
}

func (f fields) version() (int64, error) {
	if !f.present("version") {
		return 1, nil
	}
	v, err := integer("version", f["version"])
	if err != nil {
		return 0, err
	}
	if v < 1 {
		return 0, schemaError(fmt.Sprintf("version: %d is below 1", v))
	}
	return v, nil
}

func aligned(t time.Time, fraction bool, length int64) bool {
	return !fraction && floorTo(t.Unix(), length) == t.Unix()
}

func oneOf(n int64, set []int64) bool {
	for _, s := range set {
		if s == n {
			return true
		}
	}
	return false
}

// readRecord is a decoded, schema-valid ami.interval-reads record.
type readRecord struct {
	meter   string
	channel string
	start   time.Time
	// fraction: start has a non-zero fraction of a second
	fraction bool
	length   int64
	values   []decimal.Decimal
	texts    []string
	quality  []string // nil: not given
	version  int64
	source   string
}

func (r *readRecord) end() int64 { return r.start.Unix() + int64(len(r.values))*r.length }

// clock is what start_out_of_range compares with: the consuming instance's
// wall clock and the two future bounds.
type clock struct {
	now                   time.Time
	maxFuture, maxFutureP time.Duration
}

// earliest is the first instant an input interval may start at.
var earliest = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)

// decodeRead checks one reads record up to and including
// quality_length_mismatch (the checks that need nothing but the record and
// the clock).
func decodeRead(raw []byte, c clock) (*readRecord, *Quarantined) {
	f, ok := object(raw)
	if !ok {
		return nil, &Quarantined{MalformedJSON, "not a JSON object"}
	}
	r, err := readSchema(f)
	if err != nil {
		return nil, &Quarantined{SchemaViolation, err.Error()}
	}
	if !oneOf(r.length, readLengths) {
		return nil, &Quarantined{UnsupportedInterval, fmt.Sprintf("interval_seconds %d", r.length)}
	}
	if !aligned(r.start, r.fraction, r.length) {
		return nil, &Quarantined{MisalignedStart, fmt.Sprintf("start %s, interval %d", r.start.Format(time.RFC3339Nano), r.length)}
	}
	if r.start.Before(earliest) {
		return nil, &Quarantined{StartOutOfRange, fmt.Sprintf("start %s is before 2000", r.start.UTC().Format(time.RFC3339))}
	}
	// r.end() is in Unix seconds: year 9999 plus 10,000 hours is far from
	// overflowing.
	if time.Unix(r.end(), 0).After(c.now.Add(c.maxFuture)) {
		return nil, &Quarantined{StartOutOfRange, fmt.Sprintf("the last of %d intervals from %s ends after %s + %s",
			len(r.values), r.start.UTC().Format(time.RFC3339), c.now.UTC().Format(time.RFC3339Nano), c.maxFuture)}
	}
	for i, v := range r.values {
		if v.Sign() < 0 || v.GreaterThan(million) {
			return nil, &Quarantined{ValueOutOfRange, fmt.Sprintf("values[%d] = %s", i, r.texts[i])}
		}
	}
	for i, t := range r.texts {
		if places(t) > 6 {
			return nil, &Quarantined{TooManyDecimals, fmt.Sprintf("values[%d] = %s", i, t)}
		}
	}
	if r.quality != nil && len(r.quality) != len(r.values) {
		return nil, &Quarantined{QualityLengthMismatch, fmt.Sprintf("%d values, %d quality codes", len(r.values), len(r.quality))}
	}
	if r.quality == nil {
		r.quality = make([]string, len(r.values))
		for i := range r.quality {
			r.quality[i] = "A"
		}
	}
	return r, nil
}

func readSchema(f fields) (*readRecord, error) {
	r := &readRecord{channel: "import"}
	var err error
	if r.meter, err = f.ident("meter_id"); err != nil {
		return nil, err
	}
	if f.present("channel") {
		if r.channel, err = f.str("channel"); err != nil {
			return nil, err
		}
		if r.channel != "import" && r.channel != "export" {
			return nil, schemaError(fmt.Sprintf("channel: %q is not import or export", r.channel))
		}
	}
	if r.start, r.fraction, err = f.start(); err != nil {
		return nil, err
	}
	if r.length, err = f.intervalSeconds(); err != nil {
		return nil, err
	}
	if !f.present("values") {
		return nil, schemaError("values: missing")
	}
	var vals []json.RawMessage
	if err := json.Unmarshal(f["values"], &vals); err != nil || vals == nil {
		return nil, schemaError("values: not an array")
	}
	if len(vals) < 1 || len(vals) > 10_000 {
		return nil, schemaError(fmt.Sprintf("values: %d values, not 1 to 10000", len(vals)))
	}
	for i, v := range vals {
		d, text, err := number(fmt.Sprintf("values[%d]", i), v)
		if err != nil {
			return nil, err
		}
		r.values = append(r.values, d)
		r.texts = append(r.texts, text)
	}
	if f.present("quality") {
		var qs []json.RawMessage
		if err := json.Unmarshal(f["quality"], &qs); err != nil || qs == nil {
			return nil, schemaError("quality: not an array")
		}
		r.quality = make([]string, 0, len(qs))
		for i, q := range qs {
			var s string
			if bytes.TrimSpace(q)[0] != '"' || json.Unmarshal(q, &s) != nil || (s != "A" && s != "E" && s != "S") {
				return nil, schemaError(fmt.Sprintf("quality[%d]: %s is not A, E or S", i, q))
			}
			r.quality = append(r.quality, s)
		}
	}
	if r.version, err = f.version(); err != nil {
		return nil, err
	}
	if f.present("source") {
		if r.source, err = f.str("source"); err != nil {
			return nil, err
		}
		if utf8.RuneCountInString(r.source) > 128 {
			return nil, schemaError("source: longer than 128 characters")
		}
	}
	return r, nil
}

// priceRecord is a decoded, schema-valid market.prices record.
type priceRecord struct {
	market   string
	point    string
	start    time.Time
	fraction bool // as for reads
	length   int64
	price    decimal.Decimal
	text     string
	currency string // empty: not given
	version  int64
}

// decodePrice checks one prices record up to and including
// too_many_decimals.
func decodePrice(raw []byte, c clock) (*priceRecord, *Quarantined) {
	f, ok := object(raw)
	if !ok {
		return nil, &Quarantined{MalformedJSON, "not a JSON object"}
	}
	p, err := priceSchema(f)
	if err != nil {
		return nil, &Quarantined{SchemaViolation, err.Error()}
	}
	if !oneOf(p.length, priceLengths) {
		return nil, &Quarantined{UnsupportedInterval, fmt.Sprintf("interval_seconds %d", p.length)}
	}
	if !aligned(p.start, p.fraction, p.length) {
		return nil, &Quarantined{MisalignedStart, fmt.Sprintf("start %s, interval %d", p.start.Format(time.RFC3339Nano), p.length)}
	}
	if p.start.Before(earliest) || !p.start.Before(c.now.Add(c.maxFutureP)) {
		return nil, &Quarantined{StartOutOfRange, fmt.Sprintf("start %s is not in [2000, %s + %s)",
			p.start.UTC().Format(time.RFC3339), c.now.UTC().Format(time.RFC3339Nano), c.maxFutureP)}
	}
	if p.price.Abs().GreaterThan(million) {
		return nil, &Quarantined{ValueOutOfRange, "price " + p.text}
	}
	if places(p.text) > 6 {
		return nil, &Quarantined{TooManyDecimals, "price " + p.text}
	}
	return p, nil
}

func priceSchema(f fields) (*priceRecord, error) {
	p := &priceRecord{}
	var err error
	if !f.present("market") {
		return nil, schemaError("market: missing")
	}
	if p.market, err = f.str("market"); err != nil {
		return nil, err
	}
	if p.market != "RT" && p.market != "DA" {
		return nil, schemaError(fmt.Sprintf("market: %q is not RT or DA", p.market))
	}
	if p.point, err = f.ident("settlement_point"); err != nil {
		return nil, err
	}
	if p.start, p.fraction, err = f.start(); err != nil {
		return nil, err
	}
	if p.length, err = f.intervalSeconds(); err != nil {
		return nil, err
	}
	if !f.present("price") {
		return nil, schemaError("price: missing")
	}
	if p.price, p.text, err = number("price", f["price"]); err != nil {
		return nil, err
	}
	if f.present("currency") {
		if p.currency, err = f.str("currency"); err != nil {
			return nil, err
		}
		if !currencyRE.MatchString(p.currency) {
			return nil, schemaError(fmt.Sprintf("currency: %q is not an ISO 4217 code", p.currency))
		}
	}
	if p.version, err = f.version(); err != nil {
		return nil, err
	}
	return p, nil
}

func (e schemaError) Error() string { return string(e) }

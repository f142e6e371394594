package meters

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Limits of the input contract (meters/README.md).
const (
	MaxSourceChars  = 128       // characters of a read block's source
	MaxDecimals     = 6         // decimal places of a value or price
	maxIdentifier   = 64        // characters of an identifier
	maxMagnitude    = "1000000" // bound of |value| and |price|, in plain digits
	defaultVersion  = 1
	defaultChannel  = Import
	defaultQuality  = Actual
	readsNotObject  = "not a JSON object"
	invalidJSONText = "not valid JSON"
	invalidUTF8Text = "not valid UTF-8"
	excerptChars    = 40 // characters of an input value a detail quotes
)

// ReadIntervals are the interval lengths a read block may have.
var ReadIntervals = []int{300, 900, 1800, 3600}

// PriceIntervals are the interval lengths a price may have.
var PriceIntervals = []int{300, 900, 3600}

// LongestPrice is the longest of PriceIntervals: a price that covers an
// instant may start this much before it, which bounds how far back a
// reader of the prices of a window looks.
const LongestPrice = time.Hour

// Decoder decodes and validates input records exactly, never through a
// float. It keeps scratch space between calls, so one Decoder must not be
// used by two goroutines at once; the zero value is ready to use.
type Decoder struct {
	// Bounds are the start_out_of_range bounds; the zero value is the
	// contract's defaults against the wall clock.
	Bounds Bounds
	// MicroOnly leaves ReadBlock.Values nil, its values in Micro alone: a
	// decimal costs allocations per value, and ingest needs only the
	// integers. Validation is the same either way.
	MicroOnly bool

	nums  []number // scratch: the values of the record being decoded
	quals []Quality
}

// DecodeReadBlock decodes one ami.interval-reads record. It returns the
// block, or the first Rejection in the contract's check order among the
// reasons that need no state (malformed_json … quality_length_mismatch);
// start_out_of_range is judged with the default Bounds and the wall clock.
func DecodeReadBlock(data []byte) (ReadBlock, *Rejection) {
	var d Decoder
	return d.ReadBlock(data)
}

// DecodePrice decodes one market.prices record; a missing currency becomes
// marketCurrency. Like DecodeReadBlock it checks only what needs no state:
// unknown_settlement_point and currency_mismatch are the store's.
func DecodePrice(data []byte, marketCurrency string) (Price, *Rejection) {
	var d Decoder
	return d.Price(data, marketCurrency)
}

// Field indexes of a read block record.
const (
	rbMeterID = iota
	rbChannel
	rbStart
	rbInterval
	rbValues
	rbQuality
	rbVersion
	rbSource
	rbFields
)

func readBlockField(key []byte) int {
	switch string(key) {
	case "meter_id":
		return rbMeterID
	case "channel":
		return rbChannel
	case "start":
		return rbStart
	case "interval_seconds":
		return rbInterval
	case "values":
		return rbValues
	case "quality":
		return rbQuality
	case "version":
		return rbVersion
	case "source":
		return rbSource
	}
	return -1
}

// ReadBlock decodes one ami.interval-reads record (see DecodeReadBlock).
func (d *Decoder) ReadBlock(data []byte) (ReadBlock, *Rejection) {
	var f [rbFields]value
	if rej := scanObject(data, f[:], readBlockField); rej != nil {
		return ReadBlock{}, rej
	}
	var b ReadBlock
	var rej *Rejection
	if b.MeterID, rej = identifierField(data, f[rbMeterID], "meter_id"); rej != nil {
		return ReadBlock{}, rej
	}
	if b.Channel, rej = channelField(data, f[rbChannel]); rej != nil {
		return ReadBlock{}, rej
	}
	var subNano bool
	if b.Start, subNano, rej = timeField(data, f[rbStart], "start"); rej != nil {
		return ReadBlock{}, rej
	}
	interval, rej := intervalField(data, f[rbInterval])
	if rej != nil {
		return ReadBlock{}, rej
	}
	if rej = d.valuesField(data, f[rbValues]); rej != nil {
		return ReadBlock{}, rej
	}
	hasQuality, rej := d.qualityField(data, f[rbQuality])
	if rej != nil {
		return ReadBlock{}, rej
	}
	if b.Version, rej = versionField(data, f[rbVersion]); rej != nil {
		return ReadBlock{}, rej
	}
	if b.Source, rej = sourceField(data, f[rbSource]); rej != nil {
		return ReadBlock{}, rej
	}
	if rej = checkInterval(interval, ReadIntervals); rej != nil {
		return ReadBlock{}, rej
	}
	b.IntervalSeconds = int(interval)
	if rej = checkAligned(b.Start, subNano, interval); rej != nil {
		return ReadBlock{}, rej
	}
	if rej = d.Bounds.checkReads(b.Start, interval, len(d.nums)); rej != nil {
		return ReadBlock{}, rej
	}
	for i := range d.nums {
		if d.nums[i].neg && !d.nums[i].zero() || d.nums[i].exceeds() {
			return ReadBlock{}, reject(ValueOutOfRange, "values[%d]: %s is not between 0 and %s kWh", i, d.nums[i].text(data), maxMagnitude)
		}
	}
	for i := range d.nums {
		if d.nums[i].decimals() > MaxDecimals {
			return ReadBlock{}, reject(TooManyDecimals, "values[%d]: %s has more than %d decimal places", i, d.nums[i].text(data), MaxDecimals)
		}
	}
	if hasQuality && len(d.quals) != len(d.nums) {
		return ReadBlock{}, reject(QualityLengthMismatch, "quality has %d codes for %d values", len(d.quals), len(d.nums))
	}
	b.Micro = make([]int64, len(d.nums))
	if d.MicroOnly {
		for i := range d.nums {
			b.Micro[i] = d.nums[i].micro()
		}
	} else {
		b.Values = make([]decimal.Decimal, len(d.nums))
		for i := range d.nums {
			b.Values[i], b.Micro[i] = d.nums[i].decimal()
		}
	}
	b.Quality = make([]Quality, len(d.nums))
	if hasQuality {
		copy(b.Quality, d.quals)
	} else {
		for i := range b.Quality {
			b.Quality[i] = defaultQuality
		}
	}
	return b, nil
}

// Field indexes of a price record.
const (
	prMarket = iota
	prPoint
	prStart
	prInterval
	prPrice
	prCurrency
	prVersion
	prFields
)

func priceField(key []byte) int {
	switch string(key) {
	case "market":
		return prMarket
	case "settlement_point":
		return prPoint
	case "start":
		return prStart
	case "interval_seconds":
		return prInterval
	case "price":
		return prPrice
	case "currency":
		return prCurrency
	case "version":
		return prVersion
	}
	return -1
}

// Price decodes one market.prices record (see DecodePrice).
func (d *Decoder) Price(data []byte, marketCurrency string) (Price, *Rejection) {
	var f [prFields]value
	if rej := scanObject(data, f[:], priceField); rej != nil {
		return Price{}, rej
	}
	var p Price
	var rej *Rejection
	if p.Market, rej = marketField(data, f[prMarket]); rej != nil {
		return Price{}, rej
	}
	if p.SettlementPoint, rej = identifierField(data, f[prPoint], "settlement_point"); rej != nil {
		return Price{}, rej
	}
	var subNano bool
	if p.Start, subNano, rej = timeField(data, f[prStart], "start"); rej != nil {
		return Price{}, rej
	}
	interval, rej := intervalField(data, f[prInterval])
	if rej != nil {
		return Price{}, rej
	}
	if !f[prPrice].present() {
		return Price{}, reject(SchemaViolation, "price: required")
	}
	n, ok := parseNumber(data, f[prPrice])
	if !ok {
		return Price{}, reject(SchemaViolation, "price: %s is not a plain decimal", f[prPrice].raw(data))
	}
	if p.Currency, rej = currencyField(data, f[prCurrency], marketCurrency); rej != nil {
		return Price{}, rej
	}
	if p.Version, rej = versionField(data, f[prVersion]); rej != nil {
		return Price{}, rej
	}
	if rej = checkInterval(interval, PriceIntervals); rej != nil {
		return Price{}, rej
	}
	p.IntervalSeconds = int(interval)
	if rej = checkAligned(p.Start, subNano, interval); rej != nil {
		return Price{}, rej
	}
	if rej = d.Bounds.checkPrice(p.Start); rej != nil {
		return Price{}, rej
	}
	if n.exceeds() {
		return Price{}, reject(ValueOutOfRange, "price: |%s| is more than %s", n.text(data), maxMagnitude)
	}
	if n.decimals() > MaxDecimals {
		return Price{}, reject(TooManyDecimals, "price: %s has more than %d decimal places", n.text(data), MaxDecimals)
	}
	p.Price, _ = n.decimal()
	return p, nil
}

// reject builds a Rejection. SafeDetail is the last guard of the detail:
// whatever the record held, the detail can be stored and shown.
func reject(r Reason, format string, args ...any) *Rejection {
	return &Rejection{Reason: r, Detail: SafeDetail(fmt.Sprintf(format, args...))}
}

// excerpt is s cut to its first excerptChars characters, "…" marking a
// cut. It cuts at a character boundary: a cut inside a character would make
// the detail invalid UTF-8, which Postgres refuses.
func excerpt(s string) string {
	n := 0
	for i := range s {
		if n == excerptChars {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// excerptOf is excerpt of b without converting all of b, which may be
// megabytes: excerptChars characters take at most utf8.UTFMax bytes each, so
// one byte more shows whether there is more.
func excerptOf(b []byte) string {
	return excerpt(string(b[:min(len(b), utf8.UTFMax*excerptChars+1)]))
}

// value is the span of one JSON value inside a record. kind is its first
// byte ('"', '[', '{', 't', 'f', 'n', or '-'/digit for a number); 0 means
// absent.
type value struct {
	kind       byte
	start, end int
}

func (v value) present() bool { return v.kind != 0 && v.kind != 'n' }

// raw is the value's JSON text as a detail quotes it.
func (v value) raw(data []byte) string { return excerptOf(data[v.start:v.end]) }

// scanObject checks that data is one JSON object and records the span of
// each field that index knows (the last occurrence wins, as in most
// parsers). Unknown fields are ignored.
func scanObject(data []byte, fields []value, index func(key []byte) int) *Rejection {
	if !utf8.Valid(data) {
		return reject(MalformedJSON, invalidUTF8Text)
	}
	if !json.Valid(data) {
		return reject(MalformedJSON, invalidJSONText)
	}
	i := skipSpace(data, 0)
	if data[i] != '{' {
		return reject(MalformedJSON, readsNotObject)
	}
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return nil
	}
	for {
		// data is valid JSON, so the structure below is guaranteed.
		kstart := i
		i = skipString(data, i)
		key := data[kstart+1 : i-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if err := json.Unmarshal(data[kstart:i], &k); err != nil {
				return reject(MalformedJSON, invalidJSONText)
			}
			key = []byte(k)
		}
		i = skipSpace(data, i)
		i = skipSpace(data, i+1) // past ':'
		vstart := i
		i = skipValue(data, i)
		if n := index(key); n >= 0 {
			fields[n] = value{kind: data[vstart], start: vstart, end: i}
		}
		i = skipSpace(data, i)
		if data[i] == '}' {
			return nil
		}
		i = skipSpace(data, i+1) // past ','
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string starting at data[i].
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index just past the (valid) value at data[i].
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = skipString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(data) {
		switch data[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// stringValue returns the text of a JSON string value, unescaped.
func stringValue(data []byte, v value) string {
	inner := data[v.start+1 : v.end-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner)
	}
	var s string
	// The record is valid JSON, so this cannot fail.
	_ = json.Unmarshal(data[v.start:v.end], &s)
	return s
}

func identifierField(data []byte, v value, name string) (string, *Rejection) {
	if !v.present() {
		return "", reject(SchemaViolation, "%s: required", name)
	}
	if v.kind != '"' {
		return "", reject(SchemaViolation, "%s: %s is not a string", name, v.raw(data))
	}
	s := stringValue(data, v)
	if !ValidIdentifier(s) {
		return "", reject(SchemaViolation, "%s: %q is not 1-64 characters of A-Z a-z 0-9 . _ : -", name, excerpt(s))
	}
	return s, nil
}

// ValidIdentifier reports whether s is an identifier of the contract:
// 1–64 characters of A-Z a-z 0-9 . _ : -.
func ValidIdentifier(s string) bool {
	if len(s) == 0 || len(s) > maxIdentifier {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func channelField(data []byte, v value) (Channel, *Rejection) {
	if !v.present() {
		return defaultChannel, nil
	}
	if v.kind == '"' {
		switch c := Channel(stringValue(data, v)); c {
		case Import, Export:
			return c, nil
		}
	}
	return "", reject(SchemaViolation, "channel: %s is not \"import\" or \"export\"", v.raw(data))
}

func marketField(data []byte, v value) (Market, *Rejection) {
	if !v.present() {
		return "", reject(SchemaViolation, "market: required")
	}
	if v.kind == '"' {
		switch m := Market(stringValue(data, v)); m {
		case RealTime, DayAhead:
			return m, nil
		}
	}
	return "", reject(SchemaViolation, "market: %s is not \"RT\" or \"DA\"", v.raw(data))
}

// timeField reads an RFC 3339 timestamp. subNano reports a fraction finer
// than time.Time holds that is not zero: the instant is then not aligned,
// although the parsed time (cut to nanoseconds) may look so.
func timeField(data []byte, v value, name string) (t time.Time, subNano bool, rej *Rejection) {
	if !v.present() {
		return time.Time{}, false, reject(SchemaViolation, "%s: required", name)
	}
	if v.kind == '"' {
		s := stringValue(data, v)
		if rfc3339Shape(s) {
			// RFC 3339 allows a lower-case T and Z; Go's parser does not.
			b := []byte(s)
			b[10] = 'T'
			if b[len(b)-1] == 'z' {
				b[len(b)-1] = 'Z'
			}
			if t, err := time.Parse(time.RFC3339Nano, string(b)); err == nil {
				return t.UTC(), finerThanNanoseconds(s), nil
			}
		}
	}
	return time.Time{}, false, reject(SchemaViolation, "%s: %s is not an RFC 3339 timestamp", name, v.raw(data))
}

// rfc3339Shape reports whether s is shaped as an RFC 3339 date-time
// (section 5.6). time.Parse alone is laxer: it takes a one-digit hour and a
// comma before the fraction.
func rfc3339Shape(s string) bool {
	const layout = "dddd-dd-ddTdd:dd:dd"
	if len(s) <= len(layout) {
		return false
	}
	for i := range len(layout) {
		switch c := s[i]; layout[i] {
		case 'd':
			if !isDigit(c) {
				return false
			}
		case 'T':
			if c != 'T' && c != 't' {
				return false
			}
		default:
			if c != layout[i] {
				return false
			}
		}
	}
	rest := s[len(layout):]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n == 1 {
			return false
		}
		rest = rest[n:]
	}
	if rest == "Z" || rest == "z" {
		return true
	}
	return len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && isDigit(rest[1]) && isDigit(rest[2]) &&
		rest[3] == ':' && isDigit(rest[4]) && isDigit(rest[5])
}

// finerThanNanoseconds reports a non-zero digit past the ninth of the
// fraction of a well-shaped timestamp.
func finerThanNanoseconds(s string) bool {
	const fraction = len("2006-01-02T15:04:05.")
	if len(s) <= fraction || s[fraction-1] != '.' {
		return false
	}
	for i := fraction + 9; i < len(s) && isDigit(s[i]); i++ {
		if s[i] != '0' {
			return true
		}
	}
	return false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// integer parses a JSON integer literal. big is true when it does not fit
// an int64 (it is still an integer).
func integer(data []byte, v value) (n int64, big, ok bool) {
	if v.kind != '-' && (v.kind < '0' || v.kind > '9') {
		return 0, false, false
	}
	s := data[v.start:v.end]
	digits := s
	if digits[0] == '-' {
		digits = digits[1:]
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false, false // a fraction or an exponent
		}
	}
	n, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		return 0, true, true
	}
	return n, false, true
}

// intervalField returns interval_seconds; an integer too large for an int64
// becomes -1, which no interval list holds.
func intervalField(data []byte, v value) (int64, *Rejection) {
	if !v.present() {
		return 0, reject(SchemaViolation, "interval_seconds: required")
	}
	n, big, ok := integer(data, v)
	if !ok {
		return 0, reject(SchemaViolation, "interval_seconds: %s is not an integer", v.raw(data))
	}
	if big {
		return -1, nil
	}
	return n, nil
}

func versionField(data []byte, v value) (int64, *Rejection) {
	if !v.present() {
		return defaultVersion, nil
	}
	n, big, ok := integer(data, v)
	if !ok || big || n < 1 {
		return 0, reject(SchemaViolation, "version: %s is not an integer of at least 1", v.raw(data))
	}
	return n, nil
}

func sourceField(data []byte, v value) (string, *Rejection) {
	if !v.present() {
		return "", nil
	}
	if v.kind != '"' {
		return "", reject(SchemaViolation, "source: %s is not a string", v.raw(data))
	}
	s := stringValue(data, v)
	if n := utf8.RuneCountInString(s); n > MaxSourceChars {
		return "", reject(SchemaViolation, "source: %d characters, at most %d", n, MaxSourceChars)
	}
	// U+0000 is valid free text: the contract lets the store refuse it, as
	// unprocessable after every other check (settlement/ingest/readstore).
	return s, nil
}

func currencyField(data []byte, v value, marketCurrency string) (string, *Rejection) {
	if !v.present() {
		return marketCurrency, nil
	}
	if v.kind == '"' {
		s := stringValue(data, v)
		if len(s) == 3 && isUpper(s[0]) && isUpper(s[1]) && isUpper(s[2]) {
			return s, nil
		}
	}
	return "", reject(SchemaViolation, "currency: %s is not an ISO 4217 code", v.raw(data))
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

func checkInterval(n int64, allowed []int) *Rejection {
	for _, a := range allowed {
		if n == int64(a) {
			return nil
		}
	}
	if n < 0 {
		return reject(UnsupportedInterval, "interval_seconds: not one of %v", allowed)
	}
	return reject(UnsupportedInterval, "interval_seconds: %d is not one of %v", n, allowed)
}

func checkAligned(start time.Time, subNano bool, interval int64) *Rejection {
	if subNano {
		return reject(MisalignedStart, "start: %s and a fraction of a nanosecond is not a multiple of %d s since the epoch", start.Format(time.RFC3339Nano), interval)
	}
	if start.Nanosecond() != 0 || floorMod(start.Unix(), interval) != 0 {
		return reject(MisalignedStart, "start: %s is not a multiple of %d s since the epoch", start.Format(time.RFC3339Nano), interval)
	}
	return nil
}

// checkReads is start_out_of_range for a block of n reads: its first
// interval starts at or after Earliest and its last ends at or before
// now + MaxFuture (a read exists only once its interval has ended). Times
// are compared as time.Time, which holds year 9999 plus 10,000 hours.
func (b Bounds) checkReads(start time.Time, interval int64, n int) *Rejection {
	if start.Before(Earliest) {
		return reject(StartOutOfRange, "start: %s is before %s", formatTime(start), formatTime(Earliest))
	}
	future := cmp.Or(b.MaxFuture, DefaultMaxFuture)
	now := b.now()
	end := start.Add(time.Duration(int64(n)*interval) * time.Second)
	if limit := now.Add(future); end.After(limit) {
		return reject(StartOutOfRange, "start: %s: the last interval ends %s, after now + %s (%s)",
			formatTime(start), formatTime(end), isoDuration(future), formatTime(limit))
	}
	return nil
}

// checkPrice is start_out_of_range for a price: it starts at or after
// Earliest and before now + MaxFuturePrices (day-ahead prices are published
// ahead, but not indefinitely).
func (b Bounds) checkPrice(start time.Time) *Rejection {
	if start.Before(Earliest) {
		return reject(StartOutOfRange, "start: %s is before %s", formatTime(start), formatTime(Earliest))
	}
	future := cmp.Or(b.MaxFuturePrices, DefaultMaxFuturePrices)
	if limit := b.now().Add(future); !start.Before(limit) {
		return reject(StartOutOfRange, "start: %s is not before now + %s (%s)", formatTime(start), isoDuration(future), formatTime(limit))
	}
	return nil
}

func (b Bounds) now() time.Time {
	if b.Now == nil {
		return time.Now()
	}
	return b.Now()
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// isoDuration writes d as an ISO 8601 duration (PT15M, P7D), as the
// --ingest-max-future flags take it.
func isoDuration(d time.Duration) string {
	if d <= 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteString("P")
	if days := d / (24 * time.Hour); days > 0 {
		fmt.Fprintf(&b, "%dD", days)
		d -= days * 24 * time.Hour
	}
	if d == 0 {
		return b.String()
	}
	b.WriteString("T")
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dH", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dM", m)
		d -= m * time.Minute
	}
	if d > 0 {
		s := strconv.FormatInt(int64(d/time.Second), 10)
		if frac := d % time.Second; frac != 0 {
			s += strings.TrimRight(fmt.Sprintf(".%09d", frac), "0")
		}
		b.WriteString(s + "S")
	}
	return b.String()
}

func (d *Decoder) valuesField(data []byte, v value) *Rejection {
	d.nums = d.nums[:0]
	if !v.present() {
		return reject(SchemaViolation, "values: required")
	}
	if v.kind != '[' {
		return reject(SchemaViolation, "values: %s is not an array", v.raw(data))
	}
	var bad *Rejection
	eachElement(data, v, func(i int, e value) bool {
		if i >= MaxBlockValues {
			bad = reject(SchemaViolation, "values: more than %d values", MaxBlockValues)
			return false
		}
		n, ok := parseNumber(data, e)
		if !ok {
			bad = reject(SchemaViolation, "values[%d]: %s is not a plain decimal", i, e.raw(data))
			return false
		}
		d.nums = append(d.nums, n)
		return true
	})
	if bad != nil {
		return bad
	}
	if len(d.nums) == 0 {
		return reject(SchemaViolation, "values: empty, at least 1 value is required")
	}
	return nil
}

func (d *Decoder) qualityField(data []byte, v value) (bool, *Rejection) {
	d.quals = d.quals[:0]
	if !v.present() {
		return false, nil
	}
	if v.kind != '[' {
		return false, reject(SchemaViolation, "quality: %s is not an array", v.raw(data))
	}
	var bad *Rejection
	eachElement(data, v, func(i int, e value) bool {
		if i >= MaxBlockValues {
			bad = reject(SchemaViolation, "quality: more than %d codes", MaxBlockValues)
			return false
		}
		if e.kind == '"' {
			switch q := Quality(stringValue(data, e)); q {
			case Actual, Estimated, Substituted:
				d.quals = append(d.quals, q)
				return true
			}
		}
		bad = reject(SchemaViolation, "quality[%d]: %s is not \"A\", \"E\" or \"S\"", i, e.raw(data))
		return false
	})
	return true, bad
}

// eachElement calls fn for each element of the (valid) array v until fn
// returns false.
func eachElement(data []byte, v value, fn func(i int, e value) bool) {
	i := skipSpace(data, v.start+1)
	if data[i] == ']' {
		return
	}
	for n := 0; ; n++ {
		start := i
		i = skipValue(data, i)
		if !fn(n, value{kind: data[start], start: start, end: i}) {
			return
		}
		i = skipSpace(data, i)
		if data[i] == ']' {
			return
		}
		i = skipSpace(data, i+1)
	}
}

// number is a decimal in plain notation, -?[0-9]+(\.[0-9]+)?, kept as the
// offsets of its digits in the record: it is checked as text and becomes a
// decimal only once every check has passed.
type number struct {
	neg        bool
	start, end int    // the whole text
	intg, frac []byte // digits before and after the point (frac may be empty)
}

// text is the number as written, as a detail quotes it.
func (n number) text(data []byte) string { return excerptOf(data[n.start:n.end]) }

// parseNumber reads a decimal given as a JSON string or a JSON number.
// Anything but plain notation (an exponent, a sign other than a leading
// minus, blanks, an empty fraction) is refused.
func parseNumber(data []byte, v value) (number, bool) {
	var s []byte
	var n number
	switch {
	case v.kind == '"':
		inner := data[v.start+1 : v.end-1]
		if bytes.IndexByte(inner, '\\') >= 0 {
			return number{}, false // a digit is never escaped by an honest producer
		}
		s, n.start, n.end = inner, v.start+1, v.end-1
	case v.kind == '-' || '0' <= v.kind && v.kind <= '9':
		s, n.start, n.end = data[v.start:v.end], v.start, v.end
	default:
		return number{}, false
	}
	if !n.split(s) {
		return number{}, false
	}
	return n, true
}

// split reads s, a decimal in plain notation, -?[0-9]+(\.[0-9]+)?, into n's
// sign and digits; it is false for anything else.
func (n *number) split(s []byte) bool {
	if len(s) > 0 && s[0] == '-' {
		n.neg = true
		s = s[1:]
	}
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return false
	}
	n.intg = s[:i]
	if i == len(s) {
		return true
	}
	if s[i] != '.' {
		return false
	}
	j := i + 1
	for j < len(s) && '0' <= s[j] && s[j] <= '9' {
		j++
	}
	if j == i+1 || j != len(s) {
		return false
	}
	n.frac = s[i+1 : j]
	return true
}

// Errors of ParseDecimal: callers word their own messages.
var (
	ErrNotDecimal      = errors.New("not a decimal in plain notation")
	ErrTooManyDecimals = errors.New("too many decimal places")
)

// ParseDecimal is the one parser of a decimal given as text: the records'
// values and prices (Decoder, on the record's bytes, which is the same
// parse), the registry's loss factors and thresholds, the price spike
// threshold of the configuration and the failpoints' probabilities. s is
// in plain notation, -?[0-9]+(\.[0-9]+)? (no exponent, blanks or '+'),
// with at most places decimal places by value: trailing zeros do not count
// (meters/README.md), so 1.5000000 has one, as two decimals are equal when
// their values are. The result keeps the written scale up to places;
// zeros written beyond it are dropped, so its exponent is at least
// -places.
//
// Callers narrow the syntax where their format does (the registry takes
// no sign and at most 15 integer digits). Two inputs have formats of their
// own and do not come here: NEM12 interval values (".5" and "5." are NEM12
// numbers, scaled by the channel's unit before the kWh rule, CheckKWh,
// applies by value) and HTTP quality weights (RFC 9110's grammar).
func ParseDecimal(s string, places int) (decimal.Decimal, error) {
	var n number
	if !n.split([]byte(s)) {
		return decimal.Decimal{}, ErrNotDecimal
	}
	if n.decimals() > places {
		return decimal.Decimal{}, ErrTooManyDecimals
	}
	// Plain notation is always shopspring's syntax; the digits beyond
	// places are zeros, so truncating drops only them.
	return decimal.RequireFromString(s).Truncate(int32(places)), nil
}

// AtMostDecimals reports whether d has at most places decimal places by
// value (ParseDecimal's rule, for a decimal that did not come from text).
func AtMostDecimals(d decimal.Decimal, places int32) bool { return d.Equal(d.Truncate(places)) }

func (n number) zero() bool {
	for _, c := range n.intg {
		if c != '0' {
			return false
		}
	}
	for _, c := range n.frac {
		if c != '0' {
			return false
		}
	}
	return true
}

// exceeds reports whether |n| > 1,000,000, comparing digits as text.
func (n number) exceeds() bool {
	intg := bytes.TrimLeft(n.intg, "0")
	switch {
	case len(intg) < len(maxMagnitude):
		return false
	case len(intg) > len(maxMagnitude):
		return true
	}
	if c := bytes.Compare(intg, []byte(maxMagnitude)); c != 0 {
		return c > 0
	}
	return len(bytes.Trim(n.frac, "0")) > 0
}

// decimals is the number of decimal places of n's value: trailing zeros do
// not count (0.1000000 has one), as two decimals are equal when their values
// are. It is the rule of ParseDecimal and of Decoder's values and prices.
func (n number) decimals() int { return len(bytes.TrimRight(n.frac, "0")) }

// decimal converts a checked number (|n| ≤ 1,000,000, at most 6 decimals,
// so at most 13 significant digits) exactly, and gives it in millionths too.
// The decimal keeps the written scale up to 6 places; zeros written beyond
// the sixth place are dropped.
func (n number) decimal() (decimal.Decimal, int64) {
	m, places := n.scaled()
	micro := m
	for range MaxDecimals - places {
		micro *= 10
	}
	return decimal.New(m, -int32(places)), micro
}

// micro is a checked number in millionths, as decimal gives it.
func (n number) micro() int64 {
	m, places := n.scaled()
	for range MaxDecimals - places {
		m *= 10
	}
	return m
}

// scaled is a checked number as an integer m of 10^-places units, at its
// written scale up to 6 places.
func (n number) scaled() (m int64, places int) {
	frac := n.frac
	if len(frac) > MaxDecimals {
		frac = frac[:MaxDecimals]
	}
	for _, c := range bytes.TrimLeft(n.intg, "0") {
		m = m*10 + int64(c-'0')
	}
	for _, c := range frac {
		m = m*10 + int64(c-'0')
	}
	if n.neg {
		m = -m
	}
	return m, len(frac)
}

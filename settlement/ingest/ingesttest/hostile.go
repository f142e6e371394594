package ingesttest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement/kafka"
)

// Partitions is how many partitions of each input topic the suite writes to;
// the cluster under test needs at least that many.
const Partitions = 4

// Contract limits the checks below rest on (meters/README.md).
const (
	MaxDeadLetterBytes = 1_000_000 // a dead letter's value and headers together
	MaxDetailChars     = 200       // a quarantine detail, in characters
)

// Dead-letter headers of meters/README.md "Validation and quarantine" and
// "Nothing a producer sends can stop ingest".
const (
	HeaderReason          = "gridsettle-reason"
	HeaderSourceTopic     = "gridsettle-source-topic"
	HeaderSourcePartition = "gridsettle-source-partition"
	HeaderSourceOffset    = "gridsettle-source-offset"
	HeaderTruncated       = "gridsettle-truncated"
	HeaderValueSHA256     = "gridsettle-value-sha256"
)

// Registry is the registry the records assume, as the API's registry CSVs:
// POST each CSV to /api/v1/{Path} in this order.
var Registry = []struct{ Path, CSV string }{
	{"participants", "participant_id,name\nRETAILER-A,A\n"},
	{"settlement-points", "settlement_point,name,kind\nHB_NORTH,North,hub\nHB_SOUTH,South,hub\n"},
	{"accounts", "account_id,name,daily_kwh_threshold,monthly_budget,price_alerts\nACC-1,one,,,false\nACC-2,two,,,false\n"},
	{"meters", "meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from,effective_to\n" +
		"M1,ACC-1,RETAILER-A,HB_NORTH,1.5,2026-01-01T00:00:00Z,\n" +
		"M2,ACC-2,RETAILER-A,HB_SOUTH,1.031200,2026-01-01T00:00:00Z,\n"},
}

// Read is one read an applied record must leave current.
type Read struct {
	MeterID, Channel string
	Start            time.Time
	Value            decimal.Decimal
	Version          int64
	Source           string
}

// Price is one price an applied record must leave current.
type Price struct {
	Market, SettlementPoint string
	Start                   time.Time
	Price                   decimal.Decimal
}

// Case is one input record and what the contract says becomes of it.
type Case struct {
	Name   string
	Record *kgo.Record // Topic, Partition, Key and Value; the producer fills Offset
	// Reasons are the reasons the contract allows, the one its text names
	// first; a second one only where the contract leaves a choice (the case
	// says which). Empty: the record is not quarantined.
	Reasons []meters.Reason
	// Ignored: valid, but versioning ignores it (a head-end resend): it
	// changes nothing and is not quarantined.
	Ignored bool
	Reads   []Read    // what an applied record leaves current
	Prices  []Price   // likewise for a price
	End     time.Time // applied: end of its last interval, which may move its partition's watermark
	// CSV is, when set, the value cell a CSV answer about the quarantined
	// record must hold: a spreadsheet formula neutralised with a leading ',
	// a number as it is (api/README.md "Safe under abuse").
	CSV string
}

// Quarantined reports whether the contract says c is quarantined.
func (c Case) Quarantined() bool { return len(c.Reasons) > 0 }

// Applied reports whether c must change current reads or prices.
func (c Case) Applied() bool { return !c.Quarantined() && !c.Ignored }

func (c Case) String() string {
	return fmt.Sprintf("%s (%s/%d@%d)", c.Name, c.Record.Topic, c.Record.Partition, c.Record.Offset)
}

// CheckQuarantined returns what is wrong with c's quarantine item (its
// reason, its detail, and value, the whole record as stored), or nil.
func (c Case) CheckQuarantined(reason, detail string, value []byte) error {
	var errs []string
	if !slices.Contains(c.Reasons, meters.Reason(reason)) {
		errs = append(errs, fmt.Sprintf("reason %q, want %v", reason, c.Reasons))
	}
	if err := CheckDetail(detail); err != nil {
		errs = append(errs, err.Error())
	}
	if !bytes.Equal(value, c.Record.Value) {
		errs = append(errs, fmt.Sprintf("stored value of %d bytes is not the record's %d bytes", len(value), len(c.Record.Value)))
	}
	if errs != nil {
		return fmt.Errorf("%s: %s", c, strings.Join(errs, "; "))
	}
	return nil
}

// CheckDetail returns why detail is not a detail the contract allows: valid
// UTF-8 of at most 200 characters, control characters escaped.
func CheckDetail(detail string) error {
	switch {
	case !utf8.ValidString(detail):
		return fmt.Errorf("detail %q is not valid UTF-8", detail)
	case utf8.RuneCountInString(detail) > MaxDetailChars:
		return fmt.Errorf("detail has %d characters, at most %d allowed", utf8.RuneCountInString(detail), MaxDetailChars)
	case strings.ContainsFunc(detail, func(r rune) bool { return r < 0x20 }):
		return fmt.Errorf("detail %q holds an unescaped control character", detail)
	case detail == "":
		return fmt.Errorf("detail is empty")
	}
	return nil
}

// CheckDeadLetter returns what is wrong with the dead letter of c, quarantined
// with reason: key, value and headers as written to gridsettle.dead-letter
// (all of its headers when read from Kafka, the ingest-specific ones when
// read from the outbox).
func (c Case) CheckDeadLetter(reason string, key, value []byte, headers []kgo.RecordHeader) error {
	h := map[string]string{}
	size := len(value)
	for _, x := range headers {
		h[x.Key] = string(x.Value)
		size += len(x.Key) + len(x.Value)
	}
	r := c.Record
	var errs []string
	for k, want := range map[string]string{
		HeaderReason: reason, HeaderSourceTopic: r.Topic,
		HeaderSourcePartition: strconv.Itoa(int(r.Partition)), HeaderSourceOffset: strconv.FormatInt(r.Offset, 10),
	} {
		if h[k] != want {
			errs = append(errs, fmt.Sprintf("header %s = %q, want %q", k, h[k], want))
		}
	}
	if !bytes.Equal(key, r.Key) {
		errs = append(errs, fmt.Sprintf("key %q, want the record's %q", clip(key), clip(r.Key)))
	}
	if size > MaxDeadLetterBytes {
		errs = append(errs, fmt.Sprintf("value and headers are %d bytes, more than %d", size, MaxDeadLetterBytes))
	}
	switch n := len(r.Value); {
	case n <= fitsBytes:
		if !bytes.Equal(value, r.Value) {
			errs = append(errs, fmt.Sprintf("value of %d bytes is not the record's %d bytes", len(value), n))
		}
		if _, ok := h[HeaderTruncated]; ok {
			errs = append(errs, "a record that fits is marked truncated")
		}
	case n > MaxDeadLetterBytes:
		sum := sha256.Sum256(r.Value)
		if !bytes.HasPrefix(r.Value, value) || len(value) == 0 {
			errs = append(errs, fmt.Sprintf("value of %d bytes is not a prefix of the record", len(value)))
		}
		if h[HeaderTruncated] != strconv.Itoa(n) {
			errs = append(errs, fmt.Sprintf("header %s = %q, want %d", HeaderTruncated, h[HeaderTruncated], n))
		}
		if got := h[HeaderValueSHA256]; got != hex.EncodeToString(sum[:]) && got != base64.StdEncoding.EncodeToString(sum[:]) {
			errs = append(errs, fmt.Sprintf("header %s = %q, want the SHA-256 of the whole record", HeaderValueSHA256, got))
		}
	default:
		errs = append(errs, fmt.Sprintf("the suite's record of %d bytes is too close to the limit to tell whether it fits", n))
	}
	if errs != nil {
		return fmt.Errorf("dead letter of %s: %s", c, strings.Join(errs, "; "))
	}
	return nil
}

// fitsBytes is the largest record the suite expects copied whole into its
// dead letter: far enough below MaxDeadLetterBytes for any headers.
const fitsBytes = 900_000

func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// TopicPartition names one input partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Watermarks is, per input partition the suite writes, the event-time
// watermark the contract allows after cases: the latest end of an applied
// record's intervals (zero when none), as quarantined records never move it.
func Watermarks(topics kafka.Topics, cases []Case) map[TopicPartition]time.Time {
	w := map[TopicPartition]time.Time{}
	for _, t := range topics.Inputs() {
		for p := range int32(Partitions) {
			w[TopicPartition{t, p}] = time.Time{}
		}
	}
	for _, c := range cases {
		tp := TopicPartition{c.Record.Topic, c.Record.Partition}
		if c.Applied() && c.End.After(w[tp]) {
			w[tp] = c.End
		}
	}
	return w
}

// CheckWatermark returns what is wrong with got, the watermark a status
// reports for tp (nil: none), given the watermarks the contract allows.
func CheckWatermark(tp TopicPartition, got *time.Time, want map[TopicPartition]time.Time) error {
	w := want[tp]
	if w.IsZero() && got != nil || !w.IsZero() && (got == nil || !got.Equal(w)) {
		return fmt.Errorf("%s/%d: watermark %v, want %v (the latest end of an applied record)", tp.Topic, tp.Partition, got, w)
	}
	return nil
}

// Reached are the cases below their partition's next offset: those a
// consumer stored at next has processed. A partition that stalled is
// reported once by whoever waited for it; its later records are no use to
// the record-by-record checks.
func Reached(cases []Case, next map[TopicPartition]int64) []Case {
	var out []Case
	for _, c := range cases {
		if c.Record.Offset < next[TopicPartition{c.Record.Topic, c.Record.Partition}] {
			out = append(out, c)
		}
	}
	return out
}

// Suite is the hostile-input suite's records.
type Suite struct {
	Cases []Case
	b     *builder
}

// New returns the suite for topics at wall-clock time now (the future bounds
// are relative to it), its random records drawn from seed.
func New(topics kafka.Topics, now time.Time, seed uint64) *Suite {
	b := &builder{topics: topics, now: now.UTC(), rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for p := range Partitions {
		b.nextRead[p] = time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)
		b.nextPrice[p] = b.nextRead[p]
	}
	b.reads()
	b.prices()
	return &Suite{Cases: b.cases, b: b}
}

// Tail adds one valid record to every partition the suite writes and
// returns them: what a partition that stayed live must apply next.
func (s *Suite) Tail() []Case {
	n := len(s.b.cases)
	for p := range int32(Partitions) {
		s.b.fillRead(p)
		s.b.fillPrice(p)
	}
	s.Cases = s.b.cases
	return s.b.cases[n:]
}

// Summary counts cases: records and bytes, quarantined, applied, ignored.
func Summary(cases []Case) string {
	var bytes, quarantined, applied int
	for _, c := range cases {
		bytes += len(c.Record.Value)
		switch {
		case c.Quarantined():
			quarantined++
		case c.Applied():
			applied++
		}
	}
	return fmt.Sprintf("%d records (%d bytes): %d to quarantine, %d to apply, %d to ignore",
		len(cases), bytes, quarantined, applied, len(cases)-quarantined-applied)
}

// Records are the Kafka records of cases, in order.
func Records(cases []Case) []*kgo.Record {
	out := make([]*kgo.Record, len(cases))
	for i, c := range cases {
		out[i] = c.Record
	}
	return out
}

// The meter channel of each reads partition and the price series of each
// prices partition. Every series has one interval length, so that only the
// cases meant to meet interval_length_mismatch do.
var (
	readSeries = [Partitions]struct{ meter, channel string }{
		{"M1", "import"}, {"M2", "import"}, {"M1", "export"}, {"M2", "export"}}
	priceSeries = [Partitions]struct{ market, point string }{
		{"RT", "HB_NORTH"}, {"RT", "HB_SOUTH"}, {"DA", "HB_NORTH"}, {"DA", "HB_SOUTH"}}
)

const (
	readSeconds  = 900
	priceSeconds = 300
	mib          = 1 << 20
)

type builder struct {
	topics    kafka.Topics
	now       time.Time
	rnd       *rand.Rand
	nextRead  [Partitions]time.Time // next free interval start of each reads series
	nextPrice [Partitions]time.Time
	fills     int // values of filler records, all distinct
	cases     []Case
}

// field is one member of a JSON object: its name and raw JSON value. A
// slice of them may hold a name twice, as a hostile producer's may.
type field struct{ name, raw string }

func object(fs []field) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range fs {
		if i > 0 {
			b.WriteByte(',')
		}
		if strings.HasPrefix(f.name, `"`) {
			b.WriteString(f.name) // already JSON, e.g. a name spelled with an escape
		} else {
			b.WriteString(str(f.name))
		}
		b.WriteByte(':')
		b.WriteString(f.raw)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// with returns fs with name set to raw (replaced in place, else appended).
func with(fs []field, name, raw string) []field {
	out := slices.Clone(fs)
	for i := range out {
		if out[i].name == name {
			out[i].raw = raw
			return out
		}
	}
	return append(out, field{name, raw})
}

// str is s as a JSON string; control characters are escaped (\u0000), HTML
// characters kept.
func str(s string) string {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(s); err != nil {
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func rfc3339(t time.Time) string { return str(t.UTC().Format(time.RFC3339)) }

func strs(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = str(v)
	}
	return "[" + strings.Join(q, ",") + "]"
}

// readFields is a valid record of reads partition p starting at start.
func readFields(p int32, start time.Time, values ...string) []field {
	s := readSeries[p]
	return []field{
		{"meter_id", str(s.meter)}, {"channel", str(s.channel)}, {"start", rfc3339(start)},
		{"interval_seconds", strconv.Itoa(readSeconds)}, {"values", strs(values)},
		{"version", "1"}, {"source", str("headend-east")},
	}
}

func priceFields(p int32, start time.Time, price string) []field {
	s := priceSeries[p]
	return []field{
		{"market", str(s.market)}, {"settlement_point", str(s.point)}, {"start", rfc3339(start)},
		{"interval_seconds", strconv.Itoa(priceSeconds)}, {"price", str(price)}, {"currency", str("USD")}, {"version", "1"},
	}
}

func (b *builder) readRecord(p int32, key string, value []byte) *kgo.Record {
	return &kgo.Record{Topic: b.topics.Reads, Partition: p, Key: []byte(key), Value: value}
}

func (b *builder) priceRecord(p int32, key string, value []byte) *kgo.Record {
	return &kgo.Record{Topic: b.topics.Prices, Partition: p, Key: []byte(key), Value: value}
}

// takeRead reserves n intervals of reads series p.
func (b *builder) takeRead(p int32, n int) time.Time {
	start := b.nextRead[p]
	b.nextRead[p] = start.Add(time.Duration(n*readSeconds) * time.Second)
	return start
}

func (b *builder) takePrice(p int32) time.Time {
	start := b.nextPrice[p]
	b.nextPrice[p] = start.Add(priceSeconds * time.Second)
	return start
}

func (b *builder) fillValue() string {
	b.fills++
	return decimal.New(int64(b.fills), -3).String()
}

// fillRead adds a plain valid record to reads partition p.
func (b *builder) fillRead(p int32) {
	v := b.fillValue()
	start := b.takeRead(p, 1)
	b.appliedRead("valid read", p, readSeries[p].meter, readFields(p, start, v), start, 1, "headend-east", v)
}

func (b *builder) fillPrice(p int32) {
	v := b.fillValue()
	start := b.takePrice(p)
	b.appliedPrice("valid price", p, priceFields(p, start, v), start, v)
}

// appliedRead adds a valid reads record with the given fields, whose reads
// start at start with values.
func (b *builder) appliedRead(name string, p int32, key string, fs []field, start time.Time, version int64, source string, values ...string) *Case {
	s := readSeries[p]
	c := Case{Name: name, Record: b.readRecord(p, key, object(fs))}
	for i, v := range values {
		t := start.Add(time.Duration(i*readSeconds) * time.Second)
		c.Reads = append(c.Reads, Read{MeterID: s.meter, Channel: s.channel, Start: t, Value: decimal.RequireFromString(v), Version: version, Source: source})
	}
	c.End = start.Add(time.Duration(len(values)*readSeconds) * time.Second)
	b.cases = append(b.cases, c)
	return &b.cases[len(b.cases)-1]
}

func (b *builder) appliedPrice(name string, p int32, fs []field, start time.Time, price string) {
	s := priceSeries[p]
	b.cases = append(b.cases, Case{
		Name: name, Record: b.priceRecord(p, s.point, object(fs)),
		Prices: []Price{{Market: s.market, SettlementPoint: s.point, Start: start, Price: decimal.RequireFromString(price)}},
		End:    start.Add(priceSeconds * time.Second),
	})
}

// badRead adds a valid record and then a quarantined one to reads
// partition p: every hostile record sits between records that must apply.
func (b *builder) badRead(name string, p int32, key string, value []byte, reasons ...meters.Reason) {
	b.fillRead(p)
	b.cases = append(b.cases, Case{Name: name, Record: b.readRecord(p, key, value), Reasons: reasons})
}

func (b *builder) badPrice(name string, p int32, key string, value []byte, reasons ...meters.Reason) {
	b.fillPrice(p)
	b.cases = append(b.cases, Case{Name: name, Record: b.priceRecord(p, key, value), Reasons: reasons})
}

// randomBytes are n seeded random bytes that are not a JSON object.
func (b *builder) randomBytes(n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(b.rnd.Uint32())
	}
	if isObject(out) {
		out[0] = 0xff
	}
	return out
}

func isObject(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n")
	return len(t) > 0 && t[0] == '{' && json.Valid(b)
}

// Runes a careless or hostile producer sends: NUL and other controls,
// right-to-left text and marks, emoji (with joiners and modifiers), combining
// marks, a byte order mark, the replacement character, noncharacters and the
// last code point.
var runeClasses = [][]rune{
	{0x00, 0x01, 0x08, 0x09, 0x0a, 0x0d, 0x1b, 0x1f, 0x7f, 0x85},
	{'a', 'Z', '0', '"', '\\', '/', '<', '&', '{', '}'},
	{0x05d0, 0x05e9, 0x0627, 0x0644, 0x200f, 0x202e, 0x2067, 0x061c},
	{0x1f600, 0x1f4a9, 0x1f468, 0x200d, 0x1f469, 0x1f3fd, 0xfe0f, 0x1f1fa},
	{0x0301, 0x0308, 0x0338, 0x20dd, 0x0489, 0x036f},
	{0xfeff, 0xfffd, 0xfffe, 0xffff, 0x10ffff, 0x2028, 0x2029, 0x00a0, 0x4e2d, 0xe9},
}

// randomText is n random characters of runeClasses, without NUL when
// withNUL is false.
func (b *builder) randomText(n int, withNUL bool) string {
	var s strings.Builder
	for s.Len() == 0 || utf8.RuneCountInString(s.String()) < n {
		class := runeClasses[b.rnd.IntN(len(runeClasses))]
		r := class[b.rnd.IntN(len(class))]
		if r == 0 && !withNUL {
			continue
		}
		s.WriteRune(r)
	}
	if withNUL && !strings.ContainsRune(s.String(), 0) {
		_, size := utf8.DecodeRuneInString(s.String())
		return "\x00" + s.String()[size:]
	}
	return s.String()
}

func (b *builder) floorNow(seconds int64) time.Time {
	return time.Unix(b.now.Unix()/seconds*seconds, 0).UTC()
}

// Expected reasons, named once.
var (
	malformed      = meters.MalformedJSON
	schema         = meters.SchemaViolation
	unsupported    = meters.UnsupportedInterval
	misaligned     = meters.MisalignedStart
	outOfRange     = meters.StartOutOfRange
	valueRange     = meters.ValueOutOfRange
	decimals       = meters.TooManyDecimals
	unknownMeter   = meters.UnknownMeter
	unknownPoint   = meters.UnknownSettlementPoint
	currency       = meters.CurrencyMismatch
	lengthMismatch = meters.IntervalLengthMismatch
	conflict       = meters.ConflictingDuplicate
	unprocessable  = meters.Unprocessable
)

// far is the far-future start: year 9999, aligned to every interval.
var far = time.Date(9999, 12, 31, 20, 0, 0, 0, time.UTC)

func (b *builder) reads() {
	// Each block below writes to the partitions its comments name; p0 is M1
	// import, p1 M2 import, p2 M1 export, p3 M2 export.
	at := func(p int32) time.Time { return b.takeRead(p, 1) }
	rd := func(p int32, fs ...field) []byte {
		out := readFields(p, at(p), "1")
		for _, f := range fs {
			out = with(out, f.name, f.raw)
		}
		return object(out)
	}

	// Random bytes: nothing of it is a JSON object.
	for i, n := range []int{0, 1, 2, 3, 17, 255, 4096, 65536} {
		b.badRead(fmt.Sprintf("%d random bytes", n), int32(i%Partitions), "M1", b.randomBytes(n), malformed)
	}
	b.badRead("tombstone (no value)", 1, "M2", nil, malformed)
	b.badRead("{ and random bytes", 2, "M1", append([]byte("{"), b.randomBytes(300)...), malformed)
	b.badRead("random bytes in a string", 3, "M2",
		append(append([]byte(`{"meter_id":"`), append(b.randomBytes(200), 0xff)...), `"}`...), malformed)
	b.badRead("random bytes key", 0, string(b.randomBytes(1024)), b.randomBytes(64), malformed)

	// Random Unicode (valid UTF-8) as the whole record and in each kind of
	// field: a record is text, not JSON; a meter or channel must be one of
	// its forms; an unknown field is ignored; a source is free text.
	for i, n := range []int{1, 40, 2000} {
		text := []byte(b.randomText(n, true))
		if isObject(text) {
			text = append([]byte("x"), text...)
		}
		b.badRead(fmt.Sprintf("%d random characters", n), int32(i%Partitions), "M1", text, malformed)
	}
	b.badRead("random channel", 0, "M1", rd(0, field{"channel", str(b.randomText(30, true))}), schema)
	b.badRead("random meter_id", 1, "M2", rd(1, field{"meter_id", str(b.randomText(30, true))}), schema)
	b.badRead("channel of 20 é", 2, "M1", rd(2, field{"channel", str(strings.Repeat("é", 20))}), schema)
	b.badRead("meter_id of 20 é", 3, "M2", rd(3, field{"meter_id", str(strings.Repeat("é", 20))}), schema)
	b.badRead("lone surrogate escape in channel", 0, "M1", rd(0, field{"channel", `"\ud800"`}), schema)
	{
		src := b.randomText(100, false) // 100 characters, well over 128 bytes
		start := at(1)
		b.appliedRead("random source", 1, "M2", with(readFields(1, start, "0.25"), "source", str(src)), start, 1, src, "0.25")
		start = at(2)
		b.appliedRead("random unknown field", 2, "M1",
			with(readFields(2, start, "0.5"), b.randomText(20, true), str(b.randomText(500, true))), start, 1, "headend-east", "0.5")
		start = at(3)
		b.appliedRead("random key", 3, b.randomText(50, true), readFields(3, start, "0.75"), start, 1, "headend-east", "0.75")
		start = at(0)
		b.appliedRead("invalid UTF-8 key", 0, "\xff\xfeM1", readFields(0, start, "0.125"), start, 1, "headend-east", "0.125")
	}
	// U+0000 in a source: free text that Postgres cannot store, so
	// unprocessable, but only once every other check has passed.
	b.badRead("NUL in source", 1, "M2", rd(1, field{"source", str("head\x00end")}), unprocessable)
	b.badRead("NUL in source, unknown meter", 1, "M9", rd(1, field{"meter_id", `"M9"`}, field{"source", str("head\x00end")}), unknownMeter)

	// Invalid UTF-8 anywhere in a record is malformed_json, even where a
	// valid character would have been another reason.
	for i, bad := range []string{"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"} {
		p := int32(i % Partitions)
		v := rd(p, field{"source", `"` + "head" + bad + "end" + `"`})
		b.badRead(fmt.Sprintf("invalid UTF-8 %q in source", bad), p, readSeries[p].meter, v, malformed)
	}
	b.badRead("channel of 20 Latin-1 é", 2, "M1", rd(2, field{"channel", `"` + strings.Repeat("\xe9", 20) + `"`}), malformed)
	b.badRead("invalid UTF-8 in an unknown field", 3, "M2", rd(3, field{"note", `"\xff"`}), malformed)
	b.badRead("raw NUL in a string", 0, "M1", rd(0, field{"source", "\"head\x00end\""}), malformed)
	b.badRead("raw newline in a string", 1, "M2", rd(1, field{"source", "\"head\nend\""}), malformed)
	b.badRead("JSON null", 2, "M1", []byte("null"), malformed)
	b.badRead("JSON array", 3, "M2", []byte(`[{"meter_id":"M2"}]`), malformed)
	b.badRead("JSON string", 0, "M1", []byte(`"{}"`), malformed)
	b.badRead("empty object", 1, "M2", []byte(`{}`), schema)
	b.badRead("NaN value", 2, "M1", rd(2, field{"values", `[NaN]`}), malformed)
	// Not JSON objects either, and formulas once in a spreadsheet.
	for i, f := range []struct{ value, cell string }{
		{`=HYPERLINK("https://example.invalid/","click me")`, `'=HYPERLINK("https://example.invalid/","click me")`},
		{`@SUM(1+1)*cmd|' /C calc'!A0`, `'@SUM(1+1)*cmd|' /C calc'!A0`},
		{`+cmd|' /C calc'!A0`, `'+cmd|' /C calc'!A0`},
		{`-2+3+cmd|' /C calc'!A0`, `'-2+3+cmd|' /C calc'!A0`},
		{"\t=1+1", "'\t=1+1"},
		{"-1", "-1"},
		{"-0.5", "-0.5"},
	} {
		p := int32(i % Partitions)
		b.badRead("formula "+f.value, p, readSeries[p].meter, []byte(f.value), malformed)
		b.cases[len(b.cases)-1].CSV = f.cell
	}

	// Start bounds: [2000-01-01, now + PT15M] for every interval, checked
	// after alignment and before the values and the registry.
	floor := b.floorNow(readSeconds)
	b.badRead("year 9999, unknown meter", 1, "M9", rd(1, field{"meter_id", `"M9"`}, field{"start", rfc3339(far)}), outOfRange)
	b.badRead("year 9999, known meter", 0, "M1", rd(0, field{"start", rfc3339(far)}), outOfRange)
	b.badRead("last interval of year 9999", 2, "M1", rd(2, field{"start", rfc3339(time.Date(9999, 12, 31, 23, 45, 0, 0, time.UTC))}), outOfRange)
	b.badRead("year 9999, misaligned", 3, "M2", rd(3, field{"start", `"9999-12-31T20:07:00Z"`}), misaligned)
	b.badRead("year 9999, 600 s", 0, "M1", rd(0, field{"start", rfc3339(far)}, field{"interval_seconds", "600"}), unsupported)
	b.badRead("year 9999, negative value", 1, "M2", rd(1, field{"start", rfc3339(far)}, field{"values", `["-1"]`}), outOfRange)
	b.badRead("year 1", 2, "M1", rd(2, field{"start", `"0001-01-01T00:00:00Z"`}), outOfRange)
	b.badRead("start in 1999", 0, "M1", rd(0, field{"start", `"1999-12-31T23:45:00Z"`}), outOfRange)
	b.badRead("start in 1999, unknown meter", 1, "M9", rd(1, field{"meter_id", `"M9"`}, field{"start", `"1999-12-31T23:45:00Z"`}), outOfRange)
	b.badRead("start in 1999, 300 s", 0, "M1", rd(0, field{"start", `"1999-12-31T23:55:00Z"`}, field{"interval_seconds", "300"}), outOfRange)
	b.badRead("start 2000-01-01, unknown meter", 3, "M9", rd(3, field{"meter_id", `"M9"`}, field{"start", `"2000-01-01T00:00:00Z"`}), unknownMeter)
	b.badRead("start 2000-01-01, before the assignment", 2, "M1", rd(2, field{"start", `"2000-01-01T00:00:00Z"`}), unknownMeter)
	b.badRead("ending 1 h ahead", 0, "M1", rd(0, field{"start", rfc3339(floor.Add(time.Hour))}), outOfRange)
	b.badRead("ending 1 h ahead, unknown meter", 3, "M9", rd(3, field{"meter_id", `"M9"`}, field{"start", rfc3339(floor.Add(time.Hour))}), outOfRange)
	b.badRead("block whose last interval ends 1 h ahead", 2, "M1",
		rd(2, field{"start", rfc3339(floor.Add(-2 * time.Hour))}, field{"values", strs(slices.Repeat([]string{"1"}, 13))}), outOfRange)
	{
		// The interval in progress ends within PT15M: a read may exist.
		b.fillRead(0)
		b.appliedRead("interval ending within PT15M", 0, "M1", readFields(0, floor, "0.5"), floor, 1, "headend-east", "0.5")
	}
	// Quarantined, so it must not move p1's watermark (nor make the
	// missing-data alerts of M2 fire): the latest record of p1 by event time.
	b.badRead("unknown meter, an hour ago", 1, "M9", rd(1, field{"meter_id", `"M9"`}, field{"start", rfc3339(floor.Add(-time.Hour))}), unknownMeter)

	// Huge values.
	huge := "1" + strings.Repeat("0", 400)
	b.badRead("value of 401 digits", 1, "M2", rd(1, field{"values", strs([]string{huge})}), valueRange)
	b.badRead("value of 401 digits, bare", 2, "M1", rd(2, field{"values", "[" + huge + "]"}), valueRange)
	b.badRead("value 1e400, bare", 3, "M2", rd(3, field{"values", "[1e400]"}), schema)
	b.badRead("value 1e400", 0, "M1", rd(0, field{"values", `["1e400"]`}), schema)
	b.badRead("10,001 values", 1, "M2", rd(1, field{"values", strs(slices.Repeat([]string{"0.1"}, 10_001))}), schema)
	{
		const n = 10_000
		values := make([]string, n)
		for i := range values {
			values[i] = decimal.New(int64(i%997), -3).String()
		}
		start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC) // M1 import's Nov series never reaches back here
		b.fillRead(0)
		b.appliedRead("10,000 values", 0, "M1", readFields(0, start, values...), start, 1, "headend-east", values...)
	}
	b.badRead("1 MiB meter_id", 2, "M1", rd(2, field{"meter_id", str(strings.Repeat("A", mib))}), schema)
	b.badRead("1 MiB source", 3, "M2", rd(3, field{"source", str(strings.Repeat("s", mib))}), schema)
	b.badRead("value with 1 MiB of decimal zeros", 0, "M1", rd(0, field{"values", `["0.` + strings.Repeat("0", mib) + `1"]`}), decimals)
	{
		start := at(1)
		b.fillRead(1)
		b.appliedRead("1 MiB unknown field", 1, "M2", with(readFields(1, start, "0.5"), "padding", str(strings.Repeat("p", mib))),
			start, 1, "headend-east", "0.5")
	}
	b.badRead("1.2 MB record, unknown meter", 2, "M9",
		rd(2, field{"meter_id", `"M9"`}, field{"padding", str(strings.Repeat("p", 1_200_000))}), unknownMeter)

	// Deep JSON. RFC 8259 §9 lets a parser limit nesting, so an object whose
	// members nest 100,000 deep is either malformed_json (refused by the
	// parser) or what its members make it.
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	b.badRead("100,000 nested arrays", 3, "M2", []byte(deep), malformed)
	b.badRead("100,000 nested objects", 0, "M1", []byte(strings.Repeat(`{"a":`, 100_000)+"1"+strings.Repeat("}", 100_000)), malformed, schema)
	b.badRead("values nested 100,000 deep", 1, "M2", rd(1, field{"values", deep}), malformed, schema)

	// Extreme numbers: -0 is 0 (≥ 0), trailing zeros are not decimal
	// places, 1,000,000 is in range; integers beyond 64 bits are not a
	// version; an integer field must be written as one.
	for _, v := range []struct{ name, raw, value string }{
		{"value -0", `["-0"]`, "0"}, {"value -0, bare", `[-0]`, "0"},
		{"value 1.0000000", `["1.0000000"]`, "1"}, {"value 1000000.000000", `["1000000.000000"]`, "1000000"},
	} {
		start := at(2)
		b.fillRead(2)
		b.appliedRead(v.name, 2, "M1", with(readFields(2, start), "values", v.raw), start, 1, "headend-east", v.value)
	}
	b.badRead("value 1e-7 as text", 3, "M2", rd(3, field{"values", `["1e-7"]`}), schema)
	b.badRead("value 0.0000001", 0, "M1", rd(0, field{"values", `["0.0000001"]`}), decimals)
	b.badRead("value 0.0000001, bare", 1, "M2", rd(1, field{"values", `[0.0000001]`}), decimals)
	b.badRead("value 1000000.0000001", 2, "M1", rd(2, field{"values", `["1000000.0000001"]`}), valueRange)
	b.badRead("value -0.0000001", 3, "M2", rd(3, field{"values", `["-0.0000001"]`}), valueRange)
	for i, v := range []string{`"0x10"`, `"NaN"`, `"Infinity"`, `""`, `"+1"`, `" 1"`, `true`, `{}`} {
		p := int32(i % Partitions)
		b.badRead("value "+v, p, readSeries[p].meter, rd(p, field{"values", "[" + v + "]"}), schema)
	}
	b.badRead("empty values", 0, "M1", rd(0, field{"values", `[]`}), schema)
	b.badRead("values not an array", 1, "M2", rd(1, field{"values", `"0.5"`}), schema)
	for i, v := range []string{"18446744073709551616", "9223372036854775808", "0", "-1", "1.0", "1e0", `"1"`} {
		p := int32(i % Partitions)
		b.badRead("version "+v, p, readSeries[p].meter, rd(p, field{"version", v}), schema)
	}
	{
		start := at(3)
		b.fillRead(3)
		b.appliedRead("version 9223372036854775807", 3, "M2", with(readFields(3, start, "0.5"), "version", "9223372036854775807"),
			start, 9223372036854775807, "headend-east", "0.5")
	}
	b.badRead("interval 18446744073709551616", 0, "M1", rd(0, field{"interval_seconds", "18446744073709551616"}), unsupported)
	b.badRead("interval -900", 1, "M2", rd(1, field{"interval_seconds", "-900"}), unsupported)
	b.badRead("interval 900.0", 2, "M1", rd(2, field{"interval_seconds", "900.0"}), schema)
	b.badRead("interval 9E2", 3, "M2", rd(3, field{"interval_seconds", "9E2"}), schema)

	// Duplicate keys. RFC 8259 §4 leaves the meaning to the parser; the
	// common one (ECMAScript's JSON.parse, Go's encoding/json) is that the
	// last wins, and a strict parser may refuse the record. No reading lets
	// the first occurrence through.
	{
		start := at(0)
		fs := append(readFields(0, start, "0.5"), field{"meter_id", `"M1"`})
		b.fillRead(0)
		b.appliedRead("duplicate meter_id, same value", 0, "M1", fs, start, 1, "headend-east", "0.5")
	}
	b.badRead("duplicate meter_id, M1 then M9", 1, "M2",
		object(append(readFields(1, at(1), "1"), field{"meter_id", `"M9"`})), unknownMeter, schema, malformed)
	b.badRead("duplicate meter_id, escaped name", 2, "M1",
		object(append(readFields(2, at(2), "1"), field{`meter_id`, `"M1"`}, field{`"meter\u005fid"`, `"M9"`})), unknownMeter, schema, malformed)
	b.badRead("duplicate values, the last negative", 3, "M2",
		object(append(readFields(3, at(3), "1"), field{"values", `["-1"]`})), valueRange, schema, malformed)

	// State: a second interval length, a changed value of the same version,
	// and a head-end resend (ignored, not quarantined).
	b.badRead("300 s after 900 s", 0, "M1", rd(0, field{"interval_seconds", "300"}), lengthMismatch)
	{
		b.fillRead(1)
		first := b.cases[len(b.cases)-1]
		b.cases = append(b.cases, Case{Name: "resend", Record: b.readRecord(1, "M2", first.Record.Value), Ignored: true})
		changed := with(readFields(1, first.Reads[0].Start, "99"), "source", str("headend-west"))
		b.badRead("same version, another value", 1, "M2", object(changed), conflict)
	}
}

func (b *builder) prices() {
	at := func(p int32) time.Time { return b.takePrice(p) }
	pr := func(p int32, fs ...field) []byte {
		out := priceFields(p, at(p), "10")
		for _, f := range fs {
			out = with(out, f.name, f.raw)
		}
		return object(out)
	}
	west := field{"settlement_point", `"HB_WEST"`}

	for i, n := range []int{0, 5, 1000, 20000} {
		b.badPrice(fmt.Sprintf("%d random bytes", n), int32(i%Partitions), "HB_NORTH", b.randomBytes(n), malformed)
	}
	b.badPrice("random settlement_point", 1, "HB_SOUTH", pr(1, field{"settlement_point", str(b.randomText(30, true))}), schema)
	b.badPrice("settlement_point of 20 é", 2, "HB_NORTH", pr(2, field{"settlement_point", str(strings.Repeat("é", 20))}), schema)
	b.badPrice("market of 20 é", 3, "HB_SOUTH", pr(3, field{"market", str(strings.Repeat("é", 20))}), schema)
	b.badPrice("currency €UR", 0, "HB_NORTH", pr(0, field{"currency", `"€UR"`}), schema)
	b.badPrice("invalid UTF-8 in currency", 1, "HB_SOUTH", pr(1, field{"currency", "\"\xffUR\""}), malformed)
	b.badPrice("100,000 nested arrays", 2, "HB_NORTH", []byte(strings.Repeat("[", 100_000)+strings.Repeat("]", 100_000)), malformed)

	// Start bounds: [2000-01-01, now + P7D).
	floor := b.floorNow(priceSeconds)
	b.badPrice("year 9999, unknown point", 1, "HB_WEST", pr(1, west, field{"start", rfc3339(far)}), outOfRange)
	b.badPrice("year 9999, known point", 0, "HB_NORTH", pr(0, field{"start", rfc3339(far)}), outOfRange)
	b.badPrice("8 days ahead", 0, "HB_NORTH", pr(0, field{"start", rfc3339(floor.Add(8 * 24 * time.Hour))}), outOfRange)
	b.badPrice("8 days ahead, unknown point", 3, "HB_WEST", pr(3, west, field{"start", rfc3339(floor.Add(8 * 24 * time.Hour))}), outOfRange)
	b.badPrice("start in 1999", 2, "HB_NORTH", pr(2, field{"start", `"1999-12-31T23:55:00Z"`}), outOfRange)
	{
		b.fillPrice(0)
		start := floor.Add(6 * 24 * time.Hour)
		b.appliedPrice("6 days ahead", 0, priceFields(0, start, "31.5"), start, "31.5")
		b.fillPrice(2)
		start = floor.Add(7*24*time.Hour - priceSeconds*time.Second)
		b.appliedPrice("day-ahead, just inside P7D", 2, priceFields(2, start, "-5"), start, "-5")
	}
	b.badPrice("unknown point, an hour ago", 1, "HB_WEST", pr(1, west, field{"start", rfc3339(floor.Add(-time.Hour))}), unknownPoint)
	b.badPrice("unknown point, another currency", 3, "HB_WEST", pr(3, west, field{"currency", `"EUR"`}), unknownPoint)
	b.badPrice("another currency", 0, "HB_NORTH", pr(0, field{"currency", `"EUR"`}), currency)

	// Numbers: a price may be negative, |price| ≤ 1,000,000, 6 places.
	b.badPrice("price of 401 digits", 1, "HB_SOUTH", pr(1, field{"price", str("1" + strings.Repeat("0", 400))}), valueRange)
	b.badPrice("price -1000000.0000001", 2, "HB_NORTH", pr(2, field{"price", `"-1000000.0000001"`}), valueRange)
	b.badPrice("price 0.0000001", 3, "HB_SOUTH", pr(3, field{"price", `"0.0000001"`}), decimals)
	b.badPrice("price 1e-7 as text", 0, "HB_NORTH", pr(0, field{"price", `"1e-7"`}), schema)
	b.badPrice("price version 18446744073709551616", 1, "HB_SOUTH", pr(1, field{"version", "18446744073709551616"}), schema)
	for i, v := range []struct{ name, raw, price string }{
		{"price -0", `"-0"`, "0"}, {"price 1000000.000000", `"1000000.000000"`, "1000000"}, {"price -1000000", `-1000000`, "-1000000"},
	} {
		p := int32(i % Partitions)
		start := at(p)
		b.fillPrice(p)
		b.appliedPrice(v.name, p, with(priceFields(p, start, "0"), "price", v.raw), start, v.price)
	}
	b.badPrice("duplicate price, the last too large", 3, "HB_SOUTH",
		object(append(priceFields(3, at(3), "1"), field{"price", `"1000001"`})), valueRange, schema, malformed)

	// State.
	b.badPrice("900 s after 300 s", 0, "HB_NORTH",
		pr(0, field{"start", rfc3339(time.Date(2026, 10, 1, 5, 0, 0, 0, time.UTC))}, field{"interval_seconds", "900"}), lengthMismatch)
	b.fillPrice(1)
	first := b.cases[len(b.cases)-1]
	b.badPrice("same version, another price", 1, "HB_SOUTH", object(priceFields(1, first.Prices[0].Start, "99")), conflict)
}

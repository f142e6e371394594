package nem12

import (
	"archive/zip"
	"bufio"
	"bytes"
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
)

// Options are what the caller decides about every read of a file.
type Options struct {
	Version int64  // the reads' version, ≥ 1
	Source  string // lineage text of every read
}

// Error is why a file cannot be imported: the first problem found.
type Error struct {
	Entry string // the .zip member; empty for a plain CSV file
	Line  int    // 1-based CSV line; 0 when the problem has no line (a broken .zip)
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Entry != "" {
		b.WriteString(e.Entry + ": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Limits on what one import may hold, so that a hostile archive cannot
// exhaust memory.
const (
	maxZipBytes   = 256 << 20 // a .zip is read whole: its directory is at the end
	maxEntryBytes = 1 << 30   // decompressed size of one CSV member
)

// nemZone is NEM time: UTC+10:00 all year, no daylight saving.
var nemZone = time.FixedZone("NEM", 10*3600)

// Skip reasons (meters.Skip.Reason).
const (
	SkipUnsupportedSuffix   = "unsupported_suffix"
	SkipUnsupportedInterval = "unsupported_interval_length"
	SkipUnsupportedUnit     = "unsupported_unit"
	SkipNullQuality         = "null_quality"
	SkipReplaced            = "replaced_by_later_record"
	SkipLengthMismatch      = "interval_length_mismatch"
	SkipZipEntry            = "zip_entry_not_csv"
)

// Parse reads one NEM12 file, a CSV or a .zip of CSVs (recognised by its
// content), and returns its reads as blocks plus a summary. A malformed file
// returns an *Error and nothing else.
func Parse(r io.Reader, opts Options) ([]meters.ReadBlock, meters.Summary, error) {
	if opts.Version < 1 {
		return nil, meters.Summary{}, fmt.Errorf("nem12: version %d: must be at least 1", opts.Version)
	}
	p := &parser{opts: opts, days: map[dayKey]*day{}}
	br := bufio.NewReader(r)
	head, _ := br.Peek(4)
	var err error
	if bytes.Equal(head, []byte("PK\x03\x04")) {
		err = p.readZip(br)
	} else {
		err = p.readCSV("", br)
	}
	if err != nil {
		return nil, meters.Summary{}, err
	}
	blocks := p.blocks()
	return blocks, meters.Summarize(blocks, p.skips.Skips()), nil
}

// dayKey identifies what a later 300 record replaces.
type dayKey struct {
	nmi, suffix string
	date        int64 // Unix seconds of the day's start
}

// day is the surviving 300 record of one dayKey.
type day struct {
	seq      int // arrival order over the whole import
	meterID  string
	channel  meters.Channel
	nmi      string
	suffix   string
	minutes  int
	start    time.Time
	values   []decimal.Decimal // kWh
	quality  []meters.Quality  // "" = no read
	incoming int               // values of the record, for the replaced count
}

type parser struct {
	opts  Options
	skips meters.SkipTally
	days  map[dayKey]*day
	seq   int
}

func (p *parser) readZip(r io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(r, maxZipBytes+1))
	if err != nil {
		return fmt.Errorf("read zip archive: %w", err)
	}
	if len(data) > maxZipBytes {
		return &Error{Msg: fmt.Sprintf("zip archive larger than %d bytes", maxZipBytes)}
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return &Error{Msg: "not a readable zip archive: " + err.Error()}
	}
	read := 0
	for _, f := range zr.File {
		if f.FileInfo().IsDir() {
			continue
		}
		base := path.Base(f.Name)
		if !strings.EqualFold(path.Ext(base), ".csv") || strings.HasPrefix(base, "._") {
			p.skips.Add(SkipZipEntry, f.Name, 1)
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return &Error{Entry: f.Name, Msg: "cannot open zip member: " + err.Error()}
		}
		err = p.readCSV(f.Name, &limitedReader{r: rc, n: maxEntryBytes})
		rc.Close()
		if err != nil {
			return err
		}
		read++
	}
	if read == 0 {
		return &Error{Msg: "zip archive holds no .csv file"}
	}
	return nil
}

// limitedReader fails, rather than truncates, past n bytes.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(b []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("zip member larger than %d bytes", maxEntryBytes)
	}
	if int64(len(b)) > l.n {
		b = b[:l.n]
	}
	n, err := l.r.Read(b)
	l.n -= int64(n)
	return n, err
}

// channel is the 200 record in force.
type channel struct {
	line    int
	nmi     string
	suffix  string
	minutes int
	perDay  int
	skip    string // non-empty: the channel yields no reads, for this reason
	detail  string
	shift   int32 // kWh = value × 10^shift
	meterID string
	channel meters.Channel
	has300  bool
}

// pendingV is a 300 record with QualityMethod V waiting for its 400 records.
type pendingV struct {
	line int
	day  *day // nil on a skipped channel
	next int  // 1-based interval the next 400 record must start at
	n    int
}

// fileState is the grammar state of one CSV file.
type fileState struct {
	entry  string
	line   int
	header bool
	ended  bool
	last   string // type of the previous record
	ch     *channel
	v      *pendingV
}

func (s *fileState) errorf(format string, args ...any) error {
	return &Error{Entry: s.entry, Line: s.line, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) readCSV(entry string, r io.Reader) error {
	br := bufio.NewReader(r)
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	s := &fileState{entry: entry}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return &Error{Entry: entry, Line: pe.Line, Msg: "not valid CSV: " + pe.Err.Error()}
			}
			return &Error{Entry: entry, Line: s.line + 1, Msg: err.Error()}
		}
		s.line, _ = cr.FieldPos(0)
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		if err := p.record(s, rec); err != nil {
			return err
		}
		s.last = rec[0]
	}
	switch {
	case s.line == 0:
		return &Error{Entry: entry, Line: 1, Msg: "the file is empty: a NEM12 file starts with a 100 header record"}
	case !s.ended:
		return s.errorf("the file ends without a 900 end record")
	}
	return nil
}

func (p *parser) record(s *fileState, rec []string) error {
	if s.ended {
		return s.errorf("record %q after the 900 end record", rec[0])
	}
	if !s.header && rec[0] != "100" {
		return s.errorf("a NEM12 file starts with a 100 header record, found %q", rec[0])
	}
	switch rec[0] {
	case "100":
		return p.header(s, rec)
	case "200":
		if err := p.closeChannel(s); err != nil {
			return err
		}
		return p.nmiDetails(s, rec)
	case "300":
		if err := p.closeV(s); err != nil {
			return err
		}
		return p.intervalData(s, rec)
	case "400":
		return p.intervalEvent(s, rec)
	case "500":
		if !slices.Contains([]string{"300", "400", "500"}, s.last) {
			return s.errorf("a 500 record must follow a 300 or 400 record")
		}
		return p.closeV(s)
	case "900":
		if err := p.closeChannel(s); err != nil {
			return err
		}
		if s.ch == nil {
			return s.errorf("900 end record before any 200 record: the file holds no meter data")
		}
		if err := emptyAfter(s, rec, 1); err != nil {
			return err
		}
		s.ended = true
		return nil
	default:
		return s.errorf("record type %q is not one of NEM12's 100, 200, 300, 400, 500, 900", rec[0])
	}
}

// emptyAfter checks that fields past the first n are empty: some senders pad
// every record to one width.
func emptyAfter(s *fileState, rec []string, n int) error {
	for i := n; i < len(rec); i++ {
		if rec[i] != "" {
			return s.errorf("%s record has an unexpected field %d %q (it has %d fields)", rec[0], i+1, rec[i], n)
		}
	}
	return nil
}

func (p *parser) header(s *fileState, rec []string) error {
	if s.header {
		return s.errorf("a second 100 header record")
	}
	if len(rec) < 2 || rec[1] != "NEM12" {
		version := ""
		if len(rec) > 1 {
			version = rec[1]
		}
		return s.errorf("100 header VersionHeader %q: only NEM12 (interval data) is supported", version)
	}
	s.header = true
	return emptyAfter(s, rec, 5)
}

// closeChannel ends the 200 record in force before another 200 or the 900.
func (p *parser) closeChannel(s *fileState) error {
	if err := p.closeV(s); err != nil {
		return err
	}
	if s.ch != nil && !s.ch.has300 {
		return s.errorf("the 200 record of line %d has no 300 record", s.ch.line)
	}
	return nil
}

// closeV checks that the 400 records of a V 300 record covered every interval.
func (p *parser) closeV(s *fileState) error {
	if s.v == nil {
		return nil
	}
	if s.v.next == 1 {
		return s.errorf("the 300 record of line %d has QualityMethod V but no 400 record follows it", s.v.line)
	}
	return s.errorf("the 400 records after the V 300 record of line %d cover intervals 1-%d of %d; they must cover all",
		s.v.line, s.v.next-1, s.v.n)
}

var (
	nmiPattern     = regexp.MustCompile(`^[A-Za-z0-9]{1,62}$`)
	suffixPattern  = regexp.MustCompile(`^[A-Za-z0-9]{2}$`)
	methodPattern  = regexp.MustCompile(`^[AESFNV][0-9]{0,2}$`)
	valuePattern   = regexp.MustCompile(`^([0-9]+(\.[0-9]*)?|\.[0-9]+)$`)
	unitShifts     = map[string]int32{"KWH": 0, "WH": -3, "MWH": 3}
	energyChannels = map[byte]meters.Channel{'E': meters.Import, 'B': meters.Export}
)

func (p *parser) nmiDetails(s *fileState, rec []string) error {
	if len(rec) < 9 {
		return s.errorf("200 record has %d fields; it needs at least 9 (up to IntervalLength)", len(rec))
	}
	if err := emptyAfter(s, rec, 10); err != nil {
		return err
	}
	c := &channel{line: s.line, nmi: rec[1], suffix: strings.ToUpper(rec[4])}
	if !nmiPattern.MatchString(c.nmi) {
		return s.errorf("200 record NMI %q is not 1-62 letters and digits", rec[1])
	}
	if !suffixPattern.MatchString(c.suffix) {
		return s.errorf("200 record NMISuffix %q is not two letters or digits", rec[4])
	}
	m, err := strconv.Atoi(rec[8])
	if err != nil || m < 1 || m > 1440 || 1440%m != 0 {
		return s.errorf("200 record IntervalLength %q is not a whole number of minutes dividing a day", rec[8])
	}
	c.minutes, c.perDay = m, 1440/m
	what := fmt.Sprintf("NMI %s suffix %s", c.nmi, c.suffix)
	ch, energy := energyChannels[c.suffix[0]]
	shift, unitOK := unitShifts[strings.ToUpper(rec[7])]
	switch {
	case !energy || c.suffix[1] < '0' || c.suffix[1] > '9':
		c.skip, c.detail = SkipUnsupportedSuffix, what+" (not E… import or B… export energy)"
	case m != 5 && m != 15 && m != 30:
		c.skip, c.detail = SkipUnsupportedInterval, fmt.Sprintf("%s: %d-minute intervals", what, m)
	case !unitOK:
		c.skip, c.detail = SkipUnsupportedUnit, fmt.Sprintf("%s: unit %q", what, rec[7])
	default:
		c.channel, c.shift = ch, shift
		c.meterID = c.nmi + ":" + c.suffix[1:]
	}
	s.ch = c
	return nil
}

func (p *parser) intervalData(s *fileState, rec []string) error {
	c := s.ch
	if c == nil {
		return s.errorf("a 300 record must follow a 200 record")
	}
	c.has300 = true
	n := c.perDay
	if len(rec) < n+3 {
		return s.errorf("300 record has %d fields; %d-minute intervals need the IntervalDate, %d values and a QualityMethod (%d fields)",
			len(rec), c.minutes, n, n+3)
	}
	method := rec[n+2]
	if !methodPattern.MatchString(method) {
		return s.errorf("300 record field %d: QualityMethod %q is not valid (%d-minute intervals give %d values)",
			n+3, method, c.minutes, n)
	}
	if err := emptyAfter(s, rec, n+7); err != nil {
		return err
	}
	date, err := time.ParseInLocation("20060102", rec[1], nemZone)
	if err != nil || len(rec[1]) != 8 {
		return s.errorf("300 record IntervalDate %q is not a date YYYYMMDD", rec[1])
	}
	if c.skip != "" {
		p.skips.Add(c.skip, c.detail, n)
		if method[0] == 'V' {
			s.v = &pendingV{line: s.line, next: 1, n: n}
		}
		return nil
	}
	d := &day{
		meterID: c.meterID, channel: c.channel, nmi: c.nmi, suffix: c.suffix,
		minutes: c.minutes, start: date.UTC(), incoming: n,
		values: make([]decimal.Decimal, n), quality: make([]meters.Quality, n),
	}
	if method[0] != 'N' {
		for i := range n {
			v, err := p.value(rec[i+2], c.shift)
			if err != nil {
				return s.errorf("300 record field %d (interval %d): %v", i+3, i+1, err)
			}
			d.values[i] = v
		}
	}
	switch method[0] {
	case 'V':
		s.v = &pendingV{line: s.line, day: d, next: 1, n: n}
	default:
		for i := range d.quality {
			d.quality[i] = qualityOf(method)
		}
	}
	p.store(dayKey{nmi: c.nmi, suffix: c.suffix, date: d.start.Unix()}, d)
	return nil
}

// qualityOf maps a 300 or 400 QualityMethod other than V; N is "".
func qualityOf(method string) meters.Quality {
	switch method[0] {
	case 'A':
		return meters.Actual
	case 'E':
		return meters.Estimated
	case 'S', 'F':
		return meters.Substituted
	}
	return ""
}

// value converts one interval value to kWh exactly.
func (p *parser) value(field string, shift int32) (decimal.Decimal, error) {
	if !valuePattern.MatchString(field) {
		return decimal.Decimal{}, fmt.Errorf("interval value %q is not a non-negative decimal", field)
	}
	if strings.HasPrefix(field, ".") {
		field = "0" + field
	}
	v, err := decimal.NewFromString(strings.TrimSuffix(field, "."))
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("interval value %q: %w", field, err)
	}
	v = v.Shift(shift)
	if rej := meters.CheckKWh(v); rej != nil {
		return decimal.Decimal{}, fmt.Errorf("interval value %q: %s (%s)", field, rej.Detail, rej.Reason)
	}
	return v, nil
}

// store keeps d as the record of its key, replacing an earlier one.
func (p *parser) store(k dayKey, d *day) {
	if old := p.days[k]; old != nil {
		p.skips.Add(SkipReplaced, fmt.Sprintf("NMI %s suffix %s", k.nmi, k.suffix), old.incoming)
	}
	p.seq++
	d.seq = p.seq
	p.days[k] = d
}

func (p *parser) intervalEvent(s *fileState, rec []string) error {
	v := s.v
	if v == nil {
		return s.errorf("a 400 record must follow a 300 record with QualityMethod V (or another 400 record)")
	}
	if len(rec) < 4 {
		return s.errorf("400 record has %d fields; it needs StartInterval, EndInterval and QualityMethod", len(rec))
	}
	if err := emptyAfter(s, rec, 6); err != nil {
		return err
	}
	from, err1 := strconv.Atoi(rec[1])
	to, err2 := strconv.Atoi(rec[2])
	if err1 != nil || err2 != nil || from != v.next || to < from || to > v.n {
		return s.errorf("400 record intervals %q-%q: expected %d to at most %d, continuing the 300 record of line %d",
			rec[1], rec[2], v.next, v.n, v.line)
	}
	method := rec[3]
	if !methodPattern.MatchString(method) || method[0] == 'V' {
		return s.errorf("400 record QualityMethod %q is not A, E, S, F or N", method)
	}
	if v.day != nil {
		for i := from - 1; i < to; i++ {
			v.day.quality[i] = qualityOf(method)
		}
	}
	v.next = to + 1
	if v.next > v.n {
		s.v = nil
	}
	return nil
}

// blocks turns the surviving days into blocks and tallies what they skip.
func (p *parser) blocks() []meters.ReadBlock {
	days := make([]*day, 0, len(p.days))
	for _, d := range p.days {
		days = append(days, d)
	}
	// The first length in file order is the channel's, as for the ingest.
	slices.SortFunc(days, func(a, b *day) int { return cmp.Compare(a.seq, b.seq) })
	type chanKey struct {
		meter   string
		channel meters.Channel
	}
	length := map[chanKey]int{}
	kept := days[:0]
	for _, d := range days {
		k := chanKey{d.meterID, d.channel}
		if _, ok := length[k]; !ok {
			length[k] = d.minutes
		}
		reads := 0
		for _, q := range d.quality {
			if q != "" {
				reads++
			}
		}
		what := fmt.Sprintf("NMI %s suffix %s", d.nmi, d.suffix)
		if m := length[k]; m != d.minutes {
			p.skips.Add(SkipLengthMismatch, fmt.Sprintf("%s: %d-minute days in a %d-minute channel", what, d.minutes, m), reads)
			continue
		}
		p.skips.Add(SkipNullQuality, what, len(d.quality)-reads)
		kept = append(kept, d)
	}
	slices.SortFunc(kept, func(a, b *day) int {
		return cmp.Or(cmp.Compare(a.meterID, b.meterID), cmp.Compare(a.channel, b.channel), a.start.Compare(b.start))
	})
	var reads []meters.Read
	for _, d := range kept {
		step := time.Duration(d.minutes) * time.Minute
		for i, q := range d.quality {
			if q == "" {
				continue
			}
			reads = append(reads, meters.Read{
				MeterID: d.meterID, Channel: d.channel,
				Start:           d.start.Add(time.Duration(i) * step),
				IntervalSeconds: d.minutes * 60,
				Value:           d.values[i], Quality: q,
				Version: p.opts.Version, Source: p.opts.Source,
			})
		}
	}
	return meters.GroupReads(reads)
}

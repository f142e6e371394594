package greenbutton

import (
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
)

// DefaultMeterPrefix is the contract's default --meter-prefix.
const DefaultMeterPrefix = "GB-"

// Options are what the caller decides about every read of a document.
type Options struct {
	MeterPrefix string // prepended to the UsagePoint id
	MeterID     string // non-empty: the meter_id of the document's only UsagePoint
	Version     int64  // the reads' version, ≥ 1
	Source      string // lineage text of every read
}

// Error is why a document cannot be imported: the first problem found.
type Error struct {
	Path string // element path, e.g. feed/entry[4]/content/IntervalBlock[1]/IntervalReading[2]/value
	Line int    // 1-based line, when known; 0 otherwise
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s", e.Path, e.Line, e.Msg)
	}
	return e.Path + ": " + e.Msg
}

// Skip reasons (meters.Skip.Reason).
const (
	SkipNoMeterReading = "no_meter_reading"
	SkipNoUsagePoint   = "no_usage_point"
	SkipNoReadingType  = "no_reading_type"
	SkipFlowDirection  = "unsupported_flow_direction"
	SkipUOM            = "unsupported_uom"
	SkipDuration       = "unsupported_duration"
	SkipMisaligned     = "misaligned_start"
	SkipLengthMismatch = "interval_length_mismatch"
	SkipDuplicate      = "duplicate_reading"
	SkipConflict       = "conflicting_reading"
)

const (
	maxEpochSeconds = 253402300799 // 9999-12-31T23:59:59Z, the last RFC 3339 second
	maxPowerOfTen   = 12           // ESPI UnitMultiplierKind ranges from p (-12) to T (12)
	uomWh           = "72"
	flowForward     = "1"
	flowReverse     = "19"
)

var (
	integerPattern = regexp.MustCompile(`^[+-]?[0-9]{1,20}$`)
	estimatedCodes = []int64{7, 8, 9, 10}
)

// Parse reads one Green Button document and returns its reads as blocks
// plus a summary. A document that cannot be read returns an *Error and
// nothing else.
func Parse(r io.Reader, opts Options) ([]meters.ReadBlock, meters.Summary, error) {
	if opts.Version < 1 {
		return nil, meters.Summary{}, fmt.Errorf("greenbutton: version %d: must be at least 1", opts.Version)
	}
	d := &document{readingTypes: map[string][]readingType{}}
	if err := d.read(r); err != nil {
		return nil, meters.Summary{}, err
	}
	reads, err := d.resolve(opts)
	if err != nil {
		return nil, meters.Summary{}, err
	}
	blocks := meters.GroupReads(reads)
	return blocks, meters.Summarize(blocks, d.skips.Skips()), nil
}

// The XML shapes, decoded one entry at a time. Names match any namespace:
// utilities write ESPI with and without prefixes.
type (
	xmlLink struct {
		Rel  string `xml:"rel,attr"`
		Href string `xml:"href,attr"`
	}
	xmlEntry struct {
		Links   []xmlLink `xml:"link"`
		Content struct {
			UsagePoints    []struct{}         `xml:"UsagePoint"`
			MeterReadings  []struct{}         `xml:"MeterReading"`
			ReadingTypes   []xmlReadingType   `xml:"ReadingType"`
			IntervalBlocks []xmlIntervalBlock `xml:"IntervalBlock"`
		} `xml:"content"`
	}
	xmlReadingType struct {
		FlowDirection *string `xml:"flowDirection"`
		UOM           *string `xml:"uom"`
		PowerOfTen    *string `xml:"powerOfTenMultiplier"`
	}
	xmlIntervalBlock struct {
		Readings []xmlReading `xml:"IntervalReading"`
	}
	xmlReading struct {
		Qualities  []string `xml:"ReadingQuality>quality"`
		TimePeriod *struct {
			Duration *string `xml:"duration"`
			Start    *string `xml:"start"`
		} `xml:"timePeriod"`
		Value *string `xml:"value"`
	}
)

// entry is the linking part of one Atom entry.
type entry struct {
	path    string
	self    string
	up      string
	related []string
}

type readingType struct {
	path       string
	flow, uom  string // "" when absent
	powerOfTen int32
}

// reading is one parsed IntervalReading, before its block is resolved.
type reading struct {
	path      string
	start     int64
	seconds   int64
	value     decimal.Decimal // as written, before the ReadingType's scaling
	estimated bool
}

type block struct {
	entry
	readings []reading
}

type document struct {
	usagePoints   []entry
	meterReadings []entry
	readingTypes  map[string][]readingType // by self href
	blocks        []block
	skips         meters.SkipTally
}

// read streams the document, decoding each entry as it comes.
func (d *document) read(r io.Reader) error {
	dec := xml.NewDecoder(r)
	root, entries := "", 0
	syntaxErr := func(where string, err error) error {
		line, _ := dec.InputPos()
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			line = se.Line
		}
		return &Error{Path: where, Line: line, Msg: "not well-formed XML: " + err.Error()}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return syntaxErr(cmp.Or(root, "/"), err)
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case root == "" && start.Name.Local == "feed":
			root = "feed"
		case root == "" && start.Name.Local == "entry":
			root = "entry"
			if err := d.entry(dec, start, "entry"); err != nil {
				return err
			}
		case root == "":
			line, _ := dec.InputPos()
			return &Error{Path: start.Name.Local, Line: line, Msg: "not a Green Button document: the root element must be an Atom feed or entry"}
		case root == "feed" && start.Name.Local == "entry":
			entries++
			if err := d.entry(dec, start, fmt.Sprintf("feed/entry[%d]", entries)); err != nil {
				return err
			}
		case root == "entry":
			line, _ := dec.InputPos()
			return &Error{Path: start.Name.Local, Line: line, Msg: "a second root element after the entry"}
		default: // feed-level id, title, link, …
			if err := dec.Skip(); err != nil {
				return syntaxErr("feed/"+start.Name.Local, err)
			}
		}
	}
	if root == "" {
		return &Error{Path: "/", Line: 1, Msg: "not a Green Button document: no feed or entry element"}
	}
	return nil
}

func (d *document) entry(dec *xml.Decoder, start xml.StartElement, path string) error {
	line, _ := dec.InputPos()
	var x xmlEntry
	if err := dec.DecodeElement(&x, &start); err != nil {
		msg := "cannot read the entry: "
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			line, msg = se.Line, "not well-formed XML: "
		}
		return &Error{Path: path, Line: line, Msg: msg + err.Error()}
	}
	e := entry{path: path}
	for _, l := range x.Links {
		href := normHref(l.Href)
		switch strings.TrimSpace(l.Rel) {
		case "self":
			e.self = cmp.Or(e.self, href)
		case "up":
			e.up = cmp.Or(e.up, href)
		case "related":
			e.related = append(e.related, href)
		}
	}
	content := path + "/content/"
	if len(x.Content.UsagePoints) > 0 {
		d.usagePoints = append(d.usagePoints, e)
	}
	if len(x.Content.MeterReadings) > 0 {
		d.meterReadings = append(d.meterReadings, e)
	}
	for i, rt := range x.Content.ReadingTypes {
		t, err := parseReadingType(rt, fmt.Sprintf("%sReadingType[%d]", content, i+1))
		if err != nil {
			return err
		}
		d.readingTypes[e.self] = append(d.readingTypes[e.self], t)
	}
	for i, xb := range x.Content.IntervalBlocks {
		b := block{entry: e}
		bpath := fmt.Sprintf("%sIntervalBlock[%d]", content, i+1)
		for j, xr := range xb.Readings {
			r, err := parseReading(xr, fmt.Sprintf("%s/IntervalReading[%d]", bpath, j+1))
			if err != nil {
				return err
			}
			b.readings = append(b.readings, r)
		}
		d.blocks = append(d.blocks, b)
	}
	return nil
}

// normHref makes hrefs comparable: ESPI servers differ in trailing slashes.
func normHref(h string) string { return strings.TrimSuffix(strings.TrimSpace(h), "/") }

// parent is href without its last path segment.
func parent(href string) string {
	i := strings.LastIndexByte(href, '/')
	if i < 0 {
		return ""
	}
	return href[:i]
}

func parseReadingType(x xmlReadingType, path string) (readingType, error) {
	t := readingType{path: path}
	if x.FlowDirection != nil {
		t.flow = strings.TrimSpace(*x.FlowDirection)
	}
	if x.UOM != nil {
		t.uom = strings.TrimSpace(*x.UOM)
	}
	if x.PowerOfTen != nil {
		p, err := strconv.ParseInt(strings.TrimSpace(*x.PowerOfTen), 10, 32)
		if err != nil || p < -maxPowerOfTen || p > maxPowerOfTen {
			return t, &Error{Path: path + "/powerOfTenMultiplier", Msg: fmt.Sprintf("%q is not a whole number from -%d to %d", *x.PowerOfTen, maxPowerOfTen, maxPowerOfTen)}
		}
		t.powerOfTen = int32(p)
	}
	return t, nil
}

func parseInteger(s *string, path, what string) (int64, error) {
	if s == nil {
		return 0, &Error{Path: path, Msg: what + " is missing"}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(*s), 10, 64)
	if err != nil {
		return 0, &Error{Path: path, Msg: fmt.Sprintf("%q is not a whole number", *s)}
	}
	return v, nil
}

func parseReading(x xmlReading, path string) (reading, error) {
	r := reading{path: path}
	if x.TimePeriod == nil {
		return r, &Error{Path: path + "/timePeriod", Msg: "IntervalReading has no timePeriod"}
	}
	var err error
	if r.start, err = parseInteger(x.TimePeriod.Start, path+"/timePeriod/start", "start"); err != nil {
		return r, err
	}
	if r.start < 0 || r.start > maxEpochSeconds {
		return r, &Error{Path: path + "/timePeriod/start", Msg: fmt.Sprintf("%d is not epoch seconds from 1970 to 9999", r.start)}
	}
	if r.seconds, err = parseInteger(x.TimePeriod.Duration, path+"/timePeriod/duration", "duration"); err != nil {
		return r, err
	}
	if r.seconds <= 0 {
		return r, &Error{Path: path + "/timePeriod/duration", Msg: fmt.Sprintf("%d is not a positive number of seconds", r.seconds)}
	}
	if x.Value == nil {
		return r, &Error{Path: path + "/value", Msg: "IntervalReading has no value"}
	}
	v := strings.TrimSpace(*x.Value)
	if !integerPattern.MatchString(v) {
		return r, &Error{Path: path + "/value", Msg: fmt.Sprintf("%q is not a whole number", *x.Value)}
	}
	r.value = decimal.RequireFromString(strings.TrimPrefix(v, "+"))
	for i, q := range x.Qualities {
		code, err := parseInteger(&q, fmt.Sprintf("%s/ReadingQuality[%d]/quality", path, i+1), "quality")
		if err != nil {
			return r, err
		}
		r.estimated = r.estimated || slices.Contains(estimatedCodes, code)
	}
	return r, nil
}

// resolve links every block to its meter channel and turns its readings into
// reads, in document order, skipping and de-duplicating as documented.
func (d *document) resolve(opts Options) ([]meters.Read, error) {
	meterIDs, err := d.meterIDs(opts)
	if err != nil {
		return nil, err
	}
	mrByRelated, mrBySelf := index(d.meterReadings)
	upByRelated, upBySelf := index(d.usagePoints)
	type chanKey struct {
		meter   string
		channel meters.Channel
	}
	type readKey struct {
		chanKey
		start int64
	}
	length := map[chanKey]int64{}
	seen := map[readKey]meters.Read{}
	var reads []meters.Read
	for _, b := range d.blocks {
		n := len(b.readings)
		mr := lookup(b.up, b.self, mrByRelated, mrBySelf)
		if mr == nil {
			d.skips.Add(SkipNoMeterReading, "IntervalBlocks of "+cmp.Or(b.up, parent(b.self), b.path), n)
			continue
		}
		up := lookup(mr.up, mr.self, upByRelated, upBySelf)
		if up == nil {
			d.skips.Add(SkipNoUsagePoint, "MeterReading "+cmp.Or(mr.self, mr.path), n)
			continue
		}
		rt, skip := d.readingTypeOf(mr)
		if skip != "" {
			d.skips.Add(SkipNoReadingType, skip, n)
			continue
		}
		var ch meters.Channel
		switch rt.flow {
		case flowForward:
			ch = meters.Import
		case flowReverse:
			ch = meters.Export
		default:
			d.skips.Add(SkipFlowDirection, fmt.Sprintf("flowDirection %q (%s)", rt.flow, rt.path), n)
			continue
		}
		if rt.uom != uomWh {
			d.skips.Add(SkipUOM, fmt.Sprintf("uom %q (%s)", rt.uom, rt.path), n)
			continue
		}
		ck := chanKey{meterIDs[up.self], ch}
		what := fmt.Sprintf("%s %s", ck.meter, ch)
		for _, r := range b.readings {
			switch {
			case !slices.Contains(meters.ReadIntervals, int(r.seconds)):
				d.skips.Add(SkipDuration, fmt.Sprintf("duration %d s", r.seconds), 1)
				continue
			case r.start%r.seconds != 0:
				d.skips.Add(SkipMisaligned, fmt.Sprintf("%s: %d-second readings", what, r.seconds), 1)
				continue
			}
			kwh := r.value.Shift(rt.powerOfTen - 3)
			if rej := meters.CheckKWh(kwh); rej != nil {
				return nil, &Error{Path: r.path + "/value", Msg: fmt.Sprintf("%s × 10^%d Wh: %s (%s)", r.value, rt.powerOfTen, rej.Detail, rej.Reason)}
			}
			if l, ok := length[ck]; !ok {
				length[ck] = r.seconds
			} else if l != r.seconds {
				d.skips.Add(SkipLengthMismatch, fmt.Sprintf("%s: %d-second readings in a %d-second channel", what, r.seconds, l), 1)
				continue
			}
			read := meters.Read{
				MeterID: ck.meter, Channel: ch,
				Start:           time.Unix(r.start, 0).UTC(),
				IntervalSeconds: int(r.seconds),
				Value:           kwh, Quality: meters.Actual,
				Version: opts.Version, Source: opts.Source,
			}
			if r.estimated {
				read.Quality = meters.Estimated
			}
			rk := readKey{ck, r.start}
			if first, dup := seen[rk]; dup {
				if first.Value.Equal(read.Value) && first.Quality == read.Quality {
					d.skips.Add(SkipDuplicate, what, 1)
				} else {
					d.skips.Add(SkipConflict, fmt.Sprintf("%s at %s: kept %s kWh %s, dropped %s kWh %s (%s)",
						what, read.Start.Format(time.RFC3339), first.Value, first.Quality, read.Value, read.Quality, r.path), 1)
				}
				continue
			}
			seen[rk] = read
			reads = append(reads, read)
		}
	}
	slices.SortFunc(reads, func(a, b meters.Read) int {
		return cmp.Or(cmp.Compare(a.MeterID, b.MeterID), cmp.Compare(a.Channel, b.Channel), a.Start.Compare(b.Start))
	})
	return reads, nil
}

// meterIDs names the meter of every UsagePoint, by self href.
func (d *document) meterIDs(opts Options) (map[string]string, error) {
	ids := map[string]string{}
	for _, up := range d.usagePoints {
		if _, done := ids[up.self]; done {
			continue
		}
		if up.self == "" {
			return nil, &Error{Path: up.path + "/link", Msg: "UsagePoint entry has no rel=\"self\" link to name its meter"}
		}
		id := opts.MeterPrefix + up.self[strings.LastIndexByte(up.self, '/')+1:]
		if !meters.ValidIdentifier(id) {
			return nil, &Error{Path: up.path + "/link", Msg: fmt.Sprintf("meter_id %q (prefix + UsagePoint id) is not 1-64 of A-Z a-z 0-9 . _ : - (use --meter-prefix or --meter-id)", id)}
		}
		ids[up.self] = id
	}
	if opts.MeterID == "" {
		return ids, nil
	}
	if len(ids) != 1 {
		return nil, &Error{Path: "/", Msg: fmt.Sprintf("--meter-id needs exactly one UsagePoint in the document; it has %d", len(ids))}
	}
	if !meters.ValidIdentifier(opts.MeterID) {
		return nil, fmt.Errorf("greenbutton: meter id %q is not 1-64 of A-Z a-z 0-9 . _ : -", opts.MeterID)
	}
	for self := range ids {
		ids[self] = opts.MeterID
	}
	return ids, nil
}

// index finds entries by each of their related hrefs and by their self href.
func index(es []entry) (byRelated, bySelf map[string]*entry) {
	byRelated, bySelf = map[string]*entry{}, map[string]*entry{}
	for i := range es {
		e := &es[i]
		for _, h := range e.related {
			if _, ok := byRelated[h]; !ok {
				byRelated[h] = e
			}
		}
		if _, ok := bySelf[e.self]; !ok && e.self != "" {
			bySelf[e.self] = e
		}
	}
	return byRelated, bySelf
}

// lookup finds the parent of a child entry with links up and self: the
// parent lists the child's collection (up) as related, or the collection's
// parent is the parent's self href. Without an up link, the collection is
// the parent of self.
func lookup(up, self string, byRelated, bySelf map[string]*entry) *entry {
	if up == "" {
		up = parent(self)
	}
	if up == "" {
		return nil
	}
	if e := byRelated[up]; e != nil {
		return e
	}
	return bySelf[parent(up)]
}

// readingTypeOf is the ReadingType a MeterReading's related links name. A
// self href defined twice with different content is ambiguous: skipped.
func (d *document) readingTypeOf(mr *entry) (readingType, string) {
	for _, h := range mr.related {
		defs := d.readingTypes[h]
		if len(defs) == 0 {
			continue
		}
		for _, o := range defs[1:] {
			if o.flow != defs[0].flow || o.uom != defs[0].uom || o.powerOfTen != defs[0].powerOfTen {
				return readingType{}, fmt.Sprintf("ReadingType %s is defined differently at %s and %s", h, defs[0].path, o.path)
			}
		}
		return defs[0], ""
	}
	return readingType{}, "MeterReading " + cmp.Or(mr.self, mr.path) + " names no ReadingType of the document"
}

package greenbutton_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // America/New_York for the DST day

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/meters/greenbutton"
	"github.com/gridsettle/gridsettle/meters/kafka"
)

var opts = greenbutton.Options{MeterPrefix: greenbutton.DefaultMeterPrefix, Version: 1, Source: "test"}

func read(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func parse(t *testing.T, data []byte, o greenbutton.Options) ([]meters.ReadBlock, meters.Summary) {
	t.Helper()
	blocks, sum, err := greenbutton.Parse(bytes.NewReader(data), o)
	if err != nil {
		t.Fatal(err)
	}
	checkBlocks(t, blocks, sum)
	return blocks, sum
}

// checkBlocks asserts what every parse result must satisfy: each block is a
// valid ami.interval-reads record, blocks of a channel do not overlap, and
// the summary counts exactly the blocks.
func checkBlocks(t testing.TB, blocks []meters.ReadBlock, sum meters.Summary) {
	t.Helper()
	reads := 0
	for i, b := range blocks {
		if rej := kafka.CheckReadBlock(b); rej != nil {
			t.Fatalf("block %d (%s %s): %v", i, b.MeterID, b.Channel, rej)
		}
		reads += len(b.Values)
		if i > 0 {
			p := blocks[i-1]
			if p.MeterID == b.MeterID && p.Channel == b.Channel && b.Start.Before(p.End()) {
				t.Fatalf("blocks %d and %d overlap", i-1, i)
			}
		}
	}
	if sum.Reads() != reads {
		t.Fatalf("summary says %d reads, blocks hold %d", sum.Reads(), reads)
	}
}

// scan is a second reader, deliberately naive and independent of the
// parser: regular expressions over the text with namespace prefixes removed,
// for documents with one meter channel. It keeps the first reading of each
// start and counts the later ones.
type scan struct {
	reads      int
	kwh        *big.Rat
	estimated  int
	duplicates int
	conflicts  int
	starts     []int64
}

var (
	nsPrefix  = regexp.MustCompile(`<(/?)[A-Za-z0-9]+:`)
	readingRe = regexp.MustCompile(`(?s)<IntervalReading>(.*?)</IntervalReading>`)
	periodRe  = regexp.MustCompile(`(?s)<timePeriod>\s*<duration>(\d+)</duration>\s*<start>(\d+)</start>`)
	valueRe   = regexp.MustCompile(`<value>(-?\d+)</value>`)
	qualityRe = regexp.MustCompile(`<quality>(\d+)</quality>`)
)

func plainScan(t *testing.T, data []byte, powerOfTen int) scan {
	t.Helper()
	text := nsPrefix.ReplaceAllString(string(data), "<$1")
	s := scan{kwh: new(big.Rat)}
	scale := new(big.Rat).SetFrac(big.NewInt(1), big.NewInt(1000))
	for range powerOfTen {
		scale.Mul(scale, big.NewRat(10, 1))
	}
	type seen struct {
		value string
		est   bool
	}
	first := map[int64]seen{}
	for _, m := range readingRe.FindAllStringSubmatch(text, -1) {
		p := periodRe.FindStringSubmatch(m[1])
		v := valueRe.FindStringSubmatch(m[1])
		if p == nil || v == nil {
			t.Fatalf("second reader: cannot read %q", m[1])
		}
		if !slices.Contains([]string{"300", "900", "1800", "3600"}, p[1]) {
			continue
		}
		start, _ := strconv.ParseInt(p[2], 10, 64)
		est := false
		for _, q := range qualityRe.FindAllStringSubmatch(m[1], -1) {
			est = est || slices.Contains([]string{"7", "8", "9", "10"}, q[1])
		}
		if f, ok := first[start]; ok {
			if f.value == v[1] && f.est == est {
				s.duplicates++
			} else {
				s.conflicts++
			}
			continue
		}
		first[start] = seen{v[1], est}
		r, _ := new(big.Rat).SetString(v[1])
		s.kwh.Add(s.kwh, r.Mul(r, scale))
		s.reads++
		s.starts = append(s.starts, start)
		if est {
			s.estimated++
		}
	}
	return s
}

func ratOf(t *testing.T, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("bad rational %q", s)
	}
	return r
}

func estimated(blocks []meters.ReadBlock) int {
	n := 0
	for _, b := range blocks {
		for _, q := range b.Quality {
			if q == meters.Estimated {
				n++
			}
		}
	}
	return n
}

// compare checks the parser's one channel against the second reader.
func compare(t *testing.T, blocks []meters.ReadBlock, sum meters.Summary, s scan) {
	t.Helper()
	if len(sum.Channels) != 1 {
		t.Fatalf("%d channels, want 1", len(sum.Channels))
	}
	c := sum.Channels[0]
	if c.Reads != s.reads || ratOf(t, c.KWh.String()).Cmp(s.kwh) != 0 {
		t.Errorf("parser %d reads %s kWh, second reader %d reads %s kWh", c.Reads, c.KWh, s.reads, s.kwh.FloatString(6))
	}
	if e := estimated(blocks); e != s.estimated {
		t.Errorf("parser %d estimated reads, second reader %d", e, s.estimated)
	}
	if d := sum.SkippedCount(greenbutton.SkipDuplicate); d != s.duplicates {
		t.Errorf("parser %d duplicates, second reader %d", d, s.duplicates)
	}
	if d := sum.SkippedCount(greenbutton.SkipConflict); d != s.conflicts {
		t.Errorf("parser %d conflicts, second reader %d", d, s.conflicts)
	}
}

func TestOpenESPI(t *testing.T) {
	data := read(t, "openespi/test_usage_data.xml")
	blocks, sum := parse(t, data, opts)
	s := plainScan(t, data, 0)
	compare(t, blocks, sum, s)
	c := sum.Channels[0]
	// By hand: 14 full days × 96 + the spring-forward day's 92; the file's
	// two ReadingQuality codes are 8 and 7; one UsagePoint 5446AF3F.
	if c.MeterID != "GB-5446AF3F" || c.Channel != meters.Import || c.IntervalSeconds != 900 || c.Reads != 1340 || s.estimated != 2 {
		t.Errorf("got %+v (second reader: %d estimated)", c, s.estimated)
	}
	if len(blocks) != 1 || blocks[0].Start.Format(time.RFC3339) != "2012-03-01T05:00:00Z" {
		t.Errorf("%d blocks from %s; want one from 2012-03-01T05:00:00Z", len(blocks), blocks[0].Start.Format(time.RFC3339))
	}
	// The DST day: 2012-03-11 in the feed's time zone (EST, -18000, with the
	// North American DST rule) has 23 hours.
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	from, to := time.Date(2012, 3, 11, 0, 0, 0, 0, ny), time.Date(2012, 3, 12, 0, 0, 0, 0, ny)
	inDay, plainInDay := 0, 0
	for _, r := range blocks[0].Reads() {
		if !r.Start.Before(from) && r.Start.Before(to) {
			inDay++
		}
	}
	for _, st := range s.starts {
		if st >= from.Unix() && st < to.Unix() {
			plainInDay++
		}
	}
	if inDay != 92 || plainInDay != 92 {
		t.Errorf("DST day: parser %d reads, second reader %d; want 92", inDay, plainInDay)
	}
}

func TestNIST(t *testing.T) {
	tests := []struct {
		file   string
		meter  string
		reads  int
		kwh    string
		blocks int
	}{
		// By hand: two 12-hour blocks of 4 hourly readings, 4086 Wh in all.
		{"nist-sgip/electric_containerized.xml", "GB-1", 8, "4.086", 2},
		{"nist-sgip/TestGBDataHourlyNineDaysBinnedDaily.xml", "GB-2", 216, "", 9},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			data := read(t, tc.file)
			blocks, sum := parse(t, data, opts)
			compare(t, blocks, sum, plainScan(t, data, 0))
			c := sum.Channels[0]
			if c.MeterID != tc.meter || c.Reads != tc.reads || c.IntervalSeconds != 3600 || len(blocks) > tc.blocks {
				t.Errorf("got %+v in %d blocks", c, len(blocks))
			}
			if tc.kwh != "" && c.KWh.String() != tc.kwh {
				t.Errorf("%s kWh, by hand %s", c.KWh, tc.kwh)
			}
		})
	}
}

// pgeHrefs are the PG&E file's links; the entries the file leaves out are
// written here so that its blocks resolve.
const (
	pgeUsagePoint = "https://api.pge.com/GreenButtonConnect/espi/1_1/resource/Subscription/0/UsagePoint/1"
	pgeReading    = pgeUsagePoint + "/MeterReading/Tags7afT4eW6dAg6tI9nUksh4Et2ju=="
)

func entry(self, up string, related []string, content string) string {
	var b strings.Builder
	b.WriteString(`<entry xmlns="http://www.w3.org/2005/Atom">`)
	fmt.Fprintf(&b, `<link rel="self" href="%s"/><link rel="up" href="%s"/>`, self, up)
	for _, r := range related {
		fmt.Fprintf(&b, `<link rel="related" href="%s"/>`, r)
	}
	return b.String() + "<content>" + content + "</content></entry>"
}

func usagePoint(self string) string {
	return entry(self, parentOf(self), []string{self + "/MeterReading"},
		`<UsagePoint xmlns="http://naesb.org/espi"><ServiceCategory><kind>0</kind></ServiceCategory></UsagePoint>`)
}

func meterReading(self, readingType string) string {
	return entry(self, parentOf(self), []string{self + "/IntervalBlock", readingType}, `<MeterReading xmlns="http://naesb.org/espi"/>`)
}

func readingType(self string, flow, uom, powerOfTen int) string {
	return entry(self, parentOf(self), nil, fmt.Sprintf(`<ReadingType xmlns="http://naesb.org/espi">`+
		`<flowDirection>%d</flowDirection><intervalLength>3600</intervalLength><powerOfTenMultiplier>%d</powerOfTenMultiplier><uom>%d</uom></ReadingType>`,
		flow, powerOfTen, uom))
}

// intervalBlock holds readings "start/duration/value[/quality]".
func intervalBlock(meterReading, id string, readings ...string) string {
	var b strings.Builder
	b.WriteString(`<IntervalBlock xmlns="http://naesb.org/espi">`)
	for _, r := range readings {
		f := strings.Split(r, "/")
		b.WriteString("<IntervalReading>")
		if len(f) > 3 {
			fmt.Fprintf(&b, "<ReadingQuality><quality>%s</quality></ReadingQuality>", f[3])
		}
		fmt.Fprintf(&b, "<timePeriod><duration>%s</duration><start>%s</start></timePeriod><value>%s</value></IntervalReading>", f[1], f[0], f[2])
	}
	b.WriteString("</IntervalBlock>")
	return entry(meterReading+"/IntervalBlock/"+id, meterReading+"/IntervalBlock", nil, b.String())
}

func parentOf(h string) string { return h[:strings.LastIndexByte(h, '/')] }

func feed(entries ...string) []byte {
	return []byte(`<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">` + strings.Join(entries, "") + `</feed>`)
}

// withPGEEntries adds to a real PG&E IntervalBlock file the UsagePoint,
// MeterReading and ReadingType entries the file refers to but leaves out.
func withPGEEntries(t *testing.T, file, meterReadingHref string, powerOfTen int) []byte {
	t.Helper()
	data := read(t, file)
	rtHref := "https://api.pge.com/GreenButtonConnect/espi/1_1/resource/ReadingType/test"
	extra := usagePoint(parentOf(parentOf(meterReadingHref))) + meterReading(meterReadingHref, rtHref) +
		readingType(rtHref, 1, 72, powerOfTen)
	i := bytes.LastIndex(data, []byte("</ns1:feed>"))
	if i < 0 {
		i = bytes.LastIndex(data, []byte("</feed>"))
	}
	return slices.Concat(data[:i], []byte(extra), data[i:])
}

// TestPGEOverlappingBlocks: the PG&E file's 24 blocks overlap (every one
// restates earlier hours); identical readings are de-duplicated.
func TestPGEOverlappingBlocks(t *testing.T) {
	raw := read(t, "pge/PGEIntervalBlock.xml")
	blocks, sum := parse(t, raw, opts)
	if len(blocks) != 0 || sum.SkippedCount(greenbutton.SkipNoMeterReading) != 2556 {
		t.Errorf("alone, the blocks cannot resolve: got %d blocks, skipped %+v", len(blocks), sum.Skipped)
	}

	data := withPGEEntries(t, "pge/PGEIntervalBlock.xml", pgeReading, 0)
	blocks, sum = parse(t, data, opts)
	s := plainScan(t, data, 0)
	compare(t, blocks, sum, s)
	// 2556 readings, 2280 distinct hours; PG&E's quality 17 (validated) is A.
	c := sum.Channels[0]
	if c.MeterID != "GB-1" || c.Reads != 2280 || sum.SkippedCount(greenbutton.SkipDuplicate) != 276 || estimated(blocks) != 0 {
		t.Errorf("got %+v, skipped %+v", c, sum.Skipped)
	}

	// With kWh multipliers (10^3 Wh), the largest readings exceed the
	// contract's 1,000,000 kWh: the file is rejected at the first of them.
	_, _, err := greenbutton.Parse(bytes.NewReader(withPGEEntries(t, "pge/PGEIntervalBlock.xml", pgeReading, 3)), opts)
	var ge *greenbutton.Error
	if !errors.As(err, &ge) || ge.Path != firstAbove(t, raw, 1_000_000) || !strings.Contains(ge.Msg, "value_out_of_range") {
		t.Errorf("got %v, want value_out_of_range at %s", err, firstAbove(t, raw, 1_000_000))
	}
}

// firstAbove is the element path of the first reading of a PG&E file whose
// value exceeds limit, found by plain text search.
func firstAbove(t *testing.T, data []byte, limit int64) string {
	t.Helper()
	for i, e := range strings.Split(nsPrefix.ReplaceAllString(string(data), "<$1"), "<entry>")[1:] {
		for j, m := range readingRe.FindAllStringSubmatch(e, -1) {
			v, _ := strconv.ParseInt(valueRe.FindStringSubmatch(m[1])[1], 10, 64)
			if v > limit {
				return fmt.Sprintf("feed/entry[%d]/content/IntervalBlock[1]/IntervalReading[%d]/value", i+1, j+1)
			}
		}
	}
	t.Fatal("no reading above the limit")
	return ""
}

// TestPGEDailyBlocks: daily readings (86400 s, and 82800/90000 s on DST
// days) are skipped with a reason.
func TestPGEDailyBlocks(t *testing.T) {
	data := withPGEEntries(t, "pge/ESPIIntervalBlock.xml",
		"https://services.greenbuttondata.org//DataCustodian/espi/1_1/resource/Subscription/5/UsagePoint/1/MeterReading/1", 0)
	blocks, sum := parse(t, data, opts)
	want := map[string]int{"duration 86400 s": 441, "duration 82800 s": 2, "duration 90000 s": 1}
	for _, k := range sum.Skipped {
		if k.Reason != greenbutton.SkipDuration || want[k.Detail] != k.Count {
			t.Errorf("skipped %+v", k)
		}
		delete(want, k.Detail)
	}
	if len(blocks) != 0 || len(want) != 0 {
		t.Errorf("%d blocks; missing skips %v", len(blocks), want)
	}
}

func TestPGEReadingTypesOnly(t *testing.T) {
	blocks, sum := parse(t, read(t, "pge/PGEReadingType.xml"), opts)
	if len(blocks) != 0 || len(sum.Skipped) != 0 {
		t.Errorf("a feed of ReadingTypes yields %d blocks, skipped %+v", len(blocks), sum.Skipped)
	}
}

const (
	up1 = "/espi/1_1/resource/RetailCustomer/1/UsagePoint/A1"
	up2 = "/espi/1_1/resource/RetailCustomer/1/UsagePoint/A2"
	rt  = "/espi/1_1/resource/ReadingType/"
)

func TestRules(t *testing.T) {
	mr1 := up1 + "/MeterReading/1"
	tests := []struct {
		name     string
		doc      []byte
		o        *greenbutton.Options
		channels string // "meter channel reads kWh qualities;..."
		skipped  map[string]int
	}{
		{name: "export, milli-Wh, estimated codes",
			doc: feed(usagePoint(up1), meterReading(mr1, rt+"x"), readingType(rt+"x", 19, 72, -3),
				intervalBlock(mr1, "1", "1700000100/300/1500/8", "1700000400/300/2/19", "1700000700/300/0/10")),
			channels: "GB-A1 export 3 0.001502 EAE"},
		{name: "entries in any order, multiple blocks joined",
			doc: feed(intervalBlock(mr1, "2", "1700002800/3600/2"), readingType(rt+"x", 1, 72, 0),
				intervalBlock(mr1, "1", "1699999200/3600/1"), meterReading(mr1, rt+"x"), usagePoint(up1)),
			channels: "GB-A1 import 2 0.003 AA"},
		{name: "unsupported duration, misaligned start, other flow and uom",
			doc: feed(usagePoint(up1), usagePoint(up2),
				meterReading(mr1, rt+"x"), readingType(rt+"x", 1, 72, 0),
				intervalBlock(mr1, "1", "1699920000/86400/5", "1700000400/900/5", "1700000100/300/5"),
				meterReading(up2+"/MeterReading/1", rt+"net"), readingType(rt+"net", 4, 72, 0),
				intervalBlock(up2+"/MeterReading/1", "1", "1700000100/300/5"),
				meterReading(up2+"/MeterReading/2", rt+"gas"), readingType(rt+"gas", 1, 169, 0),
				intervalBlock(up2+"/MeterReading/2", "1", "1700000100/300/5", "1700000400/300/5")),
			channels: "GB-A1 import 1 0.005 A",
			skipped: map[string]int{greenbutton.SkipDuration: 1, greenbutton.SkipMisaligned: 1,
				greenbutton.SkipFlowDirection: 1, greenbutton.SkipUOM: 2}},
		{name: "conflict keeps the first, duplicate dropped, second length skipped",
			doc: feed(usagePoint(up1), meterReading(mr1, rt+"x"), readingType(rt+"x", 1, 72, 0),
				intervalBlock(mr1, "1", "1700000100/300/5", "1700000400/300/6"),
				intervalBlock(mr1, "2", "1700000100/300/5", "1700000400/300/7", "1700000700/300/8/9"),
				intervalBlock(mr1, "3", "1700000100/900/9")),
			channels: "GB-A1 import 3 0.019 AAE",
			skipped: map[string]int{greenbutton.SkipDuplicate: 1, greenbutton.SkipConflict: 1,
				greenbutton.SkipLengthMismatch: 1}},
		{name: "unresolved links",
			doc: feed(usagePoint(up1), meterReading(mr1, rt+"missing"),
				intervalBlock(mr1, "1", "1700000100/300/5"),
				intervalBlock(up2+"/MeterReading/9", "1", "1700000100/300/5", "1700000400/300/5"),
				meterReading(up2+"/MeterReading/1", rt+"x"), readingType(rt+"x", 1, 72, 0),
				intervalBlock(up2+"/MeterReading/1", "1", "1700000100/300/5")),
			skipped: map[string]int{greenbutton.SkipNoReadingType: 1, greenbutton.SkipNoMeterReading: 2,
				greenbutton.SkipNoUsagePoint: 1}},
		{name: "meter id override and prefix",
			doc: feed(usagePoint(up1), meterReading(mr1, rt+"x"), readingType(rt+"x", 1, 72, 0),
				intervalBlock(mr1, "1", "1700000100/300/5")),
			o:        &greenbutton.Options{MeterID: "MTR-9", Version: 2},
			channels: "MTR-9 import 1 0.005 A"},
		{name: "single entry document",
			doc:      []byte(usagePoint(up1)),
			channels: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := opts
			if tc.o != nil {
				o = *tc.o
			}
			blocks, sum := parse(t, tc.doc, o)
			var got []string
			for _, c := range sum.Channels {
				var q strings.Builder
				for _, b := range blocks {
					if b.MeterID == c.MeterID && b.Channel == c.Channel {
						for _, x := range b.Quality {
							q.WriteString(string(x))
						}
						if b.Version != o.Version {
							t.Errorf("version %d, want %d", b.Version, o.Version)
						}
					}
				}
				got = append(got, fmt.Sprintf("%s %s %d %s %s", c.MeterID, c.Channel, c.Reads, c.KWh, q.String()))
			}
			if strings.Join(got, ";") != tc.channels {
				t.Errorf("channels %q, want %q", strings.Join(got, ";"), tc.channels)
			}
			total := 0
			for reason, n := range tc.skipped {
				total += n
				if got := sum.SkippedCount(reason); got != n {
					t.Errorf("skipped %s: %d, want %d (%+v)", reason, got, n, sum.Skipped)
				}
			}
			for _, k := range sum.Skipped {
				total -= k.Count
			}
			if total != 0 {
				t.Errorf("unexpected skips: %+v", sum.Skipped)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	mr1 := up1 + "/MeterReading/1"
	good := func(readings ...string) []byte {
		return feed(usagePoint(up1), meterReading(mr1, rt+"x"), readingType(rt+"x", 1, 72, 0), intervalBlock(mr1, "1", readings...))
	}
	tests := []struct {
		name string
		doc  []byte
		o    *greenbutton.Options
		path string
		msg  string
	}{
		{"value not a number", good("1700000100/300/abc"), nil, "feed/entry[4]/content/IntervalBlock[1]/IntervalReading[1]/value", "not a whole number"},
		{"negative value", good("1700000100/300/5", "1700000400/300/-5"), nil, "feed/entry[4]/content/IntervalBlock[1]/IntervalReading[2]/value", "value_out_of_range"},
		{"bad start", good("17x/300/5"), nil, "feed/entry[4]/content/IntervalBlock[1]/IntervalReading[1]/timePeriod/start", "not a whole number"},
		{"bad quality", good("1700000100/300/5/x"), nil, "feed/entry[4]/content/IntervalBlock[1]/IntervalReading[1]/ReadingQuality[1]/quality", "not a whole number"},
		{"too many decimals", feed(usagePoint(up1), meterReading(mr1, rt+"x"), readingType(rt+"x", 1, 72, -9), intervalBlock(mr1, "1", "1700000100/300/5")),
			nil, "feed/entry[4]/content/IntervalBlock[1]/IntervalReading[1]/value", "too_many_decimals"},
		{"bad multiplier", feed(readingType(rt+"x", 1, 72, 99)), nil, "feed/entry[1]/content/ReadingType[1]/powerOfTenMultiplier", "whole number from -12 to 12"},
		{"not well-formed", []byte(string(good("1700000100/300/5"))[:400]), nil, "feed/entry[1]", "not well-formed"},
		{"not Green Button", []byte("<html><body/></html>"), nil, "html", "root element"},
		{"empty", nil, nil, "/", "no feed or entry"},
		{"meter id with two usage points", feed(usagePoint(up1), usagePoint(up2)), &greenbutton.Options{MeterID: "M", Version: 1}, "/", "exactly one UsagePoint"},
		{"usage point id not an identifier", feed(usagePoint(up1 + "=")), nil, "feed/entry[1]/link", "not 1-64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := opts
			if tc.o != nil {
				o = *tc.o
			}
			blocks, _, err := greenbutton.Parse(bytes.NewReader(tc.doc), o)
			var ge *greenbutton.Error
			if !errors.As(err, &ge) || ge.Path != tc.path || !strings.Contains(ge.Msg, tc.msg) {
				t.Fatalf("got %v; want %s: …%s…", err, tc.path, tc.msg)
			}
			if blocks != nil {
				t.Fatal("a rejected document produced blocks")
			}
		})
	}
}

// FuzzParse: the parser never panics, and whatever it accepts is a set of
// valid, non-overlapping ami.interval-reads records its summary counts.
func FuzzParse(f *testing.F) {
	mr1 := up1 + "/MeterReading/1"
	f.Add(feed(usagePoint(up1), meterReading(mr1, rt+"x"), readingType(rt+"x", 19, 72, -3),
		intervalBlock(mr1, "1", "1700000100/300/1500/8", "1700000400/300/2/19"),
		intervalBlock(mr1, "2", "1700000100/300/1500/8", "1700000400/300/3")))
	f.Add(read(f, "nist-sgip/electric_containerized.xml"))
	f.Add([]byte(usagePoint(up1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		blocks, sum, err := greenbutton.Parse(bytes.NewReader(data), opts)
		if err != nil {
			var ge *greenbutton.Error
			if !errors.As(err, &ge) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		checkBlocks(t, blocks, sum)
	})
}

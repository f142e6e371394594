package nem12_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/meters/kafka"
	"github.com/gridsettle/gridsettle/meters/nem12"
)

var opts = nem12.Options{Version: 1, Source: "test"}

func parseFile(t *testing.T, name string) ([]meters.ReadBlock, meters.Summary, error) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return nem12.Parse(f, opts)
}

// plainChannel is what the second reader finds for one meter channel.
type plainChannel struct {
	reads   int
	kwh     *big.Rat
	quality map[meters.Quality]int
}

// plainRead is a second reader, deliberately naive and independent of the
// parser: split lines on commas, last 300 record of a day wins, 400 ranges
// overwrite qualities, values summed as big.Rat and scaled by the unit. It
// trusts the file to be valid.
func plainRead(t *testing.T, name string) map[string]*plainChannel {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	type plainDay struct {
		channel string
		unit    string
		values  []string
		quality []string
	}
	days := map[string]*plainDay{}
	var order []string
	var nmi, suffix, unit, lastDay string
	n := 0
	for line := range strings.SplitSeq(strings.ReplaceAll(string(data), "\r", ""), "\n") {
		f := strings.Split(line, ",")
		switch f[0] {
		case "200":
			nmi, suffix, unit = f[1], f[4], strings.ToLower(f[7])
			minutes, _ := strconv.Atoi(f[8])
			n = 1440 / minutes
		case "300":
			lastDay = ""
			dir := map[byte]string{'E': "import", 'B': "export"}[suffix[0]]
			if dir == "" {
				continue
			}
			lastDay = nmi + "/" + suffix + "/" + f[1]
			q := f[2+n][:1]
			d := &plainDay{channel: nmi + ":" + suffix[1:] + " " + dir, unit: unit, values: f[2 : 2+n]}
			for range n {
				d.quality = append(d.quality, q)
			}
			if days[lastDay] == nil {
				order = append(order, lastDay)
			}
			days[lastDay] = d
		case "400":
			if lastDay == "" {
				continue
			}
			from, _ := strconv.Atoi(f[1])
			to, _ := strconv.Atoi(f[2])
			for i := from - 1; i < to; i++ {
				days[lastDay].quality[i] = f[3][:1]
			}
		}
	}
	scale := map[string]*big.Rat{"kwh": big.NewRat(1, 1), "wh": big.NewRat(1, 1000), "mwh": big.NewRat(1000, 1)}
	qual := map[string]meters.Quality{"A": meters.Actual, "E": meters.Estimated, "S": meters.Substituted, "F": meters.Substituted}
	out := map[string]*plainChannel{}
	for _, k := range order {
		d := days[k]
		c := out[d.channel]
		if c == nil {
			c = &plainChannel{kwh: new(big.Rat), quality: map[meters.Quality]int{}}
			out[d.channel] = c
		}
		for i, v := range d.values {
			if d.quality[i] == "N" {
				continue
			}
			r, ok := new(big.Rat).SetString(v)
			if !ok {
				t.Fatalf("plain reader: %s: value %q", k, v)
			}
			c.kwh.Add(c.kwh, r.Mul(r, scale[d.unit]))
			c.reads++
			c.quality[qual[d.quality[i]]]++
		}
	}
	return out
}

func rat(t *testing.T, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("bad rational %q", s)
	}
	return r
}

// checkBlocks asserts what every parse result must satisfy: each block is a
// valid ami.interval-reads record and the summary counts exactly the blocks.
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

// TestRealFiles checks every valid NEM12 example against the second reader
// and against figures worked out by hand.
func TestRealFiles(t *testing.T) {
	type hand struct {
		reads int
		kwh   string
	}
	tests := []struct {
		file    string
		hand    map[string]hand // by "meter_id channel"; worked out by hand
		skipped map[string]int
		start   string // first block's start, by hand: IntervalDate 00:00 at UTC+10
	}{
		{file: "Example_NEM12_actual_interval.csv",
			hand:    map[string]hand{"VABD000163:1 import": {48, "53.328"}}, // 48 × 1.111
			skipped: map[string]int{nem12.SkipUnsupportedSuffix: 48},        // Q1
			start:   "2004-01-31T14:00:00Z"},
		{file: "Example_NEM12_upper_case_units.csv",
			hand:    map[string]hand{"VABD000163:1 import": {48, "53.328"}},
			skipped: map[string]int{nem12.SkipUnsupportedSuffix: 48}},
		{file: "Example_NEM12_multiple_meters.csv",
			hand: map[string]hand{ // Wh, 15-minute, two days: 192 values each
				"NCDE001111:1 import": {192, "1.92"},  // 10 Wh
				"NCDE001111:1 export": {192, "1.92"},  // 10 Wh
				"NCDE001111:2 import": {192, "19.2"},  // 100 Wh
				"NDDD001888:1 export": {192, "3.84"}}, // 20 Wh
			skipped: map[string]int{nem12.SkipUnsupportedSuffix: 384}, // Q1, K2
			start:   "2003-12-03T14:00:00Z"},
		{file: "Example_NEM12_substituted_interval.csv",
			hand:    map[string]hand{"VBCD000022:1 import": {48, "110.976"}}, // 48 × 2.312, F14
			skipped: map[string]int{nem12.SkipUnsupportedSuffix: 48}},
		{file: "Example_NEM12_no_scheduled_read.csv",
			hand: map[string]hand{"NMI111:1 import": {96, "5.84"}}}, // 3.76 + 2.08, then zeros
		{file: "Example_NEM12_multiple_quality.csv",
			hand: map[string]hand{"CCCC123456:1 import": {48, ""}}},
		{file: "Example_NEM12_different_interval_length.csv",
			hand:    map[string]hand{"C123:1 import": {48, ""}, "C123:2 import": {48, ""}},
			skipped: map[string]int{nem12.SkipUnsupportedSuffix: 144}}, // V1, 10-minute
		{file: "Example_NEM12_month_solar.csv",
			hand: map[string]hand{ // March 2023: 31 days × 288 five-minute values
				"NMI1234567:1 export": {8928, ""}, "NMI1234567:1 import": {8928, ""}},
			start: "2023-02-28T14:00:00Z"},
		{file: "Example_NEM12_partialchannel.csv",
			hand: map[string]hand{ // export: one day; import: 31 days
				"NMI1234567:1 export": {288, ""}, "NMI1234567:1 import": {8928, ""}}},
		{file: "Example_WesternPower.csv",
			hand:    map[string]hand{"9999999999:1 import": {48, "0"}, "9999999999:1 export": {48, "0"}},
			skipped: map[string]int{nem12.SkipUnsupportedSuffix: 96}}, // Q1, K1
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			name := filepath.Join("testdata", "unzipped", tc.file)
			blocks, sum, err := parseFile(t, name)
			if err != nil {
				t.Fatal(err)
			}
			checkBlocks(t, blocks, sum)
			plain := plainRead(t, name)
			got := map[string]meters.ChannelTotal{}
			for _, c := range sum.Channels {
				got[c.MeterID+" "+string(c.Channel)] = c
			}
			if len(got) != len(plain) || len(got) != len(tc.hand) {
				t.Fatalf("channels: parser %d, second reader %d, by hand %d", len(got), len(plain), len(tc.hand))
			}
			for k, h := range tc.hand {
				c, p := got[k], plain[k]
				if p == nil || c.Reads != h.reads || p.reads != h.reads {
					t.Fatalf("%s: parser %d reads, second reader %v, by hand %d", k, c.Reads, p, h.reads)
				}
				if rat(t, c.KWh.String()).Cmp(p.kwh) != 0 {
					t.Errorf("%s: parser %s kWh, second reader %s", k, c.KWh, p.kwh.FloatString(6))
				}
				if h.kwh != "" && rat(t, c.KWh.String()).Cmp(rat(t, h.kwh)) != 0 {
					t.Errorf("%s: parser %s kWh, by hand %s", k, c.KWh, h.kwh)
				}
				q := map[meters.Quality]int{}
				for _, b := range blocks {
					if b.MeterID+" "+string(b.Channel) == k {
						for _, x := range b.Quality {
							q[x]++
						}
					}
				}
				for _, x := range []meters.Quality{meters.Actual, meters.Estimated, meters.Substituted} {
					if q[x] != p.quality[x] {
						t.Errorf("%s: parser %d %s reads, second reader %d", k, q[x], x, p.quality[x])
					}
				}
			}
			for reason, n := range tc.skipped {
				if got := sum.SkippedCount(reason); got != n {
					t.Errorf("skipped %s: %d, want %d", reason, got, n)
				}
			}
			if tc.start != "" && blocks[0].Start.Format(time.RFC3339) != tc.start {
				t.Errorf("first block starts %s, want %s", blocks[0].Start.Format(time.RFC3339), tc.start)
			}
		})
	}
}

// TestMultipleQuality checks the 400 records by hand: 1-20 F14, 21-24 A,
// 25-48 S14.
func TestMultipleQuality(t *testing.T) {
	blocks, _, err := parseFile(t, "testdata/unzipped/Example_NEM12_multiple_quality.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 1 || len(blocks[0].Quality) != 48 {
		t.Fatalf("want one block of 48 reads, got %d blocks", len(blocks))
	}
	for i, q := range blocks[0].Quality {
		want := meters.Substituted
		if i >= 20 && i < 24 {
			want = meters.Actual
		}
		if q != want {
			t.Errorf("interval %d: quality %s, want %s", i+1, q, want)
		}
	}
	if v := blocks[0].Values[0].String(); v != "18.023" {
		t.Errorf("first value %s, want 18.023 (the file's first)", v)
	}
}

// TestMonthSolarBlocks checks the 5-minute month is one block per channel of
// consecutive intervals starting at 2023-03-01 00:00 NEM time.
func TestMonthSolarBlocks(t *testing.T) {
	blocks, _, err := parseFile(t, "testdata/unzipped/Example_NEM12_month_solar.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 {
		t.Fatalf("%d blocks, want 2", len(blocks))
	}
	for _, b := range blocks {
		if b.IntervalSeconds != 300 || len(b.Values) != 8928 ||
			!b.End().Equal(time.Date(2023, 3, 31, 14, 0, 0, 0, time.UTC)) {
			t.Errorf("%s %s: %d × %d s ending %s", b.MeterID, b.Channel, len(b.Values), b.IntervalSeconds, b.End())
		}
	}
}

// TestInvalidFiles rejects every file of testdata/invalid, and NEM13 files,
// with the line of the first problem and nothing produced.
func TestInvalidFiles(t *testing.T) {
	lines := map[string]int{
		"invalid/Example_NEM12_15min_200_30min_300.csv":     3, // 48 values for 15-minute intervals
		"invalid/Example_NEM12_15min_200_30min_400.csv":     6, // 400s cover 1-48 of 96; seen at the 900
		"invalid/Example_NEM12_30min_200_15min_300.csv":     3, // 96 values for 30-minute intervals
		"invalid/Example_NEM12_30min_200_15min_400.csv":     3,
		"invalid/Example_NEM12_empty.csv":                   2, // 900 with no 200
		"invalid/Example_NEM12_incomplete_interval.csv":     3, // 300 with no values
		"invalid/Example_NEM12_missing_header.csv":          2, // line 1 is blank, line 2 a 200
		"invalid/Example_NEM12_powercor.csv":                2,
		"invalid/Example_NEM12_powercor.csv.zip":            2,
		"invalid/Example_NEM12_powercor_missing_fields.csv": 2,
		"invalid/Example_empty_file.csv":                    1,
		"unzipped/Example_NEM13_consumption_data.csv":       1,
		"unzipped/Example_NEM13_forward_estimate.csv":       1,
	}
	files, _ := filepath.Glob("testdata/invalid/*")
	for _, f := range files {
		if _, ok := lines[strings.TrimPrefix(filepath.ToSlash(f), "testdata/")]; !ok {
			t.Errorf("%s has no expected line: add it", f)
		}
	}
	for file, line := range lines {
		t.Run(file, func(t *testing.T) {
			blocks, sum, err := parseFile(t, filepath.Join("testdata", file))
			var pe *nem12.Error
			if !errors.As(err, &pe) {
				t.Fatalf("want *nem12.Error, got %v", err)
			}
			if pe.Line != line {
				t.Errorf("line %d, want %d: %v", pe.Line, line, err)
			}
			if strings.HasSuffix(file, ".zip") && pe.Entry != "Example_NEM12_powercor.csv" {
				t.Errorf("zip member %q, want Example_NEM12_powercor.csv", pe.Entry)
			}
			if blocks != nil || len(sum.Channels) != 0 {
				t.Errorf("a rejected file produced %d blocks", len(blocks))
			}
		})
	}
}

// nem builds a small NEM12 file: header, then the given records, then 900.
func nem(records ...string) string {
	return "100,NEM12,202301010000,MDP,RET\n" + strings.Join(records, "\n") + "\n900\n"
}

// day300 is a 300 record of n equal values.
func day300(date string, n int, value, method string) string {
	return "300," + date + "," + strings.Repeat(value+",", n) + method + ",,,,"
}

func TestRules(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		reads   int
		kwh     string
		quality []meters.Quality // distinct, in block order
		skipped map[string]int
		blocks  int
	}{
		{name: "Wh converted exactly",
			file:  nem("200,N1,E1,1,E1,N1,S,Wh,30,", day300("20240101", 48, "1.5", "A")),
			reads: 48, kwh: "0.072", blocks: 1}, // 48 × 0.0015
		{name: "MWh and lower-case unit",
			file:  nem("200,N1,E1,1,E1,N1,S,mwh,30,", day300("20240101", 48, "0.000001", "E52")),
			reads: 48, kwh: "0.048", quality: []meters.Quality{meters.Estimated}, blocks: 1},
		{name: "later 300 replaces the earlier day",
			file: nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240101", 48, "1", "A"),
				day300("20240101", 48, "2", "S14")),
			reads: 48, kwh: "96", quality: []meters.Quality{meters.Substituted},
			skipped: map[string]int{nem12.SkipReplaced: 48}, blocks: 1},
		{name: "N day is no read and splits the block",
			file: nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240101", 48, "1", "A"),
				day300("20240102", 48, "0", "N"), day300("20240103", 48, "1", "A")),
			reads: 96, kwh: "96", skipped: map[string]int{nem12.SkipNullQuality: 48}, blocks: 2},
		{name: "400 N intervals are no read",
			file: nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240101", 48, "1", "V"),
				"400,1,10,A,,", "400,11,12,N,,", "400,13,48,E52,,"),
			reads: 46, kwh: "46", skipped: map[string]int{nem12.SkipNullQuality: 2}, blocks: 2},
		{name: "10-minute energy channel skipped",
			file:    nem("200,N1,E1,1,E1,N1,S,kWh,10,", day300("20240101", 144, "1", "A")),
			skipped: map[string]int{nem12.SkipUnsupportedInterval: 144}},
		{name: "unknown unit skipped",
			file:    nem("200,N1,E1,1,E1,N1,S,kVAh,30,", day300("20240101", 48, "1", "A")),
			skipped: map[string]int{nem12.SkipUnsupportedUnit: 48}},
		{name: "second interval length of a channel skipped",
			file: nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240101", 48, "1", "A"),
				"200,N1,E1,1,E1,N1,S,kWh,15,", day300("20240102", 96, "1", "A")),
			reads: 48, kwh: "48", skipped: map[string]int{nem12.SkipLengthMismatch: 96}, blocks: 1},
		{name: "35 days of 5 minutes split at 10000 values",
			file: nem(append([]string{"200,N1,B1,1,B1,N1,S,kWh,5,"}, func() []string {
				var days []string
				for d := range 35 {
					days = append(days, day300(time.Date(2024, 1, 1+d, 0, 0, 0, 0, time.UTC).Format("20060102"), 288, "0.001", "A"))
				}
				return days
			}()...)...),
			reads: 10080, kwh: "10.08", blocks: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			blocks, sum, err := nem12.Parse(strings.NewReader(tc.file), opts)
			if err != nil {
				t.Fatal(err)
			}
			checkBlocks(t, blocks, sum)
			if len(blocks) != tc.blocks || sum.Reads() != tc.reads {
				t.Fatalf("%d blocks, %d reads; want %d, %d", len(blocks), sum.Reads(), tc.blocks, tc.reads)
			}
			if tc.kwh != "" && rat(t, sum.Channels[0].KWh.String()).Cmp(rat(t, tc.kwh)) != 0 {
				t.Errorf("%s kWh, want %s", sum.Channels[0].KWh, tc.kwh)
			}
			for _, q := range tc.quality {
				if !slices.Contains(blocks[0].Quality, q) {
					t.Errorf("quality %s missing", q)
				}
			}
			for reason, n := range tc.skipped {
				if got := sum.SkippedCount(reason); got != n {
					t.Errorf("skipped %s: %d, want %d", reason, got, n)
				}
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct {
		name string
		file string
		line int
		msg  string
	}{
		{"negative value", nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240101", 48, "-1", "A")), 3, "not a non-negative decimal"},
		{"too many decimals after conversion", nem("200,N1,E1,1,E1,N1,S,Wh,30,", day300("20240101", 48, "0.0001", "A")), 3, "more than 6 decimal places"},
		{"value above 1000000 kWh", nem("200,N1,E1,1,E1,N1,S,MWh,30,", day300("20240101", 48, "1000.001", "A")), 3, "outside 0 to 1000000"},
		{"400 without V", nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240101", 48, "1", "A"), "400,1,48,A,,"), 4, "must follow a 300 record with QualityMethod V"},
		{"400 gap", nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240101", 48, "1", "V"), "400,1,10,A,,", "400,12,48,A,,"), 5, "expected 11"},
		{"V without 400", nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240101", 48, "1", "V")), 4, "no 400 record"},
		{"bad date", nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240231", 48, "1", "A")), 3, "IntervalDate"},
		{"bad interval length", nem("200,N1,E1,1,E1,N1,S,kWh,7,", day300("20240101", 48, "1", "A")), 2, "IntervalLength"},
		{"record after 900", nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240101", 48, "1", "A")) + "200,N1,E1,1,E1,N1,S,kWh,30,\n", 5, "after the 900"},
		{"no 900", strings.TrimSuffix(nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240101", 48, "1", "A")), "900\n"), 3, "without a 900"},
		{"unknown record", nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240101", 48, "1", "A"), "250,x"), 4, "not one of NEM12"},
		{"200 without 300", nem("200,N1,E1,1,E1,N1,S,kWh,30,"), 3, "has no 300 record"},
		{"padding that is not empty", nem("200,N1,E1,1,E1,N1,S,kWh,30,,x"), 2, "unexpected field 11"},
		{"bare quote", nem("200,N1,E1,1,E1,N1,S,kWh,30,", `300,2024"0101`), 3, "not valid CSV"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			blocks, _, err := nem12.Parse(strings.NewReader(tc.file), opts)
			var pe *nem12.Error
			if !errors.As(err, &pe) || pe.Line != tc.line || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v; want line %d with %q", err, tc.line, tc.msg)
			}
			if blocks != nil {
				t.Fatal("a rejected file produced blocks")
			}
		})
	}
}

func zipOf(t *testing.T, files ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(f[0])
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(w, f[1])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestZip reads members in archive order: a later member's day replaces an
// earlier one's, and members that are not CSV are skipped.
func TestZip(t *testing.T) {
	data := zipOf(t,
		[2]string{"a.csv", nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240101", 48, "1", "A"), day300("20240102", 48, "1", "A"))},
		[2]string{"readme.txt", "not NEM12"},
		[2]string{"dir/b.CSV", nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240102", 48, "3", "A"))},
	)
	blocks, sum, err := nem12.Parse(bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	checkBlocks(t, blocks, sum)
	if sum.Reads() != 96 || sum.Channels[0].KWh.String() != "192" {
		t.Errorf("%d reads, %s kWh; want 96 and 48 + 144", sum.Reads(), sum.Channels[0].KWh)
	}
	if sum.SkippedCount(nem12.SkipZipEntry) != 1 || sum.SkippedCount(nem12.SkipReplaced) != 48 {
		t.Errorf("skipped %+v", sum.Skipped)
	}

	bad := zipOf(t, [2]string{"a.csv", nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240101", 48, "1", "A"))},
		[2]string{"b.csv", "100,NEM12,x,y,z\n200,N1\n"})
	_, _, err = nem12.Parse(bytes.NewReader(bad), opts)
	var pe *nem12.Error
	if !errors.As(err, &pe) || pe.Entry != "b.csv" || pe.Line != 2 {
		t.Errorf("got %v, want b.csv line 2", err)
	}
	_, _, err = nem12.Parse(bytes.NewReader(zipOf(t, [2]string{"x.txt", "hello"})), opts)
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "no .csv") {
		t.Errorf("got %v, want a zip without CSV rejected", err)
	}
}

// FuzzParse: the parser never panics, and whatever it accepts is a set of
// valid, non-overlapping ami.interval-reads records its summary counts.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"unzipped", "invalid"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*"))
		for _, name := range files {
			if data, err := os.ReadFile(name); err == nil && len(data) < 8<<10 {
				f.Add(data)
			}
		}
	}
	f.Add([]byte(nem("200,N1,E1,1,E1,N1,S,kWh,30,", day300("20240101", 48, "1", "V"), "400,1,10,A,,", "400,11,48,N,,")))
	f.Fuzz(func(t *testing.T, data []byte) {
		blocks, sum, err := nem12.Parse(bytes.NewReader(data), opts)
		if err != nil {
			var pe *nem12.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		checkBlocks(t, blocks, sum)
	})
}

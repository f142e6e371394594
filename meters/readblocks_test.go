package meters

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func TestCheckKWh(t *testing.T) {
	tests := []struct {
		v    string
		want Reason // "" = fine
	}{
		{"0", ""}, {"1000000", ""}, {"0.000001", ""}, {"1.500000000", ""},
		{"-0.000001", ValueOutOfRange}, {"1000000.000001", ValueOutOfRange}, {"0.0000001", TooManyDecimals},
	}
	for _, tc := range tests {
		rej := CheckKWh(decimal.RequireFromString(tc.v))
		if (rej == nil) != (tc.want == "") || (rej != nil && rej.Reason != tc.want) {
			t.Errorf("CheckKWh(%s) = %v, want %q", tc.v, rej, tc.want)
		}
	}
}

func TestGroupReads(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	read := func(meter string, ch Channel, i, seconds int, q Quality) Read {
		return Read{MeterID: meter, Channel: ch, Start: t0.Add(time.Duration(i*seconds) * time.Second),
			IntervalSeconds: seconds, Value: decimal.NewFromInt(int64(i)), Quality: q, Version: 1}
	}
	var reads []Read
	for i := range MaxBlockValues + 2 { // one full block and a second of 2
		reads = append(reads, read("M", Import, i, 300, Actual))
	}
	reads = append(reads,
		read("M", Export, 0, 300, Actual), read("M", Export, 1, 300, Estimated), // quality never splits
		read("M", Export, 3, 300, Actual), // a gap does
		read("N", Export, 4, 300, Actual), // so does another meter
	)
	blocks := GroupReads(reads)
	want := []struct {
		meter string
		ch    Channel
		n     int
		start time.Time
	}{
		{"M", Import, MaxBlockValues, t0}, {"M", Import, 2, t0.Add(MaxBlockValues * 300 * time.Second)},
		{"M", Export, 2, t0}, {"M", Export, 1, t0.Add(900 * time.Second)}, {"N", Export, 1, t0.Add(1200 * time.Second)},
	}
	if len(blocks) != len(want) {
		t.Fatalf("%d blocks, want %d", len(blocks), len(want))
	}
	for i, w := range want {
		b := blocks[i]
		if b.MeterID != w.meter || b.Channel != w.ch || len(b.Values) != w.n || len(b.Quality) != w.n || !b.Start.Equal(w.start) {
			t.Errorf("block %d: %s %s %d from %s, want %+v", i, b.MeterID, b.Channel, len(b.Values), b.Start, w)
		}
	}
	if blocks[2].Quality[1] != Estimated {
		t.Errorf("quality per value lost: %v", blocks[2].Quality)
	}
}

func TestSummarize(t *testing.T) {
	var tally SkipTally
	tally.Add("b_reason", "x", 2)
	tally.Add("a_reason", "y", 1)
	tally.Add("b_reason", "x", 3)
	tally.Add("c_reason", "z", 0) // nothing skipped: not listed
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	blocks := []ReadBlock{
		{MeterID: "M2", Channel: Import, Start: t0, IntervalSeconds: 900, Values: []decimal.Decimal{decimal.RequireFromString("0.1"), decimal.RequireFromString("0.25")}},
		{MeterID: "M1", Channel: Export, Start: t0, IntervalSeconds: 900, Values: []decimal.Decimal{decimal.RequireFromString("1")}},
		{MeterID: "M2", Channel: Import, Start: t0.Add(time.Hour), IntervalSeconds: 900, Values: []decimal.Decimal{decimal.RequireFromString("0.000001")}},
	}
	s := Summarize(blocks, tally.Skips())
	if s.Meters() != 2 || s.Reads() != 4 || len(s.Channels) != 2 || s.Channels[0].MeterID != "M1" ||
		s.Channels[1].KWh.String() != "0.350001" || s.Channels[1].Blocks != 2 {
		t.Errorf("summary %+v", s)
	}
	if len(s.Skipped) != 2 || s.Skipped[0].Reason != "a_reason" || s.SkippedCount("b_reason") != 5 {
		t.Errorf("skipped %+v", s.Skipped)
	}
}

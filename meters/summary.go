package meters

import (
	"cmp"
	"slices"

	"github.com/shopspring/decimal"
)

// Summary is what one imported meter-data file yields: its reads per meter
// channel, and every item of the file that did not become a read, by reason.
// The file importers (meters/nem12, meters/greenbutton) return one with their
// blocks; the import command prints it.
type Summary struct {
	Channels []ChannelTotal // ordered by MeterID, then Channel
	Skipped  []Skip         // ordered by Reason, then Detail
}

// ChannelTotal is the reads one file holds for one meter channel.
type ChannelTotal struct {
	MeterID         string
	Channel         Channel
	IntervalSeconds int
	Reads           int
	Blocks          int
	KWh             decimal.Decimal // exact sum of the values
}

// Skip counts the items of a file left out for one reason. Count is in the
// file's own unit of interval data (NEM12 interval values, Green Button
// IntervalReadings), so a skipped channel counts every interval it held.
type Skip struct {
	Reason string // stable snake_case, e.g. unsupported_duration
	Detail string // what exactly, e.g. "duration 86400 s"
	Count  int
}

// Summarize totals blocks per meter channel and orders skipped.
func Summarize(blocks []ReadBlock, skipped []Skip) Summary {
	type key struct {
		meter   string
		channel Channel
	}
	totals := map[key]*ChannelTotal{}
	for _, b := range blocks {
		k := key{b.MeterID, b.Channel}
		t := totals[k]
		if t == nil {
			t = &ChannelTotal{MeterID: b.MeterID, Channel: b.Channel, IntervalSeconds: b.IntervalSeconds}
			totals[k] = t
		}
		t.Blocks++
		t.Reads += len(b.Values)
		for _, v := range b.Values {
			t.KWh = t.KWh.Add(v)
		}
	}
	var s Summary
	for _, t := range totals {
		s.Channels = append(s.Channels, *t)
	}
	slices.SortFunc(s.Channels, func(a, b ChannelTotal) int {
		return cmp.Or(cmp.Compare(a.MeterID, b.MeterID), cmp.Compare(a.Channel, b.Channel))
	})
	s.Skipped = slices.Clone(skipped)
	slices.SortFunc(s.Skipped, func(a, b Skip) int {
		return cmp.Or(cmp.Compare(a.Reason, b.Reason), cmp.Compare(a.Detail, b.Detail))
	})
	return s
}

// Meters is the number of distinct meter_ids with reads.
func (s Summary) Meters() int {
	n := 0
	for i, c := range s.Channels {
		if i == 0 || c.MeterID != s.Channels[i-1].MeterID {
			n++
		}
	}
	return n
}

// Reads is the number of reads over all channels.
func (s Summary) Reads() int {
	n := 0
	for _, c := range s.Channels {
		n += c.Reads
	}
	return n
}

// SkippedCount is the number of skipped items with reason.
func (s Summary) SkippedCount(reason string) int {
	n := 0
	for _, k := range s.Skipped {
		if k.Reason == reason {
			n += k.Count
		}
	}
	return n
}

// SkipTally accumulates skipped items by reason and detail while a file is
// read. The zero value is ready to use.
type SkipTally struct {
	counts map[[2]string]int
}

// Add counts n items skipped for reason, with detail saying what exactly.
func (t *SkipTally) Add(reason, detail string, n int) {
	if n <= 0 {
		return
	}
	if t.counts == nil {
		t.counts = map[[2]string]int{}
	}
	t.counts[[2]string{reason, detail}] += n
}

// Skips is the tally as a list, in no particular order (Summarize orders it).
func (t *SkipTally) Skips() []Skip {
	out := make([]Skip, 0, len(t.counts))
	for k, n := range t.counts {
		out = append(out, Skip{Reason: k[0], Detail: k[1], Count: n})
	}
	return out
}

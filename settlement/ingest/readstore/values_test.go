package readstore

import (
	"slices"
	"testing"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// CurrentValues answers each key by the current read starting exactly
// there: the highest version holding a value, within a multi-value block,
// of the key's own channel, and nothing for a key between two starts or
// with no read.
func TestCurrentValues(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	day := unix("2026-10-25T00:00:00Z")
	blocks := []StoredBlock{
		{MeterID: "M1", Channel: meters.Import, Start: day + 5*3600, IntervalSeconds: 900, Version: 1,
			Values: []int64{10, 11, 12, 13}, Origin: Origin{Topic: "t"}},
		// version 2 corrects the third read and leaves the others
		{MeterID: "M1", Channel: meters.Import, Start: day + 5*3600, IntervalSeconds: 900, Version: 2,
			Values: []int64{NoRead, NoRead, 22, NoRead}, Quality: "SSSS", Origin: Origin{Topic: "t"}},
		{MeterID: "M1", Channel: meters.Export, Start: day + 5*3600, IntervalSeconds: 900, Version: 1,
			Values: []int64{7}, Origin: Origin{Topic: "t"}},
		// the last read of a day
		{MeterID: "M2", Channel: meters.Import, Start: day + 23*3600, IntervalSeconds: 3600, Version: 3,
			Values: []int64{1_000_000_000_000}, Origin: Origin{Topic: "t"}},
	}
	if err := EnsurePartitions(ctx, pool, []int64{day}); err != nil {
		t.Fatal(err)
	}
	if err := AppendBlocks(ctx, pool, blocks); err != nil {
		t.Fatal(err)
	}
	keys := []ValueKey{
		{"M1", meters.Import, day + 5*3600},        // 10
		{"M1", meters.Import, day + 5*3600 + 1800}, // 22: version 2
		{"M1", meters.Import, day + 5*3600 + 2700}, // 13: version 1, version 2 did not change it
		{"M1", meters.Import, day + 5*3600 + 3600}, // after the block
		{"M1", meters.Import, day + 5*3600 + 300},  // between two starts
		{"M1", meters.Export, day + 5*3600},        // 7
		{"M1", meters.Export, day + 5*3600 + 900},  // none
		{"M2", meters.Import, day + 23*3600},       // 10^12
		{"M2", meters.Import, day + 23*3600 - 7*86400},
		{"M3", meters.Import, day + 5*3600},
	}
	got, err := CurrentValues(ctx, pool, keys)
	if err != nil {
		t.Fatal(err)
	}
	want := []int64{10, 22, 13, NoRead, NoRead, 7, NoRead, 1_000_000_000_000, NoRead, NoRead}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got, err := CurrentValues(ctx, pool, nil); err != nil || len(got) != 0 {
		t.Fatalf("no keys: %v, %v", got, err)
	}
}

package readstore

import (
	"maps"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// Counts add up batch by batch, reasons merge, and a replay's move drops a
// reason whose last record it took.
func TestCounts(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	if _, err := LoadOffsets(ctx, pool, readsTopic, []int32{0, 1}); err != nil {
		t.Fatal(err)
	}
	batch := func(from, to int64, c Counts) {
		t.Helper()
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if ok, _, err := AdvanceOffset(ctx, tx, readsTopic, 1, from, to); !ok || err != nil {
				t.Fatalf("advance: %v %v", ok, err)
			}
			_, err := CloseBatch(ctx, tx, readsTopic, 1, time.Time{}, c)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	batch(0, 10, Counts{Records: 9, Applied: 7, Quarantined: map[meters.Reason]int64{meters.UnknownMeter: 2},
		ReadsApplied: 100, ReadsStale: 3, ReadsDuplicate: 5})
	batch(10, 12, Counts{Records: 2, Applied: 1, Quarantined: map[meters.Reason]int64{meters.MalformedJSON: 1}, ReadsApplied: 16})
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		counted, err := LockCounts(ctx, tx, []Origin{{Topic: readsTopic, Partition: 1, Offset: 3}, {Topic: readsTopic, Partition: 1, Offset: 4}})
		if err != nil {
			return err
		}
		if !counted(Origin{Topic: readsTopic, Partition: 1, Offset: 3}) || counted(Origin{Topic: readsTopic, Partition: 7, Offset: 3}) {
			t.Error("counted: a record of a counted partition is, one of a partition without a row is not")
		}
		return MoveCounts(ctx, tx, []PartitionCounts{{Topic: readsTopic, Partition: 1, Counts: Counts{Applied: 1,
			Quarantined: map[meters.Reason]int64{meters.MalformedJSON: -1}, ReadsApplied: 10, ReadsDuplicate: 6}}})
	}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCounts(ctx, pool)
	if err != nil || len(got) != 2 {
		t.Fatalf("read: %+v %v", got, err)
	}
	if p := got[0]; p.NextOffset != 0 || p.Records != 0 || len(p.Quarantined) != 0 {
		t.Errorf("untouched partition: %+v", p)
	}
	want := Counts{Records: 11, Applied: 9, Quarantined: map[meters.Reason]int64{meters.UnknownMeter: 2},
		ReadsApplied: 126, ReadsStale: 3, ReadsDuplicate: 11}
	p := got[1]
	if p.NextOffset != 12 || p.CountedFrom != 0 || p.Records != want.Records || p.Applied != want.Applied ||
		!maps.Equal(p.Quarantined, want.Quarantined) || p.ReadsApplied != want.ReadsApplied ||
		p.ReadsStale != want.ReadsStale || p.ReadsDuplicate != want.ReadsDuplicate {
		t.Errorf("counts: got %+v, want %+v", p.Counts, want)
	}

	// A partition consumed before counts were kept counts its later records only.
	if _, err := pool.Exec(ctx, `UPDATE ingest_offsets SET counted_from = 5 WHERE partition = 1`); err != nil {
		t.Fatal(err)
	}
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		counted, err := LockCounts(ctx, tx, []Origin{{Topic: readsTopic, Partition: 1, Offset: 4}})
		if err == nil && (counted(Origin{Topic: readsTopic, Partition: 1, Offset: 4}) || !counted(Origin{Topic: readsTopic, Partition: 1, Offset: 5})) {
			t.Error("counted: offsets below counted_from are not")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

package readstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/meters"
)

// Counts are what ingest did with the records of one input partition
// (settlement/README.md "Completeness: every input record accounted for"), or a
// change to them: Records data records consumed, of which Applied were applied
// and Quarantined[reason] set aside; of the reads in applied records,
// ReadsApplied became current and the others were stale or duplicates. A
// batch's counts satisfy Records = Applied + Σ Quarantined; a replay's move
// records between Quarantined and Applied and leave Records alone.
type Counts struct {
	Records, Applied                         int64
	Quarantined                              map[meters.Reason]int64
	ReadsApplied, ReadsStale, ReadsDuplicate int64
}

// Quarantine counts n records set aside for reason.
func (c *Counts) Quarantine(reason meters.Reason, n int64) {
	if c.Quarantined == nil {
		c.Quarantined = map[meters.Reason]int64{}
	}
	c.Quarantined[reason] += n
}

func (c Counts) zero() bool {
	for _, n := range c.Quarantined {
		if n != 0 {
			return false
		}
	}
	return c.Records == 0 && c.Applied == 0 && c.ReadsApplied == 0 && c.ReadsStale == 0 && c.ReadsDuplicate == 0
}

// quarantinedJSON is c.Quarantined as the jsonb the counts statement adds,
// nil when there is nothing to add (the common batch).
func (c Counts) quarantinedJSON() ([]byte, error) {
	if len(c.Quarantined) == 0 {
		return nil, nil
	}
	return json.Marshal(c.Quarantined)
}

// closeBatchSQL adds counts to a partition's row and raises its watermark
// ($3; NULL leaves it: GREATEST ignores NULLs). Reasons whose count falls
// to 0 (a replay took their last record) are dropped, so that the stored
// quarantined holds only reasons with records.
const closeBatchSQL = `
	UPDATE ingest_offsets SET watermark = GREATEST(watermark, $3),
		records = records + $4, applied = applied + $5,
		reads_applied = reads_applied + $6, reads_stale = reads_stale + $7, reads_duplicate = reads_duplicate + $8,
		quarantined = CASE WHEN $9::jsonb IS NULL THEN quarantined ELSE (
			SELECT coalesce(jsonb_object_agg(reason, n), '{}') FROM (
				SELECT reason, sum(n::bigint) AS n FROM (
					SELECT * FROM jsonb_each_text(quarantined) UNION ALL SELECT * FROM jsonb_each_text($9::jsonb)
				) AS each (reason, n) GROUP BY reason HAVING sum(n::bigint) <> 0
			) AS sums) END
	WHERE topic = $1 AND partition = $2
	RETURNING watermark`

// CloseBatch ends the ingest transaction whose AdvanceOffset locked the row
// of (topic, partition): it adds c to the partition's counts, so that they
// commit with the offset, and raises the stored watermark to at least
// watermark (zero: leaves it), returning the resulting watermark (zero when
// there is none). The watermark only ever moves up.
//
// The watermark is not moved by AdvanceOffset: only applied records move it
// (meters/README.md), and which records apply is known only after the batch's
// effects, as are the counts.
func CloseBatch(ctx context.Context, tx pgx.Tx, topic string, partition int32, watermark time.Time, c Counts) (time.Time, error) {
	q, err := c.quarantinedJSON()
	if err != nil {
		return time.Time{}, fmt.Errorf("close the batch of %s/%d: %w", topic, partition, err)
	}
	var raise *time.Time
	if !watermark.IsZero() {
		raise = &watermark
	}
	var wm *time.Time
	if err := tx.QueryRow(ctx, closeBatchSQL, topic, partition, raise, c.Records, c.Applied,
		c.ReadsApplied, c.ReadsStale, c.ReadsDuplicate, q).Scan(&wm); err != nil {
		return time.Time{}, fmt.Errorf("close the batch of %s/%d: %w", topic, partition, err)
	}
	if wm == nil {
		return time.Time{}, nil
	}
	return wm.UTC(), nil
}

// PartitionCounts is a change to the counts of one input partition.
type PartitionCounts struct {
	Topic     string
	Partition int32
	Counts
}

// LockCounts locks the rows of the partitions of origins, in key order, until
// tx ends. A quarantine replay takes them before it applies anything, in the
// order the consumers do (offset row first, then the read store's rows),
// so that a replay and a consumer batch cannot deadlock. counted reports
// whether the record at an origin is in its partition's counts: its row
// exists and counting had begun at its offset (counted_from).
func LockCounts(ctx context.Context, tx pgx.Tx, origins []Origin) (counted func(Origin) bool, err error) {
	type partition struct {
		topic string
		n     int32
	}
	topics, parts := make([]string, 0, len(origins)), make([]int32, 0, len(origins))
	for _, o := range origins {
		topics, parts = append(topics, o.Topic), append(parts, o.Partition)
	}
	rows, err := tx.Query(ctx, `
		SELECT topic, partition, counted_from FROM ingest_offsets
		WHERE (topic, partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))
		ORDER BY topic, partition FOR UPDATE`, topics, parts)
	if err != nil {
		return nil, fmt.Errorf("lock the counts of replayed partitions: %w", err)
	}
	from := map[partition]int64{}
	var p partition
	var f int64
	if _, err := pgx.ForEachRow(rows, []any{&p.topic, &p.n, &f}, func() error {
		from[p] = f
		return nil
	}); err != nil {
		return nil, fmt.Errorf("lock the counts of replayed partitions: %w", err)
	}
	return func(o Origin) bool {
		f, ok := from[partition{o.Topic, o.Partition}]
		return ok && o.Offset >= f
	}, nil
}

// MoveCounts adds each change to its partition's counts in tx (a
// replay's: the partitions locked with LockCounts), leaving the offset and
// watermark as they are.
func MoveCounts(ctx context.Context, tx pgx.Tx, changes []PartitionCounts) error {
	for _, c := range changes {
		if c.zero() {
			continue
		}
		if _, err := CloseBatch(ctx, tx, c.Topic, c.Partition, time.Time{}, c.Counts); err != nil {
			return err
		}
	}
	return nil
}

// StoredCounts is the counts of one input partition as stored with its
// position.
type StoredCounts struct {
	Topic      string
	Partition  int32
	NextOffset int64
	// CountedFrom is the offset counting began at: 0 unless the partition
	// was consumed before counts were kept.
	CountedFrom int64
	Counts
}

// ReadCounts returns the counts of every partition ingest knows (consumed or
// merely assigned), ordered by topic and partition, as db sees them: a run
// reads them in its snapshot transaction, with its lineage.
func ReadCounts(ctx context.Context, db Querier) ([]StoredCounts, error) {
	rows, err := db.Query(ctx, `
		SELECT topic, partition, next_offset, counted_from, records, applied, quarantined,
			reads_applied, reads_stale, reads_duplicate
		FROM ingest_offsets ORDER BY topic, partition`)
	if err != nil {
		return nil, fmt.Errorf("read input counts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StoredCounts, error) {
		var s StoredCounts
		err := row.Scan(&s.Topic, &s.Partition, &s.NextOffset, &s.CountedFrom, &s.Records, &s.Applied, &s.Quarantined,
			&s.ReadsApplied, &s.ReadsStale, &s.ReadsDuplicate)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("read input counts: %w", err)
	}
	return out, nil
}

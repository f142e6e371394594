package readstore

// The reads and writes in this file serve the bench and chaos harnesses of
// cmd/gridsettle only (seeding a day, resetting and re-loading read_blocks,
// reading whole tables back for the checks); the product never calls them.

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// EachQuarantined calls f with the source position and reason of every
// quarantined record (chaos compares them with the oracle's).
func EachQuarantined(ctx context.Context, db Querier, f func(topic string, partition int32, offset int64, reason string)) error {
	rows, err := db.Query(ctx, `SELECT topic, partition, "offset", reason FROM quarantine`)
	if err != nil {
		return fmt.Errorf("read quarantine: %w", err)
	}
	var (
		topic, reason string
		partition     int32
		offset        int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&topic, &partition, &offset, &reason}, func() error {
		f(topic, partition, offset, reason)
		return nil
	}); err != nil {
		return fmt.Errorf("read quarantine: %w", err)
	}
	return nil
}

// CountQuarantined counts the quarantined records.
func CountQuarantined(ctx context.Context, db Querier) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM quarantine`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count quarantine: %w", err)
	}
	return n, nil
}

// SumNextOffsets is the sum of topic's stored next offsets over its
// partitions: how many records ingest has consumed (bench polls it).
func SumNextOffsets(ctx context.Context, db Querier, topic string) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, `SELECT coalesce(sum(next_offset), 0) FROM ingest_offsets WHERE topic = $1`, topic).Scan(&n); err != nil {
		return 0, fmt.Errorf("sum stored offsets of %s: %w", topic, err)
	}
	return n, nil
}

// SeedBenchPrices seeds the RT prices of [start, end) at points SP-001..
// SP-<points>, as the bench's day of runs needs: about 1% of the (point,
// interval) prices missing (unpriced), 2% negative, chosen by seed; stores
// offsets past every seeded one for the input topics (the seeded reads'
// offsets are a meter's index × 1,000 + its record's: a run's lineage, and
// so explain, must include them all), and analyzes
// what the runs read.
func SeedBenchPrices(ctx context.Context, db Querier, start, end time.Time, intervalSeconds int, currency string, points int, seed int64) error {
	if _, err := db.Exec(ctx,
		`INSERT INTO prices (market, settlement_point, interval_start, interval_seconds, price, currency, version, topic, partition, "offset")
		 SELECT 'RT', 'SP-' || lpad(p::text, 3, '0'), $1::timestamptz + k * $3::int * interval '1 second', $3::int,
		        CASE WHEN h % 50 = 0 THEN -(h % 3000) * 0.01 ELSE 15 + (h % 9000) * 0.01 END, $4, 1, 'market.prices', p % 8, p * 1000 + k
		 FROM generate_series(1, $5::int) p
		 CROSS JOIN generate_series(-4, (extract(epoch FROM $2::timestamptz - $1::timestamptz)::int / $3::int) - 1) k
		 CROSS JOIN LATERAL (SELECT abs(hashint8extended(p::bigint * 100000 + k, $6)) AS h) hh
		 WHERE h % 97 <> 5`, start, end, intervalSeconds, currency, points, seed); err != nil {
		return fmt.Errorf("seed: INSERT prices: %w", err)
	}
	if _, err := db.Exec(ctx, `INSERT INTO ingest_offsets (topic, partition, next_offset)
		 SELECT t, p, 1::bigint << 50 FROM unnest(ARRAY['ami.interval-reads', 'market.prices']) t, generate_series(0, 7) p
		 ON CONFLICT DO NOTHING`); err != nil {
		return fmt.Errorf("seed: INSERT ingest_offsets: %w", err)
	}
	if _, err := db.Exec(ctx, `ANALYZE read_blocks, prices, meter_assignments, ingest_offsets`); err != nil {
		return fmt.Errorf("seed: ANALYZE: %w", err)
	}
	return nil
}

// DumpBlocks writes every read_blocks row (blockColumns) to w in COPY's binary format
// (the bench's bare COPY reloads them with LoadBlocks) and returns how many.
func DumpBlocks(ctx context.Context, pg *pgconn.PgConn, w io.Writer) (int64, error) {
	// A partitioned table cannot be COPYed TO directly; its rows can.
	tag, err := pg.CopyTo(ctx, w, `COPY (SELECT `+blockColumns+` FROM read_blocks) TO STDOUT (FORMAT binary)`)
	if err != nil {
		return 0, fmt.Errorf("dump read_blocks: %w", err)
	}
	return tag.RowsAffected(), nil
}

// EmptyBlocks truncates read_blocks.
func EmptyBlocks(ctx context.Context, pg *pgconn.PgConn) error {
	if _, err := pg.Exec(ctx, `TRUNCATE read_blocks`).ReadAll(); err != nil {
		return fmt.Errorf("empty read_blocks: %w", err)
	}
	return nil
}

// LoadBlocks copies rows DumpBlocks wrote into read_blocks and returns how
// many.
func LoadBlocks(ctx context.Context, pg *pgconn.PgConn, r io.Reader) (int64, error) {
	tag, err := pg.CopyFrom(ctx, r, `COPY read_blocks (`+blockColumns+`) FROM STDIN (FORMAT binary)`)
	if err != nil {
		return 0, fmt.Errorf("load read_blocks: %w", err)
	}
	return tag.RowsAffected(), nil
}

// CopyBlocksOut writes the read blocks starting in [from, to) to w as COPY
// text: the plain read-out the bench compares a run with.
func CopyBlocksOut(ctx context.Context, pg *pgconn.PgConn, w io.Writer, from, to time.Time) error {
	if _, err := pg.CopyTo(ctx, w, fmt.Sprintf(`COPY (SELECT meter_id, channel, start, interval_seconds, values_micro, quality FROM read_blocks
		WHERE start >= '%s' AND start < '%s') TO STDOUT`, from.Format(time.RFC3339), to.Format(time.RFC3339))); err != nil {
		return fmt.Errorf("copy read_blocks out: %w", err)
	}
	return nil
}

// VacuumBlocks runs VACUUM (ANALYZE) on read_blocks, so that its size is
// what it holds.
func VacuumBlocks(ctx context.Context, db Querier) error {
	if _, err := db.Exec(ctx, `VACUUM (ANALYZE) read_blocks`); err != nil {
		return fmt.Errorf("vacuum read_blocks: %w", err)
	}
	return nil
}

// SetNextOffset stores next as partition's next offset of topic, creating
// the row if need be: as if a consumer had consumed up to it (tests that
// write reads directly, without a consumer, use it).
func SetNextOffset(ctx context.Context, tx pgx.Tx, topic string, partition int32, next int64) error {
	if _, err := tx.Exec(ctx, `INSERT INTO ingest_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)
		ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset`, topic, partition, next); err != nil {
		return fmt.Errorf("set the next offset of %s/%d: %w", topic, partition, err)
	}
	return nil
}

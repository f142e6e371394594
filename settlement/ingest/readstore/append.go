package readstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/settlement/exact"
)

// CopyFromer is what AppendBlocks takes: a pool, a connection or a
// transaction.
type CopyFromer interface {
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
	Begin(ctx context.Context) (pgx.Tx, error)
}

// copyBlocksSQL appends blocks in Postgres's binary COPY format, which
// AppendBlocks writes itself: pgx's CopyFrom encodes a bigint[] by
// reflection, boxing every element, and was a tenth of ingest's CPU.
const copyBlocksSQL = `COPY read_blocks (meter_id, channel, start, interval_seconds, version, values_micro, quality, source,
	topic, partition, "offset") FROM STDIN (FORMAT binary)`

// blockEndSQL is the end of a read_blocks row: its last interval's end.
const blockEndSQL = `start + cardinality(values_micro) * interval_seconds * interval '1 second'`

// lockChannelsSQL locks the channel_lengths rows of the channels ($1, $2),
// given in key order, and reads their lengths and last ends. One probe of
// the primary key per channel, in the order given, so that two writers
// lock their common channels in the same order and cannot deadlock: a join
// with the keys, planned for thousands of them, hashed the whole table
// after reading it, once per batch (70 ms for 4,096 channels of 95,000;
// the LATERAL probes 16 ms), and a sort then decided the order.
const lockChannelsSQL = `
	SELECT c.meter_id, c.channel, c.interval_seconds, c.last_end
	FROM unnest($1::text[], $2::text[]) AS k(meter_id, channel)
	CROSS JOIN LATERAL (
		SELECT * FROM channel_lengths c WHERE c.meter_id = k.meter_id AND c.channel = k.channel
		FOR NO KEY UPDATE) c`

// raiseLastEndsSQL raises channel_lengths.last_end of ($1, $2) to $3 where
// it is lower (doc.go).
const raiseLastEndsSQL = `
	UPDATE channel_lengths c SET last_end = GREATEST(c.last_end, k.e)
	FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS k(m, ch, e)
	WHERE c.meter_id = k.m AND c.channel = k.ch AND (c.last_end IS NULL OR c.last_end < k.e)`

// end is the end of b's last interval, unix seconds.
func (b *StoredBlock) end() int64 { return b.Start + int64(len(b.Values))*b.IntervalSeconds }

// AppendBlocks appends blocks to read_blocks with COPY, outside ingest
// (ApplyReads appends its own): loading, conversions, tests. Each block
// must lie within one UTC day (SplitDays) and its month's partition must
// exist (Partitions.Ensure, EnsurePartitions).
//
// It keeps channel_lengths as ApplyReads does (doc.go), in one transaction
// (a savepoint of db's, if db is one): it locks the rows of the blocks'
// channels in key order, so that the two take turns, appends, then raises
// each row's last_end to the end of the channel's latest block, and creates
// the row of a channel that has none, with the length of its earliest
// block here: ApplyReads does not look up the blocks of a channel without
// a row.
func AppendBlocks(ctx context.Context, db CopyFromer, blocks []StoredBlock) error {
	if len(blocks) == 0 {
		return nil
	}
	type channel struct{ end, first, seconds int64 }
	chans := map[chanKey]*channel{}
	for i := range blocks {
		b := &blocks[i]
		ck := chanKey{b.MeterID, b.Channel}
		c := chans[ck]
		if c == nil {
			c = &channel{first: b.Start, seconds: b.IntervalSeconds}
			chans[ck] = c
		}
		c.end = max(c.end, b.end())
		if b.Start < c.first {
			c.first, c.seconds = b.Start, b.IntervalSeconds
		}
	}
	keys := slices.SortedFunc(maps.Keys(chans), chanKey.compare)
	n := len(keys)
	ms, cs, ls, es := make([]string, n), make([]string, n), make([]int32, n), make([]time.Time, n)
	for i, k := range keys {
		ms[i], cs[i], ls[i], es[i] = k.meter, string(k.channel), int32(chans[k].seconds), time.Unix(chans[k].end, 0)
	}
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockChannelsSQL, ms, cs); err != nil {
			return err
		}
		if err := copyBlocks(ctx, tx.Conn(), blocks); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO channel_lengths AS c (meter_id, channel, interval_seconds, last_end)
			SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[])
			ON CONFLICT (meter_id, channel) DO UPDATE SET last_end = GREATEST(c.last_end, excluded.last_end)
			WHERE c.last_end IS NULL OR c.last_end < excluded.last_end`, ms, cs, ls, es)
		return err
	})
	if err != nil {
		return fmt.Errorf("append %d read blocks: %w", len(blocks), err)
	}
	return nil
}

// copyBlocks appends blocks to read_blocks with COPY on conn, and nothing
// else.
func copyBlocks(ctx context.Context, conn *pgx.Conn, blocks []StoredBlock) error {
	if len(blocks) == 0 {
		return nil
	}
	if _, err := conn.PgConn().CopyFrom(ctx, bytes.NewReader(encodeBlocks(blocks)), copyBlocksSQL); err != nil {
		return fmt.Errorf("copy %d read blocks: %w", len(blocks), err)
	}
	return nil
}

// encodeBlocks is blocks as a binary COPY stream: the signature, flags and
// header extension, then per row the field count and each field as its
// length and bytes (-1 for NULL), then -1.
func encodeBlocks(blocks []StoredBlock) []byte {
	size := 21
	for i := range blocks {
		size += 2 + 11*4 + len(blocks[i].MeterID) + len(blocks[i].Channel) + 8 + 4 + 8 + 20 + 12*len(blocks[i].Values) +
			len(blocks[i].Quality) + len(blocks[i].Source) + len(blocks[i].Origin.Topic) + 4 + 8
	}
	p := make([]byte, 0, size+2)
	p = append(p, "PGCOPY\n\xff\r\n\x00"...)
	p = binary.BigEndian.AppendUint32(p, 0) // flags
	p = binary.BigEndian.AppendUint32(p, 0) // header extension length
	for i := range blocks {
		b := &blocks[i]
		p = binary.BigEndian.AppendUint16(p, 11)
		p = appendText(p, b.MeterID)
		p = appendText(p, string(b.Channel))
		p = binary.BigEndian.AppendUint32(p, 8)
		p = binary.BigEndian.AppendUint64(p, uint64((b.Start-exact.PGEpoch)*1_000_000))
		p = binary.BigEndian.AppendUint32(p, 4)
		p = binary.BigEndian.AppendUint32(p, uint32(b.IntervalSeconds))
		p = binary.BigEndian.AppendUint32(p, 8)
		p = binary.BigEndian.AppendUint64(p, uint64(b.Version))
		p = appendInt8Array(p, b.Values)
		p = appendText(p, b.Quality)
		p = appendText(p, b.Source)
		p = appendText(p, b.Origin.Topic)
		p = binary.BigEndian.AppendUint32(p, 4)
		p = binary.BigEndian.AppendUint32(p, uint32(b.Origin.Partition))
		p = binary.BigEndian.AppendUint32(p, 8)
		p = binary.BigEndian.AppendUint64(p, uint64(b.Origin.Offset))
	}
	return binary.BigEndian.AppendUint16(p, 0xffff)
}

func appendText(p []byte, s string) []byte {
	p = binary.BigEndian.AppendUint32(p, uint32(len(s)))
	return append(p, s...)
}

// int8OID is bigint's type OID, named in an array's binary header.
const int8OID = 20

// appendInt8Array is the field of a one-dimensional bigint[] holding vs,
// NoRead as NULL (the format decodeInt8Array reads).
func appendInt8Array(p []byte, vs []int64) []byte {
	nulls := uint32(0)
	size := 20
	for _, v := range vs {
		if v == NoRead {
			nulls = 1
			size += 4
		} else {
			size += 12
		}
	}
	p = binary.BigEndian.AppendUint32(p, uint32(size))
	p = binary.BigEndian.AppendUint32(p, 1) // dimensions
	p = binary.BigEndian.AppendUint32(p, nulls)
	p = binary.BigEndian.AppendUint32(p, int8OID)
	p = binary.BigEndian.AppendUint32(p, uint32(len(vs)))
	p = binary.BigEndian.AppendUint32(p, 1) // lower bound
	for _, v := range vs {
		if v == NoRead {
			p = binary.BigEndian.AppendUint32(p, 0xffffffff)
			continue
		}
		p = binary.BigEndian.AppendUint32(p, 8)
		p = binary.BigEndian.AppendUint64(p, uint64(v))
	}
	return p
}

// SplitDays cuts b at UTC day boundaries, so that no stored block crosses
// one (migrations/00800_read_blocks.sql); the parts share b's slices.
func SplitDays(b StoredBlock) []StoredBlock { return appendDays(nil, b) }

// appendDays appends b's parts of SplitDays to dst: ingest appends a block
// per applied record, mostly within one day, to the batch's blocks without
// a slice of its own each.
func appendDays(dst []StoredBlock, b StoredBlock) []StoredBlock {
	for len(b.Values) > 0 {
		n := int((utcDay(b.Start) + secondsPerDay - b.Start + b.IntervalSeconds - 1) / b.IntervalSeconds)
		if n >= len(b.Values) {
			return append(dst, b)
		}
		part := b
		part.Values = b.Values[:n:n]
		b.Values = b.Values[n:]
		if b.Quality != "" {
			part.Quality, b.Quality = b.Quality[:n], b.Quality[n:]
		}
		b.Start += int64(n) * b.IntervalSeconds
		dst = append(dst, part)
	}
	return dst
}

// EnsurePartitions creates, in db, the read_blocks partitions of the months
// of starts (unix seconds) that do not exist yet. It locks read_blocks
// exclusively when it creates one: ingest uses Partitions instead, outside
// its batch transactions.
func EnsurePartitions(ctx context.Context, db Querier, starts []int64) error {
	months := map[int64]bool{}
	var ts []time.Time
	for _, s := range starts {
		if m := monthOf(s); !months[m] {
			months[m] = true
			ts = append(ts, time.Unix(m, 0).UTC())
		}
	}
	if len(ts) == 0 {
		return nil
	}
	if _, err := db.Exec(ctx, `SELECT read_blocks_partition(m) FROM unnest($1::timestamptz[]) AS m`, ts); err != nil {
		return fmt.Errorf("create read_blocks partitions for %d months: %w", len(ts), err)
	}
	return nil
}

package readstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CopyFromer is what AppendBlocks takes: a pool, a connection or a
// transaction.
type CopyFromer interface {
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// copyBlocksSQL appends blocks in Postgres's binary COPY format, which
// AppendBlocks writes itself: pgx's CopyFrom encodes a bigint[] by
// reflection, boxing every element, and was a tenth of ingest's CPU.
const copyBlocksSQL = `COPY read_blocks (meter_id, channel, start, interval_seconds, version, values_micro, quality, source,
	topic, partition, "offset") FROM STDIN (FORMAT binary)`

// AppendBlocks appends blocks to read_blocks with COPY. Each block must lie
// within one UTC day (SplitDays) and its month's partition must exist
// (Partitions.Ensure, EnsurePartitions).
func AppendBlocks(ctx context.Context, db CopyFromer, blocks []StoredBlock) error {
	if len(blocks) == 0 {
		return nil
	}
	var conn *pgx.Conn
	switch c := db.(type) {
	case interface{ Conn() *pgx.Conn }: // a transaction or a pool's connection
		conn = c.Conn()
	case *pgxpool.Pool:
		pc, err := c.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("copy %d read blocks: %w", len(blocks), err)
		}
		defer pc.Release()
		conn = pc.Conn()
	default:
		return fmt.Errorf("copy %d read blocks: %T has no connection", len(blocks), db)
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
		p = binary.BigEndian.AppendUint64(p, uint64((b.Start-pgEpoch)*1_000_000))
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
func SplitDays(b StoredBlock) []StoredBlock {
	var out []StoredBlock
	for len(b.Values) > 0 {
		n := int((utcDay(b.Start) + secondsPerDay - b.Start + b.IntervalSeconds - 1) / b.IntervalSeconds)
		if n >= len(b.Values) {
			return append(out, b)
		}
		part := b
		part.Values = b.Values[:n:n]
		b.Values = b.Values[n:]
		if b.Quality != "" {
			part.Quality, b.Quality = b.Quality[:n], b.Quality[n:]
		}
		b.Start += int64(n) * b.IntervalSeconds
		out = append(out, part)
	}
	return out
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

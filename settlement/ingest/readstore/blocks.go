package readstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement/exact"
)

// StoredBlock is one row of read_blocks (migrations/00800_read_blocks.sql):
// the reads one input record made current within one UTC day.
type StoredBlock struct {
	MeterID         string
	Channel         meters.Channel
	Start           int64 // unix seconds of Values[0]'s interval start
	IntervalSeconds int64
	Version         int64
	// Values are micro-kWh; NoRead where the record did not change the
	// read (it was stale or a duplicate there).
	Values  []int64
	Quality string // "" when every stored read is actual, else one letter per value
	Source  string
	Origin  Origin
}

// NoRead marks an interval of a block that holds no read (values are never
// negative).
const NoRead = -1

// microPerKWh is the scale of stored values: 6 decimal places by value is
// the contract's limit (meters/README.md, meters.MaxDecimals).
const microPerKWh = 6

// secondsPerDay is a UTC day; blocks never cross one.
const secondsPerDay = 86400

// StartAt is the start of Values[i]'s interval, unix seconds.
func (b *StoredBlock) StartAt(i int) int64 { return b.Start + int64(i)*b.IntervalSeconds }

// QualityAt is the quality of Values[i].
func (b *StoredBlock) QualityAt(i int) meters.Quality {
	if b.Quality == "" {
		return meters.Actual
	}
	return meters.Quality(b.Quality[i : i+1])
}

// ReadAt is Values[i] as a read.
func (b *StoredBlock) ReadAt(i int) meters.Read {
	return meters.Read{
		MeterID: b.MeterID, Channel: b.Channel, Start: time.Unix(b.StartAt(i), 0).UTC(),
		IntervalSeconds: int(b.IntervalSeconds), Value: KWh(b.Values[i]),
		Quality: b.QualityAt(i), Version: b.Version, Source: b.Source,
	}
}

// KWh is micro micro-kWh as a decimal of kWh at its shortest exact scale
// (1500000 is 1.5, not 1.500000), as producers mostly write values: sums of
// stored and new values then keep the scale their inputs had.
func KWh(micro int64) decimal.Decimal {
	scale := ShortestScale(micro)
	for range microPerKWh - scale {
		micro /= 10
	}
	return decimal.New(micro, -scale)
}

// ShortestScale is the fewest decimal places that hold micro micro-kWh as
// kWh exactly: the scale a stored value counts at (KWh, and the runs'
// integer kernel in settlement/postgres/energy.go).
func ShortestScale(micro int64) int32 {
	s := int32(microPerKWh)
	for s > 0 && micro%10 == 0 {
		micro /= 10
		s--
	}
	return s
}

// slotRef is one stored read: Values[i] of blocks[block].
type slotRef struct {
	start   int64
	version int64
	block   int32
	i       int32
}

// sortedReads lists the stored reads of one channel's blocks by interval
// start, highest version first.
func sortedReads(blocks []StoredBlock) []slotRef {
	n := 0
	for i := range blocks {
		n += len(blocks[i].Values)
	}
	refs := make([]slotRef, 0, n)
	sorted := true
	for bi := range blocks {
		b := &blocks[bi]
		for i, v := range b.Values {
			if v == NoRead {
				continue
			}
			r := slotRef{start: b.StartAt(i), version: b.Version, block: int32(bi), i: int32(i)}
			if k := len(refs); k > 0 && cmpRef(refs[k-1], r) > 0 {
				sorted = false
			}
			refs = append(refs, r)
		}
	}
	if !sorted {
		slices.SortFunc(refs, cmpRef)
	}
	return refs
}

func cmpRef(a, b slotRef) int {
	return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(b.version, a.version))
}

// Current calls fn with the current read of every interval start held by
// blocks, all of one (meter, channel), in start order: per start, the stored
// read of the highest version. (Two stored reads of one start never share a
// version: a duplicate is not stored, a conflict is quarantined.)
func Current(blocks []StoredBlock, fn func(b *StoredBlock, i int)) {
	if len(blocks) == 1 { // the common case: nothing to resolve
		b := &blocks[0]
		for i, v := range b.Values {
			if v != NoRead {
				fn(b, i)
			}
		}
		return
	}
	refs := sortedReads(blocks)
	for k, r := range refs {
		if k > 0 && refs[k-1].start == r.start {
			continue
		}
		fn(&blocks[r.block], int(r.i))
	}
}

// ReadVersion is one stored version of a read with its lineage, and the
// record that superseded it (nil for the current one).
type ReadVersion struct {
	meters.Read
	Origin       Origin
	SupersededBy *Origin
}

// Versions lists every stored read of blocks, all of one (meter, channel),
// by start and then version, each with the record that superseded it.
func Versions(blocks []StoredBlock) []ReadVersion {
	refs := sortedReads(blocks) // by start, highest version first
	out := make([]ReadVersion, 0, len(refs))
	for k := 0; k < len(refs); {
		j := k
		for j < len(refs) && refs[j].start == refs[k].start {
			j++
		}
		for m := j - 1; m >= k; m-- { // lowest version first
			r := refs[m]
			b := &blocks[r.block]
			v := ReadVersion{Read: b.ReadAt(int(r.i)), Origin: b.Origin}
			if m > k {
				o := blocks[refs[m-1].block].Origin
				v.SupersededBy = &o
			}
			out = append(out, v)
		}
		k = j
	}
	return out
}

// utcDay is the start of t's UTC day, unix seconds.
func utcDay(t int64) int64 { return meters.Floor(t, secondsPerDay) }

// BlockWindow selects the blocks that can hold a read starting in
// [From, To): those starting in [UTC day of From, To), since no block
// crosses a UTC day.
type BlockWindow struct {
	From, To time.Time
	MeterIDs []string // nil: every meter
	Channel  meters.Channel
}

// blockColumns is the column list every block query selects, in the order
// scanBlock decodes.
const blockColumns = `meter_id, channel, start, interval_seconds, version, values_micro, quality, source, topic, partition, "offset"`

// StreamChannels calls fn with the blocks of each (meter, channel) in w, in
// (meter, channel) order, each channel's blocks by start. The slice is
// reused between calls.
func StreamChannels(ctx context.Context, db Querier, w BlockWindow, fn func(blocks []StoredBlock) error) error {
	from := time.Unix(utcDay(w.From.Unix()), 0).UTC()
	rows, err := db.Query(ctx, `SELECT `+blockColumns+` FROM read_blocks
		WHERE start >= $1 AND start < $2 AND ($3::text[] IS NULL OR meter_id = ANY($3)) AND ($4 = '' OR channel = $4)
		ORDER BY meter_id, channel, start`,
		binaryResults, from, w.To, w.MeterIDs, string(w.Channel))
	if err != nil {
		return fmt.Errorf("read blocks from %s to %s: %w", from.Format(time.RFC3339), w.To.Format(time.RFC3339), err)
	}
	defer rows.Close()
	var group []StoredBlock
	for rows.Next() {
		b, err := scanBlock(rows.RawValues())
		if err != nil {
			return fmt.Errorf("read blocks: %w", err)
		}
		if len(group) > 0 && (group[0].MeterID != b.MeterID || group[0].Channel != b.Channel) {
			if err := fn(group); err != nil {
				return err
			}
			group = group[:0]
		}
		group = append(group, b)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read blocks: %w", err)
	}
	if len(group) > 0 {
		return fn(group)
	}
	return nil
}

// binaryResults asks for every column of a block query in binary, which
// scanBlock decodes without pgx's per-value machinery.
var binaryResults = pgx.QueryResultFormats{pgx.BinaryFormatCode}

var errBlockShape = errors.New("unexpected read_blocks row shape")

// scanBlock decodes one row of blockColumns in binary format.
func scanBlock(raw [][]byte) (StoredBlock, error) {
	var b StoredBlock
	if len(raw) != 11 || len(raw[2]) != 8 || len(raw[3]) != 4 || len(raw[4]) != 8 || len(raw[9]) != 4 || len(raw[10]) != 8 {
		return b, errBlockShape
	}
	b.MeterID = string(raw[0])
	b.Channel = meters.Channel(raw[1])
	micros := int64(binary.BigEndian.Uint64(raw[2]))
	b.Start = exact.PGEpoch + micros/1_000_000
	b.IntervalSeconds = int64(int32(binary.BigEndian.Uint32(raw[3])))
	b.Version = int64(binary.BigEndian.Uint64(raw[4]))
	vals, err := decodeInt8Array(raw[5])
	if err != nil {
		return b, err
	}
	b.Values = vals
	b.Quality = string(raw[6])
	b.Source = string(raw[7])
	b.Origin = Origin{Topic: string(raw[8]), Partition: int32(binary.BigEndian.Uint32(raw[9])),
		Offset: int64(binary.BigEndian.Uint64(raw[10]))}
	if b.Quality != "" && len(b.Quality) != len(b.Values) {
		return b, errBlockShape
	}
	return b, nil
}

// decodeInt8Array decodes a one-dimensional bigint[] in Postgres's binary
// array format (ndim, has-null flag, element type, then length and lower
// bound per dimension, then each element as a length, -1 for NULL, and 8
// bytes); a NULL element is NoRead.
func decodeInt8Array(p []byte) ([]int64, error) {
	if len(p) < 20 || binary.BigEndian.Uint32(p) != 1 {
		return nil, errBlockShape
	}
	n := int(int32(binary.BigEndian.Uint32(p[12:])))
	p = p[20:]
	if n < 0 || len(p) < 4*n {
		return nil, errBlockShape
	}
	out := make([]int64, n)
	for i := range out {
		if len(p) < 4 {
			return nil, errBlockShape
		}
		l := int32(binary.BigEndian.Uint32(p))
		p = p[4:]
		switch {
		case l == -1:
			out[i] = NoRead
		case l == 8 && len(p) >= 8:
			out[i] = int64(binary.BigEndian.Uint64(p))
			p = p[8:]
		default:
			return nil, errBlockShape
		}
	}
	return out, nil
}

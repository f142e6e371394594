package readstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
)

// ReadRecord is one ami.interval-reads record of a batch: the block decoded
// from it, or decoding's rejection.
type ReadRecord struct {
	Source
	Block     meters.ReadBlock
	Rejection *meters.Rejection // nil when Block is valid
}

// ReadChange is a read whose current value changed: a new read, or a higher
// version replacing Previous.
type ReadChange struct {
	Read       meters.Read
	Previous   *meters.Read       // nil for the first read of its key
	Assignment *meters.Assignment // the registry row covering the read's start; shared, read-only
	Origin     Origin
}

// ReadsOutcome is what ApplyReads did.
type ReadsOutcome struct {
	Applied     []int // indexes of the records applied (their stale and duplicate reads ignored)
	Changes     []ReadChange
	Quarantined []Quarantined
	Stale       int // reads ignored: lower version than the current one
	Duplicates  int // reads ignored: same version, value and quality
}

// ReadOptions says how to apply a batch of reads.
type ReadOptions struct {
	SettlementSeconds int   // the market's settlement interval L
	Slot              int32 // the positions slot this writer owns (see positions)
}

type chanKey struct {
	meter   string
	channel meters.Channel
}

type readKey struct {
	chanKey
	start int64 // unix seconds
}

// currentRead is the current read of one key while a batch is applied.
type currentRead struct {
	read   meters.Read
	origin Origin
	stored *Origin // the row's lineage as loaded (the write guard); nil: no row
	dirty  bool
}

// readState is what a batch of reads needs to know about the database,
// loaded in one round trip and then kept current as the batch is applied in
// offset order.
type readState struct {
	assignments map[string][]meters.Assignment // by meter, by effective_from
	lengths     map[chanKey]int
	newLengths  []chanKey
	reads       map[readKey]*currentRead
	written     []readKey // dirty keys in first-write order
	values      int       // reads in the batch's decodable records: at most this many change
}

// ApplyReads applies a batch of reads records inside tx, in slice order
// (their offset order): versioning (the highest version is current; a lower
// one is stale, an equal one with the same value and quality a duplicate, an
// equal one with another value or quality a conflict), the registry
// assignment lookup, the channel's interval length, live positions, and the
// quarantine for every record that cannot be used. A record is applied whole
// or quarantined whole with the first reason that fails.
//
// It reads the rows it needs once and writes with set-based statements; if a
// row it read changed before it wrote, it returns ErrConcurrentWrite and tx
// must be rolled back.
func ApplyReads(ctx context.Context, tx pgx.Tx, opt ReadOptions, recs []ReadRecord) (ReadsOutcome, error) {
	var out ReadsOutcome
	st, err := loadReadState(ctx, tx, recs)
	if err != nil {
		return out, err
	}
	pos := newPositionDeltas(opt.SettlementSeconds)
	var covering []*meters.Assignment
	out.Changes = make([]ReadChange, 0, st.values)
	st.written = make([]readKey, 0, st.values)
	for i := range recs {
		r := &recs[i]
		rej := r.Rejection
		if rej == nil {
			covering, rej = st.check(r, covering[:0])
		}
		if rej != nil {
			out.Quarantined = append(out.Quarantined, quarantined(r.Source, rej))
			continue
		}
		st.apply(r, covering, pos, &out)
		out.Applied = append(out.Applied, i)
	}
	if err := st.copyNew(ctx, tx); err != nil {
		return ReadsOutcome{}, err
	}
	b := &pgx.Batch{}
	st.queueWrites(b)
	pos.queue(b, opt.Slot)
	writeQuarantine(b, out.Quarantined)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return ReadsOutcome{}, fmt.Errorf("write reads batch: %w", err)
	}
	return out, nil
}

// uniqueViolation is Postgres's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

var readColumnNames = []string{"meter_id", "channel", "interval_start", "interval_seconds", "value", "quality", "version",
	"source", "topic", "partition", "offset"}

// copyNew inserts the reads whose key had no row when the batch loaded, with
// COPY (the bulk of a stream is new reads, and COPY is several times faster
// than INSERT). If another writer inserted one of those keys meanwhile, the
// unique key refuses the COPY: a concurrent write.
func (st *readState) copyNew(ctx context.Context, tx pgx.Tx) error {
	fresh := make([]*currentRead, 0, len(st.written))
	for _, k := range st.written {
		if c := st.reads[k]; c.stored == nil {
			fresh = append(fresh, c)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	// One row buffer, filled as COPY asks for each row: building every row
	// first kept a batch's reads alive twice over (issue 9's memory
	// profile).
	row := make([]any, len(readColumnNames))
	src := pgx.CopyFromSlice(len(fresh), func(i int) ([]any, error) {
		c := fresh[i]
		r := &c.read
		row[0], row[1], row[2], row[3], row[4], row[5] = r.MeterID, string(r.Channel), r.Start, int32(r.IntervalSeconds), r.Value, string(r.Quality)
		row[6], row[7], row[8], row[9], row[10] = r.Version, r.Source, c.origin.Topic, c.origin.Partition, c.origin.Offset
		return row, nil
	})
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"reads"}, readColumnNames, src); err != nil {
		var pg *pgconn.PgError
		if errors.As(err, &pg) && pg.Code == uniqueViolation {
			return fmt.Errorf("copy new reads: %w", ErrConcurrentWrite)
		}
		return fmt.Errorf("copy new reads: %w", err)
	}
	return nil
}

type readRange struct {
	chanKey
	start, end int64
}

func loadReadState(ctx context.Context, tx pgx.Tx, recs []ReadRecord) (*readState, error) {
	st := &readState{
		assignments: map[string][]meters.Assignment{},
		lengths:     map[chanKey]int{},
		reads:       map[readKey]*currentRead{},
	}
	seenMeter := map[string]bool{}
	seenChan := map[chanKey]bool{}
	seenRange := map[readRange]bool{}
	var meterIDs, chanMeters, chanNames, rangeMeters, rangeChans []string
	var rangeStarts, rangeEnds []time.Time
	for i := range recs {
		if recs[i].Rejection != nil {
			continue
		}
		b := &recs[i].Block
		st.values += len(b.Values)
		ck := chanKey{b.MeterID, b.Channel}
		if !seenMeter[b.MeterID] {
			seenMeter[b.MeterID] = true
			meterIDs = append(meterIDs, b.MeterID)
		}
		if !seenChan[ck] {
			seenChan[ck] = true
			chanMeters, chanNames = append(chanMeters, b.MeterID), append(chanNames, string(b.Channel))
		}
		rg := readRange{ck, b.Start.Unix(), b.End().Unix()}
		if !seenRange[rg] {
			seenRange[rg] = true
			rangeMeters, rangeChans = append(rangeMeters, b.MeterID), append(rangeChans, string(b.Channel))
			rangeStarts, rangeEnds = append(rangeStarts, b.Start), append(rangeEnds, b.End())
		}
	}
	if len(meterIDs) == 0 {
		return st, nil
	}
	b := &pgx.Batch{}
	b.Queue(`
		SELECT meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to
		FROM meter_assignments WHERE meter_id = ANY($1::text[]) ORDER BY meter_id, effective_from`, meterIDs,
	).Query(func(rows pgx.Rows) error {
		as, err := pgx.CollectRows(rows, registrystore.ScanAssignment)
		for _, a := range as {
			st.assignments[a.MeterID] = append(st.assignments[a.MeterID], a)
		}
		return err
	})
	b.Queue(`
		SELECT c.meter_id, c.channel, c.interval_seconds
		FROM unnest($1::text[], $2::text[]) AS k(meter_id, channel)
		JOIN channel_lengths c USING (meter_id, channel)`, chanMeters, chanNames,
	).Query(func(rows pgx.Rows) error {
		var k chanKey
		var n int
		_, err := pgx.ForEachRow(rows, []any{&k.meter, &k.channel, &n}, func() error {
			st.lengths[k] = n
			return nil
		})
		return err
	})
	b.Queue(`
		SELECT r.meter_id, r.channel, r.interval_start, r.interval_seconds, r.value, r.quality, r.version, r.source,
		       r.topic, r.partition, r."offset"
		FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS k(meter_id, channel, s, e)
		JOIN reads r ON r.meter_id = k.meter_id AND r.channel = k.channel AND r.interval_start >= k.s AND r.interval_start < k.e`,
		rangeMeters, rangeChans, rangeStarts, rangeEnds,
	).Query(func(rows pgx.Rows) error {
		var rd meters.Read
		var o Origin
		_, err := pgx.ForEachRow(rows, []any{&rd.MeterID, &rd.Channel, &rd.Start, &rd.IntervalSeconds, &rd.Value, &rd.Quality,
			&rd.Version, &rd.Source, &o.Topic, &o.Partition, &o.Offset}, func() error {
			rd.Start = rd.Start.UTC()
			stored := o
			// Overlapping ranges of a batch may return a row twice.
			st.reads[readKey{chanKey{rd.MeterID, rd.Channel}, rd.Start.Unix()}] = &currentRead{read: rd, origin: o, stored: &stored}
			return nil
		})
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("load state of reads batch: %w", err)
	}
	return st, nil
}

// covers finds the assignment of as (sorted by effective_from) in force at t.
func covers(as []meters.Assignment, t time.Time) *meters.Assignment {
	i, _ := slices.BinarySearchFunc(as, t, func(a meters.Assignment, t time.Time) int {
		return a.EffectiveFrom.Compare(t)
	})
	// as[i-1] is the last assignment starting at or before t, unless as[i]
	// starts exactly at t.
	if i < len(as) && as[i].EffectiveFrom.Equal(t) {
		return &as[i]
	}
	if i > 0 && as[i-1].Covers(t) {
		return &as[i-1]
	}
	return nil
}

// check runs the checks that need state, in the contract's order
// (unknown_meter, interval_length_mismatch, conflicting_duplicate), then
// unprocessable for text Postgres cannot store, and returns the assignment
// covering each read.
func (st *readState) check(r *ReadRecord, covering []*meters.Assignment) ([]*meters.Assignment, *meters.Rejection) {
	b := &r.Block
	as := st.assignments[b.MeterID]
	step := time.Duration(b.IntervalSeconds) * time.Second
	for i := range b.Values {
		t := b.Start.Add(time.Duration(i) * step)
		a := covers(as, t)
		if a == nil {
			return nil, &meters.Rejection{Reason: meters.UnknownMeter,
				Detail: fmt.Sprintf("meter_id: no assignment of %s covers the interval starting %s", b.MeterID, t.Format(time.RFC3339))}
		}
		covering = append(covering, a)
	}
	ck := chanKey{b.MeterID, b.Channel}
	if n, ok := st.lengths[ck]; ok && n != b.IntervalSeconds {
		return nil, &meters.Rejection{Reason: meters.IntervalLengthMismatch,
			Detail: fmt.Sprintf("interval_seconds: %s %s has %d-second intervals, the record has %d", b.MeterID, b.Channel, n, b.IntervalSeconds)}
	}
	for i := range b.Values {
		k := readKey{ck, b.Start.Unix() + int64(i*b.IntervalSeconds)}
		c := st.reads[k]
		if c == nil || c.read.Version != b.Version {
			continue
		}
		if !c.read.Value.Equal(b.Values[i]) || c.read.Quality != b.Quality[i] {
			return nil, &meters.Rejection{Reason: meters.ConflictingDuplicate,
				Detail: fmt.Sprintf("values[%d]: version %d of the read at %s is %s (%s), the record has %s (%s)",
					i, b.Version, time.Unix(k.start, 0).UTC().Format(time.RFC3339), c.read.Value, c.read.Quality, b.Values[i], b.Quality[i])}
		}
	}
	// Decided here rather than left to the database's refusal (SQLSTATE
	// 22021, "invalid byte sequence"), which fails the whole transaction: a
	// quarantine replay, which does not look for the record to blame, could
	// then never complete. It is the last check: the contract's unprocessable is for
	// a record that passed every other one. A source is the only free text
	// of a read or a price; the rest is ASCII or a fixed set.
	if strings.IndexByte(b.Source, 0) >= 0 {
		return nil, &meters.Rejection{Reason: meters.Unprocessable, Detail: "source: holds U+0000, which PostgreSQL text cannot store"}
	}
	return covering, nil
}

// apply makes the checked record's reads current where their version is
// higher, and moves positions by the difference.
func (st *readState) apply(r *ReadRecord, covering []*meters.Assignment, pos *positionDeltas, out *ReadsOutcome) {
	b := &r.Block
	ck := chanKey{b.MeterID, b.Channel}
	if _, ok := st.lengths[ck]; !ok {
		st.lengths[ck] = b.IntervalSeconds
		st.newLengths = append(st.newLengths, ck)
	}
	for i, v := range b.Values {
		k := readKey{ck, b.Start.Unix() + int64(i*b.IntervalSeconds)}
		c := st.reads[k]
		if c != nil && b.Version < c.read.Version {
			out.Stale++
			continue
		}
		if c != nil && b.Version == c.read.Version {
			out.Duplicates++ // check ruled out a conflict
			continue
		}
		rd := meters.Read{
			MeterID: b.MeterID, Channel: b.Channel, Start: time.Unix(k.start, 0).UTC(),
			IntervalSeconds: b.IntervalSeconds, Value: v, Quality: b.Quality[i],
			Version: b.Version, Source: b.Source,
		}
		var prev *meters.Read
		if c == nil {
			c = &currentRead{}
			st.reads[k] = c
		} else {
			p := c.read
			prev = &p
			pos.add(covering[i], p, true)
		}
		pos.add(covering[i], rd, false)
		if !c.dirty {
			c.dirty = true
			st.written = append(st.written, k)
		}
		c.read, c.origin = rd, r.Origin
		out.Changes = append(out.Changes, ReadChange{Read: rd, Previous: prev, Assignment: covering[i], Origin: r.Origin})
	}
}

// queueWrites writes the corrected reads and the new channel lengths. A
// corrected row is updated only if it still carries the lineage it was
// loaded with; any other count is a concurrent write.
func (st *readState) queueWrites(b *pgx.Batch) {
	corrected := 0
	for _, k := range st.written {
		if st.reads[k].stored != nil {
			corrected++
		}
	}
	if corrected > 0 {
		upd := newReadColumns(corrected)
		for _, k := range st.written {
			if c := st.reads[k]; c.stored != nil {
				upd.add(c)
			}
		}
		b.Queue(`
			UPDATE reads r SET interval_seconds = u.interval_seconds, value = u.value, quality = u.quality, version = u.version,
			       source = u.source, topic = u.topic, partition = u.partition, "offset" = u."offset"
			FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::numeric[], $6::text[], $7::bigint[],
			            $8::text[], $9::text[], $10::int[], $11::bigint[], $12::text[], $13::int[], $14::bigint[])
			     AS u(meter_id, channel, interval_start, interval_seconds, value, quality, version, source, topic, partition, "offset",
			          was_topic, was_partition, was_offset)
			WHERE r.meter_id = u.meter_id AND r.channel = u.channel AND r.interval_start = u.interval_start
			  AND r.topic = u.was_topic AND r.partition = u.was_partition AND r."offset" = u.was_offset`,
			append(upd.args(), upd.wasTopic, upd.wasPartition, upd.wasOffset)...,
		).Exec(expectRows("update corrected reads", upd.n))
	}
	if n := len(st.newLengths); n > 0 {
		ms, cs, ls := make([]string, n), make([]string, n), make([]int32, n)
		for i, k := range st.newLengths {
			ms[i], cs[i], ls[i] = k.meter, string(k.channel), int32(st.lengths[k])
		}
		b.Queue(`
			INSERT INTO channel_lengths (meter_id, channel, interval_seconds)
			SELECT * FROM unnest($1::text[], $2::text[], $3::int[]) ON CONFLICT DO NOTHING`, ms, cs, ls,
		).Exec(expectRows("insert channel lengths", n))
	}
}

// readColumns are corrected reads as column arrays for unnest, with the
// lineage each row was loaded with.
type readColumns struct {
	n                                      int
	meter, channel, quality, source, topic []string
	start                                  []time.Time
	seconds, partition                     []int32
	value                                  []decimal.Decimal
	version, offset                        []int64
	wasTopic                               []string
	wasPartition                           []int32
	wasOffset                              []int64
}

func newReadColumns(n int) *readColumns {
	return &readColumns{
		meter: make([]string, 0, n), channel: make([]string, 0, n), quality: make([]string, 0, n),
		source: make([]string, 0, n), topic: make([]string, 0, n), start: make([]time.Time, 0, n),
		seconds: make([]int32, 0, n), partition: make([]int32, 0, n), value: make([]decimal.Decimal, 0, n),
		version: make([]int64, 0, n), offset: make([]int64, 0, n),
		wasTopic: make([]string, 0, n), wasPartition: make([]int32, 0, n), wasOffset: make([]int64, 0, n),
	}
}

func (c *readColumns) add(r *currentRead) {
	c.n++
	c.meter = append(c.meter, r.read.MeterID)
	c.channel = append(c.channel, string(r.read.Channel))
	c.start = append(c.start, r.read.Start)
	c.seconds = append(c.seconds, int32(r.read.IntervalSeconds))
	c.value = append(c.value, r.read.Value)
	c.quality = append(c.quality, string(r.read.Quality))
	c.version = append(c.version, r.read.Version)
	c.source = append(c.source, r.read.Source)
	c.topic = append(c.topic, r.origin.Topic)
	c.partition = append(c.partition, r.origin.Partition)
	c.offset = append(c.offset, r.origin.Offset)
	c.wasTopic = append(c.wasTopic, r.stored.Topic)
	c.wasPartition = append(c.wasPartition, r.stored.Partition)
	c.wasOffset = append(c.wasOffset, r.stored.Offset)
}

func (c *readColumns) args() []any {
	return []any{c.meter, c.channel, c.start, c.seconds, c.value, c.quality, c.version, c.source, c.topic, c.partition, c.offset}
}

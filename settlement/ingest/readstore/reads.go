package readstore

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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
// version replacing Old. It points into its record rather than copying the
// read, and keeps values in micro-kWh: a batch changes up to hundreds of
// thousands of reads, and a meters.Read with a decimal each (and another
// for the read it replaced) was most of what ingest allocated.
type ReadChange struct {
	Record     *ReadRecord        // the applied record holding the read; shared, read-only
	Index      int                // the read's index in Record.Block
	Assignment *meters.Assignment // the registry row covering the read's start; shared, read-only
	Old        OldRead            // the read it replaced; Version 0 for the first read of its key
}

// OldRead is the current read a change replaced.
type OldRead struct {
	Micro   int64 // micro-kWh
	Version int64 // 0: there was none
	Quality meters.Quality
	Source  string
}

// Origin is where the changed read's record came from.
func (c *ReadChange) Origin() Origin { return c.Record.Origin }

// Start is the read's interval start, unix seconds.
func (c *ReadChange) Start() int64 {
	b := &c.Record.Block
	return b.Start.Unix() + int64(c.Index*b.IntervalSeconds)
}

// Micro is the read's value in micro-kWh.
func (c *ReadChange) Micro() int64 { return c.Record.Block.Micro[c.Index] }

// Quality is the read's quality code.
func (c *ReadChange) Quality() meters.Quality { return c.Record.Block.Quality[c.Index] }

// Read is the changed read.
func (c *ReadChange) Read() meters.Read {
	b := &c.Record.Block
	return meters.Read{MeterID: b.MeterID, Channel: b.Channel, Start: time.Unix(c.Start(), 0).UTC(),
		IntervalSeconds: b.IntervalSeconds, Value: KWh(c.Micro()), Quality: c.Quality(), Version: b.Version, Source: b.Source}
}

// Previous is the read it replaced, nil for the first read of its key.
func (c *ReadChange) Previous() *meters.Read {
	if c.Old.Version == 0 {
		return nil
	}
	r := c.Read()
	r.Value, r.Quality, r.Version, r.Source = KWh(c.Old.Micro), c.Old.Quality, c.Old.Version, c.Old.Source
	return &r
}

// ReadsOutcome is what ApplyReads did.
type ReadsOutcome struct {
	Applied     []int // indexes of the records applied (their stale and duplicate reads ignored)
	Changes     []ReadChange
	Quarantined []Quarantined
	Stale       int // reads ignored: lower version than the current one
	Duplicates  int // reads ignored: same version, value and quality
	// Ignored[k] are the stale and duplicate reads of record Applied[k]: a
	// replay counts them on each record's own partition.
	Ignored []IgnoredReads
}

// IgnoredReads are the reads of one applied record that versioning ignored.
type IgnoredReads struct{ Stale, Duplicates int }

// ReadOptions says how to apply a batch of reads.
type ReadOptions struct {
	SettlementSeconds int   // the market's settlement interval L
	Slot              int32 // the positions slot this writer owns (see positions)
	// Partitions knows the read_blocks months created before the batch's
	// transaction began; nil: the batch checks every month it needs.
	Partitions *Partitions
	// Registry keeps the meters' assignments across batches (one per
	// process, shared by every writer); nil: the batch reads them all.
	Registry *registrystore.Cache
}

type chanKey struct {
	meter   string
	channel meters.Channel
}

// compare orders channels by key, the order batches lock them in.
func (k chanKey) compare(o chanKey) int {
	return cmp.Or(cmp.Compare(k.meter, o.meter), cmp.Compare(k.channel, o.channel))
}

// dayKey is one channel's UTC day at one interval length (a channel has
// one length, but a stored block's own length is what indexes it).
type dayKey struct {
	chanKey
	day, seconds int64
}

// currentRead is the current read of one key while a batch is applied;
// version 0: no read. It holds no pointer (the quality's code, the
// source's index in readState.sources), so that the batch's days are
// neither scanned by the garbage collector nor cleared of heap bits.
type currentRead struct {
	micro   int64
	version int64
	source  int32
	quality byte
}

// qualityOf is the quality whose code is q (a one-byte string: no
// allocation).
func qualityOf(q byte) meters.Quality { return meters.Quality([]byte{q}) }

// dayReads are the current reads of one channel-day from interval index
// first on: only the part of the day the batch touches. A whole day each
// (96 to 288 reads) for records of 16 was most of what a batch allocated.
type dayReads struct {
	first int64
	reads []currentRead
}

// cover extends d to hold the indexes [lo, hi).
func (d *dayReads) cover(lo, hi int64) {
	first, end := min(d.first, lo), max(d.first+int64(len(d.reads)), hi)
	if first == d.first && end-first <= int64(cap(d.reads)) {
		d.reads = d.reads[:end-first] // past len, never written: zero
		return
	}
	grown := make([]currentRead, end-first, max(end-first, 2*int64(cap(d.reads))))
	copy(grown[d.first-first:], d.reads)
	d.first, d.reads = first, grown
}

// dayWalk follows one channel's reads of one interval length in start
// order, up to last, looking up their channel-day once per UTC day rather
// than once per read (a look-up hashes the meter ID: per read, it was a
// tenth of ingest's CPU).
type dayWalk struct {
	st       *readState
	ck       chanKey
	seconds  int64
	last     int64 // the start of the walk's last read: a day it creates or extends holds up to it
	create   bool
	day, end int64 // the UTC day of d: [day, end); end 0 before the first
	d        *dayReads
}

func (st *readState) walk(ck chanKey, seconds, last int64, create bool) dayWalk {
	return dayWalk{st: st, ck: ck, seconds: seconds, last: last, create: create}
}

// at is the current read of the interval starting at startUnix,
// creating it when the walk creates; nil when it does not and the batch
// knows no read there.
func (w *dayWalk) at(startUnix int64) *currentRead {
	if w.end == 0 || startUnix < w.day || startUnix >= w.end {
		w.day = utcDay(startUnix)
		w.end = w.day + secondsPerDay
		w.d = w.st.days[dayKey{w.ck, w.day, w.seconds}]
	}
	i := (startUnix - w.day) / w.seconds
	if d := w.d; d != nil && i >= d.first && i < d.first+int64(len(d.reads)) {
		return &d.reads[i-d.first]
	}
	if !w.create {
		return nil
	}
	hi := max(i, (min(w.last, w.end-1)-w.day)/w.seconds) + 1
	if w.d == nil {
		w.d = &dayReads{first: i, reads: make([]currentRead, hi-i)}
		w.st.days[dayKey{w.ck, w.day, w.seconds}] = w.d
	} else {
		w.d.cover(i, hi)
	}
	return &w.d.reads[i-w.d.first]
}

// sourceOf is the index of src in st.sources, added on first sight.
func (st *readState) sourceOf(src string) int32 {
	i, ok := st.sourceIDs[src]
	if !ok {
		i = int32(len(st.sources))
		st.sources = append(st.sources, src)
		st.sourceIDs[src] = i
	}
	return i
}

// readState is what a batch of reads needs to know about the database,
// loaded in one round trip and then kept current as the batch is applied in
// offset order.
type readState struct {
	assignments map[string][]meters.Assignment // by meter, by effective_from
	lengths     map[chanKey]int
	newLengths  []chanKey
	days        map[dayKey]*dayReads
	sources     []string // the sources of current reads, by currentRead.source
	sourceIDs   map[string]int32
	blocks      []StoredBlock // to append: the reads each applied record made current
	values      int           // reads in the batch's decodable records: at most this many change
	// lastEnds is channel_lengths.last_end (unix seconds; noEnd for NULL)
	// of the channels whose rows the batch locked.
	lastEnds map[chanKey]int64
	lookedUp int // channels whose stored blocks the batch looked up
}

// ApplyReads applies a batch of reads records inside tx, in slice order
// (their offset order): versioning (the highest version is current; a lower
// one is stale, an equal one with the same value and quality a duplicate, an
// equal one with another value or quality a conflict), the registry
// assignment lookup, the channel's interval length, live positions, and the
// quarantine for every record that cannot be used. A record is applied whole
// or quarantined whole with the first reason that fails.
//
// Each applied record appends one block per UTC day holding the reads it
// made current (migrations/00800_read_blocks.sql); nothing stored is ever
// rewritten. The batch locks the channel_lengths rows of its channels before
// it reads their blocks, so two writers of one channel (a consumer and a
// quarantine replay, or two owners of a partition during a rebalance) take
// turns; a channel another writer created meanwhile returns
// ErrConcurrentWrite and tx must be rolled back.
//
// The read_blocks partitions the batch needs must exist: the consumer
// creates them with opt.Partitions before it begins tx; a month that was
// not is created in tx.
func ApplyReads(ctx context.Context, tx pgx.Tx, opt ReadOptions, recs []ReadRecord) (ReadsOutcome, error) {
	var out ReadsOutcome
	if err := ensureFor(ctx, tx, opt.Partitions, recs); err != nil {
		return out, err
	}
	st, err := loadReadState(ctx, tx, opt.Registry, recs)
	if err != nil {
		return out, err
	}
	pos := newPositionDeltas(opt.SettlementSeconds)
	var covering []*meters.Assignment
	out.Changes = make([]ReadChange, 0, st.values)
	for i := range recs {
		r := &recs[i]
		rej := r.Rejection
		var micros []int64
		if rej == nil {
			covering, micros, rej = st.check(r, covering[:0])
		}
		if rej != nil {
			out.Quarantined = append(out.Quarantined, quarantined(r.Source, rej))
			continue
		}
		stale, dups := out.Stale, out.Duplicates
		st.apply(r, covering, micros, pos, &out)
		out.Applied = append(out.Applied, i)
		out.Ignored = append(out.Ignored, IgnoredReads{Stale: out.Stale - stale, Duplicates: out.Duplicates - dups})
	}
	if err := copyBlocks(ctx, tx.Conn(), st.blocks); err != nil {
		return ReadsOutcome{}, err
	}
	b := &pgx.Batch{}
	ends := st.blockEnds()
	st.queueLengths(b, ends)
	st.queueLastEnds(b, ends)
	pos.queue(b, opt.Slot)
	writeQuarantine(b, out.Quarantined)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return ReadsOutcome{}, fmt.Errorf("write reads batch: %w", err)
	}
	return out, nil
}

// ensureFor makes sure, inside tx, that the partitions of the blocks recs
// can append exist: months p has created (Partitions.Ensure, before the
// transaction) need nothing; any other is created in tx, which then holds
// read_blocks exclusively until it ends (a quarantine replay, or a caller
// without Partitions).
func ensureFor(ctx context.Context, tx pgx.Tx, p *Partitions, recs []ReadRecord) error {
	starts := PartitionStarts(recs)
	if p.createdAll(starts) {
		return nil
	}
	return EnsurePartitions(ctx, tx, starts)
}

// PartitionStarts are instants in every month the valid records of recs
// can append a block to.
func PartitionStarts(recs []ReadRecord) []int64 {
	var starts []int64
	for i := range recs {
		if recs[i].Rejection != nil {
			continue
		}
		b := &recs[i].Block
		first := b.Start.Unix()
		last := first + int64((b.Len()-1)*b.IntervalSeconds)
		starts = append(starts, first)
		// a record of up to 10,000 values can span months: every one
		for m := nextMonth(monthOf(first)); m <= last; m = nextMonth(m) {
			starts = append(starts, m)
		}
	}
	return starts
}

// noEnd is a NULL channel_lengths.last_end.
const noEnd int64 = math.MinInt64

type readRange struct {
	chanKey
	day, start, end int64 // UTC day of the first read, first start, last end
}

func loadReadState(ctx context.Context, tx pgx.Tx, registry *registrystore.Cache, recs []ReadRecord) (*readState, error) {
	st := &readState{
		lengths:   map[chanKey]int{},
		lastEnds:  map[chanKey]int64{},
		days:      map[dayKey]*dayReads{},
		sourceIDs: map[string]int32{},
	}
	seenMeter := map[string]bool{}
	ranges := map[chanKey]*readRange{}
	var meterIDs []string
	var order []*readRange
	records := 0
	for i := range recs {
		if recs[i].Rejection != nil {
			continue
		}
		b := &recs[i].Block
		st.values += b.Len()
		records++
		ck := chanKey{b.MeterID, b.Channel}
		if !seenMeter[b.MeterID] {
			seenMeter[b.MeterID] = true
			meterIDs = append(meterIDs, b.MeterID)
		}
		// One range per channel: the blocks that can hold a read of the
		// batch start in [UTC day of its first read, its last end).
		lo, hi := b.Start.Unix(), b.End().Unix()
		if rg := ranges[ck]; rg != nil {
			rg.start, rg.end = min(rg.start, lo), max(rg.end, hi)
			rg.day = utcDay(rg.start)
		} else {
			rg = &readRange{ck, utcDay(lo), lo, hi}
			ranges[ck] = rg
			order = append(order, rg)
		}
	}
	if len(meterIDs) == 0 {
		return st, nil
	}
	st.blocks = make([]StoredBlock, 0, records) // a block per applied record, unless it crosses a day
	// Channels in key order, so that two batches lock their common
	// channels in the same order and cannot deadlock.
	slices.SortFunc(order, func(a, b *readRange) int { return a.compare(b.chanKey) })
	n := len(order)
	rangeMeters, rangeChans := make([]string, n), make([]string, n)
	rangeDays, rangeStarts, rangeEnds := make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
	for i, rg := range order {
		rangeMeters[i], rangeChans[i] = rg.meter, string(rg.channel)
		rangeDays[i], rangeStarts[i], rangeEnds[i] = time.Unix(rg.day, 0), time.Unix(rg.start, 0), time.Unix(rg.end, 0)
	}
	b := &pgx.Batch{}
	// The assignments as of this statement, the cached ones where the
	// registry has not changed since they were read (meters/postgres/cache.go).
	if registry == nil {
		registry = registrystore.NewCache(0)
	}
	assignments := registry.QueueAssignments(b, meterIDs)
	// The lock comes before the blocks are read: a writer that held it
	// has committed when this statement returns, and the next one (its own
	// snapshot, read committed) sees its blocks. last_end is read by the
	// locking statement itself: a row it waited for is re-read in its
	// latest committed version once the holder commits (Postgres re-checks
	// a row locked FOR NO KEY UPDATE after a wait, EvalPlanQual), so it is
	// the end the holder left (TestWaiterSeesTheHoldersLastEnd).
	b.Queue(lockChannelsSQL, rangeMeters, rangeChans).Query(func(rows pgx.Rows) error {
		var k chanKey
		var n int
		var end *time.Time
		_, err := pgx.ForEachRow(rows, []any{&k.meter, &k.channel, &n, &end}, func() error {
			st.lengths[k] = n
			e := noEnd
			if end != nil {
				e = end.Unix()
			}
			st.lastEnds[k] = e
			return nil
		})
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("load state of reads batch: %w", err)
	}
	var err error
	if st.assignments, err = assignments.Finish(ctx, tx); err != nil {
		return nil, fmt.Errorf("load state of reads batch: %w", err)
	}
	// Only the channels whose range may overlap a stored block: a channel
	// without a row has no stored block (doc.go; one created meanwhile by
	// another writer fails the batch's insert of its row), and one whose
	// range starts at or after the end of its latest block (a channel's
	// day sent in order) overlaps none. A row without a last_end is looked
	// up all the same.
	m := 0
	for i, rg := range order {
		e, ok := st.lastEnds[rg.chanKey]
		if !ok || e != noEnd && rg.start >= e {
			continue
		}
		rangeMeters[m], rangeChans[m], rangeDays[m], rangeStarts[m], rangeEnds[m] =
			rangeMeters[i], rangeChans[i], rangeDays[i], rangeStarts[i], rangeEnds[i]
		m++
	}
	st.lookedUp = m
	if m == 0 {
		return st, nil
	}
	// The index bounds the scan to the range's days; the end test drops
	// the day's earlier blocks that end before the range (the rest of a
	// day sent in several records), which need not travel.
	rows, err := tx.Query(ctx, `
		SELECT `+blockColumns+`
		FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[]) AS k(km, kc, kd, ks, ke)
		JOIN read_blocks ON meter_id = km AND channel = kc AND start >= kd AND start < ke
		 AND `+blockEndSQL+` > ks`,
		binaryResults, rangeMeters[:m], rangeChans[:m], rangeDays[:m], rangeStarts[:m], rangeEnds[:m],
	)
	if err != nil {
		return nil, fmt.Errorf("load stored blocks of reads batch: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		blk, err := scanBlock(rows.RawValues())
		if err != nil {
			return nil, fmt.Errorf("load stored blocks of reads batch: %w", err)
		}
		st.load(&blk)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load stored blocks of reads batch: %w", err)
	}
	return st, nil
}

// load keeps, per key, the stored read of the highest version.
func (st *readState) load(b *StoredBlock) {
	w := st.walk(chanKey{b.MeterID, b.Channel}, b.IntervalSeconds, b.StartAt(len(b.Values)-1), true)
	src := st.sourceOf(b.Source)
	for i, v := range b.Values {
		if v == NoRead {
			continue
		}
		c := w.at(b.StartAt(i))
		if c.version >= b.Version {
			continue
		}
		*c = currentRead{micro: v, version: b.Version, source: src, quality: b.QualityAt(i)[0]}
	}
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
func (st *readState) check(r *ReadRecord, covering []*meters.Assignment) ([]*meters.Assignment, []int64, *meters.Rejection) {
	b := &r.Block
	as := st.assignments[b.MeterID]
	step := time.Duration(b.IntervalSeconds) * time.Second
	for i := range b.Len() {
		t := b.Start.Add(time.Duration(i) * step)
		a := covers(as, t)
		if a == nil {
			return nil, nil, &meters.Rejection{Reason: meters.UnknownMeter,
				Detail: fmt.Sprintf("meter_id: no assignment of %s covers the interval starting %s", b.MeterID, t.Format(time.RFC3339))}
		}
		covering = append(covering, a)
	}
	ck := chanKey{b.MeterID, b.Channel}
	if n, ok := st.lengths[ck]; ok && n != b.IntervalSeconds {
		return nil, nil, &meters.Rejection{Reason: meters.IntervalLengthMismatch,
			Detail: fmt.Sprintf("interval_seconds: %s %s has %d-second intervals, the record has %d", b.MeterID, b.Channel, n, b.IntervalSeconds)}
	}
	micros, rej := microsOf(b)
	if rej != nil {
		return nil, nil, rej
	}
	secs := int64(b.IntervalSeconds)
	w := st.walk(ck, secs, 0, false)
	for i := range micros {
		start := b.Start.Unix() + int64(i)*secs
		c := w.at(start)
		if c == nil || c.version != b.Version {
			continue
		}
		if c.micro != micros[i] || c.quality != b.Quality[i][0] {
			return nil, nil, &meters.Rejection{Reason: meters.ConflictingDuplicate,
				Detail: fmt.Sprintf("values[%d]: version %d of the read at %s is %s (%s), the record has %s (%s)",
					i, b.Version, time.Unix(start, 0).UTC().Format(time.RFC3339), KWh(c.micro), qualityOf(c.quality),
					KWh(micros[i]), b.Quality[i])}
		}
	}
	// Decided here rather than left to the database's refusal (SQLSTATE
	// 22021, "invalid byte sequence"), which fails the whole transaction: a
	// quarantine replay, which does not look for the record to blame, could
	// then never complete. It is the last check: the contract's unprocessable is for
	// a record that passed every other one. A source is the only free text
	// of a read or a price; the rest is ASCII or a fixed set.
	if strings.IndexByte(b.Source, 0) >= 0 {
		return nil, nil, &meters.Rejection{Reason: meters.Unprocessable, Detail: "source: holds U+0000, which PostgreSQL text cannot store"}
	}
	return covering, micros, nil
}

// apply makes the checked record's reads current where their version is
// higher, moves positions by the difference, and keeps the reads it made
// current as the record's blocks.
func (st *readState) apply(r *ReadRecord, covering []*meters.Assignment, micros []int64, pos *positionDeltas, out *ReadsOutcome) {
	b := &r.Block
	ck := chanKey{b.MeterID, b.Channel}
	if _, ok := st.lengths[ck]; !ok {
		st.lengths[ck] = b.IntervalSeconds
		st.newLengths = append(st.newLengths, ck)
	}
	stored := micros // reused in place: micros is this record's own
	first, last, estimated := -1, -1, false
	secs := int64(b.IntervalSeconds)
	w := st.walk(ck, secs, b.Start.Unix()+int64(len(micros)-1)*secs, true)
	src := st.sourceOf(b.Source)
	for i := range micros {
		start := b.Start.Unix() + int64(i)*secs
		c := w.at(start)
		if c.version > b.Version {
			out.Stale++
			stored[i] = NoRead
			continue
		}
		if c.version == b.Version {
			out.Duplicates++ // check ruled out a conflict
			stored[i] = NoRead
			continue
		}
		ch := ReadChange{Record: r, Index: i, Assignment: covering[i]}
		if c.version > 0 {
			ch.Old = OldRead{Micro: c.micro, Version: c.version, Quality: qualityOf(c.quality), Source: st.sources[c.source]}
			pos.addMicro(covering[i], start, secs, c.micro, b.Channel, true)
		}
		pos.addMicro(covering[i], start, secs, micros[i], b.Channel, false)
		*c = currentRead{micro: micros[i], version: b.Version, source: src, quality: b.Quality[i][0]}
		out.Changes = append(out.Changes, ch)
		if first < 0 {
			first = i
		}
		last = i
		estimated = estimated || b.Quality[i] != meters.Actual
	}
	if first < 0 {
		return // nothing became current: no version to keep
	}
	blk := StoredBlock{
		MeterID: b.MeterID, Channel: b.Channel, Start: b.Start.Unix() + int64(first*b.IntervalSeconds),
		IntervalSeconds: int64(b.IntervalSeconds), Version: b.Version, Values: stored[first : last+1],
		Source: b.Source, Origin: r.Origin,
	}
	if estimated {
		q := make([]byte, 0, last+1-first)
		for _, x := range b.Quality[first : last+1] {
			q = append(q, x[0])
		}
		blk.Quality = string(q)
	}
	st.blocks = appendDays(st.blocks, blk)
}

// blockEnds is the end of the latest block the batch appends to each
// channel.
func (st *readState) blockEnds() map[chanKey]int64 {
	ends := map[chanKey]int64{}
	for i := range st.blocks {
		blk := &st.blocks[i]
		ck := chanKey{blk.MeterID, blk.Channel}
		ends[ck] = max(ends[ck], blk.end())
	}
	return ends
}

// queueLengths writes the channels' first interval lengths. A channel
// another writer created since the batch looked is a concurrent write: this
// batch read that channel's blocks before they existed. A new channel had
// no stored block, so its last_end is the end of its latest block in the
// batch (an applied record of a new channel always appends one: every read
// it holds becomes current).
func (st *readState) queueLengths(b *pgx.Batch, ends map[chanKey]int64) {
	if n := len(st.newLengths); n > 0 {
		ms, cs, ls, es := make([]string, n), make([]string, n), make([]int32, n), make([]*time.Time, n)
		for i, k := range st.newLengths {
			ms[i], cs[i], ls[i] = k.meter, string(k.channel), int32(st.lengths[k])
			if e, ok := ends[k]; ok {
				t := time.Unix(e, 0)
				es[i] = &t
			}
		}
		b.Queue(`
			INSERT INTO channel_lengths (meter_id, channel, interval_seconds, last_end)
			SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[]) ON CONFLICT DO NOTHING`, ms, cs, ls, es,
		).Exec(expectRows("insert channel lengths", n))
	}
}

// queueLastEnds raises, in one statement, the last_end of each channel
// whose row the batch locked to the end of its latest block in the batch,
// where that is later: the rows are this transaction's until it ends, so
// the count is exact. New channels' rows are inserted with theirs.
func (st *readState) queueLastEnds(b *pgx.Batch, ends map[chanKey]int64) {
	var keys []chanKey
	for k, e := range ends {
		if last, ok := st.lastEnds[k]; ok && e > last {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return
	}
	slices.SortFunc(keys, chanKey.compare)
	ms, cs, es := make([]string, len(keys)), make([]string, len(keys)), make([]time.Time, len(keys))
	for i, k := range keys {
		ms[i], cs[i], es[i] = k.meter, string(k.channel), time.Unix(ends[k], 0)
	}
	// Without hash joins: planned for thousands of keys, the join hashed
	// the whole table after reading it (a sequential scan per batch, which
	// grows with the registry: 57 ms a batch at 5 M reads); a probe of the
	// primary key per channel does not.
	b.Queue(`SET LOCAL enable_hashjoin = off`)
	b.Queue(`SET LOCAL enable_mergejoin = off`)
	b.Queue(raiseLastEndsSQL, ms, cs, es).Exec(expectRows("raise channel last ends", len(keys)))
	b.Queue(`RESET enable_hashjoin`)
	b.Queue(`RESET enable_mergejoin`)
}

// microsOf is b's values in micro-kWh as the decoder read them
// (meters.ReadBlock.Micro), in a slice of the caller's own. A block not made
// by meters.Decoder has none and is refused, never converted by a second
// rule.
func microsOf(b *meters.ReadBlock) ([]int64, *meters.Rejection) {
	if len(b.Micro) != b.Len() {
		return nil, &meters.Rejection{Reason: meters.Unprocessable, Detail: "values: not decoded into micro-kWh"}
	}
	return slices.Clone(b.Micro), nil
}

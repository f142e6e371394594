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
// version 0: no read.
type currentRead struct {
	micro   int64
	version int64
	quality meters.Quality
	source  string
}

// dayReads are the current reads of one channel-day, by interval index:
// one map look-up per record and day instead of one per read.
type dayReads []currentRead

// at is the current read of the interval starting at start (unix seconds)
// of ck with the given length, creating its day when create.
func (st *readState) at(ck chanKey, start, seconds int64, create bool) *currentRead {
	day := utcDay(start)
	k := dayKey{ck, day, seconds}
	d := st.days[k]
	if d == nil {
		if !create {
			return nil
		}
		d = make(dayReads, secondsPerDay/seconds)
		st.days[k] = d
	}
	return &d[(start-day)/seconds]
}

// read is c as the read of ck at start.
func (c *currentRead) read(ck chanKey, start, seconds int64) meters.Read {
	return meters.Read{MeterID: ck.meter, Channel: ck.channel, Start: time.Unix(start, 0).UTC(), IntervalSeconds: int(seconds),
		Value: KWh(c.micro), Quality: c.quality, Version: c.version, Source: c.source}
}

// readState is what a batch of reads needs to know about the database,
// loaded in one round trip and then kept current as the batch is applied in
// offset order.
type readState struct {
	assignments map[string][]meters.Assignment // by meter, by effective_from
	lengths     map[chanKey]int
	newLengths  []chanKey
	days        map[dayKey]dayReads
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
		st.apply(r, covering, micros, pos, &out)
		out.Applied = append(out.Applied, i)
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
		last := first + int64((len(b.Values)-1)*b.IntervalSeconds)
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
		lengths:  map[chanKey]int{},
		lastEnds: map[chanKey]int64{},
		days:     map[dayKey]dayReads{},
	}
	seenMeter := map[string]bool{}
	ranges := map[chanKey]*readRange{}
	var meterIDs []string
	var order []*readRange
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
	b.Queue(`
		SELECT c.meter_id, c.channel, c.interval_seconds, c.last_end
		FROM channel_lengths c JOIN unnest($1::text[], $2::text[]) AS k(meter_id, channel) USING (meter_id, channel)
		ORDER BY c.meter_id, c.channel
		FOR NO KEY UPDATE OF c`, rangeMeters, rangeChans,
	).Query(func(rows pgx.Rows) error {
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
	ck := chanKey{b.MeterID, b.Channel}
	for i, v := range b.Values {
		if v == NoRead {
			continue
		}
		c := st.at(ck, b.StartAt(i), b.IntervalSeconds, true)
		if c.version >= b.Version {
			continue
		}
		*c = currentRead{micro: v, version: b.Version, quality: b.QualityAt(i), source: b.Source}
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
	for i := range b.Values {
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
	for i := range b.Values {
		start := b.Start.Unix() + int64(i)*secs
		c := st.at(ck, start, secs, false)
		if c == nil || c.version != b.Version {
			continue
		}
		if c.micro != micros[i] || c.quality != b.Quality[i] {
			return nil, nil, &meters.Rejection{Reason: meters.ConflictingDuplicate,
				Detail: fmt.Sprintf("values[%d]: version %d of the read at %s is %s (%s), the record has %s (%s)",
					i, b.Version, time.Unix(start, 0).UTC().Format(time.RFC3339), KWh(c.micro), c.quality,
					b.Values[i], b.Quality[i])}
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
	for i, v := range b.Values {
		start := b.Start.Unix() + int64(i)*secs
		c := st.at(ck, start, secs, true)
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
		var prev *meters.Read
		if c.version > 0 {
			p := c.read(ck, start, secs)
			prev = &p
			pos.addMicro(covering[i], start, secs, c.micro, b.Channel, true)
		}
		pos.addMicro(covering[i], start, secs, micros[i], b.Channel, false)
		*c = currentRead{micro: micros[i], version: b.Version, quality: b.Quality[i], source: b.Source}
		rd := meters.Read{
			MeterID: b.MeterID, Channel: b.Channel, Start: time.Unix(start, 0).UTC(),
			IntervalSeconds: b.IntervalSeconds, Value: v, Quality: b.Quality[i],
			Version: b.Version, Source: b.Source,
		}
		out.Changes = append(out.Changes, ReadChange{Read: rd, Previous: prev, Assignment: covering[i], Origin: r.Origin})
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
	st.blocks = append(st.blocks, SplitDays(blk)...)
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
	b.Queue(raiseLastEndsSQL, ms, cs, es).Exec(expectRows("raise channel last ends", len(keys)))
}

// microsOf is b's values in micro-kWh as the decoder read them
// (meters.ReadBlock.Micro), in a slice of the caller's own. A block not made
// by meters.Decoder has none and is refused, never converted by a second
// rule.
func microsOf(b *meters.ReadBlock) ([]int64, *meters.Rejection) {
	if len(b.Micro) != len(b.Values) {
		return nil, &meters.Rejection{Reason: meters.Unprocessable, Detail: "values: not decoded into micro-kWh"}
	}
	return slices.Clone(b.Micro), nil
}

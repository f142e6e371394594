package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gridsettle/gridsettle/meters"
	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/failpoint"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/outbox"
)

// DeadLetterSchema is the gridsettle-schema of dead letters.
const DeadLetterSchema = "gridsettle.dead-letter/v1"

// DeadLetterContentType is a dead letter's content-type: its value is the
// input's bytes, which need not be JSON.
const DeadLetterContentType = "application/octet-stream"

// Dead-letter headers (meters/README.md "Validation and quarantine").
const (
	HeaderReason          = "gridsettle-reason"
	HeaderSourceTopic     = "gridsettle-source-topic"
	HeaderSourcePartition = "gridsettle-source-partition"
	HeaderSourceOffset    = "gridsettle-source-offset"
	// HeaderTruncated is on a dead letter whose value was cut to fit the
	// output record size: the original value's length in bytes.
	HeaderTruncated = "gridsettle-truncated"
	// HeaderValueSHA256 is on a truncated dead letter: the hex SHA-256 of
	// the whole original value.
	HeaderValueSHA256 = "gridsettle-value-sha256"
	// HeaderKeyTruncated is on a dead letter whose key alone did not fit:
	// the original key's length in bytes.
	HeaderKeyTruncated = "gridsettle-key-truncated"
)

// Hook runs inside every ingest transaction, after the batch's effects and
// before the outbox rows are written (customer alerts are one). The messages
// it returns are enqueued with the batch's dead letters, in the same
// transaction. An error rolls the whole batch back: a transient one is
// retried as it is; any other is taken as a refusal of one of the batch's
// records, which the consumer finds and quarantines as unprocessable.
type Hook interface {
	AfterApply(ctx context.Context, tx pgx.Tx, a Applied) ([]outbox.Message, error)
}

// Applied describes what one transaction changed: the reads and prices whose
// current value changed (new, or replaced by a higher version), in offset
// order. A consumer batch covers one input partition; a quarantine replay
// has Replay set and Partition -1.
type Applied struct {
	Topic     string
	Partition int32
	Replay    bool
	// Watermark is the partition's event-time watermark after the batch (the
	// latest interval end of an applied record); zero before any, and for
	// replays.
	Watermark time.Time
	Reads     []readstore.ReadChange
	Prices    []readstore.PriceChange
	// Ends are the block ends of the batch's applied reads records (those
	// the watermark counts: a quarantined record never moves it), in offset
	// order, so that a hook can follow the watermark record by record
	// whatever the batch boundaries; nil for prices and replays.
	Ends []RecordEnd
}

// RecordEnd is the end of one reads record's last interval.
type RecordEnd struct {
	Offset int64
	End    time.Time
}

// Applier applies input records to Postgres: decoding, validation,
// versioning, positions, quarantine, hooks and dead letters. The consumer
// uses it for each batch and the API for quarantine replays; both must be
// given the same hooks.
type Applier struct {
	market settlement.Market
	topics kafka.Topics
	outbox *outbox.Writer
	hooks  []Hook
	limits Limits
	// partitions creates read_blocks partitions outside batch transactions;
	// nil: each batch creates what it needs in its own transaction.
	partitions *readstore.Partitions
	// registry keeps the meters' assignments across batches and replays.
	registry *registrystore.Cache
}

// NewApplier returns an Applier for the market (its currency and
// settlement interval) and topics, writing outputs through w, with the
// default Limits and a registry cache of its own.
func NewApplier(market settlement.Market, topics kafka.Topics, w *outbox.Writer, hooks ...Hook) *Applier {
	return &Applier{market: market, topics: topics, outbox: w, hooks: hooks,
		limits: Limits{MaxDeadLetterBytes: DefaultMaxDeadLetterBytes}, registry: registrystore.NewCache(0)}
}

// DefaultMaxDeadLetterBytes is the default record size of the dead-letter
// topic (meters/README.md "Nothing a producer sends can stop ingest").
const DefaultMaxDeadLetterBytes = 1_000_000

// Limits bound what the Applier accepts and writes.
type Limits struct {
	// Bounds are the start_out_of_range bounds of every decoder the Applier
	// makes (the consumer's and the replays').
	Bounds meters.Bounds
	// MaxDeadLetterBytes bounds a dead letter's key, value and headers
	// together; a larger value is cut (deadLetter). It must not exceed the
	// dead-letter topic's record size nor the relay producer's batch size.
	// 0: DefaultMaxDeadLetterBytes; at least 2 × deadLetterReserve.
	MaxDeadLetterBytes int
}

// WithLimits sets a's limits and returns a. Call it before a is used.
func (a *Applier) WithLimits(l Limits) *Applier {
	if l.MaxDeadLetterBytes <= 0 {
		l.MaxDeadLetterBytes = DefaultMaxDeadLetterBytes
	}
	l.MaxDeadLetterBytes = max(l.MaxDeadLetterBytes, 2*deadLetterReserve)
	a.limits = l
	return a
}

// WithPartitions makes a consumer create the read_blocks months a batch
// needs through p before the batch's transaction begins
// (readstore.Partitions), and returns a. Call it before a is used.
func (a *Applier) WithPartitions(p *readstore.Partitions) *Applier {
	a.partitions = p
	return a
}

// WithRegistryCache makes a keep the meters' assignments in c, the
// process's registry cache (shared with the alert hook), and returns a.
// Call it before a is used.
func (a *Applier) WithRegistryCache(c *registrystore.Cache) *Applier {
	a.registry = c
	return a
}

// prepare creates the read_blocks months b's reads need. The consumer calls
// it before b's transaction begins, holding no connection.
func (a *Applier) prepare(ctx context.Context, b *batch) error {
	if a.partitions == nil || len(b.reads) == 0 {
		return nil
	}
	return a.partitions.Ensure(ctx, readstore.PartitionStarts(b.reads))
}

// newDecoder is a decoder with a's bounds; one per goroutine. It decodes
// values into micro-kWh only: the read store and the hooks take integers
// (readstore.ReadChange), and a quarantined record keeps its bytes.
func (a *Applier) newDecoder() *meters.Decoder {
	return &meters.Decoder{Bounds: a.limits.Bounds, MicroOnly: true}
}

// batch is one partition's records [from, to) as they go through a
// transaction. Control records (transaction markers) take offsets but carry
// nothing.
type batch struct {
	topic     string
	partition int32
	from, to  int64
	reads     []readstore.ReadRecord
	prices    []readstore.PriceRecord
}

// input is one record of an input topic as the consumer hands it over.
type input struct {
	offset  int64
	control bool
	key     []byte
	value   []byte
}

// decoded is one input record decoded: a read record, a price record, or
// (both nil) a transaction marker.
type decoded struct {
	offset int64
	read   *readstore.ReadRecord
	price  *readstore.PriceRecord
}

// reads is what d weighs in a batch: its reads, at least 1 (a price, a
// rejected record), 0 for a marker.
func (d decoded) reads() int {
	switch {
	case d.read != nil:
		return max(1, d.read.Block.Len())
	case d.price != nil:
		return 1
	}
	return 0
}

// decode decodes the record r of topic/partition; dec is the caller's (one
// per goroutine).
func (a *Applier) decode(dec *meters.Decoder, topic string, partition int32, r input) (decoded, error) {
	d := decoded{offset: r.offset}
	if r.control {
		return d, nil
	}
	src := readstore.Source{Origin: readstore.Origin{Topic: topic, Partition: partition, Offset: r.offset}, Key: r.key, Value: r.value}
	switch topic {
	case a.topics.Reads:
		blk, rej := dec.ReadBlock(r.value)
		d.read = &readstore.ReadRecord{Source: src, Block: blk, Rejection: rej}
	case a.topics.Prices:
		p, rej := dec.Price(r.value, a.market.Currency)
		d.price = &readstore.PriceRecord{Source: src, Price: p, Rejection: rej}
	default:
		return d, fmt.Errorf("records of topic %s: not an input topic", topic)
	}
	return d, nil
}

// batchOf is the batch of the decoded records ds of topic/partition, from
// offset `from`.
func batchOf(topic string, partition int32, from int64, ds []decoded) *batch {
	b := &batch{topic: topic, partition: partition, from: from, to: from}
	if n := len(ds); n > 0 {
		b.to = ds[n-1].offset + 1
	}
	// Sized first: a record is a few hundred bytes, and a batch thousands.
	var reads, prices int
	for _, d := range ds {
		switch {
		case d.read != nil:
			reads++
		case d.price != nil:
			prices++
		}
	}
	b.reads, b.prices = make([]readstore.ReadRecord, 0, reads), make([]readstore.PriceRecord, 0, prices)
	for _, d := range ds {
		switch {
		case d.read != nil:
			b.reads = append(b.reads, *d.read)
		case d.price != nil:
			b.prices = append(b.prices, *d.price)
		}
	}
	return b
}

// errOffsetMoved is a compare-and-set miss: the stored position is not where
// this consumer believed, so another owner applied (part of) the range.
var errOffsetMoved = errors.New("stored offset moved: another consumer owns this range")

// outcome is what a transaction did.
type outcome struct {
	appliedReads  []int // indexes of the read records applied (not quarantined)
	appliedPrices []int
	changes       int // reads and prices whose current value changed
	stale         int
	duplicates    int
	quarantined   []readstore.Quarantined
	watermark     time.Time
	// ignored[k] are the stale and duplicate reads of reads record
	// appliedReads[k]; readsApplied, readsStale and readsDuplicate sum the
	// reads of the applied reads records (prices have their own stale and
	// duplicates, which completeness does not count).
	ignored                                  []readstore.IgnoredReads
	readsApplied, readsStale, readsDuplicate int
}

func (o outcome) records() int { return len(o.appliedReads) + len(o.appliedPrices) }

// counts are the completeness counts of a consumer batch of `records` data
// records whose effects were o. It fails unless every record was either
// applied or quarantined.
func (o outcome) counts(records int) (readstore.Counts, error) {
	c := readstore.Counts{Records: int64(records), Applied: int64(o.records()),
		ReadsApplied: int64(o.readsApplied), ReadsStale: int64(o.readsStale), ReadsDuplicate: int64(o.readsDuplicate)}
	for _, q := range o.quarantined {
		c.Quarantine(q.Reason, 1)
	}
	if o.records()+len(o.quarantined) != records {
		return c, fmt.Errorf("counts: %d records, %d applied and %d quarantined", records, o.records(), len(o.quarantined))
	}
	return c, nil
}

// apply runs one batch in tx: the compare-and-set on the stored offset
// first, then the effects, the watermark of the applied records, the hooks,
// and the outbox rows last. Its error is not wrapped: it may become a
// quarantine detail.
func (a *Applier) apply(ctx context.Context, tx pgx.Tx, b *batch) (outcome, error) {
	var out outcome
	ok, wm, err := readstore.AdvanceOffset(ctx, tx, b.topic, b.partition, b.from, b.to)
	if err != nil {
		return out, err
	}
	if !ok {
		return out, errOffsetMoved
	}
	applied := Applied{Topic: b.topic, Partition: b.partition}
	if err := a.effects(ctx, tx, b.reads, b.prices, b.partition, &applied, &out); err != nil {
		return out, err
	}
	counts, err := out.counts(len(b.reads) + len(b.prices))
	if err != nil {
		return out, err
	}
	// A batch of transaction markers only, or one that neither counts nor
	// moves event time, has nothing more to write on its row.
	if hi := b.appliedEnds(out, &applied); hi.After(wm) || counts.Records > 0 {
		if wm, err = readstore.CloseBatch(ctx, tx, b.topic, b.partition, hi, counts); err != nil {
			return out, err
		}
	}
	applied.Watermark, out.watermark = wm, wm
	failpoint.Hit(failpoint.IngestBeforeCommit)
	msgs, err := a.runHooks(ctx, tx, applied)
	if err != nil {
		return out, err
	}
	for _, q := range out.quarantined {
		msgs = append(msgs, a.deadLetter(q))
	}
	defer failpoint.Hit(failpoint.IngestAfterOutbox) // after Enqueue has written the rows, before COMMIT
	return out, a.outbox.Enqueue(ctx, tx, msgs...)
}

// setAside moves b's stored offset past its records in tx and, with
// quarantine, stores q, with deadLetter its dead letter too; nothing is
// applied and no hook runs.
func (a *Applier) setAside(ctx context.Context, tx pgx.Tx, b *batch, q readstore.Quarantined, quarantine, deadLetter bool) error {
	ok, _, err := readstore.AdvanceOffset(ctx, tx, b.topic, b.partition, b.from, b.to)
	if err != nil {
		return err
	}
	if !ok {
		return errOffsetMoved
	}
	// Counted as quarantined even when the quarantine row itself is refused
	// (offset only): the record was consumed and not applied, and the log
	// says why.
	var counts readstore.Counts
	counts.Records = 1
	counts.Quarantine(q.Reason, 1)
	if _, err := readstore.CloseBatch(ctx, tx, b.topic, b.partition, time.Time{}, counts); err != nil {
		return err
	}
	if !quarantine {
		return nil
	}
	if err := readstore.Quarantine(ctx, tx, q); err != nil {
		return err
	}
	if !deadLetter {
		return nil
	}
	return a.outbox.Enqueue(ctx, tx, a.deadLetter(q))
}

// appliedEnds sets applied.Ends to the block ends of b's applied reads
// records and returns the latest interval end among b's applied records:
// the watermark they move the partition to. Quarantined records count for
// neither, so a far-future record that is set aside cannot move event time.
func (b *batch) appliedEnds(out outcome, applied *Applied) time.Time {
	var hi time.Time
	if len(out.appliedReads) > 0 {
		applied.Ends = make([]RecordEnd, 0, len(out.appliedReads))
	}
	for _, i := range out.appliedReads {
		r := &b.reads[i]
		end := r.Block.End()
		applied.Ends = append(applied.Ends, RecordEnd{Offset: r.Offset, End: end})
		if end.After(hi) {
			hi = end
		}
	}
	for _, i := range out.appliedPrices {
		p := &b.prices[i].Price
		if end := p.Start.Add(time.Duration(p.IntervalSeconds) * time.Second); end.After(hi) {
			hi = end
		}
	}
	return hi
}

// effects applies reads and prices and fills applied and out.
func (a *Applier) effects(ctx context.Context, tx pgx.Tx, reads []readstore.ReadRecord, prices []readstore.PriceRecord,
	slot int32, applied *Applied, out *outcome) error {
	if len(reads) > 0 {
		r, err := readstore.ApplyReads(ctx, tx, readstore.ReadOptions{SettlementSeconds: a.market.IntervalSeconds, Slot: slot,
			Partitions: a.partitions, Registry: a.registry}, reads)
		if err != nil {
			return err
		}
		applied.Reads = r.Changes
		out.appliedReads = r.Applied
		out.changes += len(r.Changes)
		out.stale += r.Stale
		out.duplicates += r.Duplicates
		out.quarantined = append(out.quarantined, r.Quarantined...)
		out.ignored = r.Ignored
		out.readsApplied, out.readsStale, out.readsDuplicate = len(r.Changes), r.Stale, r.Duplicates
	}
	if len(prices) > 0 {
		p, err := readstore.ApplyPrices(ctx, tx, a.market.Currency, prices)
		if err != nil {
			return err
		}
		applied.Prices = p.Changes
		out.appliedPrices = p.Applied
		out.changes += len(p.Changes)
		out.stale += p.Stale
		out.duplicates += p.Duplicates
		out.quarantined = append(out.quarantined, p.Quarantined...)
	}
	return nil
}

func (a *Applier) runHooks(ctx context.Context, tx pgx.Tx, applied Applied) ([]outbox.Message, error) {
	var msgs []outbox.Message
	for _, h := range a.hooks {
		m, err := h.AfterApply(ctx, tx, applied)
		if err != nil {
			return nil, fmt.Errorf("ingest hook: %w", err)
		}
		msgs = append(msgs, m...)
	}
	return msgs, nil
}

// deadLetterReserve is the part of a dead letter's size limit kept for what
// the relay adds to every record (the gridsettle-schema, gridsettle-id and
// gridsettle-seq headers and the CloudEvents ones, ce_id repeating the id:
// under 900 bytes with a 249-character topic name and a short environment
// name) and for the record's framing in its Kafka batch, so that the record
// the relay produces fits the limit too.
const deadLetterReserve = 2048

// deadLetter is the gridsettle.dead-letter record of a quarantined record:
// its original key and value, the reason and source in headers. A value
// that does not fit the limit (key, value and headers together) is cut to
// its first bytes, with its original length and SHA-256 in headers; the
// quarantine row keeps it whole. A key that alone does not fit is cut too.
func (a *Applier) deadLetter(q readstore.Quarantined) outbox.Message {
	key, value := q.Key, q.Value
	if value == nil {
		value = []byte{}
	}
	headers := []outbox.Header{
		{Key: outbox.HeaderContentType, Value: []byte(DeadLetterContentType)},
		{Key: HeaderReason, Value: []byte(q.Reason)},
		{Key: HeaderSourceTopic, Value: []byte(q.Topic)},
		{Key: HeaderSourcePartition, Value: []byte(strconv.FormatInt(int64(q.Partition), 10))},
		{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(q.Offset, 10))},
	}
	limit := a.limits.MaxDeadLetterBytes - deadLetterReserve
	if len(key)+len(value)+headersSize(headers) > limit {
		sum := sha256.Sum256(value)
		headers = append(headers,
			outbox.Header{Key: HeaderTruncated, Value: []byte(strconv.Itoa(len(value)))},
			outbox.Header{Key: HeaderValueSHA256, Value: []byte(hex.EncodeToString(sum[:]))})
		if room := limit - headersSize(headers); len(key) > room {
			headers = append(headers, outbox.Header{Key: HeaderKeyTruncated, Value: []byte(strconv.Itoa(len(key)))})
			key = key[:max(0, limit-headersSize(headers))]
		}
		value = value[:max(0, min(len(value), limit-len(key)-headersSize(headers)))]
	}
	return outbox.Message{
		Topic:   a.topics.DeadLetter,
		Key:     key,
		Value:   value,
		ID:      DeadLetterID(q.Origin),
		Schema:  DeadLetterSchema,
		Headers: headers,
	}
}

func headersSize(hs []outbox.Header) int {
	n := 0
	for _, h := range hs {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// DeadLetterID is the gridsettle-id of a dead letter:
// {source topic}/{partition}/{offset}.
func DeadLetterID(o readstore.Origin) string {
	return o.Topic + "/" + strconv.FormatInt(int64(o.Partition), 10) + "/" + strconv.FormatInt(o.Offset, 10)
}

// ErrNotReplayable is returned for a replay of a reason a registry fix
// cannot cure.
var ErrNotReplayable = errors.New("only unknown_meter and unknown_settlement_point can be replayed")

// ReplayResult is what a replay did.
type ReplayResult struct {
	Replayed         int `json:"replayed"`          // items applied and marked replayed
	StillQuarantined int `json:"still_quarantined"` // items that failed again (their reason updated)
}

// replayAttempts bounds retries of a replay that met a concurrent writer
// (a consumer correcting the same reads) or a deadlock.
const replayAttempts = 5

// Replay re-validates and applies, in one transaction, every quarantine item
// with reason that was never replayed: those that now pass are applied and
// marked replayed, the others stay quarantined with their new reason. Items
// are locked while this runs, so two concurrent replays apply each item once.
// Replays write no dead letters (each record had its one when quarantined);
// hooks run as for a consumer batch. db is a pool, or the caller's
// transaction (the API's, which commits its audit row with the replay):
// each attempt is then a savepoint.
func (a *Applier) Replay(ctx context.Context, db Beginner, reason meters.Reason) (ReplayResult, error) {
	if reason != meters.UnknownMeter && reason != meters.UnknownSettlementPoint {
		return ReplayResult{}, fmt.Errorf("replay %q: %w", reason, ErrNotReplayable)
	}
	var res ReplayResult
	var err error
	for range replayAttempts {
		res, err = a.replayOnce(ctx, db, reason)
		if !retryable(err) {
			break
		}
	}
	if err != nil {
		return ReplayResult{}, fmt.Errorf("replay %s: %w", reason, err)
	}
	return res, nil
}

func retryable(err error) bool {
	var pg *pgconn.PgError
	return errors.Is(err, readstore.ErrConcurrentWrite) ||
		errors.As(err, &pg) && (pg.Code == "40P01" || pg.Code == "40001") // deadlock, serialization failure
}

// Beginner opens a transaction: a pool, or a transaction (a savepoint).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

func (a *Applier) replayOnce(ctx context.Context, db Beginner, reason meters.Reason) (ReplayResult, error) {
	var res ReplayResult
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		res = ReplayResult{}
		items, err := readstore.LockReplayable(ctx, tx, reason)
		if err != nil {
			return err
		}
		dec := a.newDecoder()
		var reads []readstore.ReadRecord
		var prices []readstore.PriceRecord
		var readIDs, priceIDs []int64
		for _, it := range items {
			switch it.Source.Topic {
			case a.topics.Reads:
				blk, rej := dec.ReadBlock(it.Source.Value)
				reads = append(reads, readstore.ReadRecord{Source: it.Source, Block: blk, Rejection: rej})
				readIDs = append(readIDs, it.ID)
			case a.topics.Prices:
				p, rej := dec.Price(it.Source.Value, a.market.Currency)
				prices = append(prices, readstore.PriceRecord{Source: it.Source, Price: p, Rejection: rej})
				priceIDs = append(priceIDs, it.ID)
			}
		}
		if len(items) == 0 {
			return nil
		}
		counted, err := readstore.LockCounts(ctx, tx, origins(items))
		if err != nil {
			return err
		}
		applied := Applied{Topic: a.topics.Reads, Partition: -1, Replay: true}
		if reason == meters.UnknownSettlementPoint {
			applied.Topic = a.topics.Prices
		}
		var out outcome
		if err := a.effects(ctx, tx, reads, prices, readstore.ReplaySlot, &applied, &out); err != nil {
			return err
		}
		var ids []int64
		for _, i := range out.appliedReads {
			ids = append(ids, readIDs[i])
		}
		for _, i := range out.appliedPrices {
			ids = append(ids, priceIDs[i])
		}
		if err := readstore.MarkReplayed(ctx, tx, ids); err != nil {
			return err
		}
		if err := readstore.MoveCounts(ctx, tx, replayCounts(reason, reads, prices, out, counted)); err != nil {
			return err
		}
		res = ReplayResult{Replayed: len(ids), StillQuarantined: len(out.quarantined)}
		if len(ids) == 0 {
			return nil
		}
		msgs, err := a.runHooks(ctx, tx, applied)
		if err != nil {
			return err
		}
		return a.outbox.Enqueue(ctx, tx, msgs...)
	})
	return res, err
}

func origins(items []readstore.QuarantineItem) []readstore.Origin {
	out := make([]readstore.Origin, len(items))
	for i, it := range items {
		out[i] = it.Source.Origin
	}
	return out
}

// replayCounts are the changes a replay of records quarantined for reason
// makes to their partitions' counts, whose effects were out: a record
// applied now moves from quarantined to applied, its reads into the reads
// counts; one quarantined again for another reason moves to that reason.
// Records is unchanged: nothing new was consumed. A record its partition
// never counted (consumed before counts were kept) moves nothing.
func replayCounts(reason meters.Reason, reads []readstore.ReadRecord, prices []readstore.PriceRecord, out outcome,
	counted func(readstore.Origin) bool) []readstore.PartitionCounts {
	var changes []readstore.PartitionCounts
	var uncounted readstore.Counts // the changes of uncounted records, dropped
	at := func(o readstore.Origin) *readstore.Counts {
		if !counted(o) {
			return &uncounted
		}
		for i := range changes {
			if changes[i].Topic == o.Topic && changes[i].Partition == o.Partition {
				return &changes[i].Counts
			}
		}
		changes = append(changes, readstore.PartitionCounts{Topic: o.Topic, Partition: o.Partition})
		return &changes[len(changes)-1].Counts
	}
	for k, i := range out.appliedReads {
		r := &reads[i]
		c, ign := at(r.Origin), out.ignored[k]
		c.Applied++
		c.Quarantine(reason, -1)
		c.ReadsApplied += int64(r.Block.Len() - ign.Stale - ign.Duplicates)
		c.ReadsStale += int64(ign.Stale)
		c.ReadsDuplicate += int64(ign.Duplicates)
	}
	for _, i := range out.appliedPrices {
		c := at(prices[i].Origin)
		c.Applied++
		c.Quarantine(reason, -1)
	}
	for _, q := range out.quarantined {
		if q.Reason != reason {
			c := at(q.Origin)
			c.Quarantine(reason, -1)
			c.Quarantine(q.Reason, 1)
		}
	}
	return changes
}

package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement/failpoint"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/kafka"
)

// Config configures the ingest consumer.
type Config struct {
	Kafka  kafka.Config
	Topics kafka.Topics // Reads and Prices are consumed; DeadLetter is written (through the Applier)
	// Group is the consumer group every ingest instance joins; partitions are
	// split among its members. Default "gridsettle-ingest".
	Group string
	// MaxBatchRecords bounds the records of one partition applied in one
	// transaction. Default 4096.
	MaxBatchRecords int
	// MaxBatchReads bounds the reads of one transaction too (a record holds
	// from one to thousands of reads; a price or a rejected record counts
	// one): a batch takes records while they fit, and always at least one.
	// Default 65536 (4096 records of 16 reads).
	MaxBatchReads int
	// Concurrency is how many partitions are applied at once. Default 4.
	Concurrency int
	// RetryBackoff is the pause before a partition is re-read from its
	// stored offset after a transient failure (of a batch, or of reloading
	// the offset); each further failure before the partition commits again
	// doubles it, up to MaxRetryBackoff. Default 500ms.
	RetryBackoff time.Duration
	// MaxRetryBackoff caps RetryBackoff's doubling. Default 5s.
	MaxRetryBackoff time.Duration
	// LockTimeout bounds each wait of a batch's transaction for a lock
	// (Postgres lock_timeout, set locally in the transaction). A batch
	// behind a lock held longer (a frozen sibling, a long registry or
	// alert-scope change) fails as transient and its partition retries after
	// the backoff, paused, instead of holding every partition's next poll
	// for up to the batch's deadline. Default 5s.
	LockTimeout time.Duration
}

// DefaultGroup is the default consumer group.
const DefaultGroup = "gridsettle-ingest"

func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.MaxBatchRecords <= 0 {
		c.MaxBatchRecords = 4096
	}
	if c.MaxBatchReads <= 0 {
		c.MaxBatchReads = 65536
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 500 * time.Millisecond
	}
	if c.MaxRetryBackoff <= 0 {
		c.MaxRetryBackoff = 5 * time.Second
	}
	c.MaxRetryBackoff = max(c.MaxRetryBackoff, c.RetryBackoff)
	if c.LockTimeout <= 0 {
		c.LockTimeout = 5 * time.Second
	}
	return c
}

type topicPartition struct {
	topic     string
	partition int32
}

// Consumer consumes the input topics exactly once into Postgres
// (settlement/README.md "Exactly-once"): a consumer group member that reads
// read_committed, keeps transaction markers to move past them, never
// commits offsets to Kafka, and applies each partition's records in
// transactions that first compare-and-set the offset stored in Postgres.
type Consumer struct {
	cfg     Config
	pool    *pgxpool.Pool
	applier *Applier
	log     *slog.Logger
	m       *metrics
	cl      *kgo.Client

	// Every partition this member owns is either positioned or due for a
	// reload, never neither: a partition without a position would wait for
	// records that, on a quiet partition, never come.
	mu sync.Mutex
	// positions are the stored next offsets of the positioned partitions,
	// as loaded and advanced by this member's own commits.
	positions map[topicPartition]int64
	// reloads are the partitions whose position is unknown (its load failed
	// on assignment, a batch failed, the stored offset moved), with when to
	// reload it from Postgres and seek there. Their fetched records are
	// ignored meanwhile; the seek fetches them again.
	reloads map[topicPartition]time.Time
	// failures counts each partition's failures since it last committed:
	// its backoff.
	failures map[topicPartition]int
	// refused are the partitions whose log this member found, or loaded as,
	// refused (doc.go "A reset input log"), with the stored offset then.
	// They stay unpositioned, with a reload every refusedRecheck that looks
	// whether an operator has cleared the refusal.
	refused map[topicPartition]int64
	// recreatedAt is, by topic found recreated, when to handle it again
	// if it still fails (only the poll loop uses it).
	recreatedAt map[string]time.Time
}

// New returns a Consumer of cfg.Topics that applies records with a. Metrics
// are registered on reg (nil: none). opts are extra franz-go options (tests
// shorten timeouts with them).
func New(cfg Config, pool *pgxpool.Pool, a *Applier, reg prometheus.Registerer, log *slog.Logger, opts ...kgo.Opt) (*Consumer, error) {
	cfg = cfg.withDefaults()
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	c := &Consumer{cfg: cfg, pool: pool, applier: a, log: log, m: m,
		positions: map[topicPartition]int64{}, reloads: map[topicPartition]time.Time{}, failures: map[topicPartition]int{},
		refused: map[topicPartition]int64{}, recreatedAt: map[string]time.Time{}}
	kopts, err := cfg.Kafka.ClientOpts()
	if err != nil {
		return nil, err
	}
	kopts = append(kopts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics.Reads, cfg.Topics.Prices),
		kgo.DisableAutoCommit(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		// While a poll's records are applied, and while reloads seek, no
		// rebalance happens, so seeks never race a revoke.
		kgo.BlockRebalanceOnPoll(),
		kgo.AdjustFetchOffsetsFn(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.revoked),
	)
	c.cl, err = kgo.NewClient(append(kopts, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("create ingest consumer: %w", err)
	}
	return c, nil
}

// assigned replaces the group's offsets of newly assigned partitions with
// the ones stored in Postgres (creating rows at 0 for new partitions). If
// they cannot be loaded, the partitions start unpositioned and due for a
// reload, rather than failing the assignment: an error here makes the
// client leave and rejoin the group, moving every member's partitions.
func (c *Consumer) assigned(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for topic, parts := range offsets {
		ps := make([]int32, 0, len(parts))
		for p := range parts {
			ps = append(ps, p)
		}
		stored, err := readstore.LoadOffsets(ctx, c.pool, topic, ps)
		if err != nil {
			c.log.Error("ingest: cannot load stored offsets on assignment, reloading later", "topic", topic, "partitions", ps, "err", err)
			for _, p := range ps {
				tp := topicPartition{topic, p}
				c.reloadAfter(tp, c.backoff(tp))
			}
			continue
		}
		for _, p := range ps {
			tp := topicPartition{topic, p}
			parts[p] = kgo.NewOffset().At(stored[p].Next).WithEpoch(-1)
			if stored[p].Refused {
				c.loadedRefused(tp, stored[p].Next)
				continue
			}
			c.positioned(tp, stored[p].Next)
		}
		c.log.Info("ingest: partitions assigned", "topic", topic, "offsets", stored)
	}
	return offsets, nil
}

func (c *Consumer) revoked(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, ps := range lost {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			delete(c.positions, tp)
			delete(c.reloads, tp)
			delete(c.failures, tp)
			if _, ok := c.refused[tp]; ok {
				delete(c.refused, tp)
				c.m.refused.DeleteLabelValues(tp.topic, partitionLabel(tp.partition)) // its new owner reports it
			}
		}
	}
}

// position returns tp's position; an owned partition without one is due
// for a reload (now, if nothing had scheduled one).
func (c *Consumer) position(tp topicPartition) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.positions[tp]
	if _, due := c.reloads[tp]; !ok && !due {
		c.reloads[tp] = time.Now()
	}
	return n, ok
}

// positioned sets tp's position: loaded, or advanced by a commit.
func (c *Consumer) positioned(tp topicPartition, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.positions[tp] = n
	delete(c.reloads, tp)
	if _, ok := c.refused[tp]; ok {
		delete(c.refused, tp)
		c.m.refused.WithLabelValues(tp.topic, partitionLabel(tp.partition)).Set(0)
		c.log.Info("ingest: refusal of the input log cleared, consuming again", "topic", tp.topic, "partition", tp.partition,
			"stored_offset", n)
	}
}

// committed sets tp's position after a commit, which ends its failures.
func (c *Consumer) committed(tp topicPartition, n int64) {
	c.positioned(tp, n)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.failures, tp)
}

// reloadAfter drops tp's position and schedules its reload after d.
func (c *Consumer) reloadAfter(tp topicPartition, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.positions, tp)
	c.reloads[tp] = time.Now().Add(d)
}

// refusedRecheck is how often a refused partition's row is read again, to
// see whether an operator has cleared the refusal.
const refusedRecheck = 5 * time.Second

// stillRefused keeps tp, whose stored row is refused at offset stored,
// unpositioned and paused, and schedules its next look at the row. It
// reports whether the refusal is new to this member.
func (c *Consumer) stillRefused(tp topicPartition, stored int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.positions, tp)
	c.reloads[tp] = time.Now().Add(refusedRecheck)
	if _, ok := c.refused[tp]; ok {
		return false
	}
	c.refused[tp] = stored
	c.m.refused.WithLabelValues(tp.topic, partitionLabel(tp.partition)).Set(1)
	return true
}

// loadedRefused handles a partition loaded as refused (on assignment, or
// recorded by another member): a refusal new to this member is logged as
// loudly as one found here.
func (c *Consumer) loadedRefused(tp topicPartition, stored int64) {
	if c.stillRefused(tp, stored) {
		c.log.Error(refusedMsg, "topic", tp.topic, "partition", tp.partition, "stored_offset", stored)
	}
}

const refusedMsg = "ingest: input log refused: it ends below the stored offset (reset or recreated); " +
	"the partition consumes nothing until an operator resets its stored offset (settlement/ingest doc.go)"

// backoff counts a failure of tp and returns the pause before its retry.
func (c *Consumer) backoff(tp topicPartition) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.failures[tp]
	c.failures[tp] = n + 1
	d := c.cfg.RetryBackoff
	for range n {
		if d >= c.cfg.MaxRetryBackoff {
			break
		}
		d *= 2
	}
	return min(d, c.cfg.MaxRetryBackoff)
}

// nextReload is when the earliest reload is due.
func (c *Consumer) nextReload() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next time.Time
	for _, t := range c.reloads {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	return next, !next.IsZero()
}

// dueReloads are the partitions whose reload is due at now, by topic.
func (c *Consumer) dueReloads(now time.Time) map[string][]int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	due := map[string][]int32{}
	for tp, t := range c.reloads {
		if !t.After(now) {
			due[tp.topic] = append(due[tp.topic], tp.partition)
		}
	}
	return due
}

// Run consumes until ctx is done, then leaves the group and closes the
// client. Batches in flight when ctx ends finish (commit or roll back); no
// new batch starts. Run returns nil then.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.cl.Close()
	decoders := make(chan *meters.Decoder, c.cfg.Concurrency)
	for range c.cfg.Concurrency {
		decoders <- c.applier.newDecoder()
	}
	for {
		fetches := c.poll(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			c.cl.AllowRebalance()
			return nil
		}
		recreated := map[string]bool{}
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) {
				return // the poll's own deadline: a reload is due
			}
			if errors.Is(err, kerr.UnknownTopicID) {
				recreated[topic] = true
				return
			}
			c.log.Warn("ingest: fetch error", "topic", topic, "partition", p, "err", err)
			// The client found the log ending below where it was
			// consuming and moves elsewhere in it: refuse the log rather
			// than follow.
			var loss *kgo.ErrDataLoss
			if errors.As(err, &loss) {
				tp := topicPartition{topic, p}
				if from, ok := c.position(tp); ok && loss.ResetTo < from {
					c.refuse(ctx, tp, from, loss.ResetTo)
				}
			}
		})
		for topic := range recreated {
			c.topicRecreated(ctx, topic)
		}
		var wg sync.WaitGroup
		for _, fp := range byPartition(fetches) {
			dec := <-decoders
			wg.Go(func() {
				defer func() { decoders <- dec }()
				c.consumePartition(ctx, dec, fp)
			})
		}
		wg.Wait()
		// Seeking is safe here: no batch is in flight, no rebalance runs.
		c.reload(ctx)
		c.pauseWaiting()
		c.cl.AllowRebalance()
	}
}

// poll waits for records, but only until the next reload is due, so that an
// unpositioned partition is reloaded whether records arrive or not. It then
// takes, without waiting, what the client has already fetched, up to a
// round's bound: one fetch response can hold a partition's whole producer
// batch (a head-end's catch-up arrives in batches of thousands of records),
// and a poll of n records then held one or two partitions, so that a round
// applied one or two partitions at a time whatever Concurrency was (the
// bench measured 0.4 of Concurrency busy over a round). The records taken
// were in memory already; the bound keeps the time rebalances wait for a
// round bounded.
func (c *Consumer) poll(ctx context.Context) kgo.Fetches {
	n := c.cfg.MaxBatchRecords * c.cfg.Concurrency
	due, ok := c.nextReload()
	var fetches kgo.Fetches
	if !ok {
		fetches = c.cl.PollRecords(ctx, n)
	} else {
		pctx, cancel := context.WithDeadline(ctx, due)
		fetches = c.cl.PollRecords(pctx, n)
		cancel()
	}
	records, bytes := roundSize(fetches)
	for records > 0 && records < roundRecords*n && bytes < roundBytes && ctx.Err() == nil {
		// A nil context drains what is buffered and never waits.
		more := c.cl.PollRecords(nil, n)
		r, b := roundSize(more)
		if r == 0 && len(more.Errors()) == 0 {
			break
		}
		fetches = append(fetches, more...)
		records, bytes = records+r, bytes+b
	}
	return fetches
}

// A round takes at most roundRecords polls' worth of records and stops
// taking more once it holds roundBytes of record values.
const (
	roundRecords = 4
	roundBytes   = 32 << 20
)

// roundSize is the records of fs and the bytes of their values.
func roundSize(fs kgo.Fetches) (records, bytes int) {
	fs.EachRecord(func(r *kgo.Record) {
		records++
		bytes += len(r.Value)
	})
	return records, bytes
}

// byPartition is a round's records by partition, each partition's records
// from every poll of the round joined in offset order (the client delivers
// a partition's records in order across polls), with the latest high
// watermark and last stable offset: a partition's records must be applied
// by one goroutine, in order.
func byPartition(fs kgo.Fetches) []kgo.FetchTopicPartition {
	var out []kgo.FetchTopicPartition
	at := map[topicPartition]int{}
	fs.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) == 0 {
			return
		}
		tp := topicPartition{fp.Topic, fp.Partition}
		i, ok := at[tp]
		if !ok {
			at[tp] = len(out)
			out = append(out, fp)
			return
		}
		p := &out[i]
		p.Records = slices.Concat(p.Records, fp.Records)
		p.HighWatermark, p.LastStableOffset, p.LogStartOffset = fp.HighWatermark, fp.LastStableOffset, fp.LogStartOffset
	})
	return out
}

// reloadTimeout bounds one reload, which holds up the poll loop.
const reloadTimeout = 10 * time.Second

// reload reloads the stored offsets of the partitions due and seeks there,
// dropping whatever was fetched beyond them. A partition whose reload fails
// stays due, after a backoff: it is retried until it succeeds.
func (c *Consumer) reload(ctx context.Context) {
	for topic, ps := range c.dueReloads(time.Now()) {
		rctx, cancel := context.WithTimeout(ctx, reloadTimeout)
		stored, err := readstore.LoadOffsets(rctx, c.pool, topic, ps)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			for _, p := range ps {
				tp := topicPartition{topic, p}
				d := c.backoff(tp)
				c.reloadAfter(tp, d)
				c.log.Error("ingest: cannot reload stored offset, retrying", "topic", topic, "partition", p, "retry_in", d, "err", err)
			}
			continue
		}
		seek := make(map[int32]kgo.EpochOffset, len(ps))
		for _, p := range ps {
			tp := topicPartition{topic, p}
			if stored[p].Refused {
				c.loadedRefused(tp, stored[p].Next)
				continue
			}
			c.positioned(tp, stored[p].Next)
			seek[p] = kgo.EpochOffset{Epoch: -1, Offset: stored[p].Next}
		}
		if len(seek) > 0 {
			c.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{topic: seek})
		}
	}
}

// pauseWaiting pauses fetching the partitions that wait (for a reload
// after a backoff, or refused) and resumes the others, so that a failing
// partition costs the others no fetch capacity and its records are not
// fetched only to be dropped.
func (c *Consumer) pauseWaiting() {
	now := time.Now()
	wait := map[string][]int32{}
	c.mu.Lock()
	for tp, t := range c.reloads {
		if t.After(now) {
			wait[tp.topic] = append(wait[tp.topic], tp.partition)
		}
	}
	c.mu.Unlock()
	resume := map[string][]int32{}
	for topic, ps := range c.cl.PauseFetchPartitions(nil) {
		for _, p := range ps {
			if !slices.Contains(wait[topic], p) {
				resume[topic] = append(resume[topic], p)
			}
		}
	}
	if len(resume) > 0 {
		c.cl.ResumeFetchPartitions(resume)
	}
	if len(wait) > 0 {
		c.cl.PauseFetchPartitions(wait)
	}
}

// consumePartition applies one partition's fetched records in batches.
func (c *Consumer) consumePartition(ctx context.Context, dec *meters.Decoder, fp kgo.FetchTopicPartition) {
	tp := topicPartition{fp.Topic, fp.Partition}
	from, ok := c.position(tp)
	if !ok {
		return // the reload seeks back to the stored offset and fetches these again
	}
	// The client delivers nothing below the offset it was set to, so a log
	// that ends below the stored offset, or records below it, mean the
	// client moved into a log that was reset under it: a recreated topic,
	// or a broker that lost data.
	if fp.HighWatermark < from {
		c.refuse(ctx, tp, from, fp.HighWatermark)
		return
	}
	recs := fp.Records
	for len(recs) > 0 && recs[0].Offset < from {
		recs = recs[1:]
	}
	if skipped := len(fp.Records) - len(recs); skipped > 0 {
		// The log reaches past the stored offset again, so it cannot be
		// told from the one applied: say what is skipped.
		c.m.skipped.WithLabelValues(tp.topic, partitionLabel(tp.partition)).Add(float64(skipped))
		c.log.Error("ingest: records below the stored offset delivered, skipped: the input log may have been reset", "topic", tp.topic,
			"partition", tp.partition, "stored_offset", from, "first_offset", fp.Records[0].Offset, "skipped", skipped,
			"log_end", fp.HighWatermark)
	}
	// Records are decoded as batches fill, so that no more than one
	// batch's reads is decoded at a time.
	ds := make([]decoded, 0, min(len(recs), c.cfg.MaxBatchRecords))
	var carry *decoded // decoded, but did not fit the previous batch
	for len(recs) > 0 || carry != nil {
		ds, reads := ds[:0], 0
		if carry != nil {
			ds, reads, carry = append(ds, *carry), carry.reads(), nil
		}
		for len(recs) > 0 && len(ds) < c.cfg.MaxBatchRecords {
			r := recs[0]
			d, err := c.applier.decode(dec, tp.topic, tp.partition,
				input{offset: r.Offset, control: r.Attrs.IsControl(), key: r.Key, value: r.Value})
			if err != nil {
				c.failed(ctx, tp, err)
				return
			}
			recs = recs[1:]
			if len(ds) > 0 && d.reads() > 0 && reads+d.reads() > c.cfg.MaxBatchReads {
				carry = &d
				break
			}
			ds, reads = append(ds, d), reads+d.reads()
		}
		next, err := c.settle(ctx, tp, from, ds, fp.LastStableOffset)
		if err != nil {
			c.failed(ctx, tp, err)
			return
		}
		c.committed(tp, next)
		from = next
	}
}

// recreatedRetry is the pause before handling a recreated topic again when
// its partitions' refusals could not be recorded.
const recreatedRetry = 5 * time.Second

// topicRecreated handles a topic deleted and created again under the
// client, which fails it with UNKNOWN_TOPIC_ID until it is purged and
// subscribed to again. First every partition of it this member owns that
// had consumed anything is refused: its stored offset points into the
// deleted log, and the new log's records below it would be skipped unseen,
// however long the new log is. Then the topic is purged and added back; the
// rebalance that follows assigns its partitions again, the refused ones
// staying refused.
func (c *Consumer) topicRecreated(ctx context.Context, topic string) {
	if time.Now().Before(c.recreatedAt[topic]) {
		return
	}
	c.recreatedAt[topic] = time.Now().Add(recreatedRetry)
	owned := c.owned(topic)
	rctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	ends, err := kadm.NewClient(c.cl).ListEndOffsets(rctx, topic)
	if err == nil {
		err = ends.Error()
	}
	var stored map[int32]readstore.LoadedOffset
	if err == nil && len(owned) > 0 {
		stored, err = readstore.LoadOffsets(rctx, c.pool, topic, owned)
	}
	if err != nil {
		c.log.Error("ingest: input topic recreated; cannot record the refusal of its partitions yet, retrying", "topic", topic,
			"retry_in", recreatedRetry, "err", err)
		return
	}
	for _, p := range owned {
		s := stored[p]
		if s.Next == 0 || s.Refused {
			continue
		}
		end, _ := ends.Lookup(topic, p) // a partition the new topic lacks ends at 0
		ok, err := readstore.RefuseLog(rctx, c.pool, topic, p, s.Next, end.Offset)
		if err != nil {
			c.log.Error("ingest: input topic recreated; cannot record the refusal of a partition yet, retrying", "topic", topic,
				"partition", p, "retry_in", recreatedRetry, "err", err)
			return
		}
		if ok {
			c.log.Error(refusedMsg, "topic", topic, "partition", p, "stored_offset", s.Next, "log_end", end.Offset, "cause", "topic recreated")
		}
	}
	c.log.Warn("ingest: input topic recreated, subscribing to it again", "topic", topic)
	c.cl.PurgeTopicsFromConsuming(topic)
	c.cl.AddConsumeTopics(topic)
}

// owned are the partitions of topic this member owns.
func (c *Consumer) owned(topic string) []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ps []int32
	for _, m := range []map[topicPartition]int64{c.positions, c.refused} {
		for tp := range m {
			if tp.topic == topic && !slices.Contains(ps, tp.partition) {
				ps = append(ps, tp.partition)
			}
		}
	}
	for tp := range c.reloads {
		if tp.topic == topic && !slices.Contains(ps, tp.partition) {
			ps = append(ps, tp.partition)
		}
	}
	return ps
}

// refuse records that tp's log ends at end, below the stored offset: the
// partition consumes nothing more until an operator clears the refusal
// (doc.go). If it cannot be recorded the partition retries from its stored
// offset, which finds the log's end again.
func (c *Consumer) refuse(ctx context.Context, tp topicPartition, stored, end int64) {
	rctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	ok, err := readstore.RefuseLog(rctx, c.pool, tp.topic, tp.partition, stored, end)
	cancel()
	switch {
	case err != nil:
		c.failed(ctx, tp, err)
		return
	case !ok: // another owner, or an operator, moved the stored offset: look again from there
		c.reloadAfter(tp, 0)
		return
	}
	c.stillRefused(tp, stored)
	c.log.Error(refusedMsg, "topic", tp.topic, "partition", tp.partition, "stored_offset", stored, "log_end", end)
}

// settle applies in, the records of tp from offset `from`, and returns the
// offset after them. A batch refused for what one of its records holds (any
// error but a transient one) is split in two and each half applied in turn,
// down to the record, which is set aside as unprocessable: in the same pass,
// the other records are applied (meters/README.md "Nothing a producer sends can
// stop ingest"). A transient error, or a stored offset that moved, is
// returned with the offset committed so far; the partition then restarts
// from its stored offset.
func (c *Consumer) settle(ctx context.Context, tp topicPartition, from int64, in []decoded, lastStable int64) (int64, error) {
	start := time.Now()
	b := batchOf(tp.topic, tp.partition, from, in)
	out, err := c.applyBatch(ctx, b)
	if err == nil {
		c.m.committed(b, out, time.Since(start).Seconds(), lastStable)
		return b.to, nil
	}
	if errors.Is(err, errOffsetMoved) || transient(err) || ctx.Err() != nil {
		return from, fmt.Errorf("apply %s/%d [%d, %d): %w", b.topic, b.partition, b.from, b.to, err)
	}
	c.m.failures.WithLabelValues(tp.topic, partitionLabel(tp.partition)).Inc()
	if len(b.reads)+len(b.prices) <= 1 {
		return c.setAside(ctx, b, err, lastStable)
	}
	c.log.Warn("ingest: batch refused, applying it in parts to find the record", "topic", b.topic, "partition", b.partition,
		"from", b.from, "to", b.to, "err", err)
	mid := len(in) / 2
	next, err := c.settle(ctx, tp, from, in[:mid], lastStable)
	if err != nil {
		return next, err
	}
	return c.settle(ctx, tp, next, in[mid:], lastStable)
}

// setAside quarantines the one record of b, which was refused with cause,
// as unprocessable (a record its decoder had rejected keeps its reason),
// with its dead letter. If even that is refused it is quarantined without a
// dead letter, and if that is refused too, the offset moves past it alone
// and only the log and the Kafka log keep it: a record can cost its
// dead letter, never its partition. A batch of transaction markers only has
// no record to blame: its error is returned, to be retried.
func (c *Consumer) setAside(ctx context.Context, b *batch, cause error, lastStable int64) (int64, error) {
	start := time.Now()
	var q readstore.Quarantined
	switch {
	case len(b.reads) == 1:
		q = unprocessable(b.reads[0].Source, b.reads[0].Rejection, cause)
	case len(b.prices) == 1:
		q = unprocessable(b.prices[0].Source, b.prices[0].Rejection, cause)
	default:
		return b.from, fmt.Errorf("apply %s/%d [%d, %d), transaction markers only: %w", b.topic, b.partition, b.from, b.to, cause)
	}
	steps := []struct {
		what       string
		quarantine bool
		deadLetter bool
	}{{"quarantine and dead letter", true, true}, {"quarantine", true, false}, {"offset only", false, false}}
	err := cause
	for _, s := range steps {
		err = c.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
			return c.applier.setAside(ctx, tx, b, q, s.quarantine, s.deadLetter)
		})
		switch {
		case err == nil:
			out := outcome{}
			if s.quarantine {
				out.quarantined = []readstore.Quarantined{q}
			}
			c.m.committed(b, out, time.Since(start).Seconds(), lastStable)
			level := slog.LevelWarn
			if !s.deadLetter {
				level = slog.LevelError
			}
			c.log.Log(ctx, level, "ingest: record set aside", "topic", b.topic, "partition", b.partition, "offset", q.Offset,
				"reason", q.Reason, "kept", s.what, "detail", q.Detail)
			return b.to, nil
		case errors.Is(err, errOffsetMoved) || transient(err) || ctx.Err() != nil:
			return b.from, fmt.Errorf("set aside %s/%d offset %d: %w", b.topic, b.partition, q.Offset, err)
		}
		c.log.Error("ingest: cannot set a refused record aside this way", "topic", b.topic, "partition", b.partition,
			"offset", q.Offset, "way", s.what, "err", err)
		q.Detail = meters.SafeDetail(q.Detail + "; its dead letter was refused: " + err.Error())
	}
	return b.from, fmt.Errorf("set aside %s/%d offset %d: %w", b.topic, b.partition, q.Offset, err)
}

// unprocessable is the quarantine item of a record refused with cause: a
// record the decoder had rejected keeps its rejection, any other is
// meters.Unprocessable naming the error.
func unprocessable(src readstore.Source, rej *meters.Rejection, cause error) readstore.Quarantined {
	if rej != nil {
		return readstore.Quarantined{Source: src, Reason: rej.Reason, Detail: meters.SafeDetail(rej.Detail)}
	}
	return readstore.Quarantined{Source: src, Reason: meters.Unprocessable, Detail: meters.SafeDetail(cause.Error())}
}

// batchTimeout bounds one batch transaction, so that a shutdown that lets
// in-flight batches finish cannot hang on a stuck database.
const batchTimeout = time.Minute

// applyBatch runs b's transaction.
func (c *Consumer) applyBatch(ctx context.Context, b *batch) (outcome, error) {
	failpoint.Hit(failpoint.IngestBeforeBegin)
	if err := c.applier.prepare(ctx, b); err != nil {
		return outcome{}, err
	}
	var out outcome
	err := c.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		out, err = c.applier.apply(ctx, tx, b)
		return err
	})
	if err != nil {
		return outcome{}, err
	}
	failpoint.Hit(failpoint.IngestAfterCommit)
	return out, nil
}

// inTx runs f in one transaction, under Config.LockTimeout and
// batchTimeout: a timed-out batch fails as transient (errors.go) and is
// retried, never quarantined. A transaction that has started finishes even
// when ctx ends (shutdown), so that what a stopped consumer reports as
// committed is exactly what committed.
func (c *Consumer) inTx(ctx context.Context, f func(context.Context, pgx.Tx) error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	defer cancel()
	return pgx.BeginFunc(bctx, c.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(bctx, `SELECT set_config('lock_timeout', $1, true)`,
			strconv.FormatInt(c.cfg.LockTimeout.Milliseconds(), 10)); err != nil {
			return fmt.Errorf("set the batch's lock timeout: %w", err)
		}
		return f(bctx, tx)
	})
}

// failed handles a batch that did not commit: its effects are gone with the
// rolled-back transaction; the partition restarts from the stored offset,
// at once if another owner moved it, else after a backoff.
func (c *Consumer) failed(ctx context.Context, tp topicPartition, err error) {
	if errors.Is(err, errOffsetMoved) {
		c.m.casMisses.WithLabelValues(tp.topic, partitionLabel(tp.partition)).Inc()
		c.log.Info("ingest: stored offset moved, reloading", "topic", tp.topic, "partition", tp.partition)
		c.reloadAfter(tp, 0)
		return
	}
	d := c.backoff(tp)
	c.reloadAfter(tp, d)
	if ctx.Err() != nil {
		return // shutting down; the next owner starts from the stored offset
	}
	c.m.failures.WithLabelValues(tp.topic, partitionLabel(tp.partition)).Inc()
	c.log.Error("ingest: batch failed, retrying from the stored offset", "topic", tp.topic, "partition", tp.partition,
		"retry_in", d, "err", err)
}

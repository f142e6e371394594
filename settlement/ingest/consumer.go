package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/settlement/failpoint"
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
	// Concurrency is how many partitions are applied at once. Default 4.
	Concurrency int
	// RetryBackoff is the pause after a failed batch before the partition is
	// re-read from its stored offset. Default 500ms.
	RetryBackoff time.Duration
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
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 500 * time.Millisecond
	}
	return c
}

type topicPartition struct {
	topic     string
	partition int32
}

// Consumer consumes the input topics exactly once into Postgres
// (design/exactly-once.md): a consumer group member that reads
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

	mu sync.Mutex
	// positions are the stored next offsets of the partitions this member
	// owns, as loaded on assignment and advanced by its own commits. A
	// partition missing here must be re-read from Postgres before use.
	positions map[topicPartition]int64
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
	c := &Consumer{cfg: cfg, pool: pool, applier: a, log: log, m: m, positions: map[topicPartition]int64{}}
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
		// While a poll's records are applied no rebalance happens, so the
		// seeks of failed batches never race a revoke.
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
// the ones stored in Postgres (creating rows at 0 for new partitions).
func (c *Consumer) assigned(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for topic, parts := range offsets {
		ps := make([]int32, 0, len(parts))
		for p := range parts {
			ps = append(ps, p)
		}
		stored, err := postgres.LoadOffsets(ctx, c.pool, topic, ps)
		if err != nil {
			c.log.Error("ingest: cannot load stored offsets on assignment", "topic", topic, "err", err)
			return nil, err
		}
		for _, p := range ps {
			parts[p] = kgo.NewOffset().At(stored[p]).WithEpoch(-1)
			c.setPosition(topicPartition{topic, p}, stored[p])
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
			delete(c.positions, topicPartition{topic, p})
		}
	}
}

func (c *Consumer) position(tp topicPartition) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.positions[tp]
	return n, ok
}

func (c *Consumer) setPosition(tp topicPartition, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.positions[tp] = n
}

func (c *Consumer) forget(tp topicPartition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.positions, tp)
}

// Run consumes until ctx is done, then leaves the group and closes the
// client. Batches in flight when ctx ends finish (commit or roll back); no
// new batch starts. Run returns nil then.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.cl.Close()
	decoders := make(chan *meters.Decoder, c.cfg.Concurrency)
	for range c.cfg.Concurrency {
		decoders <- new(meters.Decoder)
	}
	for {
		// A bounded poll keeps the time rebalances wait for it bounded.
		fetches := c.cl.PollRecords(ctx, c.cfg.MaxBatchRecords*c.cfg.Concurrency)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			c.cl.AllowRebalance()
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			c.log.Warn("ingest: fetch error", "topic", topic, "partition", p, "err", err)
		})
		var wg sync.WaitGroup
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			dec := <-decoders
			wg.Go(func() {
				defer func() { decoders <- dec }()
				c.consumePartition(ctx, dec, fp)
			})
		})
		wg.Wait()
		c.cl.AllowRebalance()
	}
}

// consumePartition applies one partition's fetched records in batches.
func (c *Consumer) consumePartition(ctx context.Context, dec *meters.Decoder, fp kgo.FetchTopicPartition) {
	tp := topicPartition{fp.Topic, fp.Partition}
	from, ok := c.position(tp)
	if !ok {
		c.resync(ctx, tp)
		return
	}
	recs := fp.Records
	// Records below the stored position were applied already.
	for len(recs) > 0 && recs[0].Offset < from {
		recs = recs[1:]
	}
	in := make([]input, 0, min(len(recs), c.cfg.MaxBatchRecords))
	for len(recs) > 0 {
		n := min(len(recs), c.cfg.MaxBatchRecords)
		in = in[:0]
		for _, r := range recs[:n] {
			in = append(in, input{offset: r.Offset, control: r.Attrs.IsControl(), key: r.Key, value: r.Value})
		}
		start := time.Now()
		b, err := c.applier.decode(dec, tp.topic, tp.partition, from, in)
		var out outcome
		if err == nil {
			out, err = c.applyBatch(ctx, b)
		}
		if err != nil {
			c.failed(ctx, tp, err)
			return
		}
		c.m.committed(b, out, time.Since(start).Seconds(), fp.LastStableOffset)
		c.setPosition(tp, b.to)
		from = b.to
		recs = recs[n:]
	}
}

// batchTimeout bounds one batch transaction, so that a shutdown that lets
// in-flight batches finish cannot hang on a stuck database.
const batchTimeout = time.Minute

// applyBatch runs b's transaction. A batch that has started finishes even
// when ctx ends (shutdown), so that what a stopped consumer reports as
// committed is exactly what committed.
func (c *Consumer) applyBatch(ctx context.Context, b *batch) (outcome, error) {
	failpoint.Hit(failpoint.IngestBeforeBegin)
	if ctx.Err() != nil {
		return outcome{}, ctx.Err()
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	defer cancel()
	return c.applier.apply(bctx, c.pool, b)
}

// failed handles a batch that did not commit: its effects are gone with the
// rolled-back transaction; the partition restarts from the stored offset.
func (c *Consumer) failed(ctx context.Context, tp topicPartition, err error) {
	if ctx.Err() != nil {
		return // shutting down; the next owner starts from the stored offset
	}
	if errors.Is(err, errOffsetMoved) {
		c.m.casMisses.WithLabelValues(tp.topic, partitionLabel(tp.partition)).Inc()
		c.log.Info("ingest: stored offset moved, reloading", "topic", tp.topic, "partition", tp.partition)
	} else {
		c.m.failures.WithLabelValues(tp.topic, partitionLabel(tp.partition)).Inc()
		c.log.Error("ingest: batch failed, retrying from the stored offset", "topic", tp.topic, "partition", tp.partition, "err", err)
		c.pause(ctx)
	}
	c.resync(ctx, tp)
}

func (c *Consumer) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(c.cfg.RetryBackoff):
	}
}

// resync reloads the partition's stored offset and seeks there, dropping
// whatever was fetched beyond it.
func (c *Consumer) resync(ctx context.Context, tp topicPartition) {
	stored, err := postgres.LoadOffsets(ctx, c.pool, tp.topic, []int32{tp.partition})
	if err != nil {
		c.forget(tp) // the next records of tp try again
		if ctx.Err() == nil {
			c.log.Error("ingest: cannot reload stored offset", "topic", tp.topic, "partition", tp.partition, "err", err)
			c.pause(ctx)
		}
		return
	}
	n := stored[tp.partition]
	c.setPosition(tp, n)
	c.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{tp.topic: {tp.partition: {Epoch: -1, Offset: n}}})
}

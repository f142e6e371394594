package main

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/outbox"
	"github.com/gridsettle/gridsettle/settlement/publish"
)

// publishInput is n outbox messages shaped like a run's output: statement
// lines keyed by participant and account charges keyed by account, in
// equal numbers, with the bytes of real messages.
func (b *bench) publishInput(n, rep int) []outbox.Message {
	msgs := make([]outbox.Message, n)
	day := benchOperatingDay.String()
	for i := range msgs {
		run := fmt.Sprintf("run-%s-final-%d", day, rep+1)
		if i%2 == 0 {
			p, sp := fmt.Sprintf("RETAILER-%03d", 1+i%40), fmt.Sprintf("SP-%03d", 1+(i/40)%50)
			id := fmt.Sprintf("stmt-%s-%s-%s-v%d-%d", day, p, sp, rep+1, i)
			msgs[i] = outbox.Message{Topic: b.topics.Statements, Key: []byte(p), ID: id, Schema: settlement.StatementSchema,
				Value: fmt.Appendf(nil, `{"statement_id":%q,"participant_id":%q,"settlement_point":%q,"operating_day":%q,`+
					`"run_type":"final","version":%d,"previous_version":null,"currency":"USD","energy_mwh":"%d.%06d",`+
					`"amount":"%d.%02d","unpriced_energy_mwh":"0.000000","previous_energy_mwh":"0.000000","previous_amount":"0.00",`+
					`"delta_energy_mwh":"%d.%06d","delta_amount":"%d.%02d","intervals":96,"priced_intervals":96,`+
					`"reads":{"actual":%d,"estimated":%d,"substituted":0},"run_id":%q,"computed_at":"2026-12-14T06:00:00Z"}`,
					id, p, sp, day, rep+1, i%900, i*7919%1000000, i*31, i%100, i%900, i*7919%1000000, i*31, i%100, 4000+i%300, i%7, run)}
			continue
		}
		a := fmt.Sprintf("ACC-%07d", 1+i/2)
		id := fmt.Sprintf("chg-%s-%s-v%d-%d", day, a, rep+1, i)
		msgs[i] = outbox.Message{Topic: b.topics.AccountCharges, Key: []byte(a), ID: id, Schema: settlement.ChargeSchema,
			Value: fmt.Appendf(nil, `{"charge_id":%q,"account_id":%q,"participant_id":"RETAILER-%03d","operating_day":%q,`+
				`"run_type":"final","version":%d,"import_kwh":"%d.%03d","export_kwh":"0.000","net_kwh":"%d.%03d",`+
				`"energy_cost":"%d.%02d","previous_energy_cost":"0.00","delta_energy_cost":"%d.%02d","currency":"USD","run_id":%q}`,
				id, a, 1+i%40, day, rep+1, i%40, i%1000, i%40, i%1000, i%9, i%100, i%9, i%100, run)}
	}
	return msgs
}

func (b *bench) publish(ctx context.Context) error {
	n := b.opts.sizes.Records
	kcl, err := b.client()
	if err != nil {
		return err
	}
	defer kcl.Close()
	ob, err := outboxWriter(ctx, kcl, b.topics.Outputs())
	if err != nil {
		return err
	}
	var rates, limits, txnRates []float64
	for rep := range b.opts.repeat {
		msgs := b.publishInput(n, rep)
		b.log.Info("publish: filling the outbox", "records", n)
		for i := 0; i < n; i += 5000 {
			tx, err := b.pool.Begin(ctx)
			if err != nil {
				return err
			}
			if err := ob.Enqueue(ctx, tx, msgs[i:min(i+5000, n)]...); err != nil {
				tx.Rollback(ctx) //nolint:errcheck // failing anyway
				return err
			}
			if err := tx.Commit(ctx); err != nil {
				return fmt.Errorf("commit outbox rows: %w", err)
			}
		}
		if err := publish.AnalyzeOutbox(ctx, b.pool); err != nil {
			return err
		}
		b.log.Info("publish: relaying")
		rate, err := b.relay(ctx, n)
		if err != nil {
			return err
		}
		if err := b.checkPublished(ctx, n*(rep+1)); err != nil {
			return err
		}
		b.log.Info("publish: bare idempotent producer")
		limit, err := b.bareProduce(ctx, ob, msgs, rep)
		if err != nil {
			return err
		}
		txn, err := b.bareTransactions(ctx, ob, msgs, rep)
		if err != nil {
			return err
		}
		rates, limits, txnRates = append(rates, rate), append(limits, limit), append(txnRates, txn)
	}
	b.print(benchFigure{name: "publishing (transactional relay)", unit: "records/s", values: rates, limits: limits,
		limitWhat: "bare idempotent producer, same records",
		target:    "≥ 50,000 records/s and ≥ 0.3 of the bare producer",
		pass:      func(v, ratio float64) bool { return v >= 50_000 && ratio >= 0.3 },
		note:      sizeNote(n, 200_000, "records")})
	b.print(benchFigure{name: "  diagnostic: bare transactions", unit: "records/s", values: txnRates, limits: limits,
		limitWhat: "bare idempotent producer",
		note:      "one transactional producer per stream, the relay's batch size per transaction, no database: the Kafka side's ceiling"})
	return nil
}

// bareTransactions is a diagnostic: the relay's Kafka side alone. One
// transactional producer per stream, as the relay has, commits the same
// records in transactions of the relay's batch size, with no database.
func (b *bench) bareTransactions(ctx context.Context, ob *outbox.Writer, msgs []outbox.Message, rep int) (float64, error) {
	batch := b.opts.pubBatch
	if batch == 0 {
		batch = 1000 // the relay's default
	}
	type stream struct {
		topic string
		part  int32
	}
	by := map[stream][]*kgo.Record{}
	for i, m := range msgs {
		p, err := ob.Partition(m.Topic, m.Key)
		if err != nil {
			return 0, err
		}
		s := stream{"bench.bare." + m.Topic, p}
		by[s] = append(by[s], &kgo.Record{Topic: s.topic, Partition: p, Key: m.Key, Value: m.Value, Headers: bareHeaders(m, i+1)})
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	fail := func(err error) {
		mu.Lock()
		first = cmp.Or(first, err)
		mu.Unlock()
	}
	t0 := time.Now()
	for s, recs := range by {
		wg.Go(func() {
			cl, err := b.client(kgo.TransactionalID(fmt.Sprintf("bench-bare-%s-%d-%d", s.topic, s.part, rep)),
				kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
			if err != nil {
				fail(err)
				return
			}
			defer cl.Close()
			for i := 0; i < len(recs); i += batch {
				if err := cl.BeginTransaction(); err != nil {
					fail(err)
					return
				}
				if err := cl.ProduceSync(ctx, recs[i:min(i+batch, len(recs))]...).FirstErr(); err != nil {
					fail(err)
					return
				}
				if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return 0, fmt.Errorf("bare transactions: %w", first)
	}
	return float64(len(msgs)) / time.Since(t0).Seconds(), nil
}

// relay runs the publish component on a full outbox until it is empty and
// returns the sustained rate: from the first committed record (after the
// leases, ProducerID and the log's tail) to the last.
func (b *bench) relay(ctx context.Context, n int) (float64, error) {
	reg := prometheus.NewRegistry()
	r, err := publish.New(b.pool, b.kafkaConfig(), publish.Config{Env: "bench", Topics: b.topics.Outputs(), BatchSize: b.opts.pubBatch}, b.quiet, reg)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { cancel(); <-done }()
	var (
		tFirst, tEnd time.Time
		first        float64
		lastProgress = time.Now()
		last         float64
	)
	for tEnd.IsZero() {
		time.Sleep(10 * time.Millisecond)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		published, err := counterSum(reg, "gridsettle_published_records_total")
		if err != nil {
			return 0, err
		}
		now := time.Now()
		if published > 0 && tFirst.IsZero() {
			tFirst, first = now, published
		}
		if published != last {
			last, lastProgress = published, now
		}
		if published >= float64(n) {
			tEnd = now
		}
		if now.Sub(lastProgress) > 2*time.Minute {
			return 0, fmt.Errorf("relay made no progress for 2 minutes at %v of %d records", published, n)
		}
	}
	secs := tEnd.Sub(tFirst).Seconds()
	if secs <= 0 {
		return 0, fmt.Errorf("relay finished within one poll: the input is too small to measure")
	}
	return (float64(n) - first) / secs, nil
}

func counterSum(reg *prometheus.Registry, name string) (float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return 0, fmt.Errorf("gather metrics: %w", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum, nil
}

// checkPublished reads the output topics read_committed: exactly want
// records, each gridsettle-id once, each carrying a gridsettle-seq.
func (b *bench) checkPublished(ctx context.Context, want int) error {
	cl, err := b.client(kgo.ConsumeTopics(b.topics.Statements, b.topics.AccountCharges),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return err
	}
	defer cl.Close()
	ids := make(map[string]struct{}, want)
	got := 0
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for got < want {
		fs := cl.PollFetches(cctx)
		if err := cctx.Err(); err != nil {
			return fmt.Errorf("read the output back: %d of %d records: %w", got, want, err)
		}
		var bad error
		fs.EachRecord(func(r *kgo.Record) {
			got++
			var id string
			hasSeq := false
			for _, h := range r.Headers {
				switch h.Key {
				case publish.HeaderID:
					id = string(h.Value)
				case publish.HeaderSeq:
					hasSeq = true
				}
			}
			if _, dup := ids[id]; dup || !hasSeq {
				bad = fmt.Errorf("record %s/%d@%d: id %q duplicated or without sequence", r.Topic, r.Partition, r.Offset, id)
			}
			ids[id] = struct{}{}
		})
		if bad != nil {
			return bad
		}
	}
	fmt.Fprintf(b.out, "publish check: %s records read back read_committed, each gridsettle-id once\n", human(float64(got)))
	return nil
}

// bareProduce is the publishing limit: a plain idempotent producer (acks
// all) writing the same records, headers included, to the same partitions
// of topics of their own.
func (b *bench) bareProduce(ctx context.Context, ob *outbox.Writer, msgs []outbox.Message, rep int) (float64, error) {
	topic := func(t string) string { return "bench.bare." + t }
	admin, err := b.client()
	if err != nil {
		return 0, err
	}
	defer admin.Close()
	if rep == 0 {
		if _, err := kadm.NewClient(admin).CreateTopics(ctx, b.opts.partitions, 1, nil,
			topic(b.topics.Statements), topic(b.topics.AccountCharges)); err != nil {
			return 0, fmt.Errorf("create bare topics: %w", err)
		}
	}
	recs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		p, err := ob.Partition(m.Topic, m.Key)
		if err != nil {
			return 0, err
		}
		recs[i] = &kgo.Record{Topic: topic(m.Topic), Partition: p, Key: m.Key, Value: m.Value, Headers: bareHeaders(m, i+1)}
	}
	cl, err := b.client(kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	var (
		mu    sync.Mutex
		first error
	)
	t0 := time.Now()
	for _, r := range recs {
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				first = err
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return 0, fmt.Errorf("bare producer: %w", err)
	}
	took := time.Since(t0)
	if first != nil {
		return 0, fmt.Errorf("bare producer: %w", first)
	}
	return float64(len(recs)) / took.Seconds(), nil
}

// bareHeaders are the headers the relay writes on m as its seq-th record,
// for the bare producers the relay is compared with.
func bareHeaders(m outbox.Message, seq int) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: publish.HeaderSchema, Value: []byte(m.Schema)},
		{Key: publish.HeaderID, Value: []byte(m.ID)},
		{Key: publish.HeaderSeq, Value: strconv.AppendInt(nil, int64(seq), 10)},
		{Key: publish.HeaderCESpecVersion, Value: []byte(publish.CESpecVersion)},
		{Key: publish.HeaderCEID, Value: []byte(m.ID)},
		{Key: publish.HeaderCESource, Value: []byte(publish.CESourcePrefix + "bench")},
		{Key: publish.HeaderCEType, Value: []byte(m.Schema)},
		{Key: publish.HeaderCETime, Value: time.Now().UTC().AppendFormat(nil, time.RFC3339Nano)},
		{Key: outbox.HeaderContentType, Value: []byte(publish.ContentTypeJSON)},
	}
}

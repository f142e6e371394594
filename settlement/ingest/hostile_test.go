package ingest

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/ingest/ingesttest"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/outbox"
)

// catchUpBound is the contract's liveness promise as the suite holds it:
// everything committed is applied within seconds, whatever the records.
const catchUpBound = 30 * time.Second

// TestHostileInput feeds a running consumer, interleaved with valid records
// on the same partitions, what a hostile producer sends (random bytes and
// Unicode, invalid UTF-8, far-future and ancient starts, huge values, deep
// JSON, extreme numbers, duplicate keys, records over 1 MB): each must be
// quarantined with the contract's reason and a safe detail and have its dead
// letter, every valid record must apply exactly once, every partition must
// reach lag 0 with a watermark from applied records only, and the consumer
// must keep running and applying what comes next.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	suite := ingesttest.New(topics, time.Now(), 15)
	// Records over the client's default batch limit of 1,000,012 bytes: a
	// head-end may send them, the broker takes them compressed.
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.addrs...), kgo.TransactionalID("hostile-headend"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(8<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)

	c := e.start(Config{})
	t.Logf("%s", ingesttest.Summary(suite.Cases))
	produceCommitted(t, prod, ingesttest.Records(suite.Cases))
	st, ok := e.catchUp(catchUpBound)
	c.requireRunning(t)
	if ok {
		// A partition that met hostile input still applies what comes next.
		produceCommitted(t, prod, ingesttest.Records(suite.Tail()))
		st, _ = e.catchUp(catchUpBound)
		c.requireRunning(t)
	}
	c.stop()

	next := map[ingesttest.TopicPartition]int64{}
	for _, in := range st.Inputs {
		next[ingesttest.TopicPartition{Topic: in.Topic, Partition: in.Partition}] = in.NextOffset
	}
	reached := ingesttest.Reached(suite.Cases, next)
	checkQuarantine(t, e, reached)
	checkHostileDeadLetters(t, e, reached)
	checkApplied(t, e, reached)
	want := ingesttest.Watermarks(topics, reached)
	for _, in := range st.Inputs {
		if err := ingesttest.CheckWatermark(ingesttest.TopicPartition{Topic: in.Topic, Partition: in.Partition}, in.Watermark, want); err != nil {
			t.Error(err)
		}
	}
}

func produceCommitted(t *testing.T, cl *kgo.Client, recs []*kgo.Record) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
}

// catchUp waits up to bound for every input partition to reach lag 0 and
// returns the status then; it fails the test, but lets it go on to say what
// else is wrong, when a partition is still behind after bound.
func (e *env) catchUp(bound time.Duration) (Status, bool) {
	e.t.Helper()
	deadline := time.Now().Add(bound)
	for {
		st, err := ReadStatus(e.t.Context(), e.pool, e.adm, topics)
		if err != nil {
			e.t.Fatal(err)
		}
		var behind []PartitionStatus
		for _, in := range st.Inputs {
			if in.Lag != 0 {
				behind = append(behind, in)
			}
		}
		if len(behind) == 0 {
			return st, true
		}
		if time.Now().After(deadline) {
			e.t.Errorf("partitions still behind %v after the input was committed: %+v", bound, behind)
			return st, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *consumer) requireRunning(t *testing.T) {
	t.Helper()
	select {
	case err := <-c.done:
		c.done <- err // for stop
		t.Fatalf("the consumer stopped: %v", err)
	default:
	}
}

func origin(r *kgo.Record) readstore.Origin {
	return readstore.Origin{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
}

type storedQuarantine struct {
	reason, detail string
	value          []byte
}

// quarantined reads the quarantine by source.
func quarantined(t *testing.T, e *env) map[readstore.Origin]storedQuarantine {
	t.Helper()
	rows, err := e.pool.Query(t.Context(), `SELECT topic, partition, "offset", reason, detail, value FROM quarantine`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[readstore.Origin]storedQuarantine{}
	var o readstore.Origin
	var it storedQuarantine
	if _, err := pgx.ForEachRow(rows, []any{&o.Topic, &o.Partition, &o.Offset, &it.reason, &it.detail, &it.value}, func() error {
		out[o] = it
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func checkQuarantine(t *testing.T, e *env, cases []ingesttest.Case) {
	t.Helper()
	items := quarantined(t, e)
	want := 0
	for _, c := range cases {
		q, ok := items[origin(c.Record)]
		switch {
		case c.Quarantined() && !ok:
			t.Errorf("%s: not quarantined, want %v", c, c.Reasons)
		case c.Quarantined():
			want++
			if err := c.CheckQuarantined(q.reason, q.detail, q.value); err != nil {
				t.Error(err)
			}
		case ok:
			t.Errorf("%s: quarantined as %s (%s), want it applied", c, q.reason, q.detail)
		}
	}
	if len(items) != want {
		t.Errorf("%d quarantine items, want %d", len(items), want)
	}
	for o, q := range items {
		if err := ingesttest.CheckDetail(q.detail); err != nil {
			t.Errorf("%s: %v", DeadLetterID(o), err)
		}
	}
}

func checkHostileDeadLetters(t *testing.T, e *env, cases []ingesttest.Case) {
	t.Helper()
	type letter struct {
		key, value []byte
		headers    []kgo.RecordHeader
	}
	rows, err := e.pool.Query(t.Context(), `SELECT record_id, key, value, headers FROM outbox WHERE topic = $1`, topics.DeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	letters := map[string]letter{}
	var id string
	var l letter
	var h []byte
	if _, err := pgx.ForEachRow(rows, []any{&id, &l.key, &l.value, &h}, func() error {
		var hs []outbox.Header
		if err := json.Unmarshal(h, &hs); err != nil {
			return fmt.Errorf("headers of %s: %w", id, err)
		}
		l.headers = l.headers[:0:0]
		for _, x := range hs {
			l.headers = append(l.headers, kgo.RecordHeader{Key: x.Key, Value: x.Value})
		}
		if _, dup := letters[id]; dup {
			t.Errorf("dead letter %s written twice", id)
		}
		letters[id] = l
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	items := quarantined(t, e)
	want := 0
	for _, c := range cases {
		q, isQuarantined := items[origin(c.Record)]
		if !c.Quarantined() || !isQuarantined {
			continue // checkQuarantine says why
		}
		want++
		l, ok := letters[DeadLetterID(origin(c.Record))]
		if !ok {
			t.Errorf("%s: no dead letter", c)
			continue
		}
		if err := c.CheckDeadLetter(q.reason, l.key, l.value, l.headers); err != nil {
			t.Error(err)
		}
	}
	if len(letters) != want {
		t.Errorf("%d dead letters, want %d", len(letters), want)
	}
}

// checkApplied compares the current reads and prices with the applied
// records: each read and price of theirs, with its value, version and
// lineage, and nothing else.
func checkApplied(t *testing.T, e *env, cases []ingesttest.Case) {
	t.Helper()
	type readKey struct {
		meter, channel string
		start          time.Time
	}
	type readRow struct {
		value   decimal.Decimal
		version int64
		source  string
		origin  readstore.Origin
	}
	rows, err := e.pool.Query(t.Context(), `SELECT meter_id, channel, interval_start, value, version, source, topic, partition, "offset" FROM current_reads`)
	if err != nil {
		t.Fatal(err)
	}
	reads := map[readKey]readRow{}
	var k readKey
	var r readRow
	if _, err := pgx.ForEachRow(rows, []any{&k.meter, &k.channel, &k.start, &r.value, &r.version, &r.source,
		&r.origin.Topic, &r.origin.Partition, &r.origin.Offset}, func() error {
		k.start = k.start.UTC()
		reads[k] = r
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	type priceKey struct {
		market, point string
		start         time.Time
	}
	type priceRow struct {
		price  decimal.Decimal
		origin readstore.Origin
	}
	rows, err = e.pool.Query(t.Context(), `SELECT market, settlement_point, interval_start, price, topic, partition, "offset" FROM prices`)
	if err != nil {
		t.Fatal(err)
	}
	prices := map[priceKey]priceRow{}
	var pk priceKey
	var pr priceRow
	if _, err := pgx.ForEachRow(rows, []any{&pk.market, &pk.point, &pk.start, &pr.price,
		&pr.origin.Topic, &pr.origin.Partition, &pr.origin.Offset}, func() error {
		pk.start = pk.start.UTC()
		prices[pk] = pr
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	var wantReads, wantPrices int
	for _, c := range cases {
		if !c.Applied() {
			continue
		}
		bad := 0
		for _, w := range c.Reads {
			wantReads++
			got, ok := reads[readKey{w.MeterID, w.Channel, w.Start}]
			if !ok || !got.value.Equal(w.Value) || got.version != w.Version || got.source != w.Source || got.origin != origin(c.Record) {
				if bad++; bad <= 3 {
					t.Errorf("%s: read %s %s %s is %+v (present %v), want %s v%d %q from its record",
						c, w.MeterID, w.Channel, w.Start.Format(time.RFC3339), got, ok, w.Value, w.Version, w.Source)
				}
			}
		}
		for _, w := range c.Prices {
			wantPrices++
			got, ok := prices[priceKey{w.Market, w.SettlementPoint, w.Start}]
			if !ok || !got.price.Equal(w.Price) || got.origin != origin(c.Record) {
				t.Errorf("%s: price %s %s %s is %+v (present %v), want %s from its record",
					c, w.Market, w.SettlementPoint, w.Start.Format(time.RFC3339), got, ok, w.Price)
			}
		}
	}
	if len(reads) != wantReads || len(prices) != wantPrices {
		t.Errorf("%d current reads and %d prices, want %d and %d: only valid records apply", len(reads), len(prices), wantReads, wantPrices)
	}
}

package publish_test

import (
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/kafka/kafkatest"
	"github.com/gridsettle/gridsettle/settlement/outbox"
	"github.com/gridsettle/gridsettle/settlement/publish"
)

// enqueueSized commits one message per size (a value of that many random
// bytes, which no compression shrinks below the broker's limit), all on
// one key, in one transaction, and returns their ids.
func (e *env) enqueueSized(prefix string, sizes ...int) []string {
	e.t.Helper()
	ctx := e.t.Context()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var (
		ids  []string
		msgs []outbox.Message
	)
	for i, n := range sizes {
		id := fmt.Sprintf("%s/%d", prefix, i)
		ids = append(ids, id)
		msgs = append(msgs, outbox.Message{Topic: topic, Key: []byte("P-ONE"), Value: random(n),
			ID: id, Schema: "test.record/v1"})
	}
	if err := e.w.Enqueue(ctx, tx, msgs...); err != nil {
		e.t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		e.t.Fatal(err)
	}
	return ids
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func (e *env) admin() *kadm.Client {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.addrs...))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func (e *env) setMaxMessageBytes(adm *kadm.Client, n int) {
	e.t.Helper()
	v := fmt.Sprint(n)
	rs, err := adm.AlterTopicConfigs(e.t.Context(), []kadm.AlterConfig{{Name: "max.message.bytes", Value: &v}}, topic)
	if err == nil {
		var r kadm.AlterConfigsResponse
		if r, err = rs.On(topic, nil); err == nil {
			err = r.Err
		}
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

// quarantined returns the ids in the output quarantine, by reason.
func (e *env) quarantined() map[string][]string {
	e.t.Helper()
	recs, err := publish.Quarantined(e.t.Context(), e.pool, "", 0, 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string][]string{}
	for _, r := range recs {
		if r.Topic != topic || r.Detail == "" || len(r.Value) == 0 {
			e.t.Errorf("quarantined row %d does not keep what was enqueued: %+v", r.ID, r)
		}
		out[r.Reason] = append(out[r.Reason], r.RecordID)
	}
	return out
}

// ids returns the ids of recs in log order.
func ids(recs []rec) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.id
	}
	return out
}

// A row larger than its topic accepts would fail every transaction it is in
// for ever. It is moved to the output quarantine, and every row around it
// is published once, in order. A topic limit lowered under a running relay
// (its batches built for the old one, refused whole by the broker) ends the
// same way.
func TestRefusedRowsGoToTheOutputQuarantine(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	adm := e.admin()
	e.setMaxMessageBytes(adm, 4096)

	sizes := []int{10, 20, 30, 10_000, 40, 50}
	first := e.enqueueSized("a", sizes...)
	r := e.start(e.config())
	e.waitDrained()
	recs := e.readAll()
	if want := slices.Delete(slices.Clone(first), 3, 4); !slices.Equal(ids(recs), want) {
		t.Fatalf("published %v, want %v", ids(recs), want)
	}
	if q := e.quarantined(); !slices.Equal(q[publish.ReasonTooLarge], first[3:4]) || len(q) != 1 {
		t.Fatalf("output quarantine %v, want %v as %s", q, first[3:4], publish.ReasonTooLarge)
	}
	if got := r.metric(t, "gridsettle_publish_quarantined_records_total", "reason", publish.ReasonTooLarge); got != 1 {
		t.Errorf("quarantined metric = %v, want 1", got)
	}

	// The relay built its batches for 4096 bytes; the broker now takes
	// 1500: rows of 2000 bytes fail whole batches at the broker first.
	e.setMaxMessageBytes(adm, 1500)
	second := e.enqueueSized("b", 2000, 2000, 100, 2000, 2000, 2000, 100)
	e.waitDrained()
	recs = e.readAll()
	want := append(slices.Delete(slices.Clone(first), 3, 4), second[2], second[6])
	if !slices.Equal(ids(recs), want) {
		t.Fatalf("published %v, want %v", ids(recs), want)
	}
	q := e.quarantined()
	wantQ := append(first[3:4:4], second[0], second[1], second[3], second[4], second[5])
	if !slices.Equal(q[publish.ReasonTooLarge], wantQ) {
		t.Fatalf("output quarantine %v, want %v", q, wantQ)
	}
	b, err := publish.ReadBacklog(t.Context(), e.pool)
	if err != nil || b.Quarantined != int64(len(wantQ)) || b.Pending != 0 || len(b.Parked) != 0 {
		t.Errorf("backlog %+v (%v), want %d quarantined and nothing pending or parked", b, err, len(wantQ))
	}
	eventually(t, "lag 0", func() bool { return r.metric(t, "gridsettle_publish_lag_records") == 0 })
}

// A stream whose topic is deleted, or recreated with fewer partitions, is
// parked: visible in the backlog and on a gauge, checked again slowly
// rather than restarted in a loop, its rows kept; the others go on. When
// the partitions exist again, everything waiting is published once.
func TestStreamsOfAGoneTopicAreParked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	adm := e.admin()
	cfg := e.config()
	cfg.DiscoverInterval = 200 * time.Millisecond
	// Produce to a deleted topic fails only at the transaction timeout.
	cfg.TransactionTimeout = 3 * time.Second
	before := e.enqueue("a", 40, spread)
	r := e.start(cfg)
	e.waitDrained()
	if recs := e.readAll(); len(recs) != len(before) {
		t.Fatalf("published %d records before the deletion, want %d", len(recs), len(before))
	}

	if _, err := adm.DeleteTopics(t.Context(), topic); err != nil {
		t.Fatal(err)
	}
	gone := e.enqueue("b", 40, spread)
	eventually(t, "every stream parked", func() bool {
		b, err := publish.ReadBacklog(t.Context(), e.pool)
		return err == nil && len(b.Parked) == kafkatest.Partitions && b.Pending == int64(len(gone)) &&
			r.metric(t, "gridsettle_publish_parked_streams") == partitions
	})
	b, _ := publish.ReadBacklog(t.Context(), e.pool)
	var sum int64
	for _, p := range b.Parked {
		if p.Reason != publish.ParkedTopicMissing || p.Since.IsZero() {
			t.Errorf("parked stream %+v, want reason %s", p, publish.ParkedTopicMissing)
		}
		sum += p.Pending
	}
	if sum != int64(len(gone)) {
		t.Errorf("parked streams hold %d rows, want %d", sum, len(gone))
	}
	// Parked streams are checked every DiscoverInterval, never restarted.
	restarts := r.metric(t, "gridsettle_publish_relay_restarts_total")
	time.Sleep(5 * cfg.DiscoverInterval)
	if got := r.metric(t, "gridsettle_publish_relay_restarts_total"); got != restarts {
		t.Errorf("parked streams restarted %v times", got-restarts)
	}

	// Recreated with one partition: partition 0 resumes, the rest stay
	// parked as partition_missing.
	if _, err := adm.CreateTopic(t.Context(), 1, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	eventually(t, "partition 0 to resume", func() bool {
		b, err := publish.ReadBacklog(t.Context(), e.pool)
		if err != nil || len(b.Parked) != kafkatest.Partitions-1 {
			return false
		}
		for _, p := range b.Parked {
			if p.Reason != publish.ParkedPartitionMissing || p.Partition == 0 {
				return false
			}
		}
		return true
	})
	if _, err := adm.CreatePartitions(t.Context(), kafkatest.Partitions-1, topic); err != nil {
		t.Fatal(err)
	}
	e.waitDrained()
	eventually(t, "no stream parked", func() bool {
		b, err := publish.ReadBacklog(t.Context(), e.pool)
		return err == nil && len(b.Parked) == 0 && r.metric(t, "gridsettle_publish_parked_streams") == 0
	})
	recs := e.readAll()
	count := map[string]int{}
	for _, x := range recs {
		count[x.id]++
	}
	for _, id := range gone {
		if count[id] != 1 {
			t.Errorf("record %s published %d times after the topic came back, want once", id, count[id])
		}
	}
	if len(recs) != len(gone) {
		t.Errorf("the recreated topic holds %d records, want %d", len(recs), len(gone))
	}
}

// logPositions is outbox_relay's recorded log position of each partition
// of topic: its seq and offset.
func (e *env) logPositions() map[int32][2]int64 {
	e.t.Helper()
	rows, err := e.pool.Query(e.t.Context(), `
		SELECT partition, log_seq, log_offset FROM outbox_relay WHERE topic = $1 AND log_seq IS NOT NULL`, topic)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[int32][2]int64{}
	var (
		p           int32
		seq, offset int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&p, &seq, &offset}, func() error {
		out[p] = [2]int64{seq, offset}
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// Each stream records where the log holds its last record, and the next
// session reads the tail forward from there; a recorded position the log
// does not confirm (a lost or stale update, a recreated topic) is not
// trusted: the tail is searched as without one.
func TestTailReadsFromTheRecordedPosition(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	want := e.enqueue("a", 30, spread)
	r := e.start(e.config())
	e.waitDrained()
	r.stop(t)
	last := map[int32][2]int64{}
	for _, x := range e.readAll() {
		last[x.partition] = [2]int64{x.seq, x.offset}
	}
	if got := e.logPositions(); !maps.Equal(got, last) {
		t.Fatalf("recorded positions %v, want the log's last records %v", got, last)
	}

	// Wrong positions: a seq the record at the offset does not carry, and
	// an offset past the log's end.
	if _, err := e.pool.Exec(t.Context(), `
		UPDATE outbox_relay SET log_seq = CASE WHEN partition % 2 = 0 THEN log_seq - 1 ELSE log_seq END,
		                          log_offset = CASE WHEN partition % 2 = 0 THEN log_offset ELSE log_offset + 1000 END
		WHERE topic = $1`, topic); err != nil {
		t.Fatal(err)
	}
	want = append(want, e.enqueue("b", 30, spread)...)
	e.start(e.config())
	e.waitDrained()
	checkExactlyOnce(t, e.readAll(), want)
}

// A transaction holds at most BatchBytes of keys and values (a larger row
// goes alone), however many rows BatchSize allows.
func TestTransactionsAreCappedInBytes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sizes := make([]int, 30)
	for i := range sizes {
		sizes[i] = 295 // with the 5-byte key, 300 bytes a row
	}
	sizes[10] = 5000 // alone, over the cap
	want := e.enqueueSized("a", sizes...)
	cfg := e.config()
	cfg.BatchSize, cfg.BatchBytes = 1000, 1000
	r := e.start(cfg)
	e.waitDrained()
	if recs := e.readAll(); !slices.Equal(ids(recs), want) {
		t.Fatalf("published %v, want %v", ids(recs), want)
	}
	// 29 rows of 300 bytes, at most 3 per transaction, and one alone.
	if got := r.metric(t, "gridsettle_publish_transactions_total", "outcome", "committed"); got < 11 {
		t.Errorf("%v transactions for 30 rows under a 1000-byte cap, want at least 11", got)
	}
}

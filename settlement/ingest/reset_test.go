package ingest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/kafka/kafkatest"
)

// recreate deletes topic and creates it again, empty, with as many
// partitions, as an operator resetting the input would.
func (e *env) recreate(topic string) {
	e.t.Helper()
	ctx := e.t.Context()
	if _, err := e.adm.DeleteTopics(ctx, topic); err != nil {
		e.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := e.adm.CreateTopic(ctx, kafkatest.Partitions, 1, nil, topic)
		if err == nil && res.Err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("recreate %s: %v %v", topic, err, res.Err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A reads topic deleted and recreated holds fewer records on partition 0
// than were applied from it: ingest refuses that log, loudly (log, metric,
// status), applies nothing of it and quarantines nothing, while the other
// partitions, including partition 1 of the same recreated topic, go on.
// Once an operator resets the stored offset as doc.go says, the partition
// consumes the new log.
func TestRecreatedInputLogIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	c := e.start(Config{})
	at := func(i int) string {
		return time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC).Add(time.Duration(i) * 15 * time.Minute).Format(time.RFC3339)
	}
	var old []*kgo.Record
	for i := range 6 {
		old = append(old, rec(R, 0, "M1", read("M1", "import", at(i), 900, 1, "1")))
	}
	e.produce(false, old...)
	e.caughtUp()
	const stored = 7 // six records and the commit marker

	e.recreate(R)
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.addrs...), kgo.TransactionalID("test-headend-2"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	e.prod = prod
	// The new log of partition 0: two records and a marker, ending at 3.
	e.produce(false,
		rec(R, 0, "M1", read("M1", "import", at(20), 900, 1, "2")),
		rec(R, 0, "M1", read("M1", "import", at(21), 900, 1, "2")),
		rec(R, 1, "M1", read("M1", "export", at(0), 900, 1, "1")))
	e.produce(false, rec(P, 0, "HB_NORTH", price("RT", "HB_NORTH", at(0), 900, 1, "30", "USD")))

	var st Status
	deadline := time.Now().Add(catchUpBound)
	for {
		var err error
		if st, err = ReadStatus(t.Context(), e.pool, e.adm, topics); err != nil {
			t.Fatal(err)
		}
		in0 := st.Inputs[0]
		others := e.count(`SELECT count(*) FROM current_reads WHERE channel = 'export'`) == 1 && e.count(`SELECT count(*) FROM prices`) == 1
		if in0.Refused != nil && others {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no refusal, or the other partitions stalled, within %s: %+v\nlogs:\n%s", catchUpBound, st.Inputs, c.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The refusal keeps where the new log ended when it was found: empty,
	// or holding its three offsets already.
	in0 := st.Inputs[0]
	if in0.Topic != R || in0.Partition != 0 || in0.NextOffset != stored || in0.Refused.LogEnd > 3 || in0.Refused.Since.IsZero() {
		t.Errorf("status of the refused partition: %+v %+v", in0, in0.Refused)
	}
	for _, in := range st.Inputs[1:] {
		if in.Refused != nil {
			t.Errorf("%s/%d refused too: %+v", in.Topic, in.Partition, in.Refused)
		}
	}
	if g := counterValue(c.c.m.refused.WithLabelValues(R, "0")); g != 1 {
		t.Errorf("refused gauge %v, want 1", g)
	}
	want := fmt.Sprintf("topic=%s partition=0 stored_offset=%d log_end=%d", R, stored, in0.Refused.LogEnd)
	if logs := c.logs.String(); !strings.Contains(logs, "input log refused") || !strings.Contains(logs, want) {
		t.Errorf("the refusal is not logged with %q:\n%s", want, logs)
	}
	// Nothing of the new log applied, nothing quarantined, and it stays so.
	time.Sleep(2 * refusedRecheck)
	if n := e.count(`SELECT count(*) FROM current_reads WHERE channel = 'import'`); n != 6 {
		t.Errorf("%d import reads, want the 6 of the old log", n)
	}
	if n := e.count(`SELECT count(*) FROM quarantine`); n != 0 {
		t.Errorf("%d records quarantined", n)
	}
	if n := e.count(`SELECT next_offset FROM ingest_offsets WHERE topic = $1 AND partition = 0`, R); n != stored {
		t.Errorf("stored offset moved to %d", n)
	}

	// The operator's act (doc.go): consume the new log from its start.
	e.exec(`UPDATE ingest_offsets SET next_offset = 0, refused_at = NULL, refused_log_end = NULL WHERE topic = $1 AND partition = 0`, R)
	st = e.caughtUpWithin(catchUpBound)
	if st.Inputs[0].Refused != nil || st.Inputs[0].NextOffset != 3 {
		t.Errorf("after the reset: %+v", st.Inputs[0])
	}
	if n := e.count(`SELECT count(*) FROM current_reads WHERE channel = 'import'`); n != 8 {
		t.Errorf("%d import reads after the reset, want 8", n)
	}
	if g := counterValue(c.c.m.refused.WithLabelValues(R, "0")); g != 0 {
		t.Errorf("refused gauge %v after the reset, want 0", g)
	}
}

// A log that ends below the stored offset without its topic being recreated
// (a broker that lost data; here the stored offset set past the log's end)
// is refused by the same rule, from the high watermark of what the client
// fetches after it leaves the stored offset; the other partitions go on.
func TestLogEndingBelowStoredOffsetIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	c := e.start(Config{})
	e.produce(false, rec(R, 2, "M2", read("M2", "import", "2026-11-01T05:00:00Z", 900, 1, "1")),
		rec(R, 2, "M2", read("M2", "import", "2026-11-01T05:15:00Z", 900, 1, "1")))
	e.caughtUp()
	c.stop()
	e.exec(`UPDATE ingest_offsets SET next_offset = 100 WHERE topic = $1 AND partition = 2`, R)
	c = e.start(Config{})
	e.produce(false, rec(R, 1, "M1", read("M1", "export", "2026-11-01T05:00:00Z", 900, 1, "1")))
	deadline := time.Now().Add(catchUpBound)
	for e.count(`SELECT count(*) FROM ingest_offsets WHERE refused_at IS NOT NULL`) == 0 ||
		e.count(`SELECT count(*) FROM current_reads WHERE meter_id = 'M1'`) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal, or partition 1 stalled, within %s; logs:\n%s", catchUpBound, c.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	st, err := ReadStatus(t.Context(), e.pool, e.adm, topics)
	if err != nil {
		t.Fatal(err)
	}
	if in := st.Inputs[2]; in.Partition != 2 || in.Refused == nil || in.Refused.LogEnd != 3 || in.NextOffset != 100 {
		t.Errorf("status: %+v %+v", in, in.Refused)
	}
	want := fmt.Sprintf("topic=%s partition=2 stored_offset=100 log_end=3", R)
	if logs := c.logs.String(); !strings.Contains(logs, want) {
		t.Errorf("the refusal is not logged with %q:\n%s", want, logs)
	}
	if g := counterValue(c.c.m.refused.WithLabelValues(R, "2")); g != 1 {
		t.Errorf("refused gauge %v, want 1", g)
	}
	if n := e.count(`SELECT count(*) FROM current_reads`); n != 3 {
		t.Errorf("%d reads, want 3", n)
	}
}

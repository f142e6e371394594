package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/outbox"
	"github.com/gridsettle/gridsettle/settlement/publish"
)

var (
	R = topics.Reads
	P = topics.Prices
)

type badRecord struct {
	reason meters.Reason
	rec    *kgo.Record
}

// TestConsume streams, through transactional producers, good reads and
// prices, resends, corrections, stale versions, one record of every
// quarantine reason and an aborted transaction, and checks the quarantine,
// the dead letters, the current reads, the positions and the status.
func TestConsume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	const at = "2026-11-01T05:00:00Z"
	bad := []badRecord{
		// Decoding's reasons, on a partition of their own.
		{meters.MalformedJSON, rec(R, 2, "M1", `{"meter_id":`)},
		{meters.SchemaViolation, rec(R, 2, "M1", `{"channel":"import","start":"`+at+`","interval_seconds":900,"values":["1"]}`)},
		{meters.UnsupportedInterval, rec(R, 2, "M1", read("M1", "import", at, 600, 1, "1"))},
		{meters.MisalignedStart, rec(R, 2, "M1", read("M1", "import", "2026-11-01T05:01:00Z", 900, 1, "1"))},
		{meters.ValueOutOfRange, rec(R, 2, "M1", read("M1", "import", at, 900, 1, "-1"))},
		{meters.TooManyDecimals, rec(R, 2, "M1", read("M1", "import", at, 900, 1, "0.1234567"))},
		{meters.QualityLengthMismatch, rec(R, 2, "M1", `{"meter_id":"M1","start":"`+at+`","interval_seconds":900,"values":["1","2"],"quality":["A"]}`)},
		{meters.UnknownMeter, rec(R, 2, "M9", read("M9", "import", at, 900, 1, "1"))},
		// The reasons that need state, after the records that make it.
		{meters.IntervalLengthMismatch, rec(R, 0, "M1", read("M1", "import", "2026-11-01T06:00:00Z", 300, 1, "1"))},
		{meters.ConflictingDuplicate, rec(R, 0, "M1", read("M1", "import", at, 900, 1, "5"))},
		{meters.UnknownSettlementPoint, rec(P, 0, "HB_WEST", price("RT", "HB_WEST", at, 300, 1, "1", "USD"))},
		{meters.CurrencyMismatch, rec(P, 0, "HB_NORTH", price("RT", "HB_NORTH", at, 300, 1, "1", "EUR"))},
		{meters.IntervalLengthMismatch, rec(P, 0, "HB_NORTH", price("RT", "HB_NORTH", "2026-11-01T05:15:00Z", 900, 1, "1", "USD"))},
		{meters.ConflictingDuplicate, rec(P, 0, "HB_NORTH", price("RT", "HB_NORTH", at, 300, 1, "11", "USD"))},
	}
	recs := []*kgo.Record{
		rec(R, 0, "M1", read("M1", "import", at, 900, 1, "1", "2")),
		rec(R, 0, "M1", read("M1", "import", at, 900, 1, "1", "2")), // a head-end resend
		rec(R, 0, "M1", read("M1", "import", "2026-11-01T05:15:00Z", 900, 2, "3")),
		rec(R, 0, "M1", read("M1", "import", "2026-11-01T05:15:00Z", 900, 1, "9")), // stale
		rec(R, 1, "M2", read("M2", "export", at, 900, 1, "0.5")),
		rec(P, 0, "HB_NORTH", price("RT", "HB_NORTH", at, 300, 1, "10", "USD")),
		rec(P, 0, "HB_NORTH", price("RT", "HB_NORTH", "2026-11-01T05:05:00Z", 300, 1, "20", "USD")),
		rec(P, 0, "HB_NORTH", price("RT", "HB_NORTH", "2026-11-01T05:10:00Z", 300, 1, "30", "USD")),
	}
	for _, b := range bad {
		recs = append(recs, b.rec)
	}
	e.produce(false, recs...)
	// Never committed: must not be applied.
	e.produce(true, rec(R, 0, "M1", read("M1", "import", at, 900, 9, "100")))
	// A price correction, applied when it arrives.
	e.produce(false, rec(P, 0, "HB_NORTH", price("RT", "HB_NORTH", "2026-11-01T05:10:00Z", 300, 2, "29.5", "USD")))

	c := e.start(Config{})
	st := e.caughtUp()
	c.stop()

	// The quarantine holds exactly the bad records, with their reasons.
	rows, err := e.pool.Query(t.Context(), `SELECT topic, partition, "offset", reason FROM quarantine ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var topic, reason string
	var part int32
	var off int64
	if _, err := pgx.ForEachRow(rows, []any{&topic, &part, &off, &reason}, func() error {
		got[fmt.Sprintf("%s/%d/%d", topic, part, off)] = reason
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(bad) {
		t.Errorf("quarantine has %d items, want %d: %v", len(got), len(bad), got)
	}
	for _, b := range bad {
		id := DeadLetterID(readstore.Origin{Topic: b.rec.Topic, Partition: b.rec.Partition, Offset: b.rec.Offset})
		if got[id] != string(b.reason) {
			t.Errorf("%s (%s): quarantined as %q, want %s", id, b.rec.Value, got[id], b.reason)
		}
	}
	checkDeadLetters(t, e, bad)

	// Current reads: the correction stands, the stale read, the conflict and
	// the aborted transaction did not apply.
	rs, err := readstore.CurrentReads(t.Context(), e.pool, readstore.ReadFilter{MeterID: "M1"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	var gotReads []string
	for _, r := range rs {
		gotReads = append(gotReads, fmt.Sprintf("%s %s v%d %s@%d", r.Start.Format("15:04"), r.Value, r.Version, r.Source, r.Origin.Offset))
	}
	equal(t, "M1 reads", gotReads, []string{"05:00 1 v1 test@0", "05:15 3 v2 test@2"})

	// Positions: (1 kWh × 1.5) priced at mean(10, 20, 29.5) = 19.833333;
	// 3 kWh × 1.5 unpriced; M2's export −0.5 × 1.0312.
	assertPositions(t, e, map[string]string{
		"RETAILER-A/HB_NORTH/05:00": "0.0015 19.833333 0.0297499995",
		"RETAILER-A/HB_NORTH/05:15": "0.0045 - -",
		"RETAILER-A/HB_SOUTH/05:00": "-0.0005156 - -",
	})

	// Status: every partition listed, next_offset past the markers, and the
	// watermark the latest interval end of the partition's applied records
	// (the quarantined 06:00 record, ending 06:05, does not count).
	for _, in := range st.Inputs {
		if in.NextOffset != in.EndOffset {
			t.Errorf("%s/%d: next %d end %d", in.Topic, in.Partition, in.NextOffset, in.EndOffset)
		}
		if in.Topic == R && in.Partition == 0 {
			if in.Watermark == nil || !in.Watermark.Equal(time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC)) || in.EndOffset != 9 {
				t.Errorf("reads/0: %+v", in)
			}
		}
	}
	if n, err := publish.Pending(t.Context(), e.pool); err != nil || n != int64(len(bad)) {
		t.Errorf("outbox pending %d (%v), want %d", n, err, len(bad))
	}
	if n := c.records(R) + c.records(P); n != len(recs)+1 {
		t.Errorf("consumed %d records, want %d", n, len(recs)+1)
	}
}

func checkDeadLetters(t *testing.T, e *env, bad []badRecord) {
	t.Helper()
	type letter struct {
		schema  string
		key     []byte
		value   []byte
		headers []outbox.Header
	}
	rows, err := e.pool.Query(t.Context(), `SELECT record_id, schema, key, value, headers FROM outbox WHERE topic = $1`, topics.DeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	letters := map[string]letter{}
	var id string
	var l letter
	var h []byte
	if _, err := pgx.ForEachRow(rows, []any{&id, &l.schema, &l.key, &l.value, &h}, func() error {
		l.headers = nil
		if err := json.Unmarshal(h, &l.headers); err != nil {
			return err
		}
		if _, dup := letters[id]; dup {
			t.Errorf("dead letter %s written twice", id)
		}
		letters[id] = l
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(letters) != len(bad) {
		t.Errorf("%d dead letters, want %d", len(letters), len(bad))
	}
	for _, b := range bad {
		id := DeadLetterID(readstore.Origin{Topic: b.rec.Topic, Partition: b.rec.Partition, Offset: b.rec.Offset})
		l, ok := letters[id]
		if !ok {
			t.Errorf("no dead letter %s", id)
			continue
		}
		want := []outbox.Header{
			{Key: outbox.HeaderContentType, Value: []byte(DeadLetterContentType)},
			{Key: HeaderReason, Value: []byte(b.reason)},
			{Key: HeaderSourceTopic, Value: []byte(b.rec.Topic)},
			{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(int(b.rec.Partition)))},
			{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(b.rec.Offset, 10))},
		}
		if l.schema != DeadLetterSchema || string(l.key) != string(b.rec.Key) || string(l.value) != string(b.rec.Value) ||
			fmt.Sprint(l.headers) != fmt.Sprint(want) {
			t.Errorf("dead letter %s = %s %q %q %v", id, l.schema, l.key, l.value, l.headers)
		}
	}
}

func equal[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s:\n got  %v\n want %v", what, got, want)
	}
}

func assertPositions(t *testing.T, e *env, want map[string]string) {
	t.Helper()
	got := e.positions()
	if len(got) != len(want) {
		t.Errorf("positions %v\nwant %v", got, want)
		return
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("position %s = %q, want %q", k, got[k], w)
		}
	}
}

// alertHook emits one message per changed read; its first call fails, which
// must roll the batch back and apply its records again (in parts, looking
// for a refused record that the retry does not find), each once.
type alertHook struct {
	mu      sync.Mutex
	calls   int
	applied []Applied
}

func (h *alertHook) AfterApply(_ context.Context, _ pgx.Tx, a Applied) ([]outbox.Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if h.calls == 1 {
		return nil, errors.New("injected hook failure")
	}
	h.applied = append(h.applied, a)
	var msgs []outbox.Message
	for _, c := range a.Reads {
		id := fmt.Sprintf("%s/%s/%d", c.Read().MeterID, c.Read().Start.Format(time.RFC3339), c.Read().Version)
		msgs = append(msgs, outbox.Message{Topic: topics.Alerts, Key: []byte(c.Assignment.AccountID), Value: []byte(id), ID: id, Schema: "test/v1"})
	}
	return msgs, nil
}

func TestHookRunsInTheBatchTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	e.produce(false,
		rec(R, 3, "M1", read("M1", "import", "2026-11-01T05:00:00Z", 900, 1, "1", "2")),
		rec(R, 3, "M1", read("M1", "import", "2026-11-01T05:00:00Z", 900, 2, "4")),
		rec(R, 3, "M9", read("M9", "import", "2026-11-01T05:00:00Z", 900, 1, "4")),
	)
	h := &alertHook{}
	c := e.start(Config{}, h)
	e.caughtUp()
	c.stop()
	if n := counterValue(c.c.m.failures.WithLabelValues(R, "3")); n != 1 {
		t.Errorf("failed batches %v, want 1", n)
	}
	// Changes: 05:00 v1, 05:15 v1, then 05:00 v2 replacing v1.
	var ids []string
	var withPrevious int
	for _, a := range h.applied {
		if a.Topic != R || a.Partition != 3 || a.Replay || !a.Watermark.Equal(time.Date(2026, 11, 1, 5, 30, 0, 0, time.UTC)) {
			t.Errorf("applied %+v", a)
		}
		for _, c := range a.Reads {
			ids = append(ids, c.Read().Start.Format("15:04")+" v"+strconv.FormatInt(c.Read().Version, 10))
			if c.Previous() != nil {
				withPrevious++
			}
		}
	}
	equal(t, "changes", ids, []string{"05:00 v1", "05:15 v1", "05:00 v2"})
	if withPrevious != 1 {
		t.Errorf("%d changes with a previous read, want 1", withPrevious)
	}
	// Hook messages and the dead letter are in the outbox once each.
	if n := e.count(`SELECT count(DISTINCT record_id) FROM outbox WHERE topic = $1 AND schema = 'test/v1'`, topics.Alerts); n != 3 {
		t.Errorf("%d distinct hook messages, want 3", n)
	}
	if n := e.count(`SELECT count(*) FROM outbox`); n != 4 {
		t.Errorf("%d outbox rows, want 4", n)
	}
}

func TestReplayAfterRegistryFix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	e.produce(false,
		rec(R, 0, "M3", read("M3", "import", "2026-11-01T05:00:00Z", 900, 1, "2")),
		rec(R, 0, "M4", read("M4", "import", "2026-11-01T05:00:00Z", 900, 1, "2")),
		rec(P, 1, "HB_WEST", price("RT", "HB_WEST", "2026-11-01T05:00:00Z", 900, 1, "40", "USD")),
	)
	c := e.start(Config{})
	e.caughtUp()
	c.stop()
	if n := e.count(`SELECT count(*) FROM quarantine WHERE replayed_at IS NULL`); n != 3 {
		t.Fatalf("%d quarantined, want 3", n)
	}
	a := NewApplier(e.market, topics, e.writer)
	if _, err := a.Replay(t.Context(), e.pool, meters.SchemaViolation); !errors.Is(err, ErrNotReplayable) {
		t.Errorf("replay of schema_violation: %v", err)
	}
	// The registry is fixed for M3 and HB_WEST, not for M4.
	e.exec(`
		INSERT INTO settlement_points VALUES ('HB_WEST', 'West', 'hub');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		VALUES ('M3', 'ACC-1', 'RETAILER-A', 'HB_WEST', 1, '2026-01-01T00:00:00Z')`)
	// Two replays at once, then a third: each item applies once.
	results := make(chan ReplayResult, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			r, err := a.Replay(t.Context(), e.pool, meters.UnknownMeter)
			if err != nil {
				t.Error(err)
			}
			results <- r
		})
	}
	wg.Wait()
	close(results)
	var replayed, still int
	for r := range results {
		replayed += r.Replayed
		still += r.StillQuarantined
	}
	if replayed != 1 {
		t.Errorf("replayed %d, want 1 (still quarantined %d)", replayed, still)
	}
	if r, err := a.Replay(t.Context(), e.pool, meters.UnknownMeter); err != nil || r != (ReplayResult{StillQuarantined: 1}) {
		t.Errorf("third replay: %+v %v", r, err)
	}
	if r, err := a.Replay(t.Context(), e.pool, meters.UnknownSettlementPoint); err != nil || r != (ReplayResult{Replayed: 1}) {
		t.Errorf("price replay: %+v %v", r, err)
	}
	assertPositions(t, e, map[string]string{"RETAILER-A/HB_WEST/05:00": "0.002 40 0.08"})
	if n := e.count(`SELECT count(*) FROM quarantine WHERE replayed_at IS NULL AND reason = 'unknown_meter'`); n != 1 {
		t.Errorf("%d unknown_meter items left, want 1 (M4)", n)
	}
	if n := e.count(`SELECT count(*) FROM current_reads WHERE meter_id = 'M3' AND "offset" = 0 AND partition = 0`); n != 1 {
		t.Errorf("M3 reads with their lineage: %d", n)
	}
	if n := e.count(`SELECT count(*) FROM positions WHERE slot = $1`, readstore.ReplaySlot); n != 1 {
		t.Errorf("replay slot rows: %d", n)
	}
}

// A replay does not look for a record to blame, so a record the database
// would refuse must be decided before it writes: an unknown_meter record
// whose source holds U+0000 becomes unprocessable once its meter is known,
// and the replay still applies the other items.
func TestReplayOfNULSource(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	nul := strings.Replace(read("M3", "import", "2026-11-01T05:00:00Z", 900, 1, "2"), `"test"`, `"head\u0000end"`, 1)
	e.produce(false,
		rec(R, 0, "M3", nul),
		rec(R, 0, "M3", read("M3", "import", "2026-11-01T05:15:00Z", 900, 1, "3")),
	)
	c := e.start(Config{})
	e.caughtUp()
	c.stop()
	if n := e.count(`SELECT count(*) FROM quarantine WHERE reason = 'unknown_meter'`); n != 2 {
		t.Fatalf("%d unknown_meter items, want 2", n)
	}
	e.exec(`
		INSERT INTO settlement_points VALUES ('HB_WEST', 'West', 'hub');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		VALUES ('M3', 'ACC-1', 'RETAILER-A', 'HB_WEST', 1, '2026-01-01T00:00:00Z')`)
	a := NewApplier(e.market, topics, e.writer)
	if r, err := a.Replay(t.Context(), e.pool, meters.UnknownMeter); err != nil || r != (ReplayResult{Replayed: 1, StillQuarantined: 1}) {
		t.Fatalf("replay: %+v %v", r, err)
	}
	var reason, detail string
	if err := e.pool.QueryRow(t.Context(), `SELECT reason, detail FROM quarantine WHERE "offset" = 0 AND replayed_at IS NULL`).Scan(&reason, &detail); err != nil {
		t.Fatal(err)
	}
	if reason != string(meters.Unprocessable) || !strings.Contains(detail, "U+0000") {
		t.Errorf("NUL source after replay: %s %q, want unprocessable naming U+0000", reason, detail)
	}
	if n := e.count(`SELECT count(*) FROM current_reads WHERE meter_id = 'M3'`); n != 1 {
		t.Errorf("%d reads of M3, want 1 (05:15)", n)
	}
}

// A consumer stopped mid-stream (possibly inside a batch) and a new one in
// its place apply every record exactly once between them.
func TestRestartResumesWithoutDoubleCounting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	w := newWorkload()
	e.produce(false, w.records(0, 40)...)
	first := e.start(Config{MaxBatchRecords: 2})
	for deadline := time.Now().Add(catchUpBound); e.count(`SELECT coalesce(sum(next_offset), 0) FROM ingest_offsets`) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the first consumer stored no offset within %s", catchUpBound)
		}
		time.Sleep(5 * time.Millisecond)
	}
	first.stop()
	e.produce(false, w.records(40, 80)...)
	e.produce(false, w.records(0, 10)...) // resends of the first records
	second := e.start(Config{MaxBatchRecords: 2})
	e.caughtUp()
	second.stop()
	if n := first.records(R) + second.records(R); n != 90 {
		t.Errorf("records consumed: %d + %d, want 90 in all", first.records(R), second.records(R))
	}
	assertPositions(t, e, w.expected())
	if n := e.count(`SELECT count(DISTINCT record_id) FROM outbox`); n != w.bad || e.count(`SELECT count(*) FROM outbox`) != w.bad {
		t.Errorf("dead letters: %d distinct, want %d, once each", n, w.bad)
	}
}

func TestTwoConsumersSplitPartitions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	a, b := e.start(Config{}), e.start(Config{})
	// Wait until the group has split the partitions between the two.
	for deadline := time.Now().Add(catchUpBound); a.owned() == 0 || b.owned() == 0 || a.owned()+b.owned() != 8; {
		if time.Now().After(deadline) {
			t.Fatalf("the group did not split the 8 partitions within %s: %d and %d owned", catchUpBound, a.owned(), b.owned())
		}
		time.Sleep(20 * time.Millisecond)
	}
	w := newWorkload()
	e.produce(false, w.records(0, 80)...)
	e.caughtUp()
	a.stop()
	b.stop()
	if a.records(R) == 0 || b.records(R) == 0 || a.records(R)+b.records(R) != 80 {
		t.Errorf("records: %d + %d, want 80 split between both", a.records(R), b.records(R))
	}
	assertPositions(t, e, w.expected())
}

func (c *consumer) owned() int {
	c.c.mu.Lock()
	defer c.c.mu.Unlock()
	return len(c.c.positions)
}

// A consumer whose stored offset was moved by someone else rolls back,
// reloads and continues from there.
func TestOffsetMovedElsewhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	c := e.start(Config{})
	e.produce(false, rec(R, 3, "M1", read("M1", "import", "2026-11-01T00:00:00Z", 900, 1, "1")))
	e.caughtUp() // offset 0 and its marker: next offset 2
	// Another owner applied offsets 2 and 3 meanwhile (as far as this
	// consumer can tell).
	e.exec(`UPDATE ingest_offsets SET next_offset = 4 WHERE topic = $1 AND partition = 3`, R)
	e.produce(false,
		rec(R, 3, "M1", read("M1", "import", "2026-11-01T01:00:00Z", 900, 1, "1")),
		rec(R, 3, "M1", read("M1", "import", "2026-11-01T02:00:00Z", 900, 1, "1")),
		rec(R, 3, "M1", read("M1", "import", "2026-11-01T03:00:00Z", 900, 1, "1")),
		rec(R, 3, "M1", read("M1", "import", "2026-11-01T04:00:00Z", 900, 1, "1")),
	)
	e.caughtUp()
	c.stop()
	if n := counterValue(c.c.m.casMisses.WithLabelValues(R, "3")); n < 1 {
		t.Errorf("CAS misses %v, want at least 1", n)
	}
	var got []string
	rs, err := readstore.CurrentReads(t.Context(), e.pool, readstore.ReadFilter{MeterID: "M1"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		got = append(got, fmt.Sprintf("%s@%d", r.Start.Format("15"), r.Origin.Offset))
	}
	equal(t, "reads", got, []string{"00@0", "03@4", "04@5"})
}

// workload is a deterministic stream over the four reads partitions: M1
// import on 0, M1 export on 1, M2 import on 2, and on 3 an unknown meter
// (every fifth record) or M2 export.
type workload struct {
	bad int
}

func newWorkload() *workload { return &workload{} }

func (w *workload) record(i int) *kgo.Record {
	start := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC).Add(time.Duration(i/4) * 15 * time.Minute).Format(time.RFC3339)
	v := decimal.New(int64(i+1), -2).String()
	switch i % 4 {
	case 0:
		return rec(R, 0, "M1", read("M1", "import", start, 900, 1, v))
	case 1:
		return rec(R, 1, "M1", read("M1", "export", start, 900, 1, v))
	case 2:
		return rec(R, 2, "M2", read("M2", "import", start, 900, 1, v))
	}
	if i%5 == 0 {
		return rec(R, 3, "M9", read("M9", "import", start, 900, 1, v))
	}
	return rec(R, 3, "M2", read("M2", "export", start, 900, 1, v))
}

// records are records [from, to) of the stream; counting bad ones once.
func (w *workload) records(from, to int) []*kgo.Record {
	var out []*kgo.Record
	for i := from; i < to; i++ {
		r := w.record(i)
		if string(r.Key) == "M9" {
			w.bad++
		}
		out = append(out, r)
	}
	return out
}

// expected computes the positions of records [0, 80) directly from the
// contract: (import − export) × loss factor / 1000 per interval.
func (w *workload) expected() map[string]string {
	sum := map[string]decimal.Decimal{}
	lf := map[string]decimal.Decimal{"M1": decimal.RequireFromString("1.5"), "M2": decimal.RequireFromString("1.031200")}
	point := map[string]string{"M1": "HB_NORTH", "M2": "HB_SOUTH"}
	for i := range 80 {
		var b struct {
			MeterID string   `json:"meter_id"`
			Channel string   `json:"channel"`
			Start   string   `json:"start"`
			Values  []string `json:"values"`
		}
		if err := json.Unmarshal(w.record(i).Value, &b); err != nil {
			panic(err)
		}
		if b.MeterID == "M9" {
			continue
		}
		v := decimal.RequireFromString(b.Values[0]).Mul(lf[b.MeterID]).Shift(-3)
		if b.Channel == "export" {
			v = v.Neg()
		}
		start, _ := time.Parse(time.RFC3339, b.Start)
		k := "RETAILER-A/" + point[b.MeterID] + "/" + start.Format("15:04")
		sum[k] = sum[k].Add(v)
	}
	out := map[string]string{}
	for k, v := range sum {
		out[k] = v.String() + " - -"
	}
	return out
}

package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/outbox"
	"github.com/gridsettle/gridsettle/settlement/publish"
)

// quarantineItem is one quarantine row of the test database.
type quarantineItem struct {
	offset int64
	reason string
	detail string
}

func (e *env) quarantine(topic string, partition int32) []quarantineItem {
	e.t.Helper()
	rows, err := e.pool.Query(e.t.Context(), `SELECT "offset", reason, detail FROM quarantine WHERE topic = $1 AND partition = $2 ORDER BY "offset"`,
		topic, partition)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []quarantineItem
	var q quarantineItem
	if _, err := pgx.ForEachRow(rows, []any{&q.offset, &q.reason, &q.detail}, func() error {
		out = append(out, q)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// deadLetter is the outbox row of the dead letter with id.
func (e *env) deadLetter(id string) (key, value []byte, headers []outbox.Header) {
	e.t.Helper()
	var h []byte
	if err := e.pool.QueryRow(e.t.Context(), `SELECT key, value, headers FROM outbox WHERE topic = $1 AND record_id = $2`,
		topics.DeadLetter, id).Scan(&key, &value, &h); err != nil {
		e.t.Fatalf("dead letter %s: %v", id, err)
	}
	if err := json.Unmarshal(h, &headers); err != nil {
		e.t.Fatal(err)
	}
	return key, value, headers
}

func header(hs []outbox.Header, key string) (string, bool) {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// checkUnprocessable checks that the only quarantine item of topic/partition
// is offset, unprocessable, with a safe detail holding each of want, and
// that its dead letter says so.
func checkUnprocessable(t *testing.T, e *env, topic string, partition int32, offset int64, want ...string) {
	t.Helper()
	qs := e.quarantine(topic, partition)
	if len(qs) != 1 || qs[0].offset != offset || qs[0].reason != string(meters.Unprocessable) {
		t.Fatalf("quarantine of %s/%d: %+v, want offset %d unprocessable", topic, partition, qs, offset)
	}
	d := qs[0].detail
	if !utf8.ValidString(d) || utf8.RuneCountInString(d) > meters.MaxDetailChars {
		t.Errorf("detail %q is not safe", d)
	}
	for _, w := range want {
		if !strings.Contains(d, w) {
			t.Errorf("detail %q does not name %q", d, w)
		}
	}
	_, _, hs := e.deadLetter(DeadLetterID(readstore.Origin{Topic: topic, Partition: partition, Offset: offset}))
	if r, _ := header(hs, HeaderReason); r != string(meters.Unprocessable) {
		t.Errorf("dead letter reason %q", r)
	}
}

func (e *env) watermark(topic string, partition int32) time.Time {
	e.t.Helper()
	var wm time.Time
	if err := e.pool.QueryRow(e.t.Context(), `SELECT watermark FROM ingest_offsets WHERE topic = $1 AND partition = $2`,
		topic, partition).Scan(&wm); err != nil {
		e.t.Fatal(err)
	}
	return wm.UTC()
}

// A record the database refuses (here a trigger, as for text Postgres cannot
// store) is quarantined as unprocessable in the same pass; the other records
// of its batch are applied and the partition catches up.
func TestDatabaseRefusesOneRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	e.exec(`
		CREATE FUNCTION refuse_m2() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.meter_id = 'M2' THEN
				RAISE EXCEPTION 'reads of M2 refused' USING ERRCODE = '22021';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_m2 BEFORE INSERT OR UPDATE ON read_blocks FOR EACH ROW EXECUTE FUNCTION refuse_m2()`)
	e.produce(false,
		rec(R, 1, "M1", read("M1", "import", "2026-11-01T05:00:00Z", 900, 1, "1")),
		rec(R, 1, "M1", read("M1", "import", "2026-11-01T05:15:00Z", 900, 1, "1")),
		rec(R, 1, "M2", read("M2", "import", "2026-11-01T07:00:00Z", 900, 1, "1")), // the latest: it must not move the watermark
		rec(R, 1, "M1", read("M1", "import", "2026-11-01T05:30:00Z", 900, 1, "1")),
		rec(R, 1, "M1", read("M1", "import", "2026-11-01T05:45:00Z", 900, 1, "1")),
	)
	c := e.start(Config{})
	e.caughtUpWithin(30 * time.Second)
	c.stop()
	if n := counterValue(c.c.m.failures.WithLabelValues(R, "1")); n < 1 {
		t.Errorf("refused batches %v, want at least 1", n)
	}
	checkUnprocessable(t, e, R, 1, 2, "reads of M2 refused", "22021")
	if n := e.count(`SELECT count(*) FROM current_reads WHERE meter_id = 'M1'`); n != 4 {
		t.Errorf("%d reads of M1, want 4", n)
	}
	if wm := e.watermark(R, 1); !wm.Equal(time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC)) {
		t.Errorf("watermark %s, want 06:00 (M2's refused read does not count)", wm)
	}
	if n := c.records(R); n != 5 {
		t.Errorf("%d records consumed, want 5", n)
	}
}

// refusingHook fails, as an alert encoder would, when a batch changes a
// read of meter; it keeps what it saw in the batches it accepted.
type refusingHook struct {
	meter   string
	mu      sync.Mutex
	applied []Applied
}

func (h *refusingHook) AfterApply(_ context.Context, _ pgx.Tx, a Applied) ([]outbox.Message, error) {
	for _, c := range a.Reads {
		if c.Read().MeterID == h.meter {
			// A time past year 9999 cannot be encoded.
			if _, err := json.Marshal(c.Read().Start.AddDate(8000, 0, 0)); err != nil {
				return nil, fmt.Errorf("encode alert of %s: %w", h.meter, err)
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applied = append(h.applied, a)
	return nil, nil
}

// A record that a hook refuses is quarantined as unprocessable; the hook
// sees every other record once.
func TestHookRefusesOneRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	e.produce(false,
		rec(R, 2, "M1", read("M1", "import", "2026-11-01T05:00:00Z", 900, 1, "1")),
		rec(R, 2, "M1", read("M1", "import", "2026-11-01T05:15:00Z", 900, 1, "1")),
		rec(R, 2, "M2", read("M2", "import", "2026-11-01T05:00:00Z", 900, 1, "1")),
		rec(R, 2, "M1", read("M1", "import", "2026-11-01T05:30:00Z", 900, 1, "1")),
		rec(R, 2, "M1", read("M1", "import", "2026-11-01T05:45:00Z", 900, 1, "1")),
	)
	h := &refusingHook{meter: "M2"}
	c := e.start(Config{}, h)
	e.caughtUpWithin(30 * time.Second)
	c.stop()
	checkUnprocessable(t, e, R, 2, 2, "MarshalJSON", "M2")
	var seen []string
	for _, a := range h.applied {
		for _, ch := range a.Reads {
			seen = append(seen, ch.Read().MeterID+"@"+strconv.FormatInt(ch.Origin().Offset, 10))
		}
	}
	equal(t, "changes the hook saw", seen, []string{"M1@0", "M1@1", "M1@3", "M1@4"})
	if n := e.count(`SELECT count(*) FROM current_reads`); n != 4 {
		t.Errorf("%d reads, want 4 (M2's refused)", n)
	}
}

// recordingHook keeps every Applied of the batches that committed or not.
type recordingHook struct {
	mu      sync.Mutex
	applied []Applied
}

func (h *recordingHook) AfterApply(_ context.Context, _ pgx.Tx, a Applied) ([]outbox.Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.applied = append(h.applied, a)
	return nil, nil
}

// Only applied records move the watermark: a quarantined record, however
// late its intervals, moves neither the stored watermark nor what hooks
// follow.
func TestQuarantinedRecordDoesNotMoveWatermark(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	e.produce(false,
		rec(R, 0, "M1", read("M1", "import", "2026-11-01T05:00:00Z", 900, 1, "1")),
		rec(R, 0, "M9", read("M9", "import", "9999-12-31T20:00:00Z", 900, 1, "1")), // unknown meter, far future
		rec(R, 0, "M9", read("M9", "import", "2026-11-20T00:00:00Z", 900, 1, "1")), // unknown meter, later than M1
		rec(R, 0, "M1", read("M1", "import", "2026-11-01T05:15:00Z", 900, 1, "1", "2")),
	)
	h := &recordingHook{}
	c := e.start(Config{}, h)
	e.caughtUpWithin(30 * time.Second)
	c.stop()
	want := time.Date(2026, 11, 1, 5, 45, 0, 0, time.UTC)
	if wm := e.watermark(R, 0); !wm.Equal(want) {
		t.Errorf("stored watermark %s, want %s", wm, want)
	}
	if qs := e.quarantine(R, 0); len(qs) != 2 {
		t.Errorf("quarantine %+v, want the two M9 records", qs)
	}
	var ends []string
	for _, a := range h.applied {
		if a.Watermark.After(want) {
			t.Errorf("a hook saw watermark %s", a.Watermark)
		}
		for _, end := range a.Ends {
			ends = append(ends, fmt.Sprintf("%d %s", end.Offset, end.End.Format("15:04")))
		}
	}
	equal(t, "record ends the hook followed", ends, []string{"0 05:15", "3 05:45"})
}

// A dead letter fits the output record size: a larger value is cut, with
// its original length and hash in headers, and the quarantine keeps it
// whole.
func TestDeadLetterTruncated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registry()
	ctx := t.Context()
	if _, err := readstore.LoadOffsets(ctx, e.pool, R, []int32{0}); err != nil {
		t.Fatal(err)
	}
	// 1.2 MB is more than a default broker takes, so the Applier is driven
	// directly, with the huge value standing in for the record at offset 0.
	e.produce(false, rec(R, 0, "M1", "{}"))
	huge := []byte(`{"meter_id":"` + strings.Repeat("é", 600_000) + `"}`)
	a := NewApplier(e.market, topics, e.writer)
	d, err := a.decode(a.newDecoder(), R, 0, input{offset: 0, key: []byte("M1"), value: huge})
	if err != nil {
		t.Fatal(err)
	}
	b := batchOf(R, 0, 0, []decoded{d})
	if err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		_, err := a.apply(ctx, tx, b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	checkCut(t, e, DeadLetterID(readstore.Origin{Topic: R, Partition: 0, Offset: 0}), huge, DefaultMaxDeadLetterBytes)
	var kept []byte
	if err := e.pool.QueryRow(ctx, `SELECT value FROM quarantine WHERE topic = $1 AND "offset" = 0`, R).Scan(&kept); err != nil ||
		string(kept) != string(huge) {
		t.Errorf("quarantine keeps %d bytes (%v), want the whole %d", len(kept), err, len(huge))
	}

	// A configured limit, through a running consumer.
	const limit = 10_000
	big := rec(R, 3, "M1", `{"meter_id":"`+strings.Repeat("x", 20_000)+`"}`)
	e.produce(false, big)
	c := e.startApplier(Config{}, NewApplier(e.market, topics, e.writer).WithLimits(Limits{MaxDeadLetterBytes: limit}))
	e.caughtUpWithin(30 * time.Second)
	c.stop()
	checkCut(t, e, DeadLetterID(readstore.Origin{Topic: R, Partition: 3, Offset: big.Offset}), big.Value, limit)

	// The relay, with its own headers and framing, produces both (and then
	// deletes their outbox rows).
	ids := []string{DeadLetterID(readstore.Origin{Topic: R, Partition: 0, Offset: 0}),
		DeadLetterID(readstore.Origin{Topic: R, Partition: 3, Offset: big.Offset})}
	want := map[string]int{}
	for _, id := range ids {
		_, value, _ := e.deadLetter(id)
		want[id] = len(value)
	}
	relay, err := publish.New(e.pool, kafka.Config{Brokers: e.addrs}, publish.Config{Env: "test", Topics: []string{topics.DeadLetter}},
		slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(rctx) }()
	defer func() {
		stop()
		<-done
	}()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.addrs...), kgo.ConsumeTopics(topics.DeadLetter),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxBytes(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]int{}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for len(got) < len(ids) {
		fs := cl.PollFetches(pctx)
		if err := pctx.Err(); err != nil {
			t.Fatalf("dead letters published: %v, want %v (%v)", got, ids, fs.Errors())
		}
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == publish.HeaderID {
					got[string(h.Value)] = len(r.Value)
				}
			}
		})
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dead letters published with value bytes %v, want %v", got, want)
	}
}

// checkCut checks that dead letter id holds the first bytes of value, as many
// as fit limit with its key and headers, and the cut headers.
func checkCut(t *testing.T, e *env, id string, value []byte, limit int) {
	t.Helper()
	key, got, hs := e.deadLetter(id)
	size := len(key) + len(got) + headersSize(hs)
	if size > limit-deadLetterReserve || size < limit-2*deadLetterReserve {
		t.Errorf("dead letter %s: %d bytes with key and headers, want at most %d and close to it", id, size, limit-deadLetterReserve)
	}
	if string(key) != "M1" || string(got) != string(value[:len(got)]) {
		t.Errorf("dead letter %s: key %q, value not the original's first bytes", id, key)
	}
	sum := sha256.Sum256(value)
	if n, _ := header(hs, HeaderTruncated); n != strconv.Itoa(len(value)) {
		t.Errorf("%s = %q, want %d", HeaderTruncated, n, len(value))
	}
	if h, _ := header(hs, HeaderValueSHA256); h != hex.EncodeToString(sum[:]) {
		t.Errorf("%s = %q", HeaderValueSHA256, h)
	}
}

func TestTransient(t *testing.T) {
	t.Parallel()
	_, jsonErr := json.Marshal(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true}, // pg_terminate_backend
		{fmt.Errorf("apply: %w", &pgconn.PgError{Code: "40001"}), true},
		{&pgconn.PgError{Code: "40P01"}, true},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "53300"}, true},
		{&pgconn.PgError{Code: "57014"}, true},
		{&pgconn.PgError{Code: "55P03"}, true},
		{&pgconn.PgError{Code: "42501"}, true}, // a privilege: the deployment's
		{context.DeadlineExceeded, true},
		{fmt.Errorf("write: %w", readstore.ErrConcurrentWrite), true},
		{fmt.Errorf("query: %w", pgconn.ErrConnClosed), true},
		{fmt.Errorf("commit: %w", pgx.ErrTxClosed), true},
		{&net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, true},
		{&pgconn.PgError{Code: "22021"}, false},
		{&pgconn.PgError{Code: "22003"}, false},
		{&pgconn.PgError{Code: "23514"}, false},
		{&pgconn.PgError{Code: "P0001"}, false},
		{fmt.Errorf("ingest hook: %w", jsonErr), false},
		{errors.New("outbox: encode headers"), false},
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// A refused record whose dead letter is refused too keeps its quarantine
// row; one whose quarantine row is refused as well is only skipped by the
// offset. Either way its partition goes on.
func TestRefusedRecordWithoutDeadLetter(t *testing.T) {
	t.Parallel()
	refuse := func(e *env, table, column, value string) {
		e.exec(fmt.Sprintf(`
			CREATE FUNCTION refuse_%[1]s() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				IF NEW.%[2]s::text = %[3]s THEN
					RAISE EXCEPTION '%[1]s row refused';
				END IF;
				RETURN NEW;
			END $$;
			CREATE TRIGGER refuse_%[1]s BEFORE INSERT OR UPDATE ON %[1]s FOR EACH ROW EXECUTE FUNCTION refuse_%[1]s()`,
			table, column, "'"+value+"'"))
	}
	for _, c := range []struct {
		name       string
		quarantine bool // the quarantine row is refused too
	}{{"dead letter refused", false}, {"quarantine refused", true}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.registry()
			refuse(e, "read_blocks", "meter_id", "M2")
			refuse(e, "outbox", "record_id", R+"/1/1")
			if c.quarantine {
				refuse(e, "quarantine", `"offset"`, "1")
			}
			e.produce(false,
				rec(R, 1, "M1", read("M1", "import", "2026-11-01T05:00:00Z", 900, 1, "1")),
				rec(R, 1, "M2", read("M2", "import", "2026-11-01T05:00:00Z", 900, 1, "1")),
				rec(R, 1, "M1", read("M1", "import", "2026-11-01T05:15:00Z", 900, 1, "1")),
			)
			cons := e.start(Config{})
			e.caughtUpWithin(30 * time.Second)
			cons.stop()
			if n := e.count(`SELECT count(*) FROM current_reads WHERE meter_id = 'M1'`); n != 2 {
				t.Errorf("%d reads of M1, want 2", n)
			}
			if n := e.count(`SELECT count(*) FROM outbox`); n != 0 {
				t.Errorf("%d outbox rows, want none", n)
			}
			qs := e.quarantine(R, 1)
			if c.quarantine {
				if len(qs) != 0 {
					t.Errorf("quarantine %+v, want none", qs)
				}
				return
			}
			if len(qs) != 1 || qs[0].offset != 1 || qs[0].reason != string(meters.Unprocessable) ||
				!strings.Contains(qs[0].detail, "read_blocks row refused") || !strings.Contains(qs[0].detail, "outbox row refused") {
				t.Errorf("quarantine %+v, want offset 1 unprocessable naming both refusals", qs)
			}
		})
	}
}

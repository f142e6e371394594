package publish_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/kafka/kafkatest"
	"github.com/gridsettle/gridsettle/settlement/outbox"
	"github.com/gridsettle/gridsettle/settlement/publish"
)

func TestMain(m *testing.M) {
	if os.Getenv(childDatabaseEnv) != "" {
		os.Exit(runChildRelay())
	}
	pgtest.Main(m)
}

var topic = kafka.DefaultTopics().Statements

// env is one test's database and broker.
type env struct {
	t     testing.TB
	pool  *pgxpool.Pool
	dbURL string
	addrs []string
	w     *outbox.Writer
	errs  *errLog
}

func newEnv(t testing.TB) *env {
	pool, dbURL := pgtest.New(t)
	return &env{
		t:     t,
		pool:  pool,
		dbURL: dbURL,
		addrs: kafkatest.New(t),
		w:     outbox.NewWriter(map[string]int32{topic: kafkatest.Partitions}),
		errs:  &errLog{},
	}
}

// spread keys records over every partition; oneKey puts them all on one.
func spread(i int) string { return "P-" + strconv.Itoa(i%13) }
func oneKey(int) string   { return "P-ONE" }

// enqueue commits n outbox messages, a few per transaction, and returns
// their ids.
func (e *env) enqueue(prefix string, n int, key func(int) string) []string {
	e.t.Helper()
	ctx := e.t.Context()
	var ids []string
	for i := 0; i < n; i += 7 {
		tx, err := e.pool.Begin(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		var msgs []outbox.Message
		for j := i; j < min(i+7, n); j++ {
			id := fmt.Sprintf("%s/%d", prefix, j)
			ids = append(ids, id)
			msgs = append(msgs, outbox.Message{
				Topic: topic, Key: []byte(key(j)), Value: []byte(`{"n":` + strconv.Itoa(j) + `}`),
				ID: id, Schema: "test.record/v1",
				Headers: []outbox.Header{{Key: "x-extra", Value: []byte("extra-" + id)}},
			})
		}
		if err := e.w.Enqueue(ctx, tx, msgs...); err != nil {
			e.t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			e.t.Fatal(err)
		}
	}
	return ids
}

// relay is a running Relay.
type relay struct {
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func (e *env) config() publish.Config { return testConfig(0) }

func (e *env) start(cfg publish.Config, opts ...publish.Option) *relay {
	e.t.Helper()
	return e.startIn(e.t.Context(), cfg, opts...)
}

// startIn runs a Relay until ctx ends (or the test does).
func (e *env) startIn(ctx context.Context, cfg publish.Config, opts ...publish.Option) *relay {
	e.t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(&errHandler{log: e.errs, next: slog.NewTextHandler(e.t.Output(), nil)})
	r, err := publish.New(e.pool, kafka.Config{Brokers: e.addrs}, cfg, log, reg, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	rl := &relay{reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { rl.done <- r.Run(ctx) }()
	e.t.Cleanup(func() { rl.stop(e.t) })
	return rl
}

// stop cancels the relay and waits for Run to return.
func (r *relay) stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// metric sums the samples of the named metric whose labels include want.
func (r *relay) metric(t testing.TB, name string, want ...string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(want); i += 2 {
				if labels[want[i]] != want[i+1] {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// eventually waits for cond, failing the test after a generous limit (a
// guard against hanging, not a timing assertion).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func collectStrings(rows pgx.Rows) ([]string, error) { return pgx.CollectRows(rows, pgx.RowTo[string]) }

var partitions = float64(kafkatest.Partitions)

func (e *env) pending() int64 {
	e.t.Helper()
	n, err := publish.Pending(e.t.Context(), e.pool)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) waitDrained() {
	e.t.Helper()
	eventually(e.t, "the outbox to drain", func() bool { return e.pending() == 0 })
}

// rec is one committed record as a read_committed consumer sees it.
type rec struct {
	partition int32
	offset    int64
	id        string
	seq       int64
	schema    string
	extra     string
	key       string
	nullKey   bool
	headers   int // how many headers
	byKey     map[string]string
	value     string
}

// readAll reads every committed record of topic, read_committed, up to the
// last stable offset of each partition.
func (e *env) readAll() []rec {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.t.Context(), 60*time.Second)
	defer cancel()
	adm, err := kgo.NewClient(kgo.SeedBrokers(e.addrs...))
	if err != nil {
		e.t.Fatal(err)
	}
	defer adm.Close()
	starts, err := kadm.NewClient(adm).ListStartOffsets(ctx, topic)
	if err != nil {
		e.t.Fatal(err)
	}
	ends, err := kadm.NewClient(adm).ListCommittedOffsets(ctx, topic)
	if err != nil {
		e.t.Fatal(err)
	}
	end := map[int32]int64{}
	from := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(o.Topic, o.Partition)
		if o.Offset > s.Offset {
			end[o.Partition] = o.Offset
			from[o.Partition] = kgo.NewOffset().At(s.Offset)
		}
	})
	if len(end) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.addrs...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var out []rec
	for remaining := len(end); remaining > 0; {
		fs := cl.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 {
			e.t.Fatalf("read %s: %v", topic, errs[0].Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end[r.Partition] {
				return
			}
			if !r.Attrs.IsControl() {
				x := rec{partition: r.Partition, offset: r.Offset, key: string(r.Key), nullKey: r.Key == nil,
					headers: len(r.Headers), value: string(r.Value), byKey: map[string]string{}}
				for _, h := range r.Headers {
					x.byKey[h.Key] = string(h.Value)
					switch h.Key {
					case publish.HeaderID:
						x.id = string(h.Value)
					case publish.HeaderSeq:
						x.seq, _ = strconv.ParseInt(string(h.Value), 10, 64)
					case publish.HeaderSchema:
						x.schema = string(h.Value)
					case "x-extra":
						x.extra = string(h.Value)
					}
				}
				out = append(out, x)
			}
			if r.Offset == end[r.Partition]-1 {
				remaining--
			}
		})
	}
	return out
}

// checkExactlyOnce checks that recs hold every id of want once and nothing
// else, each partition in sequence order 1, 2, 3, ... without a gap.
func checkExactlyOnce(t testing.TB, recs []rec, want []string) {
	t.Helper()
	count := map[string]int{}
	for _, r := range recs {
		count[r.id]++
	}
	for _, id := range want {
		switch count[id] {
		case 1:
		case 0:
			t.Errorf("record %s missing", id)
		default:
			t.Errorf("record %s seen %d times", id, count[id])
		}
		delete(count, id)
	}
	for id, n := range count {
		t.Errorf("unexpected record %q seen %d times", id, n)
	}
	next := map[int32]int64{}
	for _, r := range recs {
		next[r.partition]++
		if r.seq != next[r.partition] {
			t.Errorf("partition %d offset %d: seq %d, want %d", r.partition, r.offset, r.seq, next[r.partition])
			next[r.partition] = r.seq
		}
	}
}

// errLog keeps the errors the relay logged, to see why something failed.
type errLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errLog) any(match func(error) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range l.errs {
		if match(err) {
			return true
		}
	}
	return false
}

type errHandler struct {
	log  *errLog
	next slog.Handler
}

func (h *errHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *errHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if err, ok := a.Value.Any().(error); ok {
			h.log.mu.Lock()
			h.log.errs = append(h.log.errs, err)
			h.log.mu.Unlock()
		}
		return true
	})
	return h.next.Handle(ctx, r)
}

func (h *errHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &errHandler{log: h.log, next: h.next.WithAttrs(as)}
}

func (h *errHandler) WithGroup(name string) slog.Handler {
	return &errHandler{log: h.log, next: h.next.WithGroup(name)}
}

var errCrash = errors.New("injected crash")

// A relay in a child process of the test binary (so that it can be frozen
// with SIGSTOP) reads its database, brokers and lease timeout from these.
const (
	childDatabaseEnv     = "GRIDSETTLE_TEST_RELAY_DATABASE"
	childBrokersEnv      = "GRIDSETTLE_TEST_RELAY_BROKERS"
	childLeaseTimeoutEnv = "GRIDSETTLE_TEST_RELAY_LEASE_TIMEOUT"
)

// testConfig is the relay configuration of the tests, with a lease
// timeout (0: the default).
func testConfig(leaseTimeout time.Duration) publish.Config {
	return publish.Config{
		Env:            "test",
		Topics:         []string{topic},
		BatchSize:      10,
		LeaseRetry:     100 * time.Millisecond,
		RestartBackoff: 10 * time.Millisecond,
		LeaseTimeout:   leaseTimeout,
	}
}

// runChildRelay is the child process: a relay until SIGTERM.
func runChildRelay() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("relay", "child")
	lt, err := time.ParseDuration(os.Getenv(childLeaseTimeoutEnv))
	if err != nil {
		log.Error("lease timeout", "err", err)
		return 2
	}
	pool, err := pgxpool.New(ctx, os.Getenv(childDatabaseEnv))
	if err != nil {
		log.Error("connect", "err", err)
		return 2
	}
	defer pool.Close()
	r, err := publish.New(pool, kafka.Config{Brokers: strings.Split(os.Getenv(childBrokersEnv), ",")},
		testConfig(lt), log, nil)
	if err != nil {
		log.Error("new relay", "err", err)
		return 2
	}
	if err := r.Run(ctx); err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}

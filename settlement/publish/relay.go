package publish

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/kafka"
)

// LeaseApplicationName is the application_name of the connection that holds
// a Relay's leases, so operators can find it in pg_stat_activity.
const LeaseApplicationName = "gridsettle publish lease"

// notifyChannel is the channel migrations/00301_outbox_notify.sql notifies.
const notifyChannel = "gridsettle_outbox"

// Stream is one output stream: a partition of an output topic.
type Stream struct {
	Topic     string
	Partition int32
}

func (s Stream) String() string { return s.Topic + "/" + strconv.Itoa(int(s.Partition)) }

// parseStream reads a notification payload written by the outbox trigger.
func parseStream(payload string) (Stream, bool) {
	i := strings.LastIndexByte(payload, '/')
	if i <= 0 {
		return Stream{}, false
	}
	p, err := strconv.ParseInt(payload[i+1:], 10, 32)
	if err != nil || p < 0 {
		return Stream{}, false
	}
	return Stream{Topic: payload[:i], Partition: int32(p)}, true
}

// leaseKey is the advisory lock key of a stream's lease.
func leaseKey(s Stream) int64 {
	h := sha256.Sum256([]byte("gridsettle/publish/" + s.String()))
	return int64(binary.BigEndian.Uint64(h[:8]))
}

// Step names a point of the relay loop where a StepHook runs.
type Step string

// The steps of one transaction, in order.
const (
	// StepBeforeProduce: the transaction has begun, nothing is produced yet.
	StepBeforeProduce Step = "before-produce"
	// StepAfterFlush: every record is acknowledged inside the open
	// transaction, EndTransaction has not been called.
	StepAfterFlush Step = "after-flush"
	// StepAfterCommit: EndTransaction committed, the outbox rows of the
	// batch are not deleted yet.
	StepAfterCommit Step = "after-commit"
)

// StepHook runs at each Step of each transaction of stream s. An error it
// returns is handled like a crash at that point: the Kafka client is closed
// without ending the transaction, and the stream restarts from the log.
type StepHook func(ctx context.Context, s Stream, step Step) error

// Option configures a Relay.
type Option func(*Relay)

// WithStepHook installs h at every Step (fault injection: tests and the
// chaos failpoints).
func WithStepHook(h StepHook) Option { return func(r *Relay) { r.hook = h } }

// Config is the relay's part of gridsettle's configuration.
type Config struct {
	// Env names the environment in transactional ids
	// (gridsettle-{Env}-{topic}-{partition}); two deployments sharing a
	// cluster must differ, two instances of one deployment must not.
	Env string
	// Topics are the output topics whose every partition is relayed; streams
	// found in outbox_streams are relayed too.
	Topics []string
	// BatchSize is the most records in one Kafka transaction (default 1000).
	BatchSize int
	// BatchBytes is the most bytes of keys and values in one Kafka
	// transaction (default 16 MiB); a single larger row still goes alone.
	BatchBytes int
	// TransactionTimeout is the broker's limit on an open transaction
	// (default 10s); it also bounds finishing a transaction on stop.
	TransactionTimeout time.Duration
	// LeaseRetry is how often a standby tries to take free leases
	// (default 2s).
	LeaseRetry time.Duration
	// LeaseTimeout is how long a silent holder (frozen, paused, its host
	// gone) keeps its leases: the server ends a lease session idle for this
	// long (idle_session_timeout), or whose sent data stays unacknowledged
	// this long (tcp_user_timeout, keepalives); a live holder proves itself
	// at least three times per LeaseTimeout and gives its streams up once
	// it could not for LeaseTimeout (default 5s, at least 1s).
	LeaseTimeout time.Duration
	// DiscoverInterval is how often topic partition counts and
	// outbox_streams are re-read, and how often a parked stream (its topic
	// or partition gone) checks whether it is back (default 1m).
	DiscoverInterval time.Duration
	// RestartBackoff is the first wait after a failed stream session; it
	// doubles up to MaxRestartBackoff (defaults 100ms and 30s).
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration
}

var envName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

func (c Config) withDefaults() Config {
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = 16 << 20
	}
	if c.TransactionTimeout == 0 {
		c.TransactionTimeout = 10 * time.Second
	}
	if c.LeaseRetry == 0 {
		c.LeaseRetry = 2 * time.Second
	}
	if c.LeaseTimeout == 0 {
		c.LeaseTimeout = 5 * time.Second
	}
	if c.DiscoverInterval == 0 {
		c.DiscoverInterval = time.Minute
	}
	if c.RestartBackoff == 0 {
		c.RestartBackoff = 100 * time.Millisecond
	}
	if c.MaxRestartBackoff == 0 {
		c.MaxRestartBackoff = 30 * time.Second
	}
	return c
}

// Validate reports the first setting that cannot work; zero values stand
// for the defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case !envName.MatchString(c.Env):
		return fmt.Errorf("publish env %q: must be non-empty letters, digits, '.', '_' or '-'", c.Env)
	case c.BatchSize < 0 || c.BatchSize > 10000:
		return fmt.Errorf("publish batch size %d: must be 1..10000", c.BatchSize)
	case c.BatchBytes < 0 || c.BatchBytes > 1<<30:
		return fmt.Errorf("publish batch bytes %d: must be 1..%d", c.BatchBytes, 1<<30)
	case c.TransactionTimeout < 0 || c.LeaseRetry < 0 || c.DiscoverInterval < 0 || c.RestartBackoff < 0:
		return errors.New("publish durations must not be negative")
	case c.LeaseTimeout < time.Second:
		// The server's keepalive settings count whole seconds.
		return fmt.Errorf("publish lease timeout %v: must be at least 1s", c.LeaseTimeout)
	case c.MaxRestartBackoff < c.RestartBackoff:
		return errors.New("publish max restart backoff is below the restart backoff")
	}
	return nil
}

// Relay publishes the outbox. Create it with New and call Run.
type Relay struct {
	pool  *pgxpool.Pool
	kopts []kgo.Opt
	cfg   Config
	log   *slog.Logger
	m     *metrics
	hook  StepHook
	// adm reads topic limits and partitions for the workers; set by Run.
	adm *kadm.Client
}

// New returns a Relay reading the outbox through pool and writing to the
// cluster of kcfg. Its metrics are registered on reg (nil: not registered).
func New(pool *pgxpool.Pool, kcfg kafka.Config, cfg Config, log *slog.Logger, reg prometheus.Registerer, opts ...Option) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	kopts, err := kcfg.ClientOpts()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	r := &Relay{pool: pool, kopts: kopts, cfg: cfg, log: log.With("component", "publish"), m: m}
	for _, o := range opts {
		o(r)
	}
	return r, nil
}

// Run relays until ctx is canceled, then finishes in-flight transactions,
// releases its leases and returns nil. Failures (a lost database connection,
// an unreachable broker) are logged and retried, never returned.
func (r *Relay) Run(ctx context.Context) error {
	admin, err := kgo.NewClient(r.kopts...)
	if err != nil {
		return fmt.Errorf("publish: kafka client: %w", err)
	}
	defer admin.Close()
	r.adm = kadm.NewClient(admin)
	backoff := r.cfg.RestartBackoff
	for {
		err := r.leaseSession(ctx, r.adm, func() { backoff = r.cfg.RestartBackoff })
		if ctx.Err() != nil {
			return nil
		}
		r.log.Error("lease session ended; reconnecting", "err", err, "backoff", backoff)
		if !sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, r.cfg.MaxRestartBackoff)
	}
}

// errLeaseLost ends the workers of a lease session that failed: the server
// frees (or has freed) its leases, so they abandon even an open
// transaction instead of finishing it.
var errLeaseLost = errors.New("publish leases lost")

// leaseConn is the connection that holds a Relay's leases, with the time
// until which they are certainly still held.
type leaseConn struct {
	*pgx.Conn
	timeout time.Duration
	// until is when the server may end the session, freeing every lease: a
	// LeaseTimeout after the last query that succeeded was sent (the
	// server's idle timer starts after it received that query). Workers
	// read it.
	until atomic.Pointer[time.Time]
}

// held reports whether the leases are certainly still held.
func (l *leaseConn) held() bool { return time.Now().Before(*l.until.Load()) }

func (l *leaseConn) extend(sent time.Time) {
	t := sent.Add(l.timeout)
	l.until.Store(&t)
}

// connectLease opens the lease connection. The server, not the holder,
// enforces the lease's end: a holder that is frozen or gone sends nothing,
// so idle_session_timeout ends its session (and frees its advisory locks)
// LeaseTimeout after its last query. The TCP settings cover a server
// blocked writing to the holder, where that timer is not acted on:
// tcp_user_timeout ends a connection whose sent data stays unacknowledged
// (a vanished host; on Linux also a frozen one whose receive window stayed
// closed, full of notifications), keepalives one that went quiet. Over a
// Unix socket they are ignored.
func (r *Relay) connectLease(ctx context.Context) (*leaseConn, error) {
	t := r.cfg.LeaseTimeout
	probe := strconv.Itoa(int(max(1, (t/3+time.Second-1)/time.Second)))
	cc := r.pool.Config().ConnConfig.Copy()
	cc.RuntimeParams["application_name"] = LeaseApplicationName
	cc.RuntimeParams["idle_session_timeout"] = strconv.FormatInt(t.Milliseconds(), 10)
	cc.RuntimeParams["tcp_user_timeout"] = strconv.FormatInt(t.Milliseconds(), 10)
	cc.RuntimeParams["tcp_keepalives_idle"] = probe
	cc.RuntimeParams["tcp_keepalives_interval"] = probe
	cc.RuntimeParams["tcp_keepalives_count"] = "2"
	sent := time.Now()
	cctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cc)
	if err != nil {
		return nil, fmt.Errorf("connect lease session: %w", err)
	}
	l := &leaseConn{Conn: conn, timeout: t}
	l.extend(sent)
	return l, nil
}

// do runs q on the lease connection within the leases' lifetime; its
// success proves the holder alive and extends the lifetime. A query that
// cannot succeed before the server may have freed the leases fails.
func (l *leaseConn) do(ctx context.Context, q func(context.Context) error) error {
	sent := time.Now()
	qctx, cancel := context.WithDeadline(ctx, *l.until.Load())
	defer cancel()
	if err := q(qctx); err != nil {
		if qctx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("no answer within the lease's lifetime (lease timeout %v): %w", l.timeout, err)
		}
		return err
	}
	l.extend(sent)
	return nil
}

// leaseSession holds leases on one dedicated connection: it takes every free
// lease of a known stream, runs a worker per held stream, and routes outbox
// notifications to them. Every round trip on the connection (taking leases,
// or a ping when there is none to take) renews the leases; one is made at
// least three times per LeaseTimeout. It returns when ctx ends or the
// connection fails or stays silent too long; either way the workers stop
// first (abandoning open transactions unless ctx ended), then closing the
// connection frees the leases. connected is called once the connection
// listens.
func (r *Relay) leaseSession(ctx context.Context, adm *kadm.Client, connected func()) (err error) {
	conn, err := r.connectLease(ctx)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if err := conn.do(ctx, func(ctx context.Context) error {
		_, err := conn.Exec(ctx, "LISTEN "+notifyChannel)
		return err
	}); err != nil {
		return fmt.Errorf("listen for outbox rows: %w", err)
	}
	r.log.Info("lease session connected", "backend_pid", conn.PgConn().PID())
	connected()

	wctx, stop := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	held := map[Stream]*worker{}
	defer func() {
		if err != nil {
			stop(fmt.Errorf("%w: %w", errLeaseLost, err))
		}
		stop(nil)
		wg.Wait()
		r.m.leases.Sub(float64(len(held)))
	}()

	// beat is how often the connection is used: well within LeaseTimeout,
	// and at most LeaseRetry apart so that standbys try free leases.
	beat := min(r.cfg.LeaseRetry, r.cfg.LeaseTimeout/3)
	known := map[Stream]bool{}
	var nextDiscover, nextAcquire time.Time
	for {
		now := time.Now()
		if !now.Before(nextDiscover) {
			if err := r.discover(ctx, conn, adm, known, beat); err != nil {
				return err
			}
			nextDiscover = now.Add(r.cfg.DiscoverInterval)
			nextAcquire = time.Now()
		}
		if !now.Before(nextAcquire) {
			got, err := r.acquire(ctx, conn, known, held)
			if err != nil {
				return err
			}
			for _, s := range got {
				w := newWorker(r, s, conn)
				held[s] = w
				r.m.leases.Inc()
				wg.Go(func() { w.run(wctx) })
			}
			nextAcquire = time.Now().Add(beat)
		}

		wakeAt := nextAcquire
		if nextDiscover.Before(wakeAt) {
			wakeAt = nextDiscover
		}
		nctx, cancel := context.WithDeadline(ctx, wakeAt)
		n, err := conn.WaitForNotification(nctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			continue
		case err != nil:
			return fmt.Errorf("wait for outbox notifications: %w", err)
		}
		s, ok := parseStream(n.Payload)
		switch {
		case !ok:
			r.log.Warn("ignoring malformed outbox notification", "payload", n.Payload)
		case held[s] != nil:
			held[s].poke()
		case !known[s]:
			known[s] = true
			nextAcquire = time.Now()
		}
	}
}

// discover adds to known every partition of the configured topics and every
// stream of outbox_streams. A broker that cannot answer within wait is
// logged, not fatal: the streams already known keep going, and the lease
// connection is used again in time.
func (r *Relay) discover(ctx context.Context, conn *leaseConn, adm *kadm.Client, known map[Stream]bool, wait time.Duration) error {
	var streams []Stream
	if err := conn.do(ctx, func(ctx context.Context) error {
		rows, err := conn.Query(ctx, `SELECT topic, partition FROM outbox_streams`)
		if err != nil {
			return err
		}
		streams, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Stream])
		return err
	}); err != nil {
		return fmt.Errorf("list outbox streams: %w", err)
	}
	for _, s := range streams {
		known[s] = true
	}
	if len(r.cfg.Topics) == 0 {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tds, err := adm.ListTopics(lctx, r.cfg.Topics...)
	if err != nil {
		r.log.Warn("cannot list output topics; relaying the streams already known", "err", err)
		return nil
	}
	for _, td := range tds.Sorted() {
		if td.Err != nil {
			r.log.Warn("output topic unavailable", "topic", td.Topic, "err", td.Err)
			continue
		}
		for p := range td.Partitions {
			known[Stream{Topic: td.Topic, Partition: p}] = true
		}
	}
	return nil
}

// acquire tries, in one round trip, to take the lease of every known stream
// not held yet, and returns the streams it took. The round trip doubles as
// the holder's proof of liveness (leaseConn.do): one that fails or does not
// answer before the leases may have been freed ends the session, so
// workers do not go on relaying (and fencing the new holder) on leases the
// server has freed.
func (r *Relay) acquire(ctx context.Context, conn *leaseConn, known map[Stream]bool, held map[Stream]*worker) ([]Stream, error) {
	byKey := map[int64]Stream{}
	var keys []int64
	for s := range known {
		if held[s] == nil {
			k := leaseKey(s)
			byKey[k] = s
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		if err := conn.do(ctx, conn.Ping); err != nil {
			return nil, fmt.Errorf("check lease connection: %w", err)
		}
		return nil, nil
	}
	var got []int64
	if err := conn.do(ctx, func(ctx context.Context) error {
		rows, err := conn.Query(ctx, `SELECT k FROM unnest($1::bigint[]) AS k WHERE pg_try_advisory_lock(k)`, keys)
		if err != nil {
			return err
		}
		got, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	}); err != nil {
		return nil, fmt.Errorf("take leases: %w", err)
	}
	streams := make([]Stream, len(got))
	for i, k := range got {
		streams[i] = byKey[k]
		r.log.Info("lease taken", "stream", streams[i].String())
	}
	return streams, nil
}

// Querier is what Pending needs: a pool, a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Pending is the outbox backlog: rows not yet confirmed in the log and
// deleted (the status endpoint's outbox.pending).
func Pending(ctx context.Context, db Querier) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM outbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count outbox rows: %w", err)
	}
	return n, nil
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

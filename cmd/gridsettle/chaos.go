//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/api"
	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/migrations"
	"github.com/gridsettle/gridsettle/migrations/pgserver"
	"github.com/gridsettle/gridsettle/reporting"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/failpoint"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
	"github.com/gridsettle/gridsettle/settlement/publish"
	"github.com/gridsettle/gridsettle/settlement/simulate"
)

// chaosConfig is one run of the chaos suite (settlement/README.md
// "Exactly-once", "What proves it"): separate OS
// processes — one `gridsettle broker`, three `gridsettle serve --components
// ingest,publish` workers in one consumer group and one `serve --components
// api` — settle a seeded simulated stream while the harness kills, freezes
// and disconnects them; afterwards everything they produced is checked
// against the independent oracle.
type chaosConfig struct {
	Binary      string // the gridsettle executable every process runs
	DatabaseURL string // a migrated database of our own: the suite terminates its connections
	Dir         string // scratch: broker data, logs, registry, exports
	Seed        int64  // the workload's and the faults' seed
	Meters      int
	Days        int
	// Duration, when positive, is the long mode: random faults for this long
	// over a paced stream and rounds of runs; zero is the short fixed plan.
	Duration time.Duration
	Out      io.Writer // progress, one line per step
	// Workers is how many ingest,publish workers run; 0: chaosWorkers.
	Workers int
	// Market is the market the stream is generated for and every process
	// settles; zero fields take simulate's defaults (the contract's).
	Market settlement.Market
}

const (
	chaosWorkers    = 3
	chaosPartitions = 4
	// chaosSession is the ingest group session timeout the workers run
	// with: kfake's minimum, so a dead or frozen member's partitions move
	// within seconds.
	chaosSession = 6 * time.Second
	// chaosLeaseTimeout is how long a frozen relay keeps its outbox leases
	// (the default).
	chaosLeaseTimeout = 5 * time.Second
	// chaosChunk is how many records one produce step sends, in
	// transactions of chaosTxnRecords.
	chaosChunk      = 25
	chaosTxnRecords = 10
	// chaosWait bounds every wait of the suite for something that must
	// happen (a process up, a failpoint reached, quiescence).
	chaosWait = 3 * time.Minute
)

// chaos is the harness state of one run.
type chaos struct {
	cfg       chaosConfig
	rng       *mrand.Rand
	log       *slog.Logger // the harness's own log file
	logFile   *os.File
	pool      *pgxpool.Pool
	kcfg      kafka.Config
	kafkaAddr string
	httpAddr  string
	token     string
	regDir    string
	logDir    string
	sc        *simulate.Scenario
	next      int // next record of sc.Records to produce
	resend    int // next record sent again once the stream is exhausted
	broker    *chaosLife
	slots     map[string]*chaosLife // the current life of w1..w3 and api
	lives     []*chaosLife          // every life of every slot but the broker
	brokers   []*chaosLife
	reader    *outputReader
	began     time.Time
	ep        *episode // the fault the next liveness bound applies to
	st        chaosStats
}

// chaosStats are the faults that fired and what the suite measured.
type chaosStats struct {
	Faults           int            // fault episodes
	Kills            int            // SIGKILLs sent by the harness
	FailpointKills   map[string]int // lives that killed themselves at a failpoint
	FailpointStops   map[string]int // lives that stopped themselves at a failpoint
	Zombies          int            // lives frozen past the session timeout, then continued
	LeaseHolderStops int            // of them SIGSTOPped while holding outbox leases
	LockWaits        int            // workers seen waiting on a frozen worker's transaction
	PGTerminations   int            // backends terminated with pg_terminate_backend
	EndCuts          int            // end-of-input cuts: the workers' sessions cut right after the last commit
	EndCutHits       int            // end-of-input cuts after which ingest logged a failed batch or offset reload
	BrokerRestarts   int            // SIGTERM + start of the broker
	Produced         int            // records of the scenario produced
	Resent           int            // records produced again (upstream duplicates)
	Poison           int            // records that are not JSON, added for the relays' sake
	Runs             []string       // completed run ids, in start order
	RunMidRetries    int            // runs killed at run-mid and started again
	// From the workers' logs.
	CASMisses      int // ingest: stored offset moved
	Fenced         int // relay sessions that failed fenced (epoch or producer fenced) or on a lost lease
	RelayRestarts  int // relay stream sessions that ended with an error
	BatchFailures  int // ingest batches rolled back and retried
	ReloadFailures int // ingest offset reloads that failed (and were retried)
	// From the log itself.
	AbortedRecords int // output records of aborted transactions (read_uncommitted − read_committed)
	// What the checks compared with the oracle.
	Checked chaosChecked
	// Liveness: the worst time from a fault's cause going away to lag 0
	// and an empty outbox, and how many episodes were bounded, per kind.
	Liveness map[string]time.Duration
	Bounded  map[string]int
	// Durations.
	Setup, Faulting, Settling, Quiescence, Checking, Total time.Duration
}

// chaosChecked counts what the checks compared, so that a pass is never
// vacuous.
type chaosChecked struct {
	InputRecords    int // records of the input topics the oracle consumed
	Quarantined     int // quarantine rows (= dead letters)
	AlertsPublished int // of AlertsMay possible, AlertsMust required
	AlertsMay       int
	AlertsMust      int
	Runs            int
	StatementLines  int // stored, published and computed by the oracle
	Charges         int
	Intervals       int
	Estimates       int // run_estimates rows computed by the oracle, all compared
	OutputRecords   int // committed output records (each checked once)
	JournalEntries  int
	// CompletenessInputs are the input partitions of completed runs'
	// completeness recounted from the input log.
	CompletenessInputs int
	// ExplainLines are the restated lines explained by the engine and the
	// oracle (chaos_explain.go), with ExplainChanges changes in all, in
	// ExplainTime, ExplainEngineTime of it in the engine.
	ExplainLines, ExplainChanges   int
	ExplainTime, ExplainEngineTime time.Duration
}

// runChaos runs the suite and returns what it measured; the error lists
// every discrepancy with the oracle and every fault that did not fire.
func runChaos(ctx context.Context, cfg chaosConfig) (*chaosStats, error) {
	c := newChaos(cfg)
	defer c.shutdown()
	defer func() { c.st.Total = time.Since(c.began) }()
	if err := c.setup(ctx); err != nil {
		return &c.st, err
	}
	c.st.Setup = time.Since(c.began)
	phase := time.Now()
	var err error
	if cfg.Duration > 0 {
		err = c.longPlan(ctx)
	} else {
		err = c.shortPlan(ctx)
	}
	if err != nil {
		return &c.st, err
	}
	c.st.Faulting = time.Since(phase)
	phase = time.Now()
	if err := c.settle(ctx); err != nil {
		return &c.st, err
	}
	c.st.Settling = time.Since(phase)
	phase = time.Now()
	if err := c.quiesce(ctx); err != nil {
		return &c.st, err
	}
	if err := c.stopWorkers(); err != nil {
		return &c.st, err
	}
	c.st.Quiescence = time.Since(phase)
	phase = time.Now()
	err = c.check(ctx)
	c.st.Checking = time.Since(phase)
	return &c.st, err
}

// newChaos is the harness of cfg, before setup.
func newChaos(cfg chaosConfig) *chaos {
	if cfg.Workers == 0 {
		cfg.Workers = chaosWorkers
	}
	return &chaos{cfg: cfg, rng: mrand.New(mrand.NewPCG(uint64(cfg.Seed), 0x6368616f73)), slots: map[string]*chaosLife{},
		began: time.Now(), st: chaosStats{FailpointKills: map[string]int{}, FailpointStops: map[string]int{},
			Liveness: map[string]time.Duration{}, Bounded: map[string]int{}}}
}

func (c *chaos) progress(format string, args ...any) {
	fmt.Fprintf(c.cfg.Out, "%7s  %s\n", time.Since(c.began).Round(100*time.Millisecond), fmt.Sprintf(format, args...))
}

// setup generates the scenario, loads its registry, and starts the broker,
// the output reader, the API and the workers.
func (c *chaos) setup(ctx context.Context) error {
	c.regDir, c.logDir = filepath.Join(c.cfg.Dir, "registry"), filepath.Join(c.cfg.Dir, "logs")
	if err := os.MkdirAll(c.logDir, 0o755); err != nil {
		return fmt.Errorf("create log dir: %w", err)
	}
	var err error
	if c.logFile, err = os.Create(filepath.Join(c.logDir, "harness.log")); err != nil {
		return fmt.Errorf("create harness log: %w", err)
	}
	c.log = slog.New(slog.NewTextHandler(c.logFile, nil))
	c.sc, err = simulate.Generate(simulate.Config{Seed: c.cfg.Seed, Meters: c.cfg.Meters, Days: c.cfg.Days, Market: c.cfg.Market})
	if err != nil {
		return err
	}
	if err := simulate.WriteRegistry(c.regDir, c.sc); err != nil {
		return err
	}
	if c.pool, err = migrations.Connect(ctx, withAppName(c.cfg.DatabaseURL, "chaos-harness")); err != nil {
		return err
	}
	if err := migrations.Apply(ctx, c.pool, c.log); err != nil {
		return err
	}
	var files []string
	for _, t := range []string{"participants", "settlement_points", "accounts", "meters"} {
		files = append(files, filepath.Join(c.regDir, t+".csv"))
	}
	hook, err := newAlertHook(c.sc.Config.Market, nil, nil)
	if err != nil {
		return err
	}
	if _, err := registrystore.ImportFiles(ctx, c.pool, hook.SettingsChanged, files...); err != nil {
		return fmt.Errorf("import the registry: %w", err)
	}
	if _, err := reporting.LoadOrCreateSigningKey(ctx, c.keyPath(), c.log); err != nil {
		return err
	}
	if c.kafkaAddr, err = freeLoopbackAddr(); err != nil {
		return err
	}
	if c.httpAddr, err = freeLoopbackAddr(); err != nil {
		return err
	}
	c.kcfg = kafka.Config{Brokers: []string{c.kafkaAddr}}
	c.token = "gs_" + rand.Text() + rand.Text() // serve takes no admin token shorter than 32 characters
	c.progress("scenario seed %d: %d meters, %d days, %d records (+%d late); dir %s",
		c.cfg.Seed, c.cfg.Meters, c.cfg.Days, len(c.sc.Records), len(c.sc.Late), c.cfg.Dir)
	if err := c.startBroker(ctx); err != nil {
		return err
	}
	if c.reader, err = startOutputReader(ctx, c.kcfg, c.log); err != nil {
		return err
	}
	if err := c.startSlot("api", ""); err != nil {
		return err
	}
	for _, w := range c.workers() {
		if err := c.startSlot(w, ""); err != nil {
			return err
		}
	}
	return nil
}

func (c *chaos) keyPath() string { return filepath.Join(c.cfg.Dir, "keys", "export-signing.pem") }

func (c *chaos) workers() []string {
	out := make([]string, c.cfg.Workers)
	for i := range out {
		out[i] = "w" + strconv.Itoa(i+1)
	}
	return out
}

// withAppName sets application_name on a postgres URL or key=value DSN, so
// the suite can find (and terminate) one process's connections.
func withAppName(dbURL, name string) string {
	if u, err := url.Parse(dbURL); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dbURL + " application_name=" + name
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (c *chaos) startBroker(ctx context.Context) error {
	l, err := startLife(c.cfg.Binary, c.logDir, "broker", len(c.brokers)+1, nil, syscall.SIGTERM,
		"broker", "--data-dir", filepath.Join(c.cfg.Dir, "broker"), "--kafka-addr", c.kafkaAddr,
		"--partitions", strconv.Itoa(chaosPartitions))
	if err != nil {
		return err
	}
	c.broker = l
	c.brokers = append(c.brokers, l)
	if err := l.waitLog(`msg="broker ready"`, chaosWait); err != nil {
		return err
	}
	return waitKafkaReady(ctx, c.kcfg)
}

func waitKafkaReady(ctx context.Context, kc kafka.Config) error {
	opts, err := kc.ClientOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return waitKafka(ctx, cl, kc.Brokers)
}

// startSlot starts a new life of slot (a worker or "api"), armed with the
// failpoints of armed, and waits until it is ready.
func (c *chaos) startSlot(slot, armed string) error {
	// Text logs: the harness reads them for its counts (msg="...").
	args := []string{"serve", "--log-format", "text", "--kafka-brokers", c.kafkaAddr,
		"--database-url", withAppName(c.cfg.DatabaseURL, "chaos-"+slot),
		"--partitions", strconv.Itoa(chaosPartitions), "--environment", "chaos",
		"--export-dir", filepath.Join(c.cfg.Dir, "exports"), "--signing-key", c.keyPath(),
		"--ingest-session-timeout", chaosSession.String(), "--publish-lease-timeout", chaosLeaseTimeout.String()}
	m := c.sc.Config.Market
	args = append(args, "--market-timezone", m.Location.String(), "--market-currency", m.Currency,
		"--settlement-interval", strconv.Itoa(m.IntervalSeconds), "--price-spike-threshold", m.PriceSpikeThreshold.String())
	if slot == "api" {
		args = append(args, "--components", "api", "--http-addr", c.httpAddr, "--admin-token", c.token)
	} else {
		args = append(args, "--components", "ingest,publish")
	}
	var env []string
	if armed != "" {
		env = append(env, failpointsEnv+"="+armed)
	}
	n := 1
	if prev := c.slots[slot]; prev != nil {
		n = prev.n + 1
	}
	l, err := startLife(c.cfg.Binary, c.logDir, slot, n, env, syscall.SIGKILL, args...)
	if err != nil {
		return err
	}
	c.slots[slot] = l
	c.lives = append(c.lives, l)
	if err := l.waitLog(`msg="gridsettle ready"`, chaosWait); err != nil {
		return err
	}
	if armed != "" {
		c.progress("start %s armed with %s", l, armed)
	}
	return nil
}

// kill sends SIGKILL to the slot's life and waits for it to die; a worker
// only once it has joined the ingest group (see joined).
func (c *chaos) kill(slot string) error {
	l := c.slots[slot]
	if l.exited() {
		return nil
	}
	if slot != "api" {
		c.joined(l)
	}
	if err := l.signal(syscall.SIGKILL); err != nil {
		if l.exited() {
			// A worker armed at random (name%p) may kill itself at any
			// moment, also while joined waited for it: it is gone anyway.
			return nil
		}
		return err
	}
	c.st.Kills++
	return l.wait(chaosWait)
}

// joinedLog is what ingest logs when the group has given it partitions.
const joinedLog = `msg="ingest: partitions assigned"`

// joined waits until worker life l was given partitions at least half a
// session ago, so that it has heartbeated since. kfake starts a new
// member's session timer only at its first heartbeat after the join, and
// stops waiting for its SyncGroup once the leader has synced: a worker
// killed in between stays in the group for good, holding the partitions it
// was given, which then stall (Kafka expires it after the session
// timeout). The long mode's liveness bound found that. After four session
// timeouts it gives up waiting: the kill goes ahead.
func (c *chaos) joined(l *chaosLife) {
	deadline := time.Now().Add(4 * chaosSession)
	for time.Now().Before(deadline) {
		for line := range strings.SplitSeq(l.log(), "\n") {
			if !strings.Contains(line, joinedLog) {
				continue
			}
			at, err := time.Parse(time.RFC3339Nano, logField(" "+line, "time"))
			if err == nil && time.Since(at) >= chaosSession/2 {
				return
			}
			break
		}
		if l.exited() || l.stopped() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.progress("  %s was given no partitions within %v; killing it anyway", l, 4*chaosSession)
}

// restartDead starts again every slot whose life has ended, unarmed, and
// records how the life ended. It returns how many of them had killed
// themselves at a failpoint.
func (c *chaos) restartDead() (int, error) {
	n := 0
	for _, slot := range append(c.workers(), "api") {
		l := c.slots[slot]
		if !l.exited() {
			continue
		}
		if c.noteExit(l) {
			n++
		}
		if err := c.startSlot(slot, ""); err != nil {
			return n, err
		}
	}
	return n, nil
}

// noteExit counts how a life ended, once, and reports whether it killed
// itself at a failpoint.
func (c *chaos) noteExit(l *chaosLife) bool {
	name, sig := l.firedFailpoint()
	switch {
	case name != "" && sig == failpoint.Kill.String() && l.signaled() == syscall.SIGKILL && !l.killedByUs:
		c.st.FailpointKills[name]++
		c.progress("%s killed itself at failpoint %s", l, name)
		return true
	case l.killedByUs:
		c.progress("%s killed (%v)", l, l.state)
	default:
		c.progress("%s exited on its own: %v; log tail:\n%s", l, l.state, tail(l.log(), 20))
	}
	return false
}

// produce sends the next chunk of the stream (see nextChunk).
func (c *chaos) produce(ctx context.Context) error { return c.send(ctx, c.nextChunk(false)) }

// nextChunk is the next chunk of the stream; once the stream is exhausted
// it is earlier records again (upstream duplicates) so that faults that
// wait for traffic still get it. With poison it adds a record that is not
// JSON (quarantined as malformed_json, so a dead letter goes through the
// outbox): the relays get something to publish even where the stream has
// no bad record and fires no alert.
func (c *chaos) nextChunk(poison bool) []simulate.Record {
	var recs []simulate.Record
	if c.next < len(c.sc.Records) {
		hi := min(c.next+chaosChunk, len(c.sc.Records))
		recs = c.sc.Records[c.next:hi]
		c.next = hi
		c.st.Produced += len(recs)
	} else {
		for range chaosChunk {
			recs = append(recs, c.sc.Records[c.resend%len(c.sc.Records)])
			c.resend++
		}
		c.st.Resent += len(recs)
	}
	if poison {
		c.st.Poison++
		recs = append(recs, simulate.Record{Topic: c.sc.Config.Topics.Reads, Key: []byte("chaos-poison"),
			Value: []byte("chaos poison " + strconv.Itoa(c.st.Poison))})
	}
	return recs
}

func (c *chaos) send(ctx context.Context, recs []simulate.Record) error {
	_, err := simulate.Produce(ctx, c.kcfg, recs,
		simulate.ProduceOptions{TransactionalID: "chaos-upstream", TransactionRecords: chaosTxnRecords}, c.log)
	return err
}

// produceUntil produces a chunk at a time (with poison, see nextChunk),
// pausing between chunks, until done reports true; it fails after limit.
func (c *chaos) produceUntil(ctx context.Context, limit time.Duration, poison bool, done func() bool) error {
	deadline := time.Now().Add(limit)
	for !done() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not reached within %v", limit)
		}
		if err := c.send(ctx, c.nextChunk(poison)); err != nil {
			return err
		}
		if waitFor(ctx, 1500*time.Millisecond, done) {
			return nil
		}
	}
	return nil
}

// waitFor polls cond every 50ms for at most d and reports whether it held.
func waitFor(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- faults ----

// faultKill kills a worker and starts it again, armed or not.
func (c *chaos) faultKill(ctx context.Context, slot, armNext string) error {
	c.st.Faults++
	c.progress("fault %d: SIGKILL %s", c.st.Faults, c.slots[slot])
	if err := c.kill(slot); err != nil {
		return err
	}
	c.noteExit(c.slots[slot])
	if err := c.produce(ctx); err != nil {
		return err
	}
	if err := c.startSlot(slot, armNext); err != nil {
		return err
	}
	c.causeGone("SIGKILL")
	return nil
}

// faultFailpoint restarts a worker armed with spec (a kill or a stop
// failpoint) and produces until it fires.
func (c *chaos) faultFailpoint(ctx context.Context, slot, spec string) (*chaosLife, error) {
	c.st.Faults++
	c.progress("fault %d: failpoint %s in %s", c.st.Faults, spec, slot)
	// An armed worker may own only partitions without traffic (a restarted
	// member gets back the partitions its previous life had); then the
	// next worker is armed instead, the first one started again unarmed.
	order := append([]string{slot}, slices.DeleteFunc(c.workers(), func(s string) bool { return s == slot })...)
	for attempt := 1; ; attempt++ {
		slot = order[(attempt-1)%len(order)]
		l, err := c.arm(ctx, slot, spec)
		if err != nil {
			return nil, err
		}
		fired := func() bool { return l.exited() || l.stopped() }
		err = c.produceUntil(ctx, 40*time.Second, strings.HasPrefix(spec, "publish-"), fired)
		if err != nil && attempt < 2*len(order) {
			c.progress("  %s did not reach %s within 40s; arming another worker", l, spec)
			if err := c.kill(slot); err != nil {
				return nil, err
			}
			c.noteExit(l)
			if err := c.startSlot(slot, ""); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("failpoint %s: not reached in %d attempts", spec, attempt)
		}
		if l.stopped() {
			name, _ := l.firedFailpoint()
			c.st.FailpointStops[name]++
			c.progress("%s stopped itself at failpoint %s", l, name)
			return l, nil
		}
		c.noteExit(l)
		if err := c.startSlot(slot, ""); err != nil {
			return nil, err
		}
		c.causeGone(strings.Split(spec, "-")[0] + " failpoint kill")
		return l, nil
	}
}

// arm kills slot's life and starts it again armed with spec. A publish
// failpoint fires only in the relay that holds the leases, so for those
// every worker is killed and the armed one is started first: once it holds
// every lease the others start again, as standbys.
func (c *chaos) arm(ctx context.Context, slot, spec string) (*chaosLife, error) {
	publishing := strings.HasPrefix(spec, "publish-")
	others := slices.DeleteFunc(c.workers(), func(s string) bool { return s == slot })
	killed := []string{slot}
	if publishing {
		killed = append(killed, others...)
	}
	for _, w := range killed {
		if err := c.kill(w); err != nil {
			return nil, err
		}
		c.noteExit(c.slots[w])
	}
	if err := c.startSlot(slot, spec); err != nil {
		return nil, err
	}
	l := c.slots[slot]
	if publishing {
		streams := chaosPartitions * len(kafka.DefaultTopics().Outputs())
		if !waitFor(ctx, chaosWait, func() bool { return l.exited() || l.stopped() || c.leasesHeld(ctx) == streams }) {
			return nil, fmt.Errorf("%s did not take the %d outbox leases within %v", l, streams, chaosWait)
		}
		for _, w := range others {
			if err := c.startSlot(w, ""); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// leasesHeld counts the outbox leases held: granted advisory locks of the
// relays' lease sessions.
func (c *chaos) leasesHeld(ctx context.Context) int {
	n, err := publish.CountLeasesHeld(ctx, c.pool)
	if err != nil {
		return -1
	}
	return n
}

// leaseHolders counts the outbox leases each worker slot holds: the granted
// advisory locks of lease sessions, matched to the backend pid each
// worker's current life logged when its lease session connected. Leases of
// a session no current life names (an earlier life's, not yet ended by the
// server) count under "".
func (c *chaos) leaseHolders(ctx context.Context) (map[string]int, error) {
	bySession := map[string]string{}
	for _, w := range c.workers() {
		if pid := lastLogField(c.slots[w].log(), leaseConnectedLog, "backend_pid"); pid != "" {
			bySession[pid] = w
		}
	}
	byBackend, err := publish.LeasesByBackend(ctx, c.pool)
	if err != nil {
		return nil, err
	}
	held := map[string]int{}
	for pid, n := range byBackend {
		held[bySession[pid]] += n
	}
	return held, nil
}

// leaseConnectedLog is what the relay logs, with the session's backend_pid,
// when its lease session connects.
const leaseConnectedLog = `msg="lease session connected"`

// lastLogField is key of the last line of log containing msg, "" if none.
func lastLogField(log, msg, key string) string {
	i := strings.LastIndex(log, msg)
	if i < 0 {
		return ""
	}
	line, _, _ := strings.Cut(log[i:], "\n")
	return logField(" "+line, key)
}

// takenOver waits until the workers other than frozen hold every outbox
// lease and the outbox is empty, while frozen stays frozen: a silent
// holder's leases must move without the harness's help, within the liveness
// bound plus the lease timeout of the freeze at frozenAt.
func (c *chaos) takenOver(ctx context.Context, frozen string, frozenAt time.Time, kind string) error {
	streams := chaosPartitions * len(kafka.DefaultTopics().Outputs())
	bound := livenessBound + chaosLeaseTimeout
	var last string
	ok := waitFor(ctx, time.Until(frozenAt.Add(bound)), func() bool {
		held, err := c.leaseHolders(ctx)
		if err != nil {
			last = err.Error()
			return false
		}
		pending := c.outboxPending(ctx)
		last = fmt.Sprintf("leases held %v, outbox pending %d", held, pending)
		return held[frozen] == 0 && held[""] == 0 && sumValues(held) == streams && pending == 0
	})
	d := time.Since(frozenAt)
	if !ok {
		return fmt.Errorf("liveness bound broken: %v after %s froze (%s), the other relays have not taken its leases and emptied the outbox: %s",
			d.Round(100*time.Millisecond), frozen, kind, last)
	}
	c.st.Liveness[kind] = max(c.st.Liveness[kind], d)
	c.st.Bounded[kind]++
	c.progress("  the other relays hold every lease and the outbox is empty %v after the freeze", d.Round(100*time.Millisecond))
	return nil
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// faultTxnZombie freezes a worker inside a batch transaction (after its
// outbox rows, before COMMIT) past the session timeout: the group gives its
// partitions to another worker, which must wait on the frozen transaction's
// row (taking over a partition reads its stored offset, which the frozen
// transaction has updated but not committed). Then it continues the zombie,
// whose transaction commits: it still owned the range it compare-and-set.
func (c *chaos) faultTxnZombie(ctx context.Context, slot string) error {
	l, err := c.faultFailpoint(ctx, slot, fmt.Sprintf("%s@%d:stop", failpoint.IngestAfterOutbox, 1+c.rng.IntN(3)))
	if err != nil {
		return err
	}
	slot = l.slot // faultFailpoint may have armed another worker
	c.st.Zombies++
	if err := c.frozenPast(ctx, slot); err != nil {
		return err
	}
	others := slices.DeleteFunc(c.workers(), func(s string) bool { return s == slot })
	if waitFor(ctx, time.Minute, func() bool { return c.lockWaiter(ctx, others) }) {
		c.st.LockWaits++
		c.progress("  another worker waits on the frozen transaction's row lock")
	} else {
		c.progress("  no worker waited on %s's row lock within a minute", l)
	}
	c.progress("  SIGCONT %s", l)
	if err := l.signal(syscall.SIGCONT); err != nil {
		return err
	}
	c.causeGone("zombie inside its transaction")
	return nil
}

// faultCASZombie freezes a worker between decoding a batch and beginning
// its transaction; terminates its database sessions (rolling back whatever
// else it had in flight, as idle_in_transaction_session_timeout would);
// waits past the session timeout until the new owners have applied every
// input record; then continues the zombie. Its batch's
// compare-and-set on the stored offset must miss: another owner moved it.
func (c *chaos) faultCASZombie(ctx context.Context, slot string) error {
	l, err := c.faultFailpoint(ctx, slot, fmt.Sprintf("%s@%d:stop", failpoint.IngestBeforeBegin, 1+c.rng.IntN(3)))
	if err != nil {
		return err
	}
	slot = l.slot // faultFailpoint may have armed another worker
	c.st.Zombies++
	// Its other partitions' transactions may hold locks the new owners
	// would wait for until it wakes up.
	n, err := c.terminate(ctx, slot)
	if err != nil {
		return err
	}
	c.progress("  terminated %d database sessions of frozen %s", n, l)
	// Its partitions must have moved on without it: an earlier owner not
	// yet revoked can apply its batch at once, and a zombie continued
	// within a second of the cut would meet its dead connection (a pooled
	// connection idle for less than a second is not pinged) before its
	// compare-and-set.
	if err := c.frozenPast(ctx, slot); err != nil {
		return err
	}
	if !waitFor(ctx, chaosWait, func() bool {
		st, err := c.status(ctx)
		return err == nil && !slices.ContainsFunc(st.Inputs, func(p ingest.PartitionStatus) bool { return p.Lag != 0 })
	}) {
		return fmt.Errorf("CAS zombie: the other workers did not apply every input record within %v", chaosWait)
	}
	c.progress("  SIGCONT %s", l)
	if err := l.signal(syscall.SIGCONT); err != nil {
		return err
	}
	c.causeGone("zombie before its transaction")
	if !waitFor(ctx, chaosWait, func() bool { return strings.Contains(l.log(), casMissLog) }) {
		return fmt.Errorf("CAS zombie: %s did not report a compare-and-set miss within %v; log tail:\n%s", l, chaosWait, tail(l.log(), 20))
	}
	c.progress("  %s: compare-and-set missed, reloaded its offsets", l)
	return nil
}

// casMissLog is what ingest logs when a batch's compare-and-set misses.
const casMissLog = `msg="ingest: stored offset moved, reloading"`

// faultPublishZombie freezes the relay holding every lease inside a Kafka
// transaction whose records are flushed and terminates its pooled database
// sessions; another relay must take the leases once the server ends the
// frozen one's lease session (fencing the frozen producer and aborting its
// transaction) and publish the backlog within the bound; then it continues
// the zombie: its stream session must fail (fenced, or its lease lost).
func (c *chaos) faultPublishZombie(ctx context.Context, slot string) error {
	l, err := c.faultFailpoint(ctx, slot, failpoint.PublishAfterFlush+"@1:stop")
	if err != nil {
		return err
	}
	slot = l.slot // faultFailpoint may have armed another worker
	c.st.Zombies++
	frozenAt := time.Now()
	// Its ingest may hold row locks; its lease session is left alone: the
	// frozen relay holds every lease (faultFailpoint), which the server
	// must take from it.
	n, err := c.terminate(ctx, slot)
	if err != nil {
		return err
	}
	c.progress("  terminated %d pooled database sessions of frozen %s", n, l)
	if err := c.takenOver(ctx, slot, frozenAt, "zombie relay (takeover from the freeze)"); err != nil {
		return err
	}
	c.progress("  SIGCONT %s", l)
	if err := l.signal(syscall.SIGCONT); err != nil {
		return err
	}
	c.causeGone("zombie relay")
	if !waitFor(ctx, chaosWait, func() bool { return relayErrors(l.log()) > 0 }) {
		return fmt.Errorf("publish zombie: the continued relay of %s did not report a failed session within %v; log tail:\n%s",
			l, chaosWait, tail(l.log(), 20))
	}
	c.progress("  %s: relay session failed after the zombie woke up", l)
	return nil
}

// faultStop freezes a worker with SIGSTOP at a moment of the harness's
// choosing, past the session timeout, then continues it. The worker frozen
// is the one holding the most outbox leases (slot only if none holds any):
// while it stays frozen, the others must take its leases and empty the
// outbox within the liveness bound plus the lease timeout.
func (c *chaos) faultStop(ctx context.Context, slot string) error {
	c.st.Faults++
	// Right after a fault the leases may be between holders.
	var held map[string]int
	streams := chaosPartitions * len(kafka.DefaultTopics().Outputs())
	waitFor(ctx, chaosWait, func() bool {
		h, err := c.leaseHolders(ctx)
		held = h
		return err == nil && h[""] == 0 && sumValues(h) == streams
	})
	for _, w := range c.workers() {
		if held[w] > held[slot] {
			slot = w
		}
	}
	l := c.slots[slot]
	c.progress("fault %d: SIGSTOP %s (holding %d outbox leases) past the session timeout", c.st.Faults, l, held[slot])
	if err := l.signal(syscall.SIGSTOP); err != nil {
		if !l.exited() {
			return err
		}
		// It killed itself at a failpoint armed at random just before:
		// live restarts it and bounds that fault from the restart.
		c.progress("  %s had exited at its own failpoint", l)
		return nil
	}
	frozenAt := time.Now()
	c.st.Zombies++
	if held[slot] > 0 {
		c.st.LeaseHolderStops++
	}
	if err := c.produce(ctx); err != nil {
		return err
	}
	if err := c.takenOver(ctx, slot, frozenAt, "SIGSTOP (takeover from the freeze)"); err != nil {
		return err
	}
	if err := c.frozenPast(ctx, slot); err != nil {
		return err
	}
	if err := c.produce(ctx); err != nil {
		return err
	}
	c.progress("  SIGCONT %s", l)
	if err := l.signal(syscall.SIGCONT); err != nil {
		return err
	}
	c.causeGone("SIGSTOP")
	return nil
}

// frozenPast waits until the ingest group is stable without slot (frozen):
// every live worker but slot is a member, which happens once the frozen
// one's session has expired. Members stuck behind the frozen worker's
// locks may not rejoin in time, so the group need not settle: after four
// session timeouts the frozen worker is past its session timeout anyway.
func (c *chaos) frozenPast(ctx context.Context, slot string) error {
	adm, err := c.admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	began := time.Now()
	stable := waitFor(ctx, 4*chaosSession, func() bool {
		want := 0
		for _, w := range c.workers() {
			if w != slot && !c.slots[w].exited() && !c.slots[w].stopped() {
				want++
			}
		}
		gs, err := adm.DescribeGroups(ctx, ingest.DefaultGroup)
		if err != nil {
			return false
		}
		g := gs[ingest.DefaultGroup]
		return g.Err == nil && g.State == "Stable" && len(g.Members) == want && time.Since(began) > chaosSession
	})
	if stable {
		c.progress("  group %s stable without %s", ingest.DefaultGroup, slot)
	} else {
		c.progress("  group %s not stable without %s after %v", ingest.DefaultGroup, slot, 4*chaosSession)
	}
	return nil
}

// admin is a new admin client of the broker; Close it.
func (c *chaos) admin() (*kadm.Client, error) {
	opts, err := c.kcfg.ClientOpts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	return kadm.NewClient(cl), nil
}

// lockWaiter reports whether a backend of one of slots waits on a lock.
func (c *chaos) lockWaiter(ctx context.Context, slots []string) bool {
	names := make([]string, len(slots))
	for i, s := range slots {
		names[i] = "chaos-" + s
	}
	n, err := pgserver.CountWaitingOnLock(ctx, c.pool, names)
	return err == nil && n > 0
}

// faultTerminate terminates the pooled database sessions of a worker.
func (c *chaos) faultTerminate(ctx context.Context, slot string) error {
	c.st.Faults++
	n, err := c.terminate(ctx, slot)
	if err != nil {
		return err
	}
	c.progress("fault %d: pg_terminate_backend of %s: %d sessions", c.st.Faults, c.slots[slot], n)
	c.causeGone("connection cut")
	return c.produce(ctx)
}

// terminate terminates the pooled database sessions of slots.
func (c *chaos) terminate(ctx context.Context, slots ...string) (int, error) {
	names := make([]string, len(slots))
	for i, s := range slots {
		names[i] = "chaos-" + s
	}
	n, err := pgserver.TerminateSessions(ctx, c.pool, names)
	if err != nil {
		return 0, err
	}
	c.st.PGTerminations += n
	return n, nil
}

// faultBrokerRestart stops the broker with SIGTERM (never SIGKILL: kfake
// loses the abort marker of a transaction open at a hard kill) and starts
// it again on the same data dir and address.
func (c *chaos) faultBrokerRestart(ctx context.Context) error {
	c.st.Faults++
	c.progress("fault %d: broker restart (SIGTERM)", c.st.Faults)
	if err := c.broker.signal(syscall.SIGTERM); err != nil {
		return err
	}
	if err := c.broker.wait(chaosWait); err != nil {
		return err
	}
	if !c.broker.state.Success() {
		return fmt.Errorf("broker exited with %v on SIGTERM; log tail:\n%s", c.broker.state, tail(c.broker.log(), 20))
	}
	if err := c.startBroker(ctx); err != nil {
		return err
	}
	c.st.BrokerRestarts++
	c.causeGone("broker restart")
	return c.produce(ctx)
}

// ---- plans ----

// shortPlan is the fixed plan of the normal test run: every kind of fault
// and every failpoint at least once while the stream is produced, each
// followed by the liveness bound; then the end of the input, cut until a
// cut has hit ingest at work.
func (c *chaos) shortPlan(ctx context.Context) error {
	w := func() string { return c.workers()[c.rng.IntN(c.cfg.Workers)] }
	steps := []func() error{
		func() error { return c.produce(ctx) },
		func() error { return c.faultKill(ctx, w(), "") },
		func() error { return c.ingestFailpoint(ctx, w(), failpoint.IngestAfterCommit) },
		func() error { return c.faultTerminate(ctx, w()) },
		func() error { return c.publishFailpoint(ctx, w(), failpoint.PublishAfterFlush) },
		func() error { return c.ingestFailpoint(ctx, w(), failpoint.IngestBeforeCommit) },
		func() error { return c.faultTxnZombie(ctx, w()) },
		func() error { return c.faultBrokerRestart(ctx) },
		func() error { return c.publishFailpoint(ctx, w(), failpoint.PublishBeforeProduce) },
		func() error { return c.faultCASZombie(ctx, w()) },
		func() error { return c.ingestFailpoint(ctx, w(), failpoint.IngestAfterOutbox) },
		func() error { return c.faultPublishZombie(ctx, w()) },
		func() error { return c.publishFailpoint(ctx, w(), failpoint.PublishAfterCommit) },
		func() error { return c.faultStop(ctx, w()) },
		func() error {
			return c.faultKill(ctx, w(), fmt.Sprintf("seed=%d,%s%%0.2", c.rng.Uint64(), failpoint.IngestAfterCommit))
		},
		func() error { return c.faultTerminate(ctx, w()) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
		if err := c.live(ctx); err != nil {
			return err
		}
	}
	for try := 1; ; try++ {
		hit, err := c.faultEndCut(ctx, c.burst(true))
		if err != nil || hit || try == endCutTries {
			return err
		}
	}
}

// longPlan draws faults at random until cfg.Duration has passed, each
// followed by the liveness bound, with a round of runs of every day now
// and then (every run is checked against the oracle with the input its
// lineage says it read); the input ends with an end-of-input cut.
func (c *chaos) longPlan(ctx context.Context) error {
	end := time.Now().Add(c.cfg.Duration)
	nextRuns := time.Now().Add(c.cfg.Duration / 6)
	brokerRestarted := false
	for time.Now().Before(end) {
		w := c.workers()[c.rng.IntN(c.cfg.Workers)]
		var err error
		switch k := c.rng.IntN(100); {
		case !brokerRestarted && time.Now().After(end.Add(-c.cfg.Duration/2)):
			brokerRestarted = true
			err = c.faultBrokerRestart(ctx)
		case k < 25:
			arm := ""
			if c.rng.IntN(2) == 0 {
				arm = fmt.Sprintf("seed=%d,%s%%0.1", c.rng.Uint64(), c.drawPoint(ingestPoints))
			}
			err = c.faultKill(ctx, w, arm)
		case k < 45:
			err = c.ingestFailpoint(ctx, w, c.drawPoint(ingestPoints))
		case k < 60:
			err = c.publishFailpoint(ctx, w, c.drawPoint(publishPoints))
		case k < 66:
			err = c.faultTerminate(ctx, w)
		case k < 72:
			_, err = c.faultEndCut(ctx, c.burst(false))
		case k < 78:
			err = c.faultStop(ctx, w)
		case k < 82:
			err = c.faultTxnZombie(ctx, w)
		case k < 86:
			err = c.faultCASZombie(ctx, w)
		case k < 94:
			err = c.faultPublishZombie(ctx, w)
		default:
			err = c.produce(ctx)
		}
		if err != nil {
			return err
		}
		if err := c.live(ctx); err != nil {
			return err
		}
		if time.Now().After(nextRuns) && c.next >= len(c.sc.Records) {
			nextRuns = time.Now().Add(c.cfg.Duration / 6)
			if err := c.runDays(ctx, settlement.RunType("resettlement"), c.rng.IntN(3) == 0); err != nil {
				return err
			}
			if err := c.live(ctx); err != nil {
				return err
			}
		}
	}
	if !brokerRestarted {
		if err := c.faultBrokerRestart(ctx); err != nil {
			return err
		}
		if err := c.live(ctx); err != nil {
			return err
		}
	}
	_, err := c.faultEndCut(ctx, c.burst(true))
	return err
}

// drawPoint draws one of points, among those that have not fired yet while
// any has not: the check requires every failpoint to fire (chaos_check.go),
// and a uniform draw left one unfired in about one long run in fifty (seed
// 26: 77 episodes, publish-before-produce never drawn).
func (c *chaos) drawPoint(points []string) string {
	var unfired []string
	for _, name := range points {
		if c.st.FailpointKills[name]+c.st.FailpointStops[name] == 0 {
			unfired = append(unfired, name)
		}
	}
	if len(unfired) > 0 {
		points = unfired
	}
	return points[c.rng.IntN(len(points))]
}

// chaosPoints are the failpoints the chaos suite arms (the bridge's are
// the bridge test's).
func chaosPoints() []string {
	return append(append(slices.Clone(ingestPoints), publishPoints...), failpoint.RunMid)
}

var (
	ingestPoints  = []string{failpoint.IngestBeforeBegin, failpoint.IngestBeforeCommit, failpoint.IngestAfterOutbox, failpoint.IngestAfterCommit}
	publishPoints = []string{failpoint.PublishBeforeProduce, failpoint.PublishAfterFlush, failpoint.PublishAfterCommit}
)

// ingestFailpoint arms a worker with an ingest kill failpoint at a small
// random hit.
func (c *chaos) ingestFailpoint(ctx context.Context, slot, name string) error {
	_, err := c.faultFailpoint(ctx, slot, fmt.Sprintf("%s@%d", name, 1+c.rng.IntN(4)))
	return err
}

// publishFailpoint arms a worker with a publish kill failpoint at its first
// transaction and steers the leases to it.
func (c *chaos) publishFailpoint(ctx context.Context, slot, name string) error {
	_, err := c.faultFailpoint(ctx, slot, name+"@1")
	return err
}

// settle runs initial runs of every day (the first one killed at run-mid
// and started again), takes the leases from the relay publishing their
// statements, produces the late part as the end of the input with the
// connections cut after it, kills a worker, and runs final runs, killing a
// worker while they are published; the liveness bound follows each fault.
func (c *chaos) settle(ctx context.Context) error {
	w := func() string { return c.workers()[c.rng.IntN(c.cfg.Workers)] }
	if err := c.waitIngested(ctx); err != nil {
		return err
	}
	steps := []func() error{
		func() error { return c.runDays(ctx, settlement.RunType("initial"), true) },
		func() error { return c.faultTerminate(ctx, w()) },
		func() error {
			c.progress("the late part: %d records", len(c.sc.Late))
			_, err := c.faultEndCut(ctx, c.sc.Late)
			return err
		},
		func() error { return c.faultKill(ctx, w(), "") },
		// Runs settle what ingest has applied: the bound before it
		// proved the late part in.
		func() error { return c.runDays(ctx, settlement.RunType("final"), false) },
		func() error { return c.faultKill(ctx, w(), "") },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
		if err := c.live(ctx); err != nil {
			return err
		}
	}
	return nil
}

// runDays starts a run of type t of every operating day through the API;
// with runMid the first is started on an API instance armed with run-mid,
// which dies inside the run's write transaction, and then again.
func (c *chaos) runDays(ctx context.Context, t settlement.RunType, runMid bool) error {
	for i := range c.cfg.Days {
		day := c.sc.Config.StartDay.AddDays(i)
		if runMid && i == 0 {
			c.st.Faults++
			c.progress("fault %d: run %s %s on an API armed with %s", c.st.Faults, day, t, failpoint.RunMid)
			if err := c.kill("api"); err != nil {
				return err
			}
			if err := c.startSlot("api", failpoint.RunMid); err != nil {
				return err
			}
			l := c.slots["api"]
			if _, err := c.startRun(ctx, day, t); err == nil {
				return fmt.Errorf("run of %s answered although the API was armed with %s", day, failpoint.RunMid)
			}
			if err := l.wait(chaosWait); err != nil {
				return err
			}
			c.noteExit(l)
			c.st.RunMidRetries++
			if err := c.startSlot("api", ""); err != nil {
				return err
			}
			c.causeGone("run-mid")
		}
		run, err := c.startRun(ctx, day, t)
		if err != nil {
			return err
		}
		if run.Status != settlementpg.Completed {
			return fmt.Errorf("run %s: status %s: %s", run.RunID, run.Status, run.Error)
		}
		c.st.Runs = append(c.st.Runs, run.RunID)
		c.progress("run %s completed", run.RunID)
	}
	return nil
}

func (c *chaos) startRun(ctx context.Context, day settlement.Day, t settlement.RunType) (settlementpg.Run, error) {
	body, _ := json.Marshal(api.RunRequest{OperatingDay: day.String(), RunType: string(t)})
	var run settlementpg.Run
	err := c.call(ctx, http.MethodPost, "/api/v1/runs", body, http.StatusCreated, &run)
	return run, err
}

// call sends an API request with the admin token and decodes the answer.
func (c *chaos) call(ctx context.Context, method, path string, body []byte, want int, out any) error {
	ctx, cancel := context.WithTimeout(ctx, chaosWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.httpAddr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	return json.Unmarshal(b, out)
}

// status is the service status, or an error if the API cannot answer.
func (c *chaos) status(ctx context.Context) (api.Status, error) {
	var st api.Status
	err := c.call(ctx, http.MethodGet, "/api/v1/status", nil, http.StatusOK, &st)
	return st, err
}

// waitIngested waits until every input partition has lag 0, restarting
// dead slots and continuing frozen ones meanwhile.
func (c *chaos) waitIngested(ctx context.Context) error {
	return c.waitStatus(ctx, "ingest lag 0", func(st api.Status) bool {
		return !slices.ContainsFunc(st.Inputs, func(p ingest.PartitionStatus) bool { return p.Lag != 0 })
	})
}

// quiesce waits until ingest lag and the outbox backlog are 0 and the
// output reader has read every committed output record.
func (c *chaos) quiesce(ctx context.Context) error {
	err := c.waitStatus(ctx, "quiescence", func(st api.Status) bool {
		return st.Outbox.Pending == 0 && !slices.ContainsFunc(st.Inputs, func(p ingest.PartitionStatus) bool { return p.Lag != 0 })
	})
	if err != nil {
		return err
	}
	if !waitFor(ctx, chaosWait, func() bool { return c.reader.caughtUp(ctx) }) {
		return fmt.Errorf("the read_committed output reader did not reach the end of the output topics within %v", chaosWait)
	}
	c.progress("quiescent: lag 0, outbox empty, output read to the end")
	return nil
}

func (c *chaos) waitStatus(ctx context.Context, what string, done func(api.Status) bool) error {
	deadline := time.Now().Add(chaosWait)
	var last error
	for time.Now().Before(deadline) {
		if _, err := c.restartDead(); err != nil {
			return err
		}
		for _, l := range c.slots {
			if l.stopped() {
				_ = l.signal(syscall.SIGCONT)
			}
		}
		st, err := c.status(ctx)
		if err == nil && done(st) {
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("status %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s not reached within %v: %v", what, chaosWait, last)
}

func (c *chaos) outboxPending(ctx context.Context) int64 {
	n, err := publish.Pending(ctx, c.pool)
	if err != nil {
		return -1
	}
	return n
}

// countLogs counts the lines of every worker life containing s.
func (c *chaos) countLogs(s string) int {
	n := 0
	for _, l := range c.lives {
		n += strings.Count(l.log(), s)
	}
	return n
}

// stopWorkers stops every worker and the API with SIGTERM: each must exit
// 0 (a graceful shutdown after all that happened).
func (c *chaos) stopWorkers() error {
	var errs []error
	for _, slot := range append(c.workers(), "api") {
		l := c.slots[slot]
		if l.exited() {
			continue
		}
		if err := l.signal(syscall.SIGTERM); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := l.wait(chaosWait); err != nil {
			errs = append(errs, err)
			continue
		}
		if !l.state.Success() {
			errs = append(errs, fmt.Errorf("%s exited with %v on SIGTERM; log tail:\n%s", l, l.state, tail(l.log(), 20)))
		}
	}
	return errors.Join(errs...)
}

// shutdown ends whatever still runs: workers killed (after SIGCONT, so a
// frozen one dies too), the reader closed, the broker stopped with SIGTERM.
func (c *chaos) shutdown() {
	for _, l := range c.slots {
		if !l.exited() {
			_ = l.signal(syscall.SIGCONT)
			_ = l.signal(syscall.SIGKILL)
			_ = l.wait(chaosWait)
		}
	}
	if c.reader != nil {
		c.reader.close()
	}
	if c.broker != nil && !c.broker.exited() {
		_ = c.broker.signal(syscall.SIGTERM)
		if err := c.broker.wait(chaosWait); err != nil {
			c.log.Error("broker did not stop", "err", err)
		}
	}
	if c.pool != nil {
		c.pool.Close()
	}
	if c.logFile != nil {
		c.logFile.Close()
	}
}

package postgres_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/reporting"
	"github.com/gridsettle/gridsettle/reporting/parquet"
	exportpg "github.com/gridsettle/gridsettle/reporting/postgres"
	"github.com/gridsettle/gridsettle/reporting/reportingtest"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/outbox"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// hungFolder stands in for an export folder that does not answer (a hung
// NFS mount): creating a file blocks, whatever the context, until release
// is closed, as a call stuck in the kernel cannot be interrupted.
type hungFolder struct {
	release  chan struct{}
	entered  chan struct{} // closed by the first call
	once     sync.Once
	calls    atomic.Int64
	inFlight atomic.Int64
	most     atomic.Int64 // the most calls in flight at once
}

func newHungFolder() *hungFolder {
	return &hungFolder{release: make(chan struct{}), entered: make(chan struct{})}
}

func (h *hungFolder) open(name string, flag int, perm os.FileMode) (*os.File, error) {
	h.calls.Add(1)
	n := h.inFlight.Add(1)
	for m := h.most.Load(); n > m && !h.most.CompareAndSwap(m, n); m = h.most.Load() {
	}
	h.once.Do(func() { close(h.entered) })
	<-h.release
	h.inFlight.Add(-1)
	return os.OpenFile(name, flag, perm)
}

// waitFor polls cond until it holds, for a minute at most.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within a minute", what)
		}
	}
}

// within fails the test unless done is closed within a minute: far more
// than what it waits for takes, far less than for ever.
func within(t *testing.T, what string, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s did not happen within a minute", what)
	}
}

// TestAHungExportFolderStallsNoRun: with the export folder hung, runs
// started by hand and the scheduler's due runs all complete (the runs'
// completion hook only wakes the export worker, wired as cmd/gridsettle
// wires it); the worker stops at shutdown although its attempt is stuck,
// and the stuck attempt holds no connection of the pool (closing it does
// not wait). Once the folder answers, every completed run is exported and
// verifies.
func TestAHungExportFolderStallsNoRun(t *testing.T) {
	t.Parallel()
	pool, dbURL := pgtest.New(t)
	ctx := t.Context()
	market := reportingtest.FallBackDay().Market
	for _, sql := range []string{
		`INSERT INTO participants VALUES ('P', 'P')`,
		`INSERT INTO settlement_points VALUES ('S', 'S', 'hub')`,
		`INSERT INTO accounts (account_id, name) VALUES ('A', 'A')`,
		`INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		 VALUES ('M', 'A', 'P', 'S', 1, '2020-01-01T00:00:00Z')`,
		`SELECT read_blocks_partition('2026-11-01T00:00:00Z')`,
		`INSERT INTO read_blocks (meter_id, channel, start, interval_seconds, version, values_micro, topic, partition, "offset")
		 SELECT 'M', 'import', d + interval '12 hours', 900, 1, ARRAY[1500000]::bigint[], 'ami.interval-reads', 0, 0
		 FROM generate_series(timestamptz '2026-11-01', '2026-11-03', interval '1 day') d`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	root := t.TempDir()
	hung := newHungFolder()
	e := newExporter(t, pool, root, func(c *exportpg.Config) {
		c.Timeout = time.Hour // not given up on: shutdown walks away from it
		c.Export.OpenFile = hung.open
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	runs := settlementpg.NewRuns(pool, settlementpg.Config{
		Market: market, StatementsTopic: "settlement.statements", ChargesTopic: "settlement.account-charges",
		Outbox: outbox.NewWriter(map[string]int32{"settlement.statements": 1, "settlement.account-charges": 1}),
		Completed: func(_ context.Context, run settlementpg.Run) error {
			e.RunCompleted(run.RunID)
			return nil
		},
	}, log)
	worker, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		if err := e.Run(worker); err != nil {
			t.Error(err)
		}
		close(stopped)
	}()

	nov1 := settlement.Day{Year: 2026, Month: time.November, Day: 1}
	completed := func(run settlementpg.Run, err error) settlementpg.Run {
		t.Helper()
		if err != nil || run.Status != settlementpg.Completed {
			t.Fatalf("run %+v, %v", run, err)
		}
		return run
	}
	all := []settlementpg.Run{completed(runs.Start(ctx, nov1, settlement.Initial))}
	within(t, "the export of the first run reaching the folder", hung.entered)
	all = append(all, completed(runs.Start(ctx, nov1, settlement.Final)))
	sched, err := settlement.ParseSchedule("initial=P1D")
	if err != nil {
		t.Fatal(err)
	}
	scheduler, err := settlementpg.NewScheduler(runs, settlementpg.SchedulerConfig{Schedule: sched,
		Now: func() time.Time { return time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC) }}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	due, err := scheduler.RunDue(ctx)
	if err != nil || len(due) != 3 {
		t.Fatalf("scheduled runs while the folder hangs: %+v, %v; want the initial runs of Nov 1 to 3", due, err)
	}
	for _, run := range due {
		all = append(all, completed(run, nil))
	}

	stop()
	within(t, "the worker stopping while its export is stuck", stopped)
	closed := make(chan struct{})
	go func() { pool.Close(); close(closed) }()
	within(t, "closing the pool while an export is stuck", closed)
	if n := hung.calls.Load(); n != 1 {
		t.Fatalf("%d files created in the hung folder, want 1: the first attempt's", n)
	}

	close(hung.release)
	pool = pgtest.Connect(t, dbURL)
	again := newExporter(t, pool, root, nil)
	startWorker(t, again)
	for _, run := range all {
		day, err := settlement.ParseDay(run.OperatingDay)
		if err != nil {
			t.Fatal(err)
		}
		x := await(t, again, day, string(run.RunType), run.Version)
		if _, err := again.Verify(ctx, x.ExportID); err != nil {
			t.Errorf("%s: %v", x.ExportID, err)
		}
	}
}

// gauge is the value of the named counter or gauge on reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestATimedOutExportIsGivenUpOnAndNeverPilesUp: an export attempt stuck in
// the folder past its timeout is given up on, counted and shown as stuck;
// while it has not returned no other attempt starts, however often runs
// complete, and an export asked for through the API gives up when its
// context ends instead of queueing behind it. Once the folder answers, the
// same worker exports every pending run, in order.
func TestATimedOutExportIsGivenUpOnAndNeverPilesUp(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	initial, final := reportingtest.FallBackInitial(), reportingtest.FallBackDay()
	insertRun(t, pool, initial)
	insertRun(t, pool, final)
	hung := newHungFolder()
	reg := prometheus.NewRegistry()
	e, err := exportpg.NewExporter(pool, exportpg.Config{
		Root: t.TempDir(), Timeout: 300 * time.Millisecond,
		Export: reporting.Config{Generator: "gridsettle test", Market: final.Market, Codec: parquet.ZSTD, Key: testKey(),
			OpenFile: hung.open},
	}, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	startWorker(t, e)
	waitFor(t, "export given up on", func() bool { return gauge(t, reg, "gridsettle_exports_failed_total") == 1 })
	if gauge(t, reg, "gridsettle_exports_stuck") != 1 {
		t.Fatal("the attempt given up on is not shown as stuck")
	}
	for range 5 {
		e.RunCompleted(final.RunID)
	}
	asked, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := e.Produce(asked, final.Day, settlement.Final, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("an export asked for while one is stuck: %v, want the caller's deadline", err)
	}
	if n := hung.calls.Load(); n != 1 {
		t.Fatalf("%d attempts reached the hung folder, want 1", n)
	}

	close(hung.release)
	second := await(t, e, final.Day, final.RunType, int(final.Version))
	first := await(t, e, initial.Day, initial.RunType, int(initial.Version))
	if first.Seq > second.Seq {
		t.Errorf("the final run's export was registered before the initial run's")
	}
	for _, x := range []exportpg.Export{first, second} {
		if _, err := e.Verify(ctx, x.ExportID); err != nil {
			t.Errorf("%s: %v", x.ExportID, err)
		}
	}
	if n := hung.most.Load(); n != 1 {
		t.Errorf("%d attempts in the folder at once, want 1", n)
	}
	if n := gauge(t, reg, "gridsettle_exports_stuck"); n != 0 {
		t.Errorf("still shown as stuck after the folder answered")
	}
}

package postgres

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

func runIDs(runs []Run) []string {
	var out []string
	for _, r := range runs {
		out = append(out, r.RunID)
	}
	return out
}

func newScheduler(t *testing.T, e *env, cfg SchedulerConfig, reg prometheus.Registerer) *Scheduler {
	t.Helper()
	s, err := NewScheduler(e.runs, cfg, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSchedulerRunsDueRunsOnceInOrder(t *testing.T) {
	t.Parallel()
	m := settlement.Market{Location: chicago(t), Currency: "USD", IntervalSeconds: 900}
	e := newEnv(t, m)
	e.registry([]string{"P"}, []string{"S"}, []string{"A"})
	e.assign("M", "A", "P", "S", "1", longAgo, time.Time{})
	// reads on Nov 1, 2 and 5; none on Nov 3 and 4
	for _, d := range []int{1, 2, 5} {
		start, _ := m.Bounds(settlement.Day{Year: 2026, Month: time.November, Day: d})
		e.read("M", "import", start.Add(time.Hour), 900, "1", "A", 1)
	}
	var now time.Time
	s := newScheduler(t, e, SchedulerConfig{Now: func() time.Time { return now }}, nil)

	steps := []struct {
		now  time.Time
		want []string
	}{
		{time.Date(2026, 11, 7, 5, 59, 59, 0, time.UTC), nil},
		// Nov 1 ends at 06:00Z on Nov 2 (CST); P5D later is due, inclusive
		{time.Date(2026, 11, 7, 6, 0, 0, 0, time.UTC), []string{"run-2026-11-01-initial-1"}},
		{time.Date(2026, 11, 7, 12, 0, 0, 0, time.UTC), nil},
		// down for seven weeks: the missed runs start oldest due first
		{time.Date(2026, 12, 28, 7, 0, 0, 0, time.UTC), []string{
			"run-2026-11-02-initial-1", // due 11-08
			"run-2026-11-05-initial-1", // due 11-11
			"run-2026-11-01-final-2",   // due 12-27
			"run-2026-11-02-final-2",   // due 12-28
		}},
		{time.Date(2027, 5, 1, 5, 0, 0, 0, time.UTC), []string{
			"run-2026-11-05-final-2",   // due 12-31
			"run-2026-11-01-true-up-3", // 180 days after Nov 2 00:00 CST is May 1 00:00 CDT
		}},
	}
	for _, st := range steps {
		now = st.now
		got, err := s.RunDue(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(runIDs(got), st.want) {
			t.Fatalf("at %s started %v, want %v", st.now, runIDs(got), st.want)
		}
	}
	// each recorded once, in the run's own transaction
	if n := e.count(`SELECT count(*) FROM scheduled_runs`); n != 7 {
		t.Fatalf("%d scheduled runs recorded, want 7", n)
	}
}

// TestSchedulerSeesEveryReadOfABlock: a stored block holds reads past its
// start (migrations/00800_read_blocks.sql), so the days with reads and the
// span of reads come from every read of a block, not its start. One block
// starting at 00:00Z on Nov 10 (18:00 on Nov 9 in Chicago) with 40
// quarter-hours reaches into Nov 10; a correction of one of its reads
// (version 2, the rest of its record stale) makes one read current, not a
// second one; Nov 11 has no read, and the last block, from 18:00 on Nov 12
// in Chicago, ends on Nov 13.
func TestSchedulerSeesEveryReadOfABlock(t *testing.T) {
	t.Parallel()
	m := settlement.Market{Location: chicago(t), Currency: "USD", IntervalSeconds: 900}
	e := newEnv(t, m)
	e.registry([]string{"P"}, []string{"S"}, []string{"A"})
	e.assign("M", "A", "P", "S", "1", longAgo, time.Time{})
	kwh := make([]int64, 40)
	for i := range kwh {
		kwh[i] = 1_000_000
	}
	e.block("M", "import", time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC), 900, 1, kwh...)
	e.block("M", "import", time.Date(2026, 11, 10, 6, 0, 0, 0, time.UTC), 900, 2, readstore.NoRead, 5_000_000, readstore.NoRead)
	for i := range 28 {
		kwh[i] = 2_000_000
	}
	e.block("M", "import", time.Date(2026, 11, 13, 0, 0, 0, 0, time.UTC), 900, 1, kwh[:28]...)
	sched, err := settlement.ParseSchedule("initial=P1D")
	if err != nil {
		t.Fatal(err)
	}
	s := newScheduler(t, e, SchedulerConfig{Schedule: sched, Now: func() time.Time { return time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC) }}, nil)
	got, err := s.RunDue(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"run-2026-11-09-initial-1", "run-2026-11-10-initial-1", "run-2026-11-12-initial-1", "run-2026-11-13-initial-1"}
	if !slices.Equal(runIDs(got), want) {
		t.Fatalf("started %v, want %v", runIDs(got), want)
	}
	// Nov 9: 24 reads of 1 kWh before 06:00Z; Nov 10: 15 of 1 kWh and the
	// corrected 5 kWh; Nov 12: 24 of 2 kWh; Nov 13: 4 of 2 kWh
	for i, fig := range []struct {
		mwh   string
		reads int
	}{{"0.024", 24}, {"0.02", 16}, {"0.048", 24}, {"0.008", 4}} {
		var mwh decimal.Decimal
		var reads int
		if got[i].Status != Completed {
			t.Fatalf("%s: %s %s", got[i].RunID, got[i].Status, got[i].Error)
		}
		if err := e.pool.QueryRow(t.Context(), `SELECT energy_mwh, reads_actual FROM statement_lines WHERE run_id = $1`,
			got[i].RunID).Scan(&mwh, &reads); err != nil {
			t.Fatal(err)
		}
		if !mwh.Equal(decimal.RequireFromString(fig.mwh)) || reads != fig.reads {
			t.Errorf("%s: %s MWh from %d reads, want %s from %d", got[i].RunID, mwh, reads, fig.mwh, fig.reads)
		}
	}
}

func TestSchedulersOnTwoInstancesStartEachRunOnce(t *testing.T) {
	t.Parallel()
	m := settlement.Market{Location: chicago(t), Currency: "USD", IntervalSeconds: 900}
	e := newEnv(t, m)
	e.registry([]string{"P"}, []string{"S"}, []string{"A"})
	e.assign("M", "A", "P", "S", "1", longAgo, time.Time{})
	for d := 1; d <= 4; d++ {
		start, _ := m.Bounds(settlement.Day{Year: 2026, Month: time.October, Day: d})
		e.read("M", "import", start, 900, "1", "A", 1)
	}
	sched, err := settlement.ParseSchedule("initial=P1D,final=P2D")
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC) }
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := newScheduler(t, e, SchedulerConfig{Schedule: sched, Now: now}, nil).RunDue(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.count(`SELECT count(*) FROM runs`); n != 8 {
		t.Fatalf("%d runs for 4 days x 2 scheduled types", n)
	}
	if n := e.count(`SELECT count(*) FROM runs WHERE run_type = 'final' AND version = 2 AND status = 'completed'`); n != 4 {
		t.Fatalf("%d finals ran as version 2, want 4", n)
	}
}

func TestSchedulerRunStopsWithContext(t *testing.T) {
	t.Parallel()
	m := settlement.Market{Location: chicago(t), Currency: "USD", IntervalSeconds: 900}
	e := newEnv(t, m)
	e.registry([]string{"P"}, []string{"S"}, []string{"A"})
	e.assign("M", "A", "P", "S", "1", longAgo, time.Time{})
	e.read("M", "import", iv(0), 900, "1", "A", 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	s := newScheduler(t, e, SchedulerConfig{Tick: time.Hour}, nil)
	go func() { done <- s.Run(ctx) }()
	// the first look happens at once, on the wall clock: Nov 1's initial run
	// has been due since 2026-11-07
	for deadline := time.Now().Add(time.Minute); e.count(`SELECT count(*) FROM scheduled_runs`) < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the scheduler's first look recorded no run within a minute")
		}
		select {
		case err := <-done:
			t.Fatalf("scheduler stopped early: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSchedulerMovesPastARunThatAlwaysFails: Nov 1's initial run kills its
// own session every time (a trigger terminates the backend that records it
// as running). Each attempt is still recorded as failed, on a fresh
// connection; the due runs of Nov 2 and 3 complete in the same look; the
// failed run is tried again only after its backoff, which doubles, and
// after MaxAttempts the scheduler gives up on it: it is not started again,
// and the metric and ScheduledFailures show it.
func TestSchedulerMovesPastARunThatAlwaysFails(t *testing.T) {
	t.Parallel()
	m := settlement.Market{Location: chicago(t), Currency: "USD", IntervalSeconds: 900}
	e := newEnv(t, m)
	e.registry([]string{"P"}, []string{"S"}, []string{"A"})
	e.assign("M", "A", "P", "S", "1", longAgo, time.Time{})
	for d := 1; d <= 3; d++ {
		start, _ := m.Bounds(settlement.Day{Year: 2026, Month: time.November, Day: d})
		e.read("M", "import", start, 900, "1", "A", 1)
	}
	e.exec(`CREATE FUNCTION die() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$`)
	e.exec(`CREATE TRIGGER die BEFORE INSERT ON runs FOR EACH ROW
		WHEN (NEW.operating_day = '2026-11-01' AND NEW.run_type = 'initial' AND NEW.status = 'running') EXECUTE FUNCTION die()`)

	sched, err := settlement.ParseSchedule("initial=P1D")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	now := t0
	reg := prometheus.NewRegistry()
	s := newScheduler(t, e, SchedulerConfig{Schedule: sched, Now: func() time.Time { return now },
		MaxAttempts: 3, Backoff: time.Minute}, reg)
	failures := func(outcome string) int {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				if mf.GetName() == "gridsettle_scheduled_run_failures_total" && m.GetLabel()[0].GetValue() == outcome {
					return int(m.GetCounter().GetValue())
				}
			}
		}
		t.Fatalf("no gridsettle_scheduled_run_failures_total{outcome=%q} registered", outcome)
		return 0
	}

	steps := []struct {
		after time.Duration
		want  []string
	}{
		{0, []string{"run-2026-11-01-initial-1", "run-2026-11-02-initial-1", "run-2026-11-03-initial-1"}},
		{59 * time.Second, nil},                                 // backoff after the 1st failure: 1 min
		{time.Minute, []string{"run-2026-11-01-initial-2"}},     // 2nd attempt
		{2*time.Minute + 59*time.Second, nil},                   // backoff after the 2nd failure: 2 min
		{3 * time.Minute, []string{"run-2026-11-01-initial-3"}}, // 3rd attempt, the last
		{365 * 24 * time.Hour, nil},                             // given up: never again on its own
	}
	for _, st := range steps {
		now = t0.Add(st.after)
		got, err := s.RunDue(t.Context())
		if err != nil {
			t.Fatalf("at +%s: %v", st.after, err)
		}
		if !slices.Equal(runIDs(got), st.want) {
			t.Fatalf("at +%s started %v, want %v", st.after, runIDs(got), st.want)
		}
	}
	if n := e.count(`SELECT count(*) FROM runs WHERE operating_day = '2026-11-01' AND status = 'failed' AND error LIKE '%terminat%'`); n != 3 {
		t.Fatalf("%d failed runs of Nov 1 recorded with the session's error, want 3", n)
	}
	if n := e.count(`SELECT count(*) FROM runs WHERE operating_day > '2026-11-01' AND status = 'completed'`); n != 2 {
		t.Fatalf("%d runs of Nov 2 and 3 completed, want 2", n)
	}
	if r, g := failures(Retrying), failures(GaveUp); r != 2 || g != 1 {
		t.Fatalf("metric: %d retrying, %d gave_up; want 2 and 1", r, g)
	}
	got, err := e.runs.ScheduledFailures(t.Context(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("scheduled failures %+v, want Nov 1's initial", got)
	}
	f := got[0]
	if f.OperatingDay != "2026-11-01" || f.RunType != settlement.Initial || f.Status != GaveUp || f.Attempts != 3 ||
		f.LastRunID != "run-2026-11-01-initial-3" || !strings.Contains(f.Error, "terminat") || f.NextAttemptAt != nil {
		t.Fatalf("scheduled failure %+v", f)
	}

	// An operator's run that completes resolves it.
	e.exec(`DROP TRIGGER die ON runs`)
	if run := e.start(settlement.Day{Year: 2026, Month: time.November, Day: 1}, settlement.Initial); run.Status != Completed {
		t.Fatalf("operator's run: %+v", run)
	}
	if got, err := e.runs.ScheduledFailures(t.Context(), 10); err != nil || len(got) != 0 {
		t.Fatalf("after the operator's run: %+v, %v", got, err)
	}
}

// A scheduled run that fails once and then completes leaves no failure
// behind, and its later attempt is numbered after the failed one.
func TestSchedulerRetryThatCompletesClearsTheFailure(t *testing.T) {
	t.Parallel()
	m := settlement.Market{Location: chicago(t), Currency: "USD", IntervalSeconds: 900}
	e := newEnv(t, m)
	e.registry([]string{"P"}, []string{"S"}, []string{"A"})
	e.assign("M", "A", "P", "S", "1", longAgo, time.Time{})
	start, _ := m.Bounds(settlement.Day{Year: 2026, Month: time.November, Day: 1})
	e.read("M", "import", start, 900, "1", "A", 1)
	e.exec(`CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'injected failure'; END $$`)
	e.exec(`CREATE TRIGGER fail BEFORE INSERT ON runs FOR EACH ROW WHEN (NEW.status = 'running') EXECUTE FUNCTION fail()`)
	t0 := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	now := t0
	s := newScheduler(t, e, SchedulerConfig{Now: func() time.Time { return now }, Backoff: time.Minute}, prometheus.NewRegistry())
	if got, err := s.RunDue(t.Context()); err != nil || len(got) != 1 || got[0].Status != Failed {
		t.Fatalf("first attempt: %+v, %v", got, err)
	}
	if f, err := e.runs.ScheduledFailures(t.Context(), 10); err != nil || len(f) != 1 || f[0].Status != Retrying ||
		f[0].NextAttemptAt == nil || !f[0].NextAttemptAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after the first attempt: %+v, %v", f, err)
	}
	e.exec(`DROP TRIGGER fail ON runs`)
	now = t0.Add(time.Minute)
	if got, err := s.RunDue(t.Context()); err != nil || !slices.Equal(runIDs(got), []string{"run-2026-11-01-initial-2"}) ||
		got[0].Status != Completed {
		t.Fatalf("second attempt: %+v, %v", got, err)
	}
	if f, err := e.runs.ScheduledFailures(t.Context(), 10); err != nil || len(f) != 0 {
		t.Fatalf("after the retry completed: %+v, %v", f, err)
	}
	if n := e.count(`SELECT count(*) FROM scheduled_attempts`); n != 0 {
		t.Fatalf("%d attempt rows left", n)
	}
}

func TestRetryBackoffDoublesUpToItsCap(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC)
	a := scheduledAttempt{now: t0, backoff: time.Minute, maxBackoff: 5 * time.Minute}
	for n, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 4: 5 * time.Minute, 60: 5 * time.Minute} {
		if got := a.retryAt(n).Sub(t0); got != want {
			t.Errorf("after failure %d: wait %s, want %s", n, got, want)
		}
	}
}

// A failure that cannot even be recorded (every insert of Nov 1's runs kills
// its session) is an error of the look, but the other due runs still run.
func TestSchedulerMovesPastAFailureItCannotRecord(t *testing.T) {
	t.Parallel()
	m := settlement.Market{Location: chicago(t), Currency: "USD", IntervalSeconds: 900}
	e := newEnv(t, m)
	e.registry([]string{"P"}, []string{"S"}, []string{"A"})
	e.assign("M", "A", "P", "S", "1", longAgo, time.Time{})
	for d := 1; d <= 2; d++ {
		start, _ := m.Bounds(settlement.Day{Year: 2026, Month: time.November, Day: d})
		e.read("M", "import", start, 900, "1", "A", 1)
	}
	e.exec(`CREATE FUNCTION die() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$`)
	e.exec(`CREATE TRIGGER die BEFORE INSERT ON runs FOR EACH ROW WHEN (NEW.operating_day = '2026-11-01') EXECUTE FUNCTION die()`)
	now := func() time.Time { return time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC) }
	got, err := newScheduler(t, e, SchedulerConfig{Now: now}, nil).RunDue(t.Context())
	if err == nil || !strings.Contains(err.Error(), "2026-11-01") {
		t.Fatalf("error %v, want one naming Nov 1", err)
	}
	if !slices.Equal(runIDs(got), []string{"run-2026-11-02-initial-1"}) || got[0].Status != Completed {
		t.Fatalf("started %+v, want Nov 2's initial completed", got)
	}
}

package postgres

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gridsettle/gridsettle/settlement"
)

func runIDs(runs []Run) []string {
	var out []string
	for _, r := range runs {
		out = append(out, r.RunID)
	}
	return out
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
	s := NewScheduler(e.runs, SchedulerConfig{Now: func() time.Time { return now }}, slog.New(slog.NewTextHandler(io.Discard, nil)))

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
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := NewScheduler(e.runs, SchedulerConfig{Schedule: sched, Now: now}, log).RunDue(t.Context()); err != nil {
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
	s := NewScheduler(e.runs, SchedulerConfig{Tick: time.Hour}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go func() { done <- s.Run(ctx) }()
	// the first look happens at once, on the wall clock: Nov 1's initial run
	// has been due since 2026-11-07
	for e.count(`SELECT count(*) FROM scheduled_runs`) < 1 {
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

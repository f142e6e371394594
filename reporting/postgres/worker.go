package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/robfig/cron/v3"

	"github.com/gridsettle/gridsettle/settlement"
)

// DefaultTimeout bounds an export attempt when Config.Timeout is zero: far
// more than writing a large day takes (cmd/gridsettle/PERFORMANCE.md: about a
// second for 200,000 interval rows), far less than a hung folder holds one.
const DefaultTimeout = 10 * time.Minute

// stopGrace is how long an attempt whose context ended (its timeout, or
// shutdown) is waited for. One that honours its context returns in
// milliseconds; one that does not is stuck in the file system, where no
// call can be interrupted, and is left to return by itself.
const stopGrace = time.Second

// Backoff of a run whose export failed: doubled after each failure, from
// minBackoff up to retryEvery.
const minBackoff = 10 * time.Second

// closeTimeout bounds closing an attempt's connection.
const closeTimeout = 5 * time.Second

// ErrStuck is the error of an export attempt that did not return within its
// timeout and a grace after it: the export folder does not answer.
var ErrStuck = errors.New("export attempt did not return within its timeout: the export folder does not answer")

// RunCompleted is the runs' completion hook. It only tells the export
// worker (Run) to look for runs to export, and returns at once: a run, the
// scheduler's loop and an API call never wait for the export folder. Wakes
// coalesce: one pending wake stands for any number of completed runs, since
// the worker looks for every completed run without an export. With a
// schedule it does nothing; the schedule's next firing exports the run.
func (e *Exporter) RunCompleted(runID string) {
	if e.schedule != nil {
		e.log.Info("run will be exported when the export schedule fires", "run_id", runID, "schedule", e.cfg.Schedule)
		return
	}
	select {
	case e.wake <- struct{}{}:
	default: // a look is already due, and it finds this run too
	}
}

// Run is the export worker; start one per Exporter in every process whose
// runs can complete. It exports every completed run of an exported type
// that has none: at start (runs that completed while exports failed or the
// process was down), when RunCompleted wakes it (without a schedule), each
// time the schedule fires (with one), and every 15 minutes otherwise. A run
// whose export fails is tried again after a backoff (10 s doubling up to
// 15 minutes) without holding up the others. It returns nil when ctx ends,
// within stopGrace even if an export is stuck in the folder.
func (e *Exporter) Run(ctx context.Context) error {
	schedule := e.schedule
	if schedule == nil {
		schedule = cron.Every(retryEvery)
	}
	retries := map[string]retry{}
	for {
		retryAt := e.exportPending(ctx, retries)
		if ctx.Err() != nil {
			return nil
		}
		wait, ok := untilNext(schedule, time.Now())
		if !ok {
			e.log.Error("the export schedule names no time ahead; looking for pending exports every 15 minutes instead")
		}
		if !retryAt.IsZero() {
			wait = min(wait, time.Until(retryAt))
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-e.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// retry is a run whose export failed: how many times, and when to try again.
type retry struct {
	failures int
	at       time.Time
}

func backoff(failures int) time.Duration {
	d := minBackoff
	for i := 1; i < failures && d < retryEvery; i++ {
		d *= 2
	}
	return min(d, retryEvery)
}

// exportPending exports the runs to export, oldest operating day and
// version first, one at a time, skipping those whose retry is not due, and
// returns when the earliest retry is due (zero when none is). retries holds
// only runs still without an export.
func (e *Exporter) exportPending(ctx context.Context, retries map[string]retry) time.Time {
	ids, err := e.pendingRuns(ctx)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("find runs to export", "err", err, "retry_in", minBackoff)
		}
		return time.Now().Add(minBackoff)
	}
	pending := make(map[string]bool, len(ids))
	for _, id := range ids {
		pending[id] = true
	}
	for id := range retries {
		if !pending[id] {
			delete(retries, id) // exported since, by this instance or another
		}
	}
	var next time.Time
	for _, id := range ids {
		r := retries[id]
		if time.Now().Before(r.at) {
			next = earliest(next, r.at)
			continue
		}
		run, err := loadRun(ctx, e.pool, id)
		if err == nil {
			_, err = e.produce(ctx, run, false, nil)
		}
		if ctx.Err() != nil {
			return time.Time{}
		}
		if err == nil {
			delete(retries, id)
			continue
		}
		if errors.Is(err, ErrStuck) {
			// Logged when it was given up on. Its backoff is the wait for
			// it to return: the next attempt, this run's again so that the
			// day's exports keep their order, waits for that, and goes
			// ahead as soon as the folder answers.
			return time.Now()
		}
		r.failures++
		r.at = time.Now().Add(backoff(r.failures))
		retries[id] = r
		next = earliest(next, r.at)
		e.log.Error("export failed; trying again later", "run_id", id, "err", err, "failures", r.failures, "retry_in", backoff(r.failures))
	}
	return next
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// pendingRuns are the completed runs of an exported type without an
// export, oldest operating day and version first.
func (e *Exporter) pendingRuns(ctx context.Context) ([]string, error) {
	rows, err := e.pool.Query(ctx, `
		SELECT r.run_id FROM runs r
		WHERE r.status = 'completed' AND r.run_type = ANY($1)
		  AND NOT EXISTS (SELECT 1 FROM exports x WHERE x.run_id = r.run_id)
		ORDER BY r.operating_day, r.version`, runTypeNames(e.cfg.RunTypes))
	if err != nil {
		return nil, fmt.Errorf("find runs to export: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("find runs to export: %w", err)
	}
	return ids, nil
}

func runTypeNames(types []settlement.RunType) []string {
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = string(t)
	}
	return names
}

// produce writes or regenerates the export of run (with regenerate false
// an existing export is returned as is) in one export attempt: produceOn,
// on a goroutine and a database connection of its own, bounded by the
// export timeout. The caller waits for it until the attempt's context ends
// and stopGrace more; an attempt still running then is stuck in the export
// folder (a call there cannot be interrupted), and the caller returns
// ErrStuck (or ctx's error when ctx ended) without it. An Exporter runs one
// attempt at a time: the next one, whoever asks for it, waits until a stuck
// one has returned, so stuck attempts never pile up. The connection is
// taken out of the pool, so that a stuck attempt never holds one that
// closing the pool would wait for; the server ends its transaction, and the
// day's lock, after idle_in_transaction_session_timeout.
func (e *Exporter) produce(ctx context.Context, run runRow, regenerate bool, hook ExportHook) (Produced, error) {
	select {
	case e.slot <- struct{}{}:
	case <-ctx.Done():
		return Produced{}, fmt.Errorf("export %s: waiting for the export attempt in flight: %w", run.RunID, ctx.Err())
	}
	actx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	deadline, _ := actx.Deadline()
	e.inflight.Store(&deadline)
	type result struct {
		p   Produced
		err error
	}
	done := make(chan result, 1) // never blocks the attempt, waited for or not
	var abandoned atomic.Bool
	began := time.Now()
	go func() {
		defer func() { e.inflight.Store(nil); <-e.slot }()
		defer cancel()
		p, err := e.produceOnOwnConn(actx, run, regenerate, hook)
		if abandoned.Load() {
			e.log.Warn("the export attempt that did not stop has returned; exports resume", "run_id", run.RunID,
				"after", time.Since(began).Round(time.Second), "err", err)
		}
		done <- result{p, err}
	}()
	select {
	case r := <-done:
		return r.p, e.counted(ctx, r.err)
	case <-actx.Done():
	}
	grace := time.NewTimer(stopGrace)
	defer grace.Stop()
	select {
	case r := <-done:
		return r.p, e.counted(ctx, r.err)
	case <-grace.C:
	}
	abandoned.Store(true)
	if ctx.Err() != nil { // shutdown, or an API client that went away
		e.log.Warn("stopped waiting for an export attempt stuck in the export folder; it is left to return by itself",
			"run_id", run.RunID, "dir", e.cfg.Root, "cause", context.Cause(ctx))
		return Produced{}, ctx.Err()
	}
	e.metrics.failed.Inc()
	e.log.Error("export attempt timed out and does not return: the export folder does not answer; no other export starts until it returns",
		"run_id", run.RunID, "timeout", e.cfg.Timeout, "dir", e.cfg.Root)
	return Produced{}, fmt.Errorf("export %s: %w", run.RunID, ErrStuck)
}

// counted counts a failed attempt, unless it failed because ctx ended
// (shutdown, or an API client that went away).
func (e *Exporter) counted(ctx context.Context, err error) error {
	if err != nil && ctx.Err() == nil {
		e.metrics.failed.Inc()
	}
	return err
}

func (e *Exporter) produceOnOwnConn(ctx context.Context, run runRow, regenerate bool, hook ExportHook) (Produced, error) {
	c, err := e.pool.Acquire(ctx)
	if err != nil {
		return Produced{}, fmt.Errorf("export %s: %w", run.RunID, err)
	}
	conn := c.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
		_ = conn.Close(cctx) // the server ends the session either way
	}()
	return e.produceOn(ctx, conn, run, regenerate, hook)
}

// awaitEvery is how often Await looks at the registry.
const awaitEvery = 100 * time.Millisecond

// Await waits until the export exportID is registered (by the worker of
// this process or of another) and returns it; ctx bounds the wait.
func (e *Exporter) Await(ctx context.Context, exportID string) (Export, error) {
	for {
		x, err := e.Get(ctx, exportID)
		if !errors.Is(err, ErrNotFound) {
			return x, err
		}
		t := time.NewTimer(awaitEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return Export{}, fmt.Errorf("wait for export %s: %w", exportID, context.Cause(ctx))
		case <-t.C:
		}
	}
}

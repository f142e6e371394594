package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gridsettle/gridsettle/settlement"
)

// SchedulerConfig says when scheduled runs fall due and how often to look.
type SchedulerConfig struct {
	Schedule settlement.Schedule // lags of initial, final, true-up; empty: settlement.DefaultSchedule()
	Tick     time.Duration       // how often to look for due runs; 0: one minute
	// Now is the clock "due" is measured on. It is the wall clock (nil:
	// time.Now), not event time: a run is due when that much real time has
	// passed since the end of its operating day, however late its reads came.
	Now func() time.Time
	// MaxAttempts is how many failed attempts at a scheduled run the
	// scheduler makes before it gives up on it; 0: 5.
	MaxAttempts int
	// Backoff is the wait after a scheduled run's first failed attempt,
	// doubled after each further one up to MaxBackoff; 0: five minutes.
	Backoff time.Duration
	// MaxBackoff caps the wait between attempts; 0: six hours.
	MaxBackoff time.Duration
}

// Scheduler outcomes of a failed attempt (the metric's label, and
// ScheduledFailure.Status).
const (
	Retrying = "retrying" // another attempt follows after the backoff
	GaveUp   = "gave_up"  // the last attempt: started again only by an operator
)

// Scheduler starts each scheduled run (initial, final, true-up) of every
// operating day that has current reads, once, when it falls due. Runs it
// missed while nothing was running start at the next look, oldest due
// first. Several schedulers (one per instance) may run at once: the runs of
// a day are serialised and each scheduled run is recorded in the run's own
// transaction, so a run is started once whoever gets there first, and a
// run killed half-way is started again.
//
// A run that fails is recorded as failed (on a fresh connection: the
// failure may have killed the run's own session) and does not hold up the
// other due runs: the scheduler moves on to them in the same look, and
// tries the failed one again after a backoff that doubles with each
// attempt. After MaxAttempts failed attempts it gives up on it: the run is
// counted on gridsettle_scheduled_run_failures_total{outcome="gave_up"},
// listed by ScheduledFailures (GET /api/v1/status), and an operator starts
// it again through POST /api/v1/runs. Runs an operator starts are never the
// scheduled ones: the scheduled run still happens when due.
type Scheduler struct {
	runs     *Runs
	cfg      SchedulerConfig
	log      *slog.Logger
	failures *prometheus.CounterVec // by outcome
}

// NewScheduler returns a scheduler that starts runs with runs. Its metric
// is registered on reg, unless reg is nil.
func NewScheduler(runs *Runs, cfg SchedulerConfig, reg prometheus.Registerer, log *slog.Logger) (*Scheduler, error) {
	if len(cfg.Schedule) == 0 {
		cfg.Schedule = settlement.DefaultSchedule()
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 5 * time.Minute
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 6 * time.Hour
	}
	s := &Scheduler{runs: runs, cfg: cfg, log: log, failures: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gridsettle_scheduled_run_failures_total",
		Help: "Failed attempts at scheduled runs, by outcome: retrying (another attempt follows) or gave_up (the last).",
	}, []string{"outcome"})}
	for _, o := range []string{Retrying, GaveUp} {
		s.failures.WithLabelValues(o) // both series exist from the start, at 0
	}
	if reg != nil {
		if err := reg.Register(s.failures); err != nil {
			return nil, fmt.Errorf("register scheduler metrics: %w", err)
		}
	}
	return s, nil
}

// Run looks for due runs at once and then every tick until ctx ends. A
// failing look is logged and retried at the next tick.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	for {
		if _, err := s.RunDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("scheduled runs", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// due is one scheduled run that has fallen due.
type due struct {
	day settlement.Day
	typ settlement.RunType
	at  time.Time
	ord int // position in settlement.RunTypes: initial before final before true-up
	// attempts is how many failed attempts were recorded when it was listed.
	attempts int
}

// RunDue starts, one after another in order of due time, every scheduled
// run that is due now, not yet recorded and not waiting out the backoff of
// a failed attempt, and returns the runs it started (completed or failed).
// A run that fails, even without a record, does not stop the others; the
// error names every run that could not be recorded.
func (s *Scheduler) RunDue(ctx context.Context) ([]Run, error) {
	todo, err := s.dueRuns(ctx)
	if err != nil {
		return nil, err
	}
	var started []Run
	var errs []error
	for _, d := range todo {
		att := &scheduledAttempt{seen: d.attempts, max: s.cfg.MaxAttempts, now: s.cfg.Now(),
			backoff: s.cfg.Backoff, maxBackoff: s.cfg.MaxBackoff}
		run, err := s.runs.start(ctx, d.day, d.typ, att)
		if errors.Is(err, errScheduledDone) {
			continue // another instance got there first
		}
		if err != nil {
			if ctx.Err() != nil {
				return started, ctx.Err()
			}
			errs = append(errs, fmt.Errorf("scheduled %s run of %s: %w", d.typ, d.day, err))
			continue
		}
		if run.Status == Failed {
			if att.outcome != "" {
				s.failures.WithLabelValues(att.outcome).Inc()
			}
			s.log.Error("scheduled run failed", "run_id", run.RunID, "attempt", d.attempts+1,
				"max_attempts", s.cfg.MaxAttempts, "outcome", att.outcome, "err", run.Error)
		} else {
			s.log.Info("scheduled run", "run_id", run.RunID, "status", run.Status, "due", d.at)
		}
		started = append(started, run)
	}
	return started, errors.Join(errs...)
}

// scheduledAttempt is the scheduler's attempt at a scheduled run: what it
// saw when it listed the run, and how a failure is counted.
type scheduledAttempt struct {
	seen                int       // failed attempts recorded when the run was listed
	max                 int       // failed attempts after which the scheduler gives up
	now                 time.Time // the scheduler's clock at the attempt
	backoff, maxBackoff time.Duration
	// outcome is set once this attempt's failure is recorded: Retrying or
	// GaveUp; it stays empty when another instance completed the run first.
	outcome string
}

// retryAt is when the attempt after the n-th failed one falls due:
// backoff, doubled for each earlier failure, at most maxBackoff.
func (a *scheduledAttempt) retryAt(n int) time.Time {
	wait := a.backoff
	for i := 1; i < n && wait < a.maxBackoff; i++ {
		wait *= 2
	}
	return a.now.Add(min(wait, a.maxBackoff))
}

// record counts the failed attempt run in tx, the transaction that records
// run, and returns its outcome: GaveUp when it was the last (the scheduled
// run is then marked done with run, so that it is not started on its own
// again), Retrying otherwise, or "" when the scheduled run has completed
// meanwhile (another instance's attempt, between this one's and its
// record), which leaves nothing to count.
func (a *scheduledAttempt) record(ctx context.Context, tx pgx.Tx, run Run) (string, error) {
	var n int
	err := tx.QueryRow(ctx, `
		INSERT INTO scheduled_attempts (operating_day, run_type, attempts, last_run_id, last_error, failed_at)
		SELECT $1, $2, 1, $3, $4, $5
		WHERE NOT EXISTS (SELECT 1 FROM scheduled_runs WHERE operating_day = $1 AND run_type = $2)
		ON CONFLICT (operating_day, run_type) DO UPDATE SET attempts = scheduled_attempts.attempts + 1,
			last_run_id = excluded.last_run_id, last_error = excluded.last_error, failed_at = excluded.failed_at
		RETURNING attempts`,
		run.OperatingDay, run.RunType, run.RunID, run.Error, run.FinishedAt).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("count failed attempt %s: %w", run.RunID, err)
	}
	var next *time.Time
	if n < a.max {
		at := a.retryAt(n)
		next = &at
	} else if _, err := tx.Exec(ctx, `INSERT INTO scheduled_runs (operating_day, run_type, run_id) VALUES ($1, $2, $3)`,
		run.OperatingDay, run.RunType, run.RunID); err != nil {
		return "", fmt.Errorf("give up scheduled run %s: %w", run.RunID, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE scheduled_attempts SET next_attempt_at = $3 WHERE operating_day = $1 AND run_type = $2`,
		run.OperatingDay, run.RunType, next); err != nil {
		return "", fmt.Errorf("schedule the next attempt after %s: %w", run.RunID, err)
	}
	if next == nil {
		return GaveUp, nil
	}
	return Retrying, nil
}

// dueRuns lists the scheduled runs due now that are not recorded yet, for
// the operating days that have at least one current read, oldest due first.
func (s *Scheduler) dueRuns(ctx context.Context) ([]due, error) {
	m := s.runs.cfg.Market
	var first, last *time.Time
	// The span of stored reads' starts: a NULL element of a block stands for
	// a read stored in another block at the same start, so block bounds are
	// exact. No block crosses a UTC day (migrations/00800_read_blocks.sql):
	// the last read starts on the UTC day of the latest block, which bounds
	// the scan to that day on the index.
	if err := s.runs.pool.QueryRow(ctx, `
		WITH f AS (SELECT min(start) AS lo, max(start) AS hi FROM read_blocks)
		SELECT f.lo, (SELECT max(b.start + (cardinality(b.values_micro) - 1) * b.interval_seconds * interval '1 second')
		              FROM read_blocks b WHERE b.start >= date_trunc('day', f.hi, 'UTC') AND b.start <= f.hi)
		FROM f`).Scan(&first, &last); err != nil {
		return nil, fmt.Errorf("read the span of reads: %w", err)
	}
	if first == nil {
		return nil, nil
	}
	now := s.cfg.Now()
	var cands []due
	lastDay := m.DayOf(*last)
	for d := m.DayOf(*first); !lastDay.Before(d); d = d.AddDays(1) {
		for _, sr := range s.cfg.Schedule {
			if at := m.DueAt(d, sr.Lag); !at.After(now) {
				cands = append(cands, due{day: d, typ: sr.Type, at: at, ord: slices.Index(settlement.RunTypes, sr.Type)})
			}
		}
	}
	if len(cands) == 0 {
		return nil, nil
	}
	days, types, los, his := make([]time.Time, len(cands)), make([]string, len(cands)), make([]time.Time, len(cands)), make([]time.Time, len(cands))
	for i, c := range cands {
		days[i], types[i] = dayTime(c.day), string(c.typ)
		los[i], his[i] = m.Bounds(c.day)
	}
	// A day has a read when a block of its UTC days holds one starting in
	// [lo, hi): a block starting before lo whose last read starts at or after
	// lo has one in [lo, lo + its interval), and no interval is longer than a
	// day.
	rows, err := s.runs.pool.Query(ctx, `
		SELECT c.i, coalesce(a.attempts, 0)
		FROM unnest($1::date[], $2::text[], $3::timestamptz[], $4::timestamptz[]) WITH ORDINALITY AS c(day, type, lo, hi, i)
		LEFT JOIN scheduled_attempts a ON a.operating_day = c.day AND a.run_type = c.type
		WHERE NOT EXISTS (SELECT 1 FROM scheduled_runs s WHERE s.operating_day = c.day AND s.run_type = c.type)
		  AND (a.next_attempt_at IS NULL OR a.next_attempt_at <= $5)
		  AND EXISTS (SELECT 1 FROM read_blocks r WHERE r.start >= date_trunc('day', c.lo, 'UTC') AND r.start < c.hi
		              AND r.start + (cardinality(r.values_micro) - 1) * r.interval_seconds * interval '1 second' >= c.lo)`,
		days, types, los, his, now)
	if err != nil {
		return nil, fmt.Errorf("find due runs: %w", err)
	}
	var out []due
	var i int64
	var attempts int
	if _, err := pgx.ForEachRow(rows, []any{&i, &attempts}, func() error {
		d := cands[i-1]
		d.attempts = attempts
		out = append(out, d)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("find due runs: %w", err)
	}
	slices.SortFunc(out, func(a, b due) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.ord, b.ord), cmp.Compare(a.day.String(), b.day.String()))
	})
	return out, nil
}

// ScheduledFailure is a scheduled run whose latest attempts failed and
// that no run of its day and type has completed since (GET /api/v1/status,
// "scheduled_run_failures").
type ScheduledFailure struct {
	OperatingDay  string             `json:"operating_day"`
	RunType       settlement.RunType `json:"run_type"`
	Status        string             `json:"status"`   // retrying or gave_up
	Attempts      int                `json:"attempts"` // failed attempts so far
	LastRunID     string             `json:"last_run_id"`
	Error         string             `json:"error"` // the last attempt's
	FailedAt      time.Time          `json:"failed_at"`
	NextAttemptAt *time.Time         `json:"next_attempt_at"` // null once given up
}

// ScheduledFailures returns the n scheduled runs that failed most recently
// and are still unresolved: retrying, or given up with no completed run of
// their day and type (an operator's included) since.
func (r *Runs) ScheduledFailures(ctx context.Context, n int) ([]ScheduledFailure, error) {
	rows, err := r.pool.Query(ctx, `
		SELECT a.operating_day, a.run_type, a.attempts, a.last_run_id, a.last_error, a.failed_at, a.next_attempt_at
		FROM scheduled_attempts a JOIN runs l ON l.run_id = a.last_run_id
		WHERE NOT EXISTS (SELECT 1 FROM runs c WHERE c.operating_day = a.operating_day AND c.run_type = a.run_type
		                  AND c.status = 'completed' AND c.version > l.version)
		ORDER BY a.failed_at DESC, a.operating_day DESC, a.run_type
		LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("list failed scheduled runs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ScheduledFailure, error) {
		var f ScheduledFailure
		var day time.Time
		if err := row.Scan(&day, &f.RunType, &f.Attempts, &f.LastRunID, &f.Error, &f.FailedAt, &f.NextAttemptAt); err != nil {
			return f, err
		}
		f.OperatingDay, f.FailedAt, f.Status = dayOf(day).String(), f.FailedAt.UTC(), Retrying
		if f.NextAttemptAt == nil {
			f.Status = GaveUp
		} else {
			next := f.NextAttemptAt.UTC()
			f.NextAttemptAt = &next
		}
		return f, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list failed scheduled runs: %w", err)
	}
	return out, nil
}

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
}

// Scheduler starts each scheduled run (initial, final, true-up) of every
// operating day that has current reads, once, when it falls due. Runs it
// missed while nothing was running start at the next look, oldest due
// first. Several schedulers (one per instance) may run at once: the runs of
// a day are serialised and each scheduled run is recorded in the run's own
// transaction, so a run is started once whoever gets there first, and a
// run killed half-way is started again. A run that fails is recorded as
// failed and not retried on its own; an operator starts it again through
// POST /api/v1/runs. Runs an operator starts are never the scheduled ones:
// the scheduled run still happens when due.
type Scheduler struct {
	runs *Runs
	cfg  SchedulerConfig
	log  *slog.Logger
}

// NewScheduler returns a scheduler that starts runs with runs.
func NewScheduler(runs *Runs, cfg SchedulerConfig, log *slog.Logger) *Scheduler {
	if len(cfg.Schedule) == 0 {
		cfg.Schedule = settlement.DefaultSchedule()
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Scheduler{runs: runs, cfg: cfg, log: log}
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
}

// RunDue starts, one after another in order of due time, every scheduled
// run that is due now and not yet recorded, and returns the runs it
// started (completed or failed).
func (s *Scheduler) RunDue(ctx context.Context) ([]Run, error) {
	todo, err := s.dueRuns(ctx)
	if err != nil {
		return nil, err
	}
	var started []Run
	for _, d := range todo {
		run, err := s.runs.start(ctx, d.day, d.typ, true)
		if errors.Is(err, errScheduledDone) {
			continue // another instance got there first
		}
		if err != nil {
			return started, fmt.Errorf("scheduled %s run of %s: %w", d.typ, d.day, err)
		}
		s.log.Info("scheduled run", "run_id", run.RunID, "status", run.Status, "due", d.at)
		started = append(started, run)
	}
	return started, nil
}

// dueRuns lists the scheduled runs due now that are not recorded yet, for
// the operating days that have at least one current read, oldest due first.
func (s *Scheduler) dueRuns(ctx context.Context) ([]due, error) {
	m := s.runs.cfg.Market
	var first, last *time.Time
	if err := s.runs.pool.QueryRow(ctx, `SELECT min(interval_start), max(interval_start) FROM reads`).Scan(&first, &last); err != nil {
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
	rows, err := s.runs.pool.Query(ctx, `
		SELECT c.i FROM unnest($1::date[], $2::text[], $3::timestamptz[], $4::timestamptz[]) WITH ORDINALITY AS c(day, type, lo, hi, i)
		WHERE NOT EXISTS (SELECT 1 FROM scheduled_runs s WHERE s.operating_day = c.day AND s.run_type = c.type)
		  AND EXISTS (SELECT 1 FROM reads r WHERE r.interval_start >= c.lo AND r.interval_start < c.hi)`,
		days, types, los, his)
	if err != nil {
		return nil, fmt.Errorf("find due runs: %w", err)
	}
	idx, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("find due runs: %w", err)
	}
	out := make([]due, 0, len(idx))
	for _, i := range idx {
		out = append(out, cands[i-1])
	}
	slices.SortFunc(out, func(a, b due) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.ord, b.ord), cmp.Compare(a.day.String(), b.day.String()))
	})
	return out, nil
}

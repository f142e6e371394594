package postgres

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/robfig/cron/v3"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/reporting"
	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/reporting/reportingtest"
)

// never is a schedule that slipped past ParseSchedule and never fires: the
// cron library answers the zero time for it.
type never struct{}

func (never) Next(time.Time) time.Time { return time.Time{} }

// stale answers a time already past.
type stale struct{}

func (stale) Next(t time.Time) time.Time { return t.Add(-time.Hour) }

func TestUntilNext(t *testing.T) {
	now := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name string
		s    cron.Schedule
		wait time.Duration
		ok   bool
	}{
		{"never", never{}, retryEvery, false},
		{"stale", stale{}, retryEvery, false},
		{"hourly", cron.Every(time.Hour), time.Hour, true},
	} {
		if wait, ok := untilNext(tt.s, now); wait != tt.wait || ok != tt.ok {
			t.Errorf("%s: %s %v, want %s %v", tt.name, wait, ok, tt.wait, tt.ok)
		}
	}
}

// pendingLooks counts the exporter's looks for pending runs.
type pendingLooks struct{ n atomic.Int64 }

func (p *pendingLooks) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "NOT EXISTS (SELECT 1 FROM exports x") {
		p.n.Add(1)
	}
	return ctx
}

func (*pendingLooks) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestRunWithAScheduleThatNeverFiresDoesNotSpin: with a schedule that names
// no time ahead, Run looks for pending exports once at start and then
// waits, instead of looking again at once for ever.
func TestRunWithAScheduleThatNeverFiresDoesNotSpin(t *testing.T) {
	t.Parallel()
	_, dbURL := pgtest.New(t)
	pcfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	looks := &pendingLooks{}
	pcfg.ConnConfig.Tracer = looks
	pool, err := pgxpool.NewWithConfig(t.Context(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e, err := NewExporter(pool, Config{Root: t.TempDir(), Export: reporting.Config{
		Generator: "gridsettle test", Market: reportingtest.FallBackDay().Market, Codec: parquet.ZSTD,
		Key: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)),
	}}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	e.schedule = never{}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if err := e.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := looks.n.Load(); n != 1 {
		t.Fatalf("%d looks for pending exports in half a second, want 1 (the one at start)", n)
	}
}

// TestRunCompletedOnlyWakes: the runs' completion hook does no I/O (this
// exporter has no database) and never blocks: wakes coalesce into one, and
// with a schedule there is none (the firing exports the run).
func TestRunCompletedOnlyWakes(t *testing.T) {
	for _, tt := range []struct {
		schedule string
		wakes    int
	}{{"", 1}, {"0 6 * * *", 0}} {
		e, err := NewExporter(nil, Config{Root: t.TempDir(), Schedule: tt.schedule, Export: reporting.Config{
			Generator: "gridsettle test", Market: reportingtest.FallBackDay().Market, Codec: parquet.ZSTD,
			Key: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)),
		}}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			e.RunCompleted("run-2026-11-01-final-2")
		}
		if len(e.wake) != tt.wakes {
			t.Errorf("schedule %q: %d wakes pending, want %d", tt.schedule, len(e.wake), tt.wakes)
		}
	}
}

func TestBackoff(t *testing.T) {
	for failures, want := range map[int]time.Duration{
		1: minBackoff, 2: 2 * minBackoff, 7: 64 * minBackoff, 8: retryEvery, 1 << 30: retryEvery,
	} {
		if got := backoff(failures); got != want {
			t.Errorf("after %d failures: %s, want %s", failures, got, want)
		}
	}
}

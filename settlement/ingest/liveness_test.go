package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// cutConnections ends every session of the test database and refuses new
// ones until the returned function is called (also at cleanup): the
// database is gone for the consumer, as in a network partition or a
// restart.
func (e *env) cutConnections() (restore func()) {
	e.t.Helper()
	ctx := context.WithoutCancel(e.t.Context()) // restore runs at cleanup too, after the test's context ends
	cfg := e.pool.Config().ConnConfig.Copy()
	db := cfg.Database
	cfg.Database = "postgres" // a database cannot refuse connections while a session of its own asks
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	exec := func(sql string, args ...any) {
		if _, err := admin.Exec(ctx, sql, args...); err != nil {
			e.t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`ALTER DATABASE ` + pgx.Identifier{db}.Sanitize() + ` ALLOW_CONNECTIONS false`)
	exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, db)
	restored := false
	restore = func() {
		if restored {
			return
		}
		restored = true
		exec(`ALTER DATABASE ` + pgx.Identifier{db}.Sanitize() + ` ALLOW_CONNECTIONS true`)
		_ = admin.Close(ctx)
	}
	e.t.Cleanup(restore)
	return restore
}

// After the database comes back, every partition catches up within 30
// seconds, including those that receive no record afterwards; nothing is
// quarantined for it and nothing is applied twice.
func TestLivenessAfterConnectionsCut(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, e *env, c *consumer, w *workload) {
		t.Helper()
		e.caughtUpWithin(30 * time.Second)
		c.stop()
		if n := e.count(`SELECT count(*) FROM quarantine WHERE reason <> 'unknown_meter'`); n != 0 {
			t.Errorf("%d records quarantined for the outage", n)
		}
		if n := e.count(`SELECT count(*) FROM quarantine`); n != w.bad {
			t.Errorf("%d quarantined, want %d", n, w.bad)
		}
		if n := c.records(R); n != 80 {
			t.Errorf("%d records consumed, want 80", n)
		}
		assertPositions(t, e, w.expected())
		if n, all := e.count(`SELECT count(DISTINCT record_id) FROM outbox`), e.count(`SELECT count(*) FROM outbox`); n != w.bad || all != w.bad {
			t.Errorf("dead letters: %d distinct of %d, want %d once each", n, all, w.bad)
		}
	}
	// The cut comes at the end of the input: the last records of every
	// partition fail to apply, their offsets fail to reload, and no record
	// comes after them.
	t.Run("end of input", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.registry()
		w := newWorkload()
		c := e.start(Config{})
		e.produce(false, w.records(0, 40)...)
		e.caughtUp()
		restore := e.cutConnections()
		e.produce(false, w.records(40, 80)...)
		time.Sleep(2 * time.Second)
		if n := c.records(R); n != 40 {
			t.Fatalf("%d records consumed during the cut, want 40", n)
		}
		restore()
		check(t, e, c, w)
	})
	// The cut comes before the group assigns the partitions: their stored
	// offsets cannot be loaded on assignment.
	t.Run("assignment", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.registry()
		w := newWorkload()
		e.produce(false, w.records(0, 80)...)
		restore := e.cutConnections()
		c := e.start(Config{})
		time.Sleep(2 * time.Second)
		restore()
		check(t, e, c, w)
	})
}

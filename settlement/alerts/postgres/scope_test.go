package postgres_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/settlement/alerts"
)

// TestSettingsChangeRebuildsAggregates: an account without a threshold or
// budget has no aggregates; when the registry gives it both, they are
// rebuilt from its current reads to exactly what an account that had them
// all along holds for the same reads (corrections, estimated reads, export,
// the loss factor), its next read fires on the whole day's figure, and
// clearing the settings drops them.
func TestSettingsChangeRebuildsAggregates(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(baseRegistry + `
		INSERT INTO accounts (account_id, name, daily_kwh_threshold, monthly_budget) VALUES ('ACC-W', 'watched', 2, 1000);
		INSERT INTO accounts (account_id, name) VALUES ('ACC-L', 'later');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from) VALUES
			('MW', 'ACC-W', 'RET-A', 'HB_NORTH', 1.5, '2026-01-01T00:00:00Z'),
			('ML', 'ACC-L', 'RET-A', 'HB_NORTH', 1.5, '2026-01-01T00:00:00Z')`)
	c.consume(d, "g", 4096)
	var recs []*kgo.Record
	for i, m := range []string{"MW", "ML"} {
		p := int32(i) // the two meters on different partitions: different slots
		recs = append(recs,
			readRec(p, m, "import", "2026-11-10T06:00:00Z", 900, 1, "0.3", "0.3", "0.3"),
			readRec(p, m, "import", "2026-11-10T06:15:00Z", 900, 2, "0.5"),  // a correction: 1.1
			readRec(p, m, "import", "2026-11-10T07:00:00Z", 900, 1, "0.2E"), // 1.3, estimated
			readRec(p, m, "export", "2026-11-10T06:00:00Z", 900, 1, "2"))
	}
	c.produce(recs...)
	c.caughtUp(d)

	if n := d.count(`SELECT count(*) FROM alert_daily_usage WHERE account_id = 'ACC-L'`) +
		d.count(`SELECT count(*) FROM alert_energy WHERE account_id = 'ACC-L'`); n != 0 {
		t.Fatalf("%d aggregate rows kept for an account without a threshold or budget", n)
	}
	settings := func(line string) {
		t.Helper()
		var b registrystore.Batch
		if err := b.AddCSV(registrystore.Accounts, "accounts.csv", strings.NewReader(
			"account_id,name,daily_kwh_threshold,monthly_budget,price_alerts\n"+line+"\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := registrystore.NewRegistry(d.pool, d.hook.SettingsChanged).Apply(t.Context(), &b); err != nil {
			t.Fatal(err)
		}
	}
	settings("ACC-L,later,2,1000,false")
	for _, q := range []string{
		`SELECT operating_day::text || ' ' || sum(import_kwh)::text || ' ' || sum(estimated_reads) || ' ' || max(last_end)::text
		 FROM alert_daily_usage WHERE account_id = $1 GROUP BY operating_day ORDER BY operating_day`,
		`SELECT interval_start::text || ' ' || settlement_point || ' ' || sum(energy_mwh)::text || ' ' || sum(estimated_reads)
		 FROM alert_energy WHERE account_id = $1 GROUP BY interval_start, settlement_point ORDER BY interval_start, settlement_point`,
	} {
		want, got := d.strings(q, "ACC-W"), d.strings(q, "ACC-L")
		if len(want) == 0 || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("rebuilt aggregates\n%s\nwant (kept all along)\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	// The next read takes both days to 2.3 kWh: both fire on the figure.
	c.produce(readRec(0, "MW", "import", "2026-11-10T07:15:00Z", 900, 1, "1"),
		readRec(1, "ML", "import", "2026-11-10T07:15:00Z", 900, 1, "1"))
	c.caughtUp(d)
	got := ofType(d.published(), alerts.DailyUsage)
	equalIDs(t, got, "daily_usage/ACC-L/2026-11-10", "daily_usage/ACC-W/2026-11-10")
	for id, a := range got {
		if a.Observed != "2.300000" || a.DataQuality != alerts.QualityEstimated {
			t.Errorf("%s: observed %s %s, want 2.300000 estimated", id, a.Observed, a.DataQuality)
		}
	}

	settings("ACC-L,later,,,false")
	if n := d.count(`SELECT count(*) FROM alert_daily_usage WHERE account_id = 'ACC-L'`) +
		d.count(`SELECT count(*) FROM alert_energy WHERE account_id = 'ACC-L'`); n != 0 {
		t.Errorf("%d aggregate rows left after the settings were cleared", n)
	}
}

func (d *db) count(sql string) int {
	d.t.Helper()
	var n int
	if err := d.pool.QueryRow(d.t.Context(), sql).Scan(&n); err != nil {
		d.t.Fatal(err)
	}
	return n
}

func (d *db) strings(sql string, args ...any) []string {
	d.t.Helper()
	rows, err := d.pool.Query(d.t.Context(), sql, args...)
	if err != nil {
		d.t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// TestSettingsChangeWaitsForIngest: a registry change that gives an account
// a threshold waits for an ingest transaction in flight (which saw the
// account without one and so kept no aggregate for its read), and then
// rebuilds with that read.
func TestSettingsChangeWaitsForIngest(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(baseRegistry + `
		INSERT INTO accounts (account_id, name) VALUES ('ACC-Z', 'z');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from) VALUES
			('Z1', 'ACC-Z', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z')`)
	first := begin(t, d.pool)
	first.reads(t.Context(), d, 0, 0, `{"meter_id":"Z1","start":"2026-11-10T06:15:00Z","interval_seconds":900,"values":["0.7"]}`)
	if ids := first.fired(t); len(ids) != 0 {
		t.Fatalf("fired %v", ids)
	}
	done := make(chan error, 1)
	go func() {
		var b registrystore.Batch
		if err := b.AddCSV(registrystore.Accounts, "accounts.csv", strings.NewReader(
			"account_id,name,daily_kwh_threshold,monthly_budget,price_alerts\nACC-Z,z,5,,false\n")); err != nil {
			done <- err
			return
		}
		_, err := registrystore.NewRegistry(d.pool, d.hook.SettingsChanged).Apply(t.Context(), &b)
		done <- err
	}()
	waitForLockWait(t, d, done)
	if err := first.tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := d.strings(`SELECT sum(import_kwh)::text FROM alert_daily_usage WHERE account_id = 'ACC-Z'`); len(got) != 1 || got[0] != "0.7" {
		t.Errorf("ACC-Z daily usage after the rebuild: %v, want [0.7]", got)
	}
}

// waitForLockWait returns once a session of d's database waits for a lock;
// it fails if done is signalled first (the waiter did not wait).
func waitForLockWait(t *testing.T, d *db, done chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("finished without waiting for the ingest transaction (err %v)", err)
		default:
		}
		if d.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing waited for a lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

package postgres

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

const cacheRegistry = `
	INSERT INTO participants VALUES ('RET-A', 'A'), ('RET-B', 'B');
	INSERT INTO settlement_points VALUES ('HB_NORTH', 'North', 'hub');
	INSERT INTO accounts (account_id, name, daily_kwh_threshold, monthly_budget) VALUES
		('ACC-1', 'one', 10, NULL), ('ACC-2', 'two', NULL, NULL);
	INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from) VALUES
		('M-1', 'ACC-1', 'RET-A', 'HB_NORTH', 1.01, '2026-01-01T00:00:00Z'),
		('M-2', 'ACC-2', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z')`

func cacheDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, _ := pgtest.New(t)
	if _, err := pool.Exec(t.Context(), cacheRegistry); err != nil {
		t.Fatal(err)
	}
	return pool
}

// assignmentsIn looks up meterIDs through c in tx as ingest does (the
// statement in a pgx.Batch) and returns them one line a meter.
func assignmentsIn(t *testing.T, tx pgx.Tx, c *Cache, meterIDs ...string) string {
	t.Helper()
	b := &pgx.Batch{}
	q := c.QueueAssignments(b, meterIDs)
	if err := tx.SendBatch(t.Context(), b).Close(); err != nil {
		t.Fatal(err)
	}
	got, err := q.Finish(t.Context(), tx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(meterIDs) {
		t.Errorf("%d meters looked up, %d returned", len(meterIDs), len(got))
	}
	var lines []string
	for _, id := range slices.Sorted(maps.Keys(got)) {
		var as []string
		for _, a := range got[id] {
			end := "open"
			if a.EffectiveTo != nil {
				end = a.EffectiveTo.Format(time.RFC3339)
			}
			as = append(as, fmt.Sprintf("%s/%s/%s/%s %s-%s", a.AccountID, a.ParticipantID, a.SettlementPoint, a.LossFactor,
				a.EffectiveFrom.Format(time.RFC3339), end))
		}
		lines = append(lines, id+": "+strings.Join(as, ", "))
	}
	return strings.Join(lines, "\n")
}

// assignments looks up meterIDs through c in a transaction of its own.
func assignments(t *testing.T, pool *pgxpool.Pool, c *Cache, meterIDs ...string) string {
	t.Helper()
	var out string
	if err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		out = assignmentsIn(t, tx, c, meterIDs...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// settings looks up accountIDs through c, one line an account.
func settings(t *testing.T, pool *pgxpool.Pool, c *Cache, accountIDs ...string) string {
	t.Helper()
	var got map[string]AlertSettings
	if err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		var err error
		got, err = c.AlertSettings(t.Context(), tx, accountIDs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, id := range slices.Sorted(maps.Keys(got)) {
		s := got[id]
		lines = append(lines, fmt.Sprintf("%s daily=%t budget=%t", id, s.DailyThreshold, s.MonthlyBudget))
	}
	return strings.Join(lines, "\n")
}

func same(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s:\n%s\nwant\n%s", what, got, want)
	}
}

const (
	m1Before = "M-1: ACC-1/RET-A/HB_NORTH/1.01 2026-01-01T00:00:00Z-open"
	m2       = "M-2: ACC-2/RET-A/HB_NORTH/1 2026-01-01T00:00:00Z-open"
	m1Moved  = "M-1: ACC-1/RET-A/HB_NORTH/1.01 2026-01-01T00:00:00Z-2026-11-01T00:00:00Z, " +
		"ACC-2/RET-B/HB_NORTH/1.01 2026-11-01T00:00:00Z-open"
)

// moveM1 moves meter M-1 to ACC-2 and RET-B from November through the
// registry, and gives ACC-2 a monthly budget.
func moveM1(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	var b Batch
	for tab, csv := range map[Table]string{
		Accounts: "account_id,name,daily_kwh_threshold,monthly_budget,price_alerts\nACC-2,two,,100,false\n",
		Meters: "meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from,effective_to\n" +
			"M-1,ACC-1,RET-A,HB_NORTH,1.01,2026-01-01T00:00:00Z,2026-11-01T00:00:00Z\n" +
			"M-1,ACC-2,RET-B,HB_NORTH,1.01,2026-11-01T00:00:00Z,\n",
	} {
		if err := b.AddCSV(tab, string(tab)+".csv", strings.NewReader(csv)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewRegistry(pool, nil).Apply(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
}

// The second look-up is served from the cache while the registry does not
// change (shown by a write the version does not see: the trigger disabled
// by hand), and sees a registry change made between the two through the
// registry: an assignment moved, an account that gains a budget. A meter or
// account the registry does not know is cached too, and seen once it is
// registered.
func TestCacheSeesRegistryChangesBetweenBatches(t *testing.T) {
	pool := cacheDB(t)
	ctx := t.Context()
	c := NewCache(0)
	same(t, "first look-up", assignments(t, pool, c, "M-1", "M-2", "M-9"), m1Before+"\n"+m2+"\nM-9: ")
	same(t, "first settings", settings(t, pool, c, "ACC-1", "ACC-2", "ACC-9"),
		"ACC-1 daily=true budget=false\nACC-2 daily=false budget=false\nACC-9 daily=false budget=false")

	// Unseen by the version: the cache answers.
	if _, err := pool.Exec(ctx, `
		ALTER TABLE meter_assignments DISABLE TRIGGER meter_assignment_history_update;
		ALTER TABLE accounts DISABLE TRIGGER registry_version_bump;
		UPDATE meter_assignments SET loss_factor = 2 WHERE meter_id = 'M-2';
		UPDATE accounts SET monthly_budget = 5 WHERE account_id = 'ACC-2';
		ALTER TABLE meter_assignments ENABLE ALWAYS TRIGGER meter_assignment_history_update;
		ALTER TABLE accounts ENABLE ALWAYS TRIGGER registry_version_bump`); err != nil {
		t.Fatal(err)
	}
	same(t, "cached look-up", assignments(t, pool, c, "M-1", "M-2", "M-9"), m1Before+"\n"+m2+"\nM-9: ")
	same(t, "cached settings", settings(t, pool, c, "ACC-2"), "ACC-2 daily=false budget=false")

	// Through the registry: every entry is read again.
	moveM1(t, pool)
	same(t, "after the move", assignments(t, pool, c, "M-1", "M-2", "M-9"),
		m1Moved+"\nM-2: ACC-2/RET-A/HB_NORTH/2 2026-01-01T00:00:00Z-open\nM-9: ")
	same(t, "after the budget", settings(t, pool, c, "ACC-1", "ACC-2"),
		"ACC-1 daily=true budget=false\nACC-2 daily=false budget=true")

	if _, err := pool.Exec(ctx, `
		INSERT INTO accounts (account_id, name, daily_kwh_threshold) VALUES ('ACC-9', 'nine', 1);
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		VALUES ('M-9', 'ACC-9', 'RET-A', 'HB_NORTH', 1, '2026-06-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	same(t, "registered meter", assignments(t, pool, c, "M-9"), "M-9: ACC-9/RET-A/HB_NORTH/1 2026-06-01T00:00:00Z-open")
	same(t, "registered account", settings(t, pool, c, "ACC-9"), "ACC-9 daily=true budget=false")
}

// A registry change that commits after the cached entries were read and
// before a batch's look-up statement: the statement reads the new version,
// so the entries it had (M-1) are read again with the ones it lacked (M-2),
// all of them as of that one statement.
func TestCacheRereadsItsHitsWhenTheVersionMoved(t *testing.T) {
	pool := cacheDB(t)
	c := NewCache(0)
	same(t, "warm", assignments(t, pool, c, "M-1"), m1Before)
	moveM1(t, pool)
	same(t, "hit and miss", assignments(t, pool, c, "M-1", "M-2"), m1Moved+"\n"+m2)
	same(t, "cached again", assignments(t, pool, c, "M-1"), m1Moved)
}

// A batch sees the registry as of its look-up statement, as a read of the
// tables there would: a registry transaction that commits while the batch
// runs is seen by the batch's next statements, never by rows cached before
// it.
func TestCacheLookUpsInOneTransactionFollowCommits(t *testing.T) {
	pool := cacheDB(t)
	ctx := t.Context()
	c := NewCache(0)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	same(t, "before", assignmentsIn(t, tx, c, "M-1", "M-2"), m1Before+"\n"+m2)
	moveM1(t, pool) // commits while tx is open
	same(t, "read committed", assignmentsIn(t, tx, c, "M-1", "M-2"), m1Moved+"\n"+m2)
}

// Rows a transaction reads after its own registry write are tagged with a
// version no other transaction ever reads, even if it rolls back: the next
// batch does not take them for the committed registry.
func TestCacheNeverServesRolledBackWrites(t *testing.T) {
	pool := cacheDB(t)
	ctx := t.Context()
	c := NewCache(0)
	same(t, "warm", assignments(t, pool, c, "M-1", "M-2"), m1Before+"\n"+m2)
	for range 2 {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `UPDATE meter_assignments SET effective_to = '2026-11-01T00:00:00Z' WHERE meter_id = 'M-1'`); err != nil {
			t.Fatal(err)
		}
		same(t, "own write", assignmentsIn(t, tx, c, "M-1"), "M-1: ACC-1/RET-A/HB_NORTH/1.01 2026-01-01T00:00:00Z-2026-11-01T00:00:00Z")
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		// Another writer commits: its version is not the rolled-back one.
		if _, err := pool.Exec(ctx, `UPDATE accounts SET name = name || '.' WHERE account_id = 'ACC-2'`); err != nil {
			t.Fatal(err)
		}
		same(t, "after the rollback", assignments(t, pool, c, "M-1", "M-2"), m1Before+"\n"+m2)
	}
}

// TRUNCATE has no trigger (migrations/00809_registry_version.sql), but a
// truncated table is another file: the cache sees it.
func TestCacheSeesTruncate(t *testing.T) {
	pool := cacheDB(t)
	c := NewCache(0)
	same(t, "warm", assignments(t, pool, c, "M-1", "M-2"), m1Before+"\n"+m2)
	same(t, "warm settings", settings(t, pool, c, "ACC-1"), "ACC-1 daily=true budget=false")
	if _, err := pool.Exec(t.Context(), `TRUNCATE meter_assignments`); err != nil {
		t.Fatal(err)
	}
	same(t, "truncated", assignments(t, pool, c, "M-1", "M-2"), "M-1: \nM-2: ")
	if _, err := pool.Exec(t.Context(), `TRUNCATE accounts CASCADE`); err != nil {
		t.Fatal(err)
	}
	same(t, "truncated accounts", settings(t, pool, c, "ACC-1"), "ACC-1 daily=false budget=false")
}

// Each kind of entry stays within the cache's limit: a look-up whose new
// entries would pass it drops the others first; one with more than the
// limit is answered and not kept.
func TestCacheBound(t *testing.T) {
	pool := cacheDB(t)
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		SELECT 'B-' || i, 'ACC-2', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z' FROM generate_series(1, 10) i`); err != nil {
		t.Fatal(err)
	}
	const limit = 4
	c := NewCache(limit)
	meter := func(i int) string { return fmt.Sprintf("B-%d", i) }
	check := func(what string, ids ...string) {
		t.Helper()
		var want []string
		for _, id := range slices.Sorted(slices.Values(ids)) {
			want = append(want, id+": ACC-2/RET-A/HB_NORTH/1 2026-01-01T00:00:00Z-open")
		}
		same(t, what, assignments(t, pool, c, ids...), strings.Join(want, "\n"))
		if n := len(c.assignments); n > limit {
			t.Errorf("%s: %d meters cached, limit %d", what, n, limit)
		}
	}
	check("three", meter(1), meter(2), meter(3))
	if len(c.assignments) != 3 {
		t.Errorf("%d meters cached, want 3", len(c.assignments))
	}
	check("one more", meter(3), meter(4))
	if len(c.assignments) != 4 {
		t.Errorf("%d meters cached, want 4", len(c.assignments))
	}
	check("past the limit: dropped, then kept", meter(5), meter(6))
	if !slices.Equal(slices.Sorted(maps.Keys(c.assignments)), []string{meter(5), meter(6)}) {
		t.Errorf("cached %v after the drop", slices.Sorted(maps.Keys(c.assignments)))
	}
	check("more than the limit at once", meter(1), meter(2), meter(3), meter(4), meter(7), meter(8))
	check("after", meter(9), meter(10))
	var accounts []string
	for i := range 10 {
		accounts = append(accounts, fmt.Sprintf("ACC-%d", i))
	}
	settings(t, pool, c, accounts[:3]...)
	settings(t, pool, c, accounts[3:7]...)
	if n := len(c.settings); n > limit {
		t.Errorf("%d accounts cached, limit %d", n, limit)
	}
}

// Every writer of the registry moves the version: the registry's batches
// (accounts upserted, assignments inserted and closed), its CSV import, and
// a batch that changes nothing (its statements run all the same); a read,
// even one that locks the accounts as ingest does, does not.
func TestRegistryWritersMoveTheVersion(t *testing.T) {
	pool := cacheDB(t)
	ctx := t.Context()
	version := func() registryVersion {
		t.Helper()
		var v registryVersion
		if err := pool.QueryRow(ctx, `SELECT ver.* FROM `+versionFrom).Scan(&v.counter, &v.accountsFile, &v.assignFile); err != nil {
			t.Fatal(err)
		}
		return v
	}
	last := version()
	moved := func(what string, want bool) {
		t.Helper()
		v := version()
		if (v != last) != want {
			t.Errorf("%s: version %+v after %+v, moved %t", what, v, last, want)
		}
		last = v
	}
	moveM1(t, pool)
	moved("registry batch", true)
	moveM1(t, pool)
	moved("registry batch changing nothing", true)
	files := map[string]string{
		"accounts.csv": "account_id,name,daily_kwh_threshold,monthly_budget,price_alerts\nACC-3,three,1,,false\n",
		"meters.csv": "meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from,effective_to\n" +
			"M-3,ACC-3,RET-A,HB_NORTH,1,2026-01-01T00:00:00Z,\n",
	}
	if _, err := ImportFiles(ctx, pool, nil, writeFiles(t, files)...); err != nil {
		t.Fatal(err)
	}
	moved("import", true)
	if _, err := pool.Exec(ctx, `
		SELECT * FROM accounts WHERE account_id = ANY('{ACC-1,ACC-2}') ORDER BY account_id FOR NO KEY UPDATE;
		SELECT * FROM meter_assignments`); err != nil {
		t.Fatal(err)
	}
	moved("reads", false)
}

// The entries handed out are the assignments ScanAssignment reads, in
// effective_from order.
func TestCacheAssignmentsAreTheRegistrys(t *testing.T) {
	pool := cacheDB(t)
	moveM1(t, pool)
	c := NewCache(0)
	var got map[string][]meters.Assignment
	if err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		q := c.QueueAssignments(b, []string{"M-1"})
		if err := tx.SendBatch(t.Context(), b).Close(); err != nil {
			return err
		}
		var err error
		got, err = q.Finish(t.Context(), tx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(t.Context(), `
		SELECT meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to
		FROM meter_assignments WHERE meter_id = 'M-1' ORDER BY effective_from`)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pgx.CollectRows(rows, ScanAssignment)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got["M-1"], want) || len(want) != 2 {
		t.Errorf("cached %v, stored %v", got["M-1"], want)
	}
}

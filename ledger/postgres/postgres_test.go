package postgres

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/ledger"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var (
	nov1 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	t0   = time.Date(2026, 11, 7, 6, 0, 0, 0, time.UTC)
)

// receivable is the entry a statement line's delta posts.
func receivable(key, participant, point string, day time.Time, delta string) ledger.Entry {
	d := decimal.RequireFromString(delta)
	return ledger.Entry{
		Key: key, RunID: "run-test", EffectiveDate: day, Currency: "USD",
		Lines: []ledger.Line{
			{Account: "participant:" + participant + ":energy_receivable", Amount: d, SettlementPoint: point, OperatingDay: day},
			{Account: "settlement_point:" + point + ":energy_clearing", Amount: d.Neg(), SettlementPoint: point, OperatingDay: day},
		},
	}
}

func post(t *testing.T, pool *pgxpool.Pool, at time.Time, entries ...ledger.Entry) []ledger.Entry {
	t.Helper()
	var out []ledger.Entry
	err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		var err error
		out, err = Post(t.Context(), tx, at, entries...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func verifyOK(t *testing.T, pool *pgxpool.Pool, want int) {
	t.Helper()
	r, err := Verify(t.Context(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.EntriesChecked != want {
		t.Fatalf("verify = %+v (first bad %v), want ok with %d entries", r, r.FirstBadEntry, want)
	}
}

func TestPostIsIdempotentAndChained(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	a := receivable("HB_NORTH/P1/2026-11-01/1", "P1", "HB_NORTH", nov1, "178.90")
	b := receivable("HB_NORTH/P2/2026-11-01/1", "P2", "HB_NORTH", nov1, "-12.34")
	got := post(t, pool, t0, a, b)
	if len(got) != 2 || got[0].PrevHash != ledger.Genesis || got[1].PrevHash != got[0].Hash || got[1].ID <= got[0].ID {
		t.Fatalf("posted %+v", got)
	}
	// the same keys again: nothing posted, no error
	if again := post(t, pool, t0.Add(time.Hour), a, b); len(again) != 0 {
		t.Fatalf("reposting posted %d entries", len(again))
	}
	// the same key with another amount is refused
	err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		_, err := Post(t.Context(), tx, t0, receivable(a.Key, "P1", "HB_NORTH", nov1, "178.91"))
		return err
	})
	if !errors.Is(err, ErrKeyConflict) {
		t.Fatalf("conflicting repost: %v", err)
	}
	c := post(t, pool, t0.Add(2*time.Hour), receivable("HB_NORTH/P1/2026-11-01/2", "P1", "HB_NORTH", nov1, "-0.90"))
	if c[0].PrevHash != got[1].Hash {
		t.Fatalf("third entry links to %s, want %s", c[0].PrevHash, got[1].Hash)
	}
	verifyOK(t, pool, 3)

	listed, err := Entries(t.Context(), pool, EntryQuery{Account: "participant:P1:energy_receivable"})
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 || listed[0].Key != a.Key || listed[1].Hash != c[0].Hash || len(listed[1].Lines) != 2 ||
		listed[1].Lines[1].Amount.StringFixed(2) != "0.90" || !listed[1].PostedAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("entries of P1: %+v", listed)
	}
	page, err := Entries(t.Context(), pool, EntryQuery{AfterID: got[0].ID, Limit: 1})
	if err != nil || len(page) != 1 || page[0].ID != got[1].ID {
		t.Fatalf("page after %d: %+v %v", got[0].ID, page, err)
	}
}

func TestBalancesAsOfPostingAndEffectiveDate(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	nov2 := nov1.AddDate(0, 0, 1)
	post(t, pool, t0, receivable("k1", "P1", "HB_NORTH", nov1, "100.00"), receivable("k2", "P1", "HB_SOUTH", nov2, "20.50"))
	post(t, pool, t0.Add(24*time.Hour), receivable("k3", "P1", "HB_NORTH", nov1, "-30.25"))

	tests := []struct {
		name string
		q    BalanceQuery
		want map[string]string
	}{
		{"everything", BalanceQuery{}, map[string]string{
			"participant:P1:energy_receivable":          "90.25",
			"settlement_point:HB_NORTH:energy_clearing": "-69.75",
			"settlement_point:HB_SOUTH:energy_clearing": "-20.50",
		}},
		{"one account", BalanceQuery{Account: "participant:P1:energy_receivable"}, map[string]string{
			"participant:P1:energy_receivable": "90.25",
		}},
		{"as of before the correction", BalanceQuery{Account: "participant:P1:energy_receivable", AsOf: t0.Add(time.Hour)}, map[string]string{
			"participant:P1:energy_receivable": "120.50",
		}},
		{"as of the instant of posting, inclusive", BalanceQuery{Account: "participant:P1:energy_receivable", AsOf: t0}, map[string]string{
			"participant:P1:energy_receivable": "120.50",
		}},
		{"effective on nov 1", BalanceQuery{EffectiveOn: nov1}, map[string]string{
			"participant:P1:energy_receivable":          "69.75",
			"settlement_point:HB_NORTH:energy_clearing": "-69.75",
		}},
		{"both", BalanceQuery{AsOf: t0, EffectiveOn: nov1, Account: "participant:P1:energy_receivable"}, map[string]string{
			"participant:P1:energy_receivable": "100.00",
		}},
		{"before anything", BalanceQuery{AsOf: t0.Add(-time.Second)}, map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Balances(t.Context(), pool, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]string{}
			for _, b := range got {
				if b.Currency != "USD" {
					t.Errorf("%s in %s", b.Account, b.Currency)
				}
				m[b.Account] = b.Balance.StringFixed(2)
			}
			if fmt.Sprint(m) != fmt.Sprint(tc.want) {
				t.Fatalf("balances %v, want %v", m, tc.want)
			}
		})
	}
}

// TestDatabaseEnforcesTheRules talks SQL directly, as a client that bypasses
// this package would: the database refuses unbalanced entries and any
// change to posted rows.
func TestDatabaseEnforcesTheRules(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	post(t, pool, t0, receivable("k1", "P1", "HB_NORTH", nov1, "10.00"))
	ctx := t.Context()

	insert := func(key string, amounts ...string) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var id int64
			err := tx.QueryRow(ctx, `INSERT INTO journal_entries (entry_key, effective_date, posted_at, currency, prev_hash, hash)
				VALUES ($1, '2026-11-01', now(), 'USD', 'x', $1) RETURNING entry_id`, key).Scan(&id)
			if err != nil {
				return err
			}
			for i, a := range amounts {
				if _, err := tx.Exec(ctx, `INSERT INTO journal_lines (entry_id, line_no, account, amount) VALUES ($1, $2, 'a', $3)`,
					id, i+1, a); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for _, tc := range []struct {
		name    string
		amounts []string
		ok      bool
	}{
		{"unbalanced", []string{"10.00", "-9.99"}, false},
		{"one line", []string{"0.00"}, false},
		{"no lines", nil, false},
		{"balanced", []string{"1.00", "2.00", "-3.00"}, true},
	} {
		err := insert("raw-"+tc.name, tc.amounts...)
		if tc.ok != (err == nil) {
			t.Errorf("%s entry: commit error %v, want ok=%v", tc.name, err, tc.ok)
		}
	}

	for _, stmt := range []string{
		`UPDATE journal_lines SET amount = amount + 1 WHERE line_no = 1`,
		`UPDATE journal_entries SET currency = 'EUR'`,
		`DELETE FROM journal_lines`,
		`DELETE FROM journal_entries`,
		`TRUNCATE journal_lines`,
		`TRUNCATE journal_entries CASCADE`,
	} {
		if _, err := pool.Exec(ctx, stmt); err == nil {
			t.Errorf("%s was allowed", stmt)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM journal_lines`).Scan(&n); err != nil || n != 5 {
		t.Fatalf("%d journal lines left (%v), want 5", n, err)
	}
}

// TestVerifyNamesTamperedEntry tampers with the journal as a superuser
// would, with the append-only triggers switched off, and checks verify
// names the changed entry.
func TestVerifyNamesTamperedEntry(t *testing.T) {
	t.Parallel()
	tampers := []struct {
		name string
		sql  []string
	}{
		{"amount changed with replication role", []string{
			`SET session_replication_role = replica`,
			`UPDATE journal_lines SET amount = amount + 0.01 WHERE entry_id = $1`,
		}},
		{"account renamed with triggers disabled", []string{
			`ALTER TABLE journal_lines DISABLE TRIGGER USER`,
			`UPDATE journal_lines SET account = 'participant:P9:energy_receivable' WHERE entry_id = $1 AND line_no = 1`,
		}},
		{"posting time moved", []string{
			`ALTER TABLE journal_entries DISABLE TRIGGER USER`,
			`UPDATE journal_entries SET posted_at = posted_at - interval '1 day' WHERE entry_id = $1`,
		}},
		{"entry deleted", []string{
			`SET session_replication_role = replica`,
			`DELETE FROM journal_lines WHERE entry_id = $1 - 1`,
			`DELETE FROM journal_entries WHERE entry_id = $1 - 1`,
		}},
	}
	for _, tc := range tampers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pool, _ := pgtest.New(t)
			var entries []ledger.Entry
			for i := range 4 {
				entries = append(entries, receivable(fmt.Sprintf("k%d", i), "P1", "HB_NORTH", nov1, "10.00"))
			}
			posted := post(t, pool, t0, entries...)
			verifyOK(t, pool, 4)
			victim := posted[2].ID
			err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
				for _, s := range tc.sql {
					var args []any
					if len(s) > 0 && (s[0] == 'U' || s[0] == 'D') {
						args = append(args, victim)
					}
					if _, err := tx.Exec(t.Context(), s, args...); err != nil {
						return fmt.Errorf("%s: %w", s, err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			r, err := Verify(t.Context(), pool)
			if err != nil {
				t.Fatal(err)
			}
			if r.OK || r.FirstBadEntry == nil || r.FirstBadEntry.EntryID != victim || r.FirstBadEntry.EntryKey != posted[2].Key {
				t.Fatalf("verify after tampering = %+v %+v, want entry %d named", r, r.FirstBadEntry, victim)
			}
			t.Logf("verify: %v", r.FirstBadEntry)
		})
	}
}

// TestConcurrentPostersNeverFork posts from many transactions at once; the
// chain stays one line: every prev_hash is used once and verify passes.
func TestConcurrentPostersNeverFork(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	const posters, each = 6, 5
	var wg sync.WaitGroup
	errs := make(chan error, posters)
	for p := range posters {
		wg.Go(func() {
			for i := range each {
				err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
					_, err := Post(t.Context(), tx, time.Now(),
						receivable(fmt.Sprintf("p%d-%d", p, i), fmt.Sprintf("P%d", p), "HB_NORTH", nov1, "1.23"))
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	verifyOK(t, pool, posters*each)
	var forks int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) - count(DISTINCT prev_hash) FROM journal_entries`).Scan(&forks); err != nil || forks != 0 {
		t.Fatalf("%d entries share a prev_hash (%v)", forks, err)
	}
}

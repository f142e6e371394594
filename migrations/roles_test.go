package migrations_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/ledger"
	ledgerpg "github.com/gridsettle/gridsettle/ledger/postgres"
	"github.com/gridsettle/gridsettle/migrations"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func post(t *testing.T, pool *pgxpool.Pool, key string) {
	t.Helper()
	ctx := t.Context()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := ledgerpg.Post(ctx, tx, time.Now(), ledger.Entry{
			Key: key, EffectiveDate: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), Currency: "USD",
			Lines: []ledger.Line{
				{Account: "participant:A:energy_receivable", Amount: decimal.RequireFromString("10.25")},
				{Account: "market:energy_payable", Amount: decimal.RequireFromString("-10.25")},
			},
		})
		return err
	})
	if err != nil {
		t.Fatalf("post %s: %v", key, err)
	}
}

// As the runtime role, the journal and the audit log take inserts through
// the normal posting path and nothing else: no DELETE, TRUNCATE or UPDATE,
// and no disabling of their triggers, which only their owner may do.
func TestRuntimeRoleCannotRewriteTheJournal(t *testing.T) {
	_, ownerURL := pgtest.New(t)
	rt := pgtest.Connect(t, pgtest.RuntimeRole(t, ownerURL))
	ctx := t.Context()

	post(t, rt, "stmt-1")
	post(t, rt, "stmt-2")
	if r, err := ledgerpg.Verify(ctx, rt); err != nil || !r.OK || r.EntriesChecked != 2 {
		t.Fatalf("verify as runtime: %+v, %v", r, err)
	}
	if _, err := rt.Exec(ctx, `INSERT INTO api_audit (request_id, method, path, route, status) VALUES ('r1', 'POST', '/x', '/x', 200)`); err != nil {
		t.Fatalf("audit insert as runtime: %v", err)
	}
	// Other tables stay writable.
	if _, err := rt.Exec(ctx, `INSERT INTO participants VALUES ('P-1', 'One')`); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Exec(ctx, `DELETE FROM participants WHERE participant_id = 'P-1'`); err != nil {
		t.Fatal(err)
	}

	for _, q := range []string{
		`DELETE FROM journal_entries`,
		`DELETE FROM journal_lines WHERE entry_id = (SELECT max(entry_id) FROM journal_entries)`,
		`TRUNCATE journal_lines, journal_entries`,
		`UPDATE journal_lines SET amount = 0`,
		`UPDATE journal_entries SET hash = 'x' WHERE entry_id = 1`,
		`ALTER TABLE journal_entries DISABLE TRIGGER journal_entries_append_only`,
		`ALTER TABLE journal_lines DISABLE TRIGGER ALL`,
		`DELETE FROM api_audit`,
		`TRUNCATE api_audit`,
		`ALTER TABLE api_audit DISABLE TRIGGER USER`,
		`INSERT INTO goose_db_version (version_id, is_applied) VALUES (999999, true)`,
		`DROP TABLE journal_lines`,
	} {
		_, err := rt.Exec(ctx, q)
		var pgErr *pgconn.PgError
		// 42501 insufficient_privilege: refused by privileges, not by the
		// triggers (whose refusal is restrict_violation).
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s as runtime: %v, want insufficient_privilege", q, err)
		}
	}
	if r, err := ledgerpg.Verify(ctx, rt); err != nil || !r.OK || r.EntriesChecked != 2 {
		t.Fatalf("verify after the attempts: %+v, %v", r, err)
	}

	st, err := migrations.Inspect(ctx, rt)
	if err != nil || st.OwnsSchema || st.OwnsJournal || len(st.Pending) != 0 {
		t.Errorf("runtime state %+v, %v", st, err)
	}
	owner := pgtest.Connect(t, ownerURL)
	if st, err := migrations.Inspect(ctx, owner); err != nil || !st.OwnsSchema || !st.OwnsJournal {
		t.Errorf("owner state %+v, %v", st, err)
	}
}

// Grants are recomputed from the catalog: granting again is harmless, a
// privilege given by hand does not survive it, and a table added by a later
// migration is covered.
func TestGrantRuntimeIsIdempotentAndCoversNewTables(t *testing.T) {
	_, ownerURL := pgtest.New(t)
	rt := pgtest.Connect(t, pgtest.RuntimeRole(t, ownerURL))
	owner := pgtest.Connect(t, ownerURL)
	ctx := t.Context()
	var role string
	if err := rt.QueryRow(ctx, `SELECT current_user`).Scan(&role); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`GRANT ALL ON journal_entries TO ` + role,
		`CREATE TABLE later_table (id int PRIMARY KEY)`,
	} {
		if _, err := owner.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := migrations.GrantRuntime(ctx, owner, role); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rt.Exec(ctx, `INSERT INTO later_table VALUES (1)`); err != nil {
		t.Errorf("table of a later migration: %v", err)
	}
	if _, err := rt.Exec(ctx, `DELETE FROM journal_entries`); err == nil || !strings.Contains(err.Error(), "42501") {
		t.Errorf("a hand-made grant survived: %v", err)
	}
}

// A role that could undo the rule is refused: a superuser, a member of the
// tables' owner, the schema's owner (who may drop any table in it); so is a
// role that does not exist.
func TestGrantRuntimeRefusesOwners(t *testing.T) {
	_, ownerURL := pgtest.New(t)
	owner := pgtest.Connect(t, ownerURL)
	ctx := t.Context()
	var me string
	if err := owner.QueryRow(ctx, `SELECT current_user`).Scan(&me); err != nil {
		t.Fatal(err)
	}
	member := "gs_member_" + strings.ToLower(rand.Text()[:12])
	if _, err := owner.Exec(ctx, `CREATE ROLE `+member+` LOGIN IN ROLE `+pgx.Identifier{me}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = owner.Exec(context.Background(), `DROP ROLE `+member) })
	schemaOwner, _ := pgtest.Role(t, ownerURL)
	if _, err := owner.Exec(ctx, `ALTER SCHEMA public OWNER TO `+schemaOwner); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = owner.Exec(context.Background(), `ALTER SCHEMA public OWNER TO pg_database_owner`) })
	for role, want := range map[string]string{
		me:                  "superuser",
		member:              "privileges of the owner of table",
		schemaOwner:         "privileges of the owner of schema public",
		"gs_no_such_role_x": "does not exist",
	} {
		if err := migrations.GrantRuntime(ctx, owner, role); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", role, err, want)
		}
	}
}

// A runtime role facing pending migrations refuses to start; the owner
// applies them.
func TestPrepareAppliesOnlyAsOwner(t *testing.T) {
	_, ownerURL := pgtest.New(t)
	rt := pgtest.Connect(t, pgtest.RuntimeRole(t, ownerURL))
	owner := pgtest.Connect(t, ownerURL)
	ctx := t.Context()
	if st, err := migrations.Prepare(ctx, rt, quiet); err != nil || len(st.Pending) != 0 {
		t.Fatalf("up-to-date database as runtime: %+v, %v", st, err)
	}
	// Pretend the newest migration is not applied yet: undo it as goose's
	// down would, and forget it.
	var latest int64
	if err := owner.QueryRow(ctx, `SELECT max(version_id) FROM goose_db_version`).Scan(&latest); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(ctx, `DELETE FROM goose_db_version WHERE version_id = $1`, latest); err != nil {
		t.Fatal(err)
	}
	st, err := migrations.Prepare(ctx, rt, quiet)
	if !errors.Is(err, migrations.ErrPendingMigrations) || !slices.Equal(st.Pending, []int64{latest}) {
		t.Fatalf("pending as runtime: %+v, %v", st, err)
	}
	if _, err := owner.Exec(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, latest); err != nil {
		t.Fatal(err)
	}
	if st, err := migrations.Prepare(ctx, owner, quiet); err != nil || len(st.Pending) != 0 {
		t.Fatalf("owner: %+v, %v", st, err)
	}
	if _, err := owner.Exec(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (999999, true)`); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Prepare(ctx, rt, quiet); !errors.Is(err, migrations.ErrSchemaTooNew) {
		t.Fatalf("newer schema as runtime: %v", err)
	}
}

// The append-only list is the tables whose triggers refuse TRUNCATE: BEFORE
// TRUNCATE triggers (meter_assignments' AFTER TRUNCATE trigger records the
// registry's history, migrations/00903_explain.sql).
func TestAppendOnlyListMatchesTriggers(t *testing.T) {
	pool, _ := pgtest.New(t)
	rows, err := pool.Query(t.Context(), `
		SELECT DISTINCT c.relname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
		WHERE NOT g.tgisinternal AND (g.tgtype & 32) <> 0 AND (g.tgtype & 2) <> 0 ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(migrations.AppendOnly))
	if !slices.Equal(got, want) {
		t.Errorf("tables with a TRUNCATE trigger %v, migrations.AppendOnly %v", got, want)
	}
}

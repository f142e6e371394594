package migrations_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// The migrations before and with registry_version.
const (
	beforeRegistryVersion = 807
	registryVersion       = 809
)

// 00809: every statement that writes meter_assignments or accounts, of any
// kind and by any role, sets a new registry version in its transaction,
// never one a rolled-back transaction set; a read, even a locking one, does
// not. Its Down removes the table, function and triggers, leaving the
// registry writable, and Up again works.
func TestRegistryVersionMovesOnEveryWrite(t *testing.T) {
	pool, ownerURL := pgtest.Empty(t)
	ctx := t.Context()
	p := gooseAt(t, pool)
	if _, err := p.UpTo(ctx, registryVersion); err != nil {
		t.Fatal(err)
	}
	version := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) int64 {
		t.Helper()
		var v int64
		if err := q.QueryRow(ctx, `SELECT version FROM registry_version`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	last := version(pool)
	moved := func(what string, want bool) {
		t.Helper()
		v := version(pool)
		if v != last && !want || v <= last && want {
			t.Errorf("%s: version %d after %d, want it moved: %t", what, v, last, want)
		}
		last = v
	}
	exec := func(pool *pgxpool.Pool, what, q string, want bool) {
		t.Helper()
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		moved(what, want)
	}
	exec(pool, "references", `
		INSERT INTO participants VALUES ('RET-A', 'A');
		INSERT INTO settlement_points VALUES ('HB_NORTH', 'North', 'hub')`, false)
	exec(pool, "insert account", `INSERT INTO accounts (account_id, name) VALUES ('ACC-1', 'one'), ('ACC-2', 'two')`, true)
	exec(pool, "insert assignment", `
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		VALUES ('M-1', 'ACC-1', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z')`, true)
	exec(pool, "update account", `UPDATE accounts SET monthly_budget = 10 WHERE account_id = 'ACC-1'`, true)
	exec(pool, "update assignment", `UPDATE meter_assignments SET effective_to = '2026-06-01T00:00:00Z'`, true)
	exec(pool, "upsert account", `
		INSERT INTO accounts (account_id, name) VALUES ('ACC-2', 'two!')
		ON CONFLICT (account_id) DO UPDATE SET name = excluded.name`, true)
	exec(pool, "update of no row", `UPDATE accounts SET name = 'x' WHERE account_id = 'none'`, true)
	exec(pool, "delete assignment", `DELETE FROM meter_assignments`, true)
	exec(pool, "delete account", `DELETE FROM accounts WHERE account_id = 'ACC-2'`, true)
	exec(pool, "locking read", `
		SELECT * FROM accounts ORDER BY account_id FOR NO KEY UPDATE;
		SELECT * FROM meter_assignments FOR UPDATE`, false)
	exec(pool, "other registry tables", `UPDATE participants SET name = 'a'; UPDATE settlement_points SET name = 'n'`, false)
	exec(pool, "as a replica (logical replication, restores)", `
		SET session_replication_role = replica;
		INSERT INTO accounts (account_id, name) VALUES ('ACC-3', 'three');
		RESET session_replication_role`, true)
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"accounts"}, []string{"account_id", "name"},
		pgx.CopyFromRows([][]any{{"ACC-4", "four"}})); err != nil {
		t.Fatal(err)
	}
	moved("copy", true)

	// The runtime role writes the registry through the API: the trigger
	// runs with its privileges.
	rt := pgtest.Connect(t, pgtest.RuntimeRole(t, ownerURL))
	exec(rt, "as the runtime role", `UPDATE accounts SET daily_kwh_threshold = 1 WHERE account_id = 'ACC-3'`, true)

	// A rolled-back version is never set again.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE accounts SET name = 'rolled back'`); err != nil {
		t.Fatal(err)
	}
	rolledBack := version(tx)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	moved("rolled back", false)
	exec(pool, "after a rollback", `UPDATE accounts SET name = 'committed'`, true)
	if last <= rolledBack {
		t.Errorf("version %d after the rolled-back %d", last, rolledBack)
	}

	if _, err := p.DownTo(ctx, beforeRegistryVersion); err != nil {
		t.Fatal(err)
	}
	var left *string
	if err := pool.QueryRow(ctx, `SELECT coalesce(to_regclass('registry_version')::text, to_regclass('registry_version_seq')::text,
		to_regprocedure('registry_version_bump()')::text)`).Scan(&left); err != nil || left != nil {
		t.Fatalf("after Down: %v left, %v", left, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE accounts SET name = 'down'; DELETE FROM accounts WHERE account_id = 'ACC-4'`); err != nil {
		t.Fatalf("registry written after Down: %v", err)
	}
	if _, err := p.UpTo(ctx, registryVersion); err != nil {
		t.Fatal(err)
	}
	last = version(pool)
	exec(pool, "after Down and Up", `UPDATE accounts SET name = 'up'`, true)
}

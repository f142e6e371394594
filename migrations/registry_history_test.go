package migrations_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

const explainMigration = 903

// 00903: the registry's history gives back, for every registry version a
// snapshot could see, exactly the meter_assignments rows it saw, whatever
// wrote the table (insert, update, delete, truncate, a replica session, the
// runtime role), the rows present before the migration included; a
// rolled-back write leaves no trace. Down and Up again work.
func TestRegistryHistoryRebuildsEveryVersion(t *testing.T) {
	pool, ownerURL := pgtest.Empty(t)
	ctx := t.Context()
	p := gooseAt(t, pool)
	if _, err := p.UpTo(ctx, explainMigration-1); err != nil {
		t.Fatal(err)
	}
	run := func(q string) {
		t.Helper()
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	run(`INSERT INTO participants VALUES ('RA', 'A'), ('RB', 'B');
		INSERT INTO settlement_points VALUES ('P1', 'one', 'hub');
		INSERT INTO accounts (account_id, name) VALUES ('A1', 'one');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		VALUES ('M-0', 'A1', 'RA', 'P1', 1, '2026-01-01T00:00:00Z')`)
	if _, err := p.UpTo(ctx, explainMigration); err != nil {
		t.Fatal(err)
	}

	// seen is, per registry version, the table as a snapshot saw it.
	seen := map[int64]string{}
	look := func() {
		t.Helper()
		tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) //nolint:errcheck // read-only
		var v int64
		if err := tx.QueryRow(ctx, `SELECT version FROM registry_version`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		seen[v] = rowsOf(t, tx, `SELECT id, meter_id, account_id, participant_id, settlement_point, loss_factor::text,
			effective_from, effective_to FROM meter_assignments ORDER BY id`)
	}
	look()
	for _, q := range []string{
		`INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		 VALUES ('M-1', 'A1', 'RA', 'P1', 1.5, '2026-01-01T00:00:00Z'), ('M-2', 'A1', 'RA', 'P1', 1, '2026-01-01T00:00:00Z')`,
		`UPDATE meter_assignments SET effective_to = '2026-03-01T00:00:00Z' WHERE meter_id = 'M-1'`,
		`INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		 VALUES ('M-1', 'A1', 'RB', 'P1', 1.5, '2026-03-01T00:00:00Z')`,
		`UPDATE meter_assignments SET loss_factor = 1.02 WHERE meter_id = 'M-2'`,
		`UPDATE meter_assignments SET loss_factor = 1.03 WHERE meter_id = 'M-2'; UPDATE meter_assignments SET loss_factor = 1.04 WHERE meter_id = 'M-2'`,
		`DELETE FROM meter_assignments WHERE meter_id = 'M-0'`,
		`UPDATE accounts SET name = 'renamed'`, // moves the version, not the assignments
		`SET session_replication_role = replica;
		 INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		 VALUES ('M-3', 'A1', 'RA', 'P1', 1, '2026-01-01T00:00:00Z');
		 RESET session_replication_role`,
		`TRUNCATE meter_assignments`,
		`INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		 VALUES ('M-4', 'A1', 'RB', 'P1', 2, '2026-01-01T00:00:00Z')`,
	} {
		run(q)
		look()
	}
	rt := pgtest.Connect(t, pgtest.RuntimeRole(t, ownerURL))
	if _, err := rt.Exec(ctx, `UPDATE meter_assignments SET effective_to = '2026-05-01T00:00:00Z'`); err != nil {
		t.Fatalf("as the runtime role: %v", err)
	}
	look()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `UPDATE meter_assignments SET loss_factor = 0.5`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	look()
	if len(seen) < 12 {
		t.Fatalf("%d distinct registry versions seen, want every write to move it", len(seen))
	}
	for v, want := range seen {
		got := rowsOf(t, pool, fmt.Sprintf(`SELECT id, meter_id, account_id, participant_id, settlement_point, loss_factor::text,
			effective_from, effective_to FROM meter_assignment_history
			WHERE valid_from <= %d AND (valid_to IS NULL OR valid_to > %d) ORDER BY id`, v, v))
		if got != want {
			t.Errorf("registry version %d: the history gives\n%s\nthe table was\n%s", v, got, want)
		}
	}

	if _, err := p.DownTo(ctx, explainMigration-1); err != nil {
		t.Fatal(err)
	}
	run(`UPDATE meter_assignments SET loss_factor = 1.1`) // 00809's bump is back
	if _, err := p.UpTo(ctx, explainMigration); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM meter_assignment_history WHERE valid_to IS NULL`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("after Down and Up: %d current history rows, %v", n, err)
	}
}

func rowsOf(t *testing.T, db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, q string) string {
	t.Helper()
	rows, err := db.Query(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(vals...))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}

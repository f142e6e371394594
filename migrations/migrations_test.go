package migrations_test

import (
	"testing"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestOverlappingAssignmentsRejectedByDatabase(t *testing.T) {
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	for _, q := range []string{
		`INSERT INTO participants VALUES ('RET-A', 'Retailer A')`,
		`INSERT INTO settlement_points VALUES ('HB_NORTH', 'North hub', 'hub')`,
		`INSERT INTO accounts (account_id, name) VALUES ('ACC-1', 'One')`,
		`INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to)
		 VALUES ('M-1', 'ACC-1', 'RET-A', 'HB_NORTH', 1.0312, '2026-01-01T00:00:00Z', '2026-06-01T00:00:00Z')`,
		// Adjacent (half-open) is fine.
		`INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		 VALUES ('M-1', 'ACC-1', 'RET-A', 'HB_NORTH', 1, '2026-06-01T00:00:00Z')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_, err := pool.Exec(ctx, `INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to)
		VALUES ('M-1', 'ACC-1', 'RET-A', 'HB_NORTH', 1, '2026-05-31T00:00:00Z', '2026-06-02T00:00:00Z')`)
	if err == nil {
		t.Fatal("overlapping assignment accepted")
	}
}

// A transaction left idle (its process frozen) is ended by the server, so its
// locks cannot stall the next owner of the rows for longer than that.
func TestIdleTransactionsAreBounded(t *testing.T) {
	pool, _ := pgtest.New(t)
	var v string
	if err := pool.QueryRow(t.Context(), "SHOW idle_in_transaction_session_timeout").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "1min" {
		t.Fatalf("idle_in_transaction_session_timeout = %q, want 1min", v)
	}
}

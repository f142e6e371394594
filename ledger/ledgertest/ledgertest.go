// Package ledgertest tampers with the journal as only its owner can, for
// the tests that prove tampering is caught. It is for tests only.
package ledgertest

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// CutTail deletes the journal's last entry and its lines through owner, a
// pool of the journal's owner: it disables the append-only triggers for
// the transaction, which the runtime role cannot. The chain left is
// consistent on its own. It returns the id of the entry deleted.
func CutTail(t testing.TB, owner *pgxpool.Pool) int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var id int64
	err := pgx.BeginFunc(ctx, owner, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT max(entry_id) FROM journal_entries`).Scan(&id); err != nil {
			return err
		}
		for _, q := range []string{
			`ALTER TABLE journal_lines DISABLE TRIGGER journal_lines_append_only`,
			`ALTER TABLE journal_entries DISABLE TRIGGER journal_entries_append_only`,
			fmt.Sprintf(`DELETE FROM journal_lines WHERE entry_id = %d`, id),
			fmt.Sprintf(`DELETE FROM journal_entries WHERE entry_id = %d`, id),
			`ALTER TABLE journal_lines ENABLE TRIGGER journal_lines_append_only`,
			`ALTER TABLE journal_entries ENABLE TRIGGER journal_entries_append_only`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ledgertest: cut the journal's tail as its owner: %v", err)
	}
	return id
}

package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	ledgerpg "github.com/gridsettle/gridsettle/ledger/postgres"
)

// deleteLastEntry removes the journal's last entry as its owner can: with
// the append-only triggers disabled for the transaction. The chain that is
// left verifies on its own; only the chain heads exports recorded can tell.
func deleteLastEntry(ctx context.Context, t *testing.T, owner *pgxpool.Pool) int64 {
	t.Helper()
	var id int64
	err := pgx.BeginFunc(ctx, owner, func(tx pgx.Tx) error {
		for _, q := range []string{
			`ALTER TABLE journal_lines DISABLE TRIGGER journal_lines_append_only`,
			`ALTER TABLE journal_entries DISABLE TRIGGER journal_entries_append_only`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		if err := tx.QueryRow(ctx, `SELECT max(entry_id) FROM journal_entries`).Scan(&id); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM journal_lines WHERE entry_id = $1`,
			`DELETE FROM journal_entries WHERE entry_id = $1`,
		} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return err
			}
		}
		for _, q := range []string{
			`ALTER TABLE journal_lines ENABLE TRIGGER journal_lines_append_only`,
			`ALTER TABLE journal_entries ENABLE TRIGGER journal_entries_append_only`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("delete the last journal entry as owner: %v", err)
	}
	return id
}

// TestLedgerVerifyAnchoredToExports: the chain head an export recorded is
// checked too, so cutting the journal's tail after the export fails
// verification naming the export, although the shorter chain is
// consistent.
func TestLedgerVerifyAnchoredToExports(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	toks := s.tokens()
	seedVariedDay(t, s, "0.125")
	ok(t, s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Operator], body: `{"operating_day":"2026-11-01","run_type":"initial"}`}), http.StatusCreated, nil)
	var created ExportAnswer
	ok(t, s.do(req{method: "POST", path: "/api/v1/exports", token: toks[Operator],
		body: `{"operating_day":"2026-11-01","run_type":"initial","version":1}`}), http.StatusCreated, &created)
	head := created.Manifest.Lineage.Ledger
	if head.LastEntryID == nil || head.ChainHead == nil {
		t.Fatalf("export without a chain head: %+v", head)
	}

	var rep ledgerpg.Report
	ok(t, s.do(req{method: "GET", path: "/api/v1/ledger/verify", token: toks[Analyst]}), http.StatusOK, &rep)
	if !rep.OK || rep.EntriesChecked == 0 || rep.ExportsChecked != 1 {
		t.Fatalf("verify before: %+v", rep)
	}

	if id := deleteLastEntry(t.Context(), t, s.pool); id != *head.LastEntryID {
		t.Fatalf("deleted entry %d, the export's last entry is %d", id, *head.LastEntryID)
	}
	var bad ledgerpg.Report
	ok(t, s.do(req{method: "GET", path: "/api/v1/ledger/verify", token: toks[Analyst]}), http.StatusOK, &bad)
	f := bad.FirstBadEntry
	if bad.OK || f == nil || f.ExportID != created.ExportID || f.EntryID != *head.LastEntryID ||
		!strings.Contains(f.Reason, created.ExportID) || bad.EntriesChecked != rep.EntriesChecked-1 {
		t.Fatalf("verify after the tail was cut: %+v (failure %+v)", bad, f)
	}
}

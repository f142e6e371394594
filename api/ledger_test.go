package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gridsettle/gridsettle/ledger/ledgertest"
	ledgerpg "github.com/gridsettle/gridsettle/ledger/postgres"
)

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

	if id := ledgertest.CutTail(t, s.pool); id != *head.LastEntryID {
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

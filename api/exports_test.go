package api

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gridsettle/gridsettle/reporting"
	"github.com/gridsettle/gridsettle/reporting/parquet"
	exportpg "github.com/gridsettle/gridsettle/reporting/postgres"
	"github.com/gridsettle/gridsettle/settlement"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// testExporters are the exporters of the test servers, by database, so a
// test can play the runs' completion hook on its server's exporter.
var testExporters sync.Map // *pgxpool.Pool -> *exportpg.Exporter

func init() {
	testAreas = append(testAreas, func(t *testing.T, pool *pgxpool.Pool) Routes {
		seed := sha256.Sum256([]byte("api test export key"))
		loc, err := time.LoadLocation("America/Chicago")
		if err != nil {
			t.Fatal(err)
		}
		e, err := exportpg.NewExporter(pool, exportpg.Config{
			Root: t.TempDir(),
			Export: reporting.Config{
				Generator: "gridsettle test", Market: settlement.Market{Location: loc, Currency: "USD", IntervalSeconds: 900}, Codec: parquet.ZSTD,
				Key: ed25519.NewKeyFromSeed(seed[:]),
			},
		}, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		testExporters.Store(pool, e)
		return ExportRoutes{Exports: e}
	})
}

// seedVariedDay loads reads and prices that exercise the arithmetic the
// exports check: every interval read with 3 decimals, negative and
// missing prices.
func seedVariedDay(t *testing.T, s *testServer, scale string) {
	t.Helper()
	seedDay(t, s, "1") // registry, flat prices, first reads
	for _, q := range []string{
		`UPDATE prices SET price = ((extract(epoch FROM interval_start)::bigint / 900) % 97 - 20) * 1.25
		 WHERE settlement_point = 'HB_NORTH'`,
		`DELETE FROM prices WHERE interval_start = '2026-11-01T12:00:00Z'`,
		// read blocks of one value; a read already seeded is superseded by
		// the next version
		`INSERT INTO read_blocks (meter_id, channel, start, interval_seconds, version, values_micro, topic, partition, "offset")
		 SELECT m, 'import', t, 900,
		        coalesce((SELECT max(v.version) + 1 FROM read_versions v
		                  WHERE v.meter_id = m AND v.channel = 'import' AND v.interval_start = t), 2),
		        ARRAY[(((extract(epoch FROM t)::bigint / 900) % 53) * ` + scale + ` * 1000000)::bigint], 'ami.interval-reads', 0, 1
		 FROM unnest(ARRAY['M1', 'M2']) m,
		      generate_series(timestamptz '2026-11-01T05:00:00Z', '2026-11-02T05:45:00Z', interval '15 minutes') t`,
	} {
		if _, err := s.pool.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestExportsAPI: runs computed by the real settlement code are exported
// (on demand and by the completion hook); a regulator lists them, reads
// the manifest, downloads every file byte for byte and verifies the
// downloaded folder offline with the served public key; regenerating is
// identical; statement amounts are the API's.
func TestExportsAPI(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	toks := s.tokens()
	v, _ := testExporters.Load(s.pool)
	exporter := v.(*exportpg.Exporter)
	ctx := t.Context()

	seedVariedDay(t, s, "0.125")
	var r1, r2 settlementpg.Run
	ok(t, s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Operator], body: `{"operating_day":"2026-11-01","run_type":"initial"}`}), http.StatusCreated, &r1)
	var created ExportAnswer
	ok(t, s.do(req{method: "POST", path: "/api/v1/exports", token: toks[Operator],
		body: `{"operating_day":"2026-11-01","run_type":"initial","version":1}`}), http.StatusCreated, &created)
	if created.ExportID != "export-2026-11-01-initial-v1" || created.Identical != nil || created.Manifest.RunID != r1.RunID {
		t.Fatalf("created %+v", created)
	}
	seedVariedDay(t, s, "0.375")
	ok(t, s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Operator], body: `{"operating_day":"2026-11-01","run_type":"final"}`}), http.StatusCreated, &r2)
	// What the runs' completion hook does, with the worker of the process.
	worker, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- exporter.Run(worker) }()
	exporter.RunCompleted(r2.RunID)
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := exporter.Await(wait, "export-2026-11-01-final-v2"); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}

	var list Page[map[string]any]
	ok(t, s.do(req{method: "GET", path: "/api/v1/exports?operating_day=2026-11-01", token: toks[Regulator]}), http.StatusOK, &list)
	if len(list.Items) != 2 {
		t.Fatalf("list %+v", list)
	}
	id := list.Items[1]["export_id"].(string)
	w := s.do(req{method: "GET", path: "/api/v1/exports", token: toks[Regulator], accept: "text/csv"})
	rows, err := csv.NewReader(strings.NewReader(w.Body.String())).ReadAll()
	if w.Code != http.StatusOK || len(rows) != 3 || !slices.Contains(rows[0], "manifest.control_totals.amount") {
		t.Fatalf("CSV list: %d %q %v", w.Code, w.Body.String(), err)
	}
	var raw map[string]json.RawMessage
	ok(t, s.do(req{method: "GET", path: "/api/v1/exports/" + id, token: toks[Regulator]}), http.StatusOK, &raw)
	for _, f := range []string{"export_id", "operating_day", "run_type", "version", "manifest_sha256", "files", "created_at", "manifest"} {
		if _, has := raw[f]; !has {
			t.Errorf("export lacks %s", f)
		}
	}
	if len(raw) != 8 {
		t.Errorf("export has %d fields, want 8: %s", len(raw), raw)
	}
	var x exportpg.Export
	ok(t, s.do(req{method: "GET", path: "/api/v1/exports/" + id, token: toks[Regulator]}), http.StatusOK, &x)
	if x.Manifest.PreviousManifestSHA256 == nil || *x.Manifest.PreviousManifestSHA256 != created.ManifestSHA256 {
		t.Fatalf("manifest chain: %v, previous export %s", x.Manifest.PreviousManifestSHA256, created.ManifestSHA256)
	}

	// Download the folder and verify it offline with the served key.
	w = s.do(req{method: "GET", path: "/api/v1/exports/public-key", token: toks[Regulator]})
	mustStatus(t, w, http.StatusOK)
	if ct := w.Header().Get("Content-Type"); ct != "application/x-pem-file" {
		t.Fatalf("public key content type %q", ct)
	}
	pub, err := reporting.ParsePublicKeyPEM(w.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range reporting.FolderFiles {
		w := s.do(req{method: "GET", path: "/api/v1/exports/" + id + "/files/" + name, token: toks[Regulator]})
		mustStatus(t, w, http.StatusOK)
		if err := os.WriteFile(filepath.Join(dir, name), w.Body.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if m := x.Manifest; m.Files[1].Rows != 200 || m.Files[2].Rows == 0 || m.ControlTotals.LedgerSum != "0.00" || m.ControlTotals.DeltaAmount == "0.00" {
		t.Fatalf("manifest of the final run: %+v", m)
	}
	rep, err := reporting.Verify(ctx, dir, pub)
	if err != nil || !rep.Authenticated || rep.ManifestSHA256 != x.ManifestSHA256 {
		t.Fatalf("downloaded folder: %+v, %v", rep, err)
	}

	// The statements file holds the API's statement amounts.
	var lines Page[settlement.StatementMessage]
	ok(t, s.do(req{method: "GET", path: "/api/v1/statements?operating_day=2026-11-01&version=2", token: toks[Analyst]}), http.StatusOK, &lines)
	b, err := os.ReadFile(filepath.Join(dir, parquet.StatementsFile))
	if err != nil {
		t.Fatal(err)
	}
	amounts := map[string]string{}
	if _, err := parquet.ReadStatements(ctx, bytes.NewReader(b), int64(len(b)), parquet.LayoutV2, func(st parquet.Statement) error {
		amounts[st.StatementID] = st.Amount.StringFixed(2)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(lines.Items) == 0 || len(amounts) != len(lines.Items) {
		t.Fatalf("%d statement lines in the API, %d in the export", len(lines.Items), len(amounts))
	}
	for _, l := range lines.Items {
		if amounts[l.StatementID] != l.Amount {
			t.Errorf("%s: export amount %s, API %s", l.StatementID, amounts[l.StatementID], l.Amount)
		}
	}

	var verified ExportVerification
	ok(t, s.do(req{method: "GET", path: "/api/v1/exports/" + id + "/verify", token: toks[Regulator]}), http.StatusOK, &verified)
	if !verified.OK || len(verified.Checks) == 0 || verified.ManifestSHA256 != x.ManifestSHA256 {
		t.Fatalf("verify %+v", verified)
	}

	// Asking again regenerates and compares; only operators may.
	problem(t, s.do(req{method: "POST", path: "/api/v1/exports", token: toks[Regulator],
		body: `{"operating_day":"2026-11-01","run_type":"final","version":2}`}), http.StatusForbidden)
	var again ExportAnswer
	ok(t, s.do(req{method: "POST", path: "/api/v1/exports", token: toks[Operator],
		body: `{"operating_day":"2026-11-01","run_type":"final","version":2}`}), http.StatusOK, &again)
	if again.Identical == nil || !*again.Identical || again.ManifestSHA256 != x.ManifestSHA256 {
		t.Fatalf("regenerated %+v", again)
	}

	// A damaged folder on the server: verify says which file.
	f, err := exporter.Open(ctx, id, parquet.IntervalsFile)
	if err != nil {
		t.Fatal(err)
	}
	path := f.Name()
	f.Close()
	if err := os.WriteFile(path, []byte("PAR1PAR1"), 0o644); err != nil {
		t.Fatal(err)
	}
	ok(t, s.do(req{method: "GET", path: "/api/v1/exports/" + id + "/verify", token: toks[Regulator]}), http.StatusOK, &verified)
	if verified.OK || verified.File != parquet.IntervalsFile || verified.Error == "" {
		t.Fatalf("verify of a damaged folder %+v", verified)
	}

	for _, c := range []struct {
		method, path, body string
		status             int
		param              string
	}{
		{"POST", "/api/v1/exports", `{"operating_day":"2026-11-01","run_type":"final","version":7}`, http.StatusNotFound, ""},
		{"POST", "/api/v1/exports", `{"operating_day":"2026-11-01","run_type":"weekly","version":1}`, http.StatusBadRequest, "run_type"},
		{"POST", "/api/v1/exports", `{"operating_day":"2026-11-01","run_type":"final"}`, http.StatusBadRequest, "version"},
		{"GET", "/api/v1/exports/export-2026-11-01-final-v9", "", http.StatusNotFound, ""},
		{"GET", "/api/v1/exports/" + id + "/files/secrets.txt", "", http.StatusBadRequest, "name"},
		{"GET", "/api/v1/exports?operating_day=yesterday", "", http.StatusBadRequest, "operating_day"},
	} {
		p := problem(t, s.do(req{method: c.method, path: c.path, token: toks[Admin], body: c.body}), c.status)
		if p.Parameter != c.param {
			t.Errorf("%s %s: parameter %q, want %q (%s)", c.method, c.path, p.Parameter, c.param, p.Detail)
		}
	}

	// Each run and export call says in the audit log what it did.
	var actions []string
	for _, e := range s.auditEntries() {
		if e.Status < 400 {
			actions = append(actions, e.Action)
		}
	}
	want := []string{
		"started run " + r1.RunID + " (initial of 2026-11-01, version 1): completed",
		"wrote export export-2026-11-01-initial-v1",
		"started run " + r2.RunID + " (final of 2026-11-01, version 2): completed",
		"regenerated export export-2026-11-01-final-v2 to compare: identical true",
	}
	if !slices.Equal(actions, want) {
		t.Errorf("audit actions\n got %q\nwant %q", actions, want)
	}

	// An export whose audit row cannot be written is not registered.
	var r3 settlementpg.Run
	ok(t, s.do(req{method: "POST", path: "/api/v1/runs", token: toks[Operator], body: `{"operating_day":"2026-11-01","run_type":"true-up"}`}), http.StatusCreated, &r3)
	breakAudit(t, s)
	problem(t, s.do(req{method: "POST", path: "/api/v1/exports", token: toks[Operator],
		body: fmt.Sprintf(`{"operating_day":"2026-11-01","run_type":"true-up","version":%d}`, r3.Version)}), http.StatusInternalServerError)
	if _, err := exporter.Get(ctx, exportpg.ExportID(settlement.Day{Year: 2026, Month: 11, Day: 1}, "true-up", r3.Version)); !errors.Is(err, exportpg.ErrNotFound) {
		t.Errorf("export registered without its audit row: %v", err)
	}
}

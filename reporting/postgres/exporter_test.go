package postgres_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/reporting"
	"github.com/gridsettle/gridsettle/reporting/parquet"
	exportpg "github.com/gridsettle/gridsettle/reporting/postgres"
	"github.com/gridsettle/gridsettle/reporting/reportingtest"
	"github.com/gridsettle/gridsettle/settlement"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// insertRun stores a fixture day as a completed run made before input
// records were counted would have: the run (completeness NULL), its
// statement lines, interval rows, estimates and journal entries.
func insertRun(t *testing.T, pool *pgxpool.Pool, d reportingtest.Day) {
	t.Helper()
	insertCountedRun(t, pool, d, nil)
}

// insertCountedRun is insertRun with runs.completeness set to the JSON
// completeness (nil: NULL).
func insertCountedRun(t *testing.T, pool *pgxpool.Pool, d reportingtest.Day, completeness *string) {
	t.Helper()
	ctx := t.Context()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	day := d.Day.String()
	exec(`INSERT INTO runs (run_id, operating_day, run_type, version, status, started_at, finished_at, computed_at, lineage, currency, completeness)
		VALUES ($1, $2, $3, $4, 'completed', $5, $5, $5, $6, 'USD', $7)`, d.RunID, day, d.RunType, d.Version, d.ComputedAt,
		`{"inputs": [{"topic": "ami.interval-reads", "partition": 1, "offset_through": 977}, {"topic": "ami.interval-reads", "partition": 0, "offset_through": 1200}]}`,
		completeness)
	for _, s := range d.Statements {
		exec(`INSERT INTO statement_lines (statement_id, run_id, participant_id, settlement_point, operating_day, run_type, version,
			currency, energy_mwh, unpriced_energy_mwh, amount, previous_energy_mwh, previous_amount, delta_energy_mwh, delta_amount,
			intervals, priced_intervals, reads_actual, reads_estimated, reads_substituted, computed_at, estimated_energy_mwh)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12, $9, $13, $14, $15, 0, 0, 0, $16, $17)`,
			s.StatementID, d.RunID, s.ParticipantID, s.SettlementPoint, day, s.RunType, s.Version, s.Currency,
			s.EnergyMWh, s.UnpricedEnergyMWh, s.Amount, s.PreviousAmount, s.DeltaAmount, s.Intervals, s.PricedIntervals, d.ComputedAt,
			s.EstimatedEnergyMWh)
	}
	rows := make([][]any, len(d.Intervals))
	for n, i := range d.Intervals {
		rows[n] = []any{d.RunID, i.ParticipantID, i.SettlementPoint, i.IntervalStart, i.EnergyMWh, i.Price, i.Amount, i.ActualReads,
			i.EstimatedReads, i.GridsettleEstimatedReads, i.EstimatedEnergyMWh}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"run_intervals"}, []string{"run_id", "participant_id", "settlement_point",
		"interval_start", "energy_mwh", "price", "amount", "actual_reads", "estimated_reads", "gridsettle_estimated_reads",
		"estimated_energy_mwh"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	// Reversed: the export orders them, not the table.
	for _, e := range slices.Backward(d.Estimates) {
		exec(`INSERT INTO run_estimates (run_id, meter_id, channel, interval_start, interval_seconds, value_kwh, method,
			account_id, participant_id, settlement_point, loss_factor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			d.RunID, e.MeterID, e.Channel, e.IntervalStart, e.IntervalSeconds, e.ValueKWh, e.Method, e.AccountID,
			e.ParticipantID, e.SettlementPoint, e.LossFactor)
	}
	prev := ""
	for _, l := range d.Ledger {
		if l.LineNo == 1 {
			exec(`INSERT INTO journal_entries (entry_id, entry_key, run_id, effective_date, posted_at, currency, prev_hash, hash)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, l.EntryID, l.EntryKey, d.RunID, day, l.PostedAt, l.Currency, prev, l.EntryHash)
			prev = l.EntryHash
		}
		exec(`INSERT INTO journal_lines (entry_id, line_no, account, amount, settlement_point, operating_day) VALUES ($1, $2, $3, $4, NULL, $5)`,
			l.EntryID, l.LineNo, l.Account, l.Amount, day)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func testKey() ed25519.PrivateKey {
	s := sha256.Sum256([]byte("gridsettle test key"))
	return ed25519.NewKeyFromSeed(s[:])
}

func newExporter(t *testing.T, pool *pgxpool.Pool, root string, change func(*exportpg.Config)) *exportpg.Exporter {
	t.Helper()
	cfg := exportpg.Config{
		Root: root,
		Export: reporting.Config{
			Generator: "gridsettle test", Market: reportingtest.FallBackDay().Market, Codec: parquet.ZSTD, Key: testKey(),
		},
	}
	if change != nil {
		change(&cfg)
	}
	e, err := exportpg.NewExporter(pool, cfg, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// startWorker runs e's export worker until the test ends.
func startWorker(t *testing.T, e *exportpg.Exporter) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

// await waits, a minute at most, until the export of the run (day,
// runType, version) is registered.
func await(t *testing.T, e *exportpg.Exporter, day settlement.Day, runType string, version int) exportpg.Export {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	x, err := e.Await(ctx, exportpg.ExportID(day, runType, version))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestEndToEnd: two runs of a day stored in the runs' tables are exported
// by the worker, oldest first; each folder verifies, holds exactly the
// database's figures, and chains to the day's previous manifest; producing
// again regenerates byte-identically and overwrites nothing.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	root := t.TempDir()
	e := newExporter(t, pool, root, nil)
	initial, final := reportingtest.FallBackInitial(), reportingtest.FallBackDay().WithEstimates()
	startWorker(t, e)
	insertRun(t, pool, initial)
	insertRun(t, pool, final)
	e.RunCompleted(final.RunID) // wakes the worker, which exports both
	await(t, e, final.Day, final.RunType, int(final.Version))
	list, err := e.List(ctx, &initial.Day, 0, 10)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d exports, %v", len(list), err)
	}
	page, err := e.List(ctx, nil, list[0].Seq, 1)
	if err != nil || len(page) != 1 || page[0].ExportID != list[1].ExportID {
		t.Fatalf("second page: %+v, %v", page, err)
	}
	first, second := list[0], list[1]
	if first.ExportID != "export-2026-11-01-initial-v1" || second.ExportID != "export-2026-11-01-final-v2" {
		t.Fatalf("exports %s, %s", first.ExportID, second.ExportID)
	}
	if first.Manifest.PreviousManifestSHA256 != nil || second.Manifest.PreviousManifestSHA256 == nil ||
		*second.Manifest.PreviousManifestSHA256 != first.ManifestSHA256 {
		t.Fatalf("manifest chain: %v → %v (first %s)", first.Manifest.PreviousManifestSHA256, second.Manifest.PreviousManifestSHA256, first.ManifestSHA256)
	}
	if got := second.Manifest.Lineage.Inputs; len(got) != 2 || got[0].Partition != 0 || got[0].OffsetThrough != 1200 {
		t.Fatalf("lineage inputs %+v", got)
	}
	for _, x := range list {
		if _, err := e.Verify(ctx, x.ExportID); err != nil {
			t.Fatalf("%s: %v", x.ExportID, err)
		}
	}

	// The folder built from the database is the one built from the same rows
	// in memory: nothing is lost or reordered on the way through SQL.
	dir := filepath.Join(root, "2026-11-01", "final-v2")
	memRoot := t.TempDir()
	run := reporting.Run{RunID: final.RunID, OperatingDay: final.Day, RunType: final.RunType, Version: int(final.Version),
		ComputedAt: final.ComputedAt, Inputs: second.Manifest.Lineage.Inputs}
	if _, err := reporting.Publish(ctx, memRoot, run, second.Manifest.PreviousManifestSHA256, sliceSource{final}, reporting.Config{
		Generator: "gridsettle test", Market: final.Market, Codec: parquet.ZSTD, Key: testKey(),
	}); err != nil {
		t.Fatal(err)
	}
	if differs, err := reporting.CompareFolders(ctx, dir, filepath.Join(memRoot, "2026-11-01", "final-v2")); err != nil || differs != "" {
		t.Fatalf("export from the database differs from the rows' own export in %q (%v)", differs, err)
	}

	// Statement amounts are the database's.
	var dbTotal decimal.Decimal
	if err := pool.QueryRow(ctx, `SELECT sum(amount) FROM statement_lines WHERE run_id = $1`, final.RunID).Scan(&dbTotal); err != nil {
		t.Fatal(err)
	}
	if second.Manifest.ControlTotals.Amount != dbTotal.StringFixed(2) {
		t.Fatalf("control total amount %s, database %s", second.Manifest.ControlTotals.Amount, dbTotal)
	}
	var dbEstimated decimal.Decimal
	var estimates int64
	if err := pool.QueryRow(ctx, `SELECT (SELECT sum(estimated_energy_mwh) FROM statement_lines WHERE run_id = $1),
		(SELECT count(*) FROM run_estimates WHERE run_id = $1)`, final.RunID).Scan(&dbEstimated, &estimates); err != nil {
		t.Fatal(err)
	}
	if m := second.Manifest; m.Format != reporting.FormatV2 || m.ControlTotals.EstimatedEnergyMWh != dbEstimated.StringFixed(6) ||
		dbEstimated.IsZero() || m.Files[3].Name != parquet.EstimatesFile || m.Files[3].Rows != estimates || estimates != 5 {
		t.Fatalf("v2 manifest %+v; database: estimated energy %s, %d estimates", m, dbEstimated, estimates)
	}

	// Producing again regenerates and compares; the stored folder is untouched.
	before, err := os.ReadFile(filepath.Join(dir, reporting.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.Produce(ctx, final.Day, "final", 2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Created || p.Identical == nil || !*p.Identical || p.Export.ExportID != second.ExportID {
		t.Fatalf("produce again: %+v", p)
	}
	f, err := e.Open(ctx, second.ExportID, reporting.ManifestFile)
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(served, before) {
		t.Fatal("manifest changed or served bytes differ")
	}
	if _, err := e.Open(ctx, second.ExportID, "../../etc/passwd"); !errors.Is(err, exportpg.ErrNotFound) {
		t.Fatalf("open a file outside the folder: %v", err)
	}

	// A damaged folder: regeneration says so, verification names the file.
	if err := os.WriteFile(filepath.Join(dir, parquet.LedgerFile), []byte("PAR1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err = e.Produce(ctx, final.Day, "final", 2); err != nil || p.Identical == nil || *p.Identical || p.Differs != parquet.LedgerFile {
		t.Fatalf("produce with a damaged folder: %+v, %v", p, err)
	}
	if _, err := e.Verify(ctx, second.ExportID); !reporting.IsDiscrepancy(err) {
		t.Fatalf("verify a damaged folder: %v", err)
	}
}

// sliceSource serves a fixture day's rows from memory.
type sliceSource struct{ d reportingtest.Day }

func each[R any](rows []R, fn func(R) error) error {
	for _, r := range rows {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (s sliceSource) Statements(_ context.Context, fn func(parquet.Statement) error) error {
	return each(s.d.Statements, fn)
}

func (s sliceSource) Intervals(_ context.Context, fn func(parquet.Interval) error) error {
	return each(s.d.Intervals, fn)
}

func (s sliceSource) Ledger(_ context.Context, fn func(parquet.LedgerLine) error) error {
	return each(s.d.Ledger, fn)
}

func (s sliceSource) Estimates(_ context.Context, fn func(parquet.Estimate) error) error {
	return each(s.d.Estimates, fn)
}

// TestV1ExportStaysV1: an export written as gridsettle-export/v1 (by a
// build from before v2) is regenerated by the current build as v1, byte for
// byte, lists and serves the files of v1 only, and verifies.
func TestV1ExportStaysV1(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	root := t.TempDir()
	initial := reportingtest.FallBackInitial()
	insertRun(t, pool, initial)
	old := newExporter(t, pool, root, func(c *exportpg.Config) {
		c.Export.Format, c.Export.Generator = reporting.FormatV1, "gridsettle v0.2.0"
	})
	p, err := old.Produce(ctx, initial.Day, settlement.RunType(initial.RunType), int(initial.Version))
	if err != nil || !p.Created || p.Export.Manifest.Format != reporting.FormatV1 {
		t.Fatalf("v1 export: %+v, %v", p, err)
	}
	current := newExporter(t, pool, root, nil)
	again, err := current.Produce(ctx, initial.Day, settlement.RunType(initial.RunType), int(initial.Version))
	if err != nil || again.Created || again.Identical == nil || !*again.Identical {
		t.Fatalf("v1 export regenerated by the current build: %+v, %v", again, err)
	}
	x, err := current.Get(ctx, p.Export.ExportID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range x.Files {
		names = append(names, f.Name)
	}
	if want := []string{"statements.parquet", "intervals.parquet", "ledger.parquet", "manifest.json", "manifest.json.sig", "signing-key.pub.pem"}; !slices.Equal(names, want) {
		t.Fatalf("v1 export files %v, want %v", names, want)
	}
	if _, err := current.Open(ctx, x.ExportID, parquet.EstimatesFile); !errors.Is(err, exportpg.ErrNotFound) {
		t.Fatalf("open estimates.parquet of a v1 export: %v", err)
	}
	if r, err := current.Verify(ctx, x.ExportID); err != nil || r.Manifest.Format != reporting.FormatV1 {
		t.Fatalf("verify v1 export: %+v, %v", r, err)
	}
}

// TestRunTypes: only the configured run types are exported; bad settings
// are refused.
func TestRunTypes(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	initial, final := reportingtest.FallBackInitial(), reportingtest.FallBackDay()
	insertRun(t, pool, initial)
	insertRun(t, pool, final)
	onlyFinal := newExporter(t, pool, t.TempDir(), func(c *exportpg.Config) { c.RunTypes = []settlement.RunType{settlement.Final} })
	startWorker(t, onlyFinal)
	await(t, onlyFinal, final.Day, final.RunType, int(final.Version))
	// The worker exports oldest first: had it exported the initial run, it
	// would have done so before the final one.
	if list, err := onlyFinal.List(ctx, nil, 0, 10); err != nil || len(list) != 1 {
		t.Fatalf("exports %+v, %v; want the final run's alone", list, err)
	}

	for name, bad := range map[string]func(*exportpg.Config){
		"schedule":  func(c *exportpg.Config) { c.Schedule = "every day" },
		"run types": func(c *exportpg.Config) { c.RunTypes = []settlement.RunType{"weekly"} },
		"timeout":   func(c *exportpg.Config) { c.Timeout = -time.Second },
	} {
		cfg := exportpg.Config{Root: "x", Export: reporting.Config{
			Generator: "gridsettle test", Market: final.Market, Codec: parquet.ZSTD, Key: testKey(),
		}}
		if _, err := exportpg.NewExporter(pool, cfg, nil, slog.Default()); err != nil {
			t.Fatal(err)
		}
		bad(&cfg)
		if _, err := exportpg.NewExporter(pool, cfg, nil, slog.Default()); err == nil {
			t.Errorf("bad %s accepted", name)
		}
	}
}

func TestRunStates(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	e := newExporter(t, pool, t.TempDir(), nil)
	d := reportingtest.FallBackDay()
	if _, err := e.Produce(ctx, d.Day, "final", 2); !errors.Is(err, exportpg.ErrNotFound) {
		t.Fatalf("no run: %v", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO runs (run_id, operating_day, run_type, version, status, started_at)
		VALUES ('run-2026-11-01-final-2', '2026-11-01', 'final', 2, 'running', now())`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Produce(ctx, d.Day, "final", 2); !errors.Is(err, exportpg.ErrNotCompleted) {
		t.Fatalf("running run: %v", err)
	}
	if _, err := e.Get(ctx, "export-2026-11-01-final-v2"); !errors.Is(err, exportpg.ErrNotFound) {
		t.Fatalf("get a missing export: %v", err)
	}
}

// TestCrashBeforeRegistering: a folder published but never registered (the
// process died between the rename and the commit) is completed by the
// next attempt when it is what a regeneration gives, and otherwise left
// alone with an error.
func TestCrashBeforeRegistering(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	root := t.TempDir()
	e := newExporter(t, pool, root, nil)
	d := reportingtest.FallBackDay()
	insertRun(t, pool, d)
	p, err := e.Produce(ctx, d.Day, "final", 2)
	if err != nil || !p.Created {
		t.Fatalf("%+v, %v", p, err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM exports`); err != nil {
		t.Fatal(err)
	}
	again, err := e.Produce(ctx, d.Day, "final", 2)
	if err != nil || !again.Created || again.Export.ManifestSHA256 != p.Export.ManifestSHA256 {
		t.Fatalf("adopting the unregistered folder: %+v, %v", again, err)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM exports`); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "2026-11-01", "final-v2")
	if err := os.WriteFile(filepath.Join(dir, reporting.SignatureFile), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Produce(ctx, d.Day, "final", 2); err == nil {
		t.Fatal("a damaged unregistered folder was registered")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, reporting.SignatureFile)); string(b) != "x\n" {
		t.Fatal("the unregistered folder was overwritten")
	}
}

// TestConcurrentProduce: instances asking for the same export at once
// write it once; the others regenerate and find it identical.
func TestConcurrentProduce(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	root := t.TempDir()
	d := reportingtest.FallBackDay()
	insertRun(t, pool, d)
	var wg sync.WaitGroup
	results := make([]exportpg.Produced, 3)
	errs := make([]error, 3)
	for i := range results {
		e := newExporter(t, pool, root, nil)
		wg.Go(func() { results[i], errs[i] = e.Produce(ctx, d.Day, "final", 2) })
	}
	wg.Wait()
	created := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if r.Created {
			created++
		} else if r.Identical == nil || !*r.Identical {
			t.Fatalf("instance %d: %+v", i, r)
		}
	}
	if created != 1 {
		t.Fatalf("%d instances wrote the export", created)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "2026-11-01"))
	if len(entries) != 1 {
		t.Fatalf("day folder holds %v", entries)
	}
}

// TestScheduleFires: Run exports what is pending when it starts and again
// each time the schedule fires, and stops when its context ends.
func TestScheduleFires(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	initial, final := reportingtest.FallBackInitial(), reportingtest.FallBackDay()
	insertRun(t, pool, initial)
	e := newExporter(t, pool, t.TempDir(), func(c *exportpg.Config) { c.Schedule = "@every 200ms" })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	waitExports := func(n int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d exports", n), func() bool {
			list, err := e.List(t.Context(), nil, 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			return len(list) == n
		})
	}
	waitExports(1) // pending at start
	insertRun(t, pool, final)
	e.RunCompleted(final.RunID) // with a schedule, the firing exports it
	waitExports(2)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFilesNameTheWholeFolder: an export's files name every file of its
// folder with its hash and size, so a regulator who downloads each (here
// through Open, what GET .../files/{name} serves) but the convenience key
// has the signed export, which verifies with the key obtained separately.
// Exports registered when only the Parquet files were listed are listed
// whole too.
func TestFilesNameTheWholeFolder(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	e := newExporter(t, pool, t.TempDir(), nil)
	d := reportingtest.FallBackDay()
	insertRun(t, pool, d)
	if _, err := e.Produce(ctx, d.Day, settlement.RunType(d.RunType), int(d.Version)); err != nil {
		t.Fatal(err)
	}
	id := exportpg.ExportID(d.Day, d.RunType, int(d.Version))
	layout, err := reporting.LayoutOf(reporting.Format)
	if err != nil {
		t.Fatal(err)
	}
	check := func(x exportpg.Export) string {
		t.Helper()
		var names []string
		for _, f := range x.Files {
			names = append(names, f.Name)
			if len(f.SHA256) != 64 || f.Bytes <= 0 || (f.Rows != nil) != slices.Contains(layout.DataFiles, f.Name) {
				t.Fatalf("file %+v", f)
			}
		}
		if !slices.Equal(names, layout.FolderFiles()) || x.Files[len(layout.DataFiles)].SHA256 != x.ManifestSHA256 {
			t.Fatalf("files %+v, manifest_sha256 %s", x.Files, x.ManifestSHA256)
		}
		download := t.TempDir()
		for _, f := range x.Files {
			if f.Name == reporting.PublicKeyFile {
				continue
			}
			src, err := e.Open(ctx, x.ExportID, f.Name)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(src)
			src.Close()
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != f.SHA256 || int64(len(b)) != f.Bytes {
				t.Fatalf("%s: served bytes are not the listed ones", f.Name)
			}
			if err := os.WriteFile(filepath.Join(download, f.Name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		keyFile := filepath.Join(t.TempDir(), "key.pem")
		if err := os.WriteFile(keyFile, e.PublicKeyPEM(), 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := reporting.VerifyCommand(ctx, &out, download, keyFile); err != nil {
			t.Fatalf("downloaded folder: %v\n%s", err, out.String())
		}
		return out.String()
	}
	x, err := e.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if out := check(x); !strings.Contains(out, "signed by the trusted key") {
		t.Fatalf("verify output:\n%s", out)
	}
	if _, err := pool.Exec(ctx, `UPDATE exports SET files = manifest->'files' WHERE export_id = $1`, id); err != nil {
		t.Fatal(err)
	}
	list, err := e.List(ctx, nil, 0, 10)
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	check(list[0])
}

// TestCompletenessFromTheRun: the export of a counted run carries
// runs.completeness as its manifest's completeness (inputs by topic then
// partition, reasons sorted whatever order jsonb keeps them in), verifies,
// and regenerates byte for byte from the stored counts. A run with NULL
// completeness has none; counts that do not account for the run's lineage,
// or hold a field the manifest has no place for, stop its export.
func TestCompletenessFromTheRun(t *testing.T) {
	t.Parallel()
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	root := t.TempDir()
	e := newExporter(t, pool, root, nil)
	initial, final := reportingtest.FallBackInitial(), reportingtest.FallBackDay().WithEstimates()
	counts := `{"inputs": [
		{"topic": "ami.interval-reads", "partition": 1, "offset_through": 977, "records": 970, "applied": 968,
		 "quarantined": {"unknown_meter": 1, "malformed_json": 1}, "reads_applied": 15000, "reads_stale": 3, "reads_duplicate": 40},
		{"topic": "ami.interval-reads", "partition": 0, "offset_through": 1200, "records": 1201, "applied": 1201,
		 "quarantined": {}, "reads_applied": 19000, "reads_stale": 0, "reads_duplicate": 0},
		{"topic": "market.prices", "partition": 0, "offset_through": -1, "records": 0, "applied": 0, "quarantined": {}}]}`
	insertCountedRun(t, pool, final, &counts)
	p, err := e.Produce(ctx, final.Day, settlement.RunType(final.RunType), int(final.Version))
	if err != nil || !p.Created {
		t.Fatalf("%+v, %v", p, err)
	}
	n := func(v int64) *int64 { return &v }
	want := &reporting.Completeness{Inputs: []settlement.CompletenessInput{
		{Topic: "ami.interval-reads", Partition: 0, OffsetThrough: 1200, Records: 1201, Applied: 1201, Quarantined: map[string]int64{},
			ReadsApplied: n(19000), ReadsStale: n(0), ReadsDuplicate: n(0)},
		{Topic: "ami.interval-reads", Partition: 1, OffsetThrough: 977, Records: 970, Applied: 968,
			Quarantined:  map[string]int64{"malformed_json": 1, "unknown_meter": 1},
			ReadsApplied: n(15000), ReadsStale: n(3), ReadsDuplicate: n(40)},
		// Nothing read: not in the lineage, in completeness with zeros.
		{Topic: "market.prices", Partition: 0, OffsetThrough: -1, Quarantined: map[string]int64{}},
	}}
	if got := p.Export.Manifest.Completeness; !reflect.DeepEqual(got, want) {
		t.Fatalf("registered completeness %+v, want %+v", got, want)
	}
	dir := filepath.Join(root, "2026-11-01", "final-v2")
	b, err := os.ReadFile(filepath.Join(dir, reporting.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(compact.String(), `"records":970,"applied":968,"quarantined":{"malformed_json":1,"unknown_meter":1},"reads_applied":15000`) {
		t.Fatalf("manifest:\n%s", b)
	}
	r, err := e.Verify(ctx, p.Export.ExportID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(r.Checks, "\n"), "completeness: every record of the 3 input partitions") {
		t.Fatalf("report %v", r.Checks)
	}
	again, err := e.Produce(ctx, final.Day, settlement.RunType(final.RunType), int(final.Version))
	if err != nil || again.Identical == nil || !*again.Identical {
		t.Fatalf("regenerated after changing nothing: %+v, %v", again, err)
	}

	// The initial run: counts that do not match its lineage, or that hold a
	// field the manifest cannot carry, are refused; NULL means none.
	insertRun(t, pool, initial)
	for _, tc := range []struct{ completeness, want string }{
		{strings.Replace(counts, "977", "976", 1), "counts input ami.interval-reads/1 through offset 976, lineage.inputs says 977"},
		{strings.Replace(counts, `"records": 970`, `"records": 970, "skipped": 0`, 1), `unknown field "skipped"`},
	} {
		if _, err := pool.Exec(ctx, `UPDATE runs SET completeness = $2 WHERE run_id = $1`, initial.RunID, tc.completeness); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Produce(ctx, initial.Day, settlement.RunType(initial.RunType), int(initial.Version)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("export with completeness %s: %v, want %q", tc.completeness, err, tc.want)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE runs SET completeness = NULL WHERE run_id = $1`, initial.RunID); err != nil {
		t.Fatal(err)
	}
	p, err = e.Produce(ctx, initial.Day, settlement.RunType(initial.RunType), int(initial.Version))
	if err != nil || !p.Created || p.Export.Manifest.Completeness != nil {
		t.Fatalf("export of an uncounted run: %+v, %v", p, err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "2026-11-01", "initial-v1", reporting.ManifestFile)); bytes.Contains(b, []byte("completeness")) {
		t.Fatalf("manifest of an uncounted run:\n%s", b)
	}
	if _, err := e.Verify(ctx, p.Export.ExportID); err != nil {
		t.Fatal(err)
	}
}

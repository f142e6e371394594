package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"

	"github.com/gridsettle/gridsettle/reporting"
	"github.com/gridsettle/gridsettle/settlement"
)

// Config is the exports' configuration.
type Config struct {
	// Root is the export root (--export-dir), shared by every instance.
	Root string
	// RunTypes are the run types exported automatically once they
	// complete; nil means every run type, empty means none.
	RunTypes []settlement.RunType
	// Schedule, when set, is a cron expression (see ParseSchedule) that
	// fires in the market's time zone (Export.Market.Location) unless it
	// names its own: completed runs are then exported in batches when it
	// fires, instead of as each completes. Run drives it.
	Schedule string
	// Timeout bounds each export attempt (writing, or regenerating to
	// compare, one run's folder); 0 means DefaultTimeout.
	Timeout time.Duration
	// Export is how folders are written and signed.
	Export reporting.Config
}

// Validate names the first bad setting.
func (c Config) Validate() error {
	if c.Root == "" {
		return errors.New("export root is empty")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("export timeout %s is negative", c.Timeout)
	}
	for _, t := range c.RunTypes {
		if _, err := settlement.ParseRunType(string(t)); err != nil {
			return fmt.Errorf("export run types: %w", err)
		}
	}
	if err := c.Export.Validate(); err != nil {
		return err
	}
	if c.Schedule != "" {
		if _, err := ParseSchedule(c.Schedule, c.Export.Market.Location); err != nil {
			return fmt.Errorf("export schedule %q: %w", c.Schedule, err)
		}
	}
	return nil
}

// Errors the API maps to client errors.
var (
	ErrNotFound     = errors.New("not found")
	ErrNotCompleted = errors.New("run is not completed")
)

// Export is a registered export (api/README.md "An export"), with its parsed
// manifest.
type Export struct {
	ExportID       string                 `json:"export_id"`
	OperatingDay   string                 `json:"operating_day"`
	RunType        string                 `json:"run_type"`
	Version        int                    `json:"version"`
	ManifestSHA256 string                 `json:"manifest_sha256"`
	Files          []reporting.FolderFile `json:"files"` // every file of the folder
	CreatedAt      time.Time              `json:"created_at"`
	Manifest       reporting.Manifest     `json:"manifest"`
	// RunID is the exported run; Dir is its folder relative to the export
	// root; Seq orders the registry (list cursor).
	RunID string `json:"-"`
	Dir   string `json:"-"`
	Seq   int64  `json:"-"`
}

// Produced is the outcome of Produce.
type Produced struct {
	Export Export
	// Created is true when this call wrote the folder.
	Created bool
	// Identical is set when the export already existed and was
	// regenerated for comparison: true when byte-identical. false is a
	// defect (logged as an error and counted).
	Identical *bool
	// Differs names the first file that differed.
	Differs string
}

// Exporter produces, lists and serves exports.
type Exporter struct {
	pool     *pgxpool.Pool
	cfg      Config
	schedule cron.Schedule
	log      *slog.Logger
	metrics  metrics
	wake     chan struct{} // RunCompleted's coalesced wake-up of Run
	slot     chan struct{} // held by the export attempt in flight until it returns
	// inflight is the deadline of the export attempt in flight, nil when
	// there is none.
	inflight atomic.Pointer[time.Time]
}

type metrics struct {
	written, failed prometheus.Counter
	regenerated     *prometheus.CounterVec
	stuck           prometheus.GaugeFunc
}

// NewExporter validates cfg and returns an Exporter. Its metrics are
// registered on reg (gridsettle_exports_*), unless reg is nil.
func NewExporter(pool *pgxpool.Pool, cfg Config, reg *prometheus.Registry, log *slog.Logger) (*Exporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RunTypes == nil {
		cfg.RunTypes = settlement.RunTypes
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	e := &Exporter{pool: pool, cfg: cfg, log: log, wake: make(chan struct{}, 1), slot: make(chan struct{}, 1)}
	if cfg.Schedule != "" {
		e.schedule, _ = ParseSchedule(cfg.Schedule, cfg.Export.Market.Location) // validated above
	}
	e.metrics = metrics{
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gridsettle_exports_written_total", Help: "Export folders written and registered.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gridsettle_exports_failed_total", Help: "Exports that could not be produced.",
		}),
		regenerated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_exports_regenerated_total",
			Help: "Existing exports regenerated for comparison, by whether the bytes were identical (false is a defect).",
		}, []string{"identical"}),
		stuck: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gridsettle_exports_stuck",
			Help: "1 while an export attempt has outlived its timeout without returning: the export folder does not answer.",
		}, func() float64 {
			if d := e.inflight.Load(); d != nil && time.Now().After(d.Add(stopGrace)) {
				return 1
			}
			return 0
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{e.metrics.written, e.metrics.failed, e.metrics.regenerated, e.metrics.stuck} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register export metrics: %w", err)
			}
		}
	}
	return e, nil
}

// PublicKeyPEM is the signing key's public half (GET /api/v1/exports/public-key).
func (e *Exporter) PublicKeyPEM() []byte { return reporting.PublicKeyPEM(e.cfg.Export.PublicKey()) }

// Produce writes the export of the completed run (day, runType, version) if
// it has none, or else regenerates it into a scratch folder and compares it
// byte for byte with the stored one, never overwriting it. It is one export
// attempt (see produce): bounded by the export timeout, and it waits for an
// attempt in flight (the worker's) to return first.
func (e *Exporter) Produce(ctx context.Context, day settlement.Day, runType settlement.RunType, version int) (Produced, error) {
	return e.ProduceWithHook(ctx, day, runType, version, nil)
}

// ExportHook runs in the transaction that registers an export (or, when
// it existed, that read it to compare), just before it commits, with what
// the call produced: a caller that must commit something with the export
// (the API's audit row) writes it in tx. When the hook fails, the export
// is not registered.
type ExportHook func(ctx context.Context, tx pgx.Tx, p Produced) error

// ProduceWithHook is Produce with hook run in the registering transaction.
func (e *Exporter) ProduceWithHook(ctx context.Context, day settlement.Day, runType settlement.RunType, version int, hook ExportHook) (Produced, error) {
	var runID string
	err := e.pool.QueryRow(ctx, `SELECT run_id FROM runs WHERE operating_day = $1 AND run_type = $2 AND version = $3`,
		dayTime(day), string(runType), version).Scan(&runID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Produced{}, fmt.Errorf("run %s %s v%d: %w", day, runType, version, ErrNotFound)
	} else if err != nil {
		return Produced{}, fmt.Errorf("find run %s %s v%d: %w", day, runType, version, err)
	}
	run, err := loadRun(ctx, e.pool, runID)
	if err != nil {
		return Produced{}, err
	}
	return e.produce(ctx, run, true, hook)
}

// runRow is a completed run as exports need it.
type runRow struct {
	reporting.Run
	status string
}

func dayTime(d settlement.Day) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)
}

func loadRun(ctx context.Context, q querier, runID string) (runRow, error) {
	var r runRow
	var day time.Time
	var computed *time.Time
	var lineage struct {
		Inputs []reporting.Input `json:"inputs"`
	}
	var raw, completeness []byte
	err := q.QueryRow(ctx, `SELECT run_id, operating_day, run_type, version, status, computed_at, lineage, completeness FROM runs WHERE run_id = $1`,
		runID).Scan(&r.RunID, &day, &r.RunType, &r.Version, &r.status, &computed, &raw, &completeness)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("run %s: %w", runID, ErrNotFound)
	} else if err != nil {
		return r, fmt.Errorf("read run %s: %w", runID, err)
	}
	if r.status != "completed" || computed == nil {
		return r, fmt.Errorf("run %s is %s: %w", runID, r.status, ErrNotCompleted)
	}
	if err := json.Unmarshal(raw, &lineage); err != nil {
		return r, fmt.Errorf("run %s lineage: %w", runID, err)
	}
	if r.Completeness, err = decodeCompleteness(completeness); err != nil {
		return r, fmt.Errorf("run %s completeness: %w", runID, err)
	}
	r.OperatingDay, r.ComputedAt, r.Inputs = dayOf(day), computed.UTC(), lineage.Inputs
	return r, nil
}

// decodeCompleteness decodes runs.completeness, nil when it is NULL (a run
// made before its input was counted; a JSON null says the same). It is
// strict: a field the manifest has no place for would be dropped from a
// signed account, so it stops the export instead.
func decodeCompleteness(raw []byte) (*reporting.Completeness, error) {
	if raw == nil {
		return nil, nil
	}
	var c *reporting.Completeness
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return c, nil
}

// exportLock is the advisory lock class (two-key form) of the exports of
// one operating day; the second key is the day's number.
const exportLock = 4004

// produceOn writes or regenerates the export of run on conn, under the
// day's lock.
func (e *Exporter) produceOn(ctx context.Context, conn *pgx.Conn, run runRow, regenerate bool, hook ExportHook) (p Produced, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return p, fmt.Errorf("export %s: %w", run.RunID, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit this is a no-op
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, exportLock, int32(dayTime(run.OperatingDay).Unix()/86400)); err != nil {
		return p, fmt.Errorf("lock exports of %s: %w", run.OperatingDay, err)
	}
	src := runSource{q: tx, runID: run.RunID}
	existing, err := e.get(ctx, tx, `operating_day = $1 AND run_type = $2 AND version = $3`,
		dayTime(run.OperatingDay), run.RunType, run.Version)
	switch {
	case err == nil && !regenerate:
		return Produced{Export: existing}, nil
	case err == nil:
		previous, err := previousManifest(ctx, tx, run.OperatingDay, existing.Seq)
		if err != nil {
			return p, err
		}
		differs, err := reporting.Regenerate(ctx, e.cfg.Root, run.Run, previous, src, e.cfg.Export)
		if err != nil {
			return p, fmt.Errorf("regenerate export %s: %w", existing.ExportID, err)
		}
		identical := differs == ""
		e.metrics.regenerated.WithLabelValues(fmt.Sprint(identical)).Inc()
		if !identical {
			e.log.Error("regenerated export differs from the stored one", "export_id", existing.ExportID, "file", differs)
		}
		p = Produced{Export: existing, Identical: &identical, Differs: differs}
		if hook != nil {
			if err := hook(ctx, tx, p); err != nil {
				return Produced{}, err
			}
			if err := tx.Commit(ctx); err != nil {
				return Produced{}, fmt.Errorf("compare export %s: %w", existing.ExportID, err)
			}
		}
		return p, nil
	case !errors.Is(err, ErrNotFound):
		return p, err
	}
	previous, err := previousManifest(ctx, tx, run.OperatingDay, 1<<62)
	if err != nil {
		return p, err
	}
	written, err := reporting.Publish(ctx, e.cfg.Root, run.Run, previous, src, e.cfg.Export)
	if errors.Is(err, reporting.ErrExists) {
		written, err = e.adopt(ctx, run, previous, src)
	}
	if err != nil {
		return p, fmt.Errorf("export %s: %w", run.RunID, err)
	}
	ex, err := e.register(ctx, tx, run, written)
	if err != nil {
		return p, err
	}
	if hook != nil {
		if err := hook(ctx, tx, Produced{Export: ex, Created: true}); err != nil {
			return p, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return p, fmt.Errorf("register export %s: %w", ex.ExportID, err)
	}
	e.metrics.written.Inc()
	e.log.Info("export written", "export_id", ex.ExportID, "dir", filepath.Join(e.cfg.Root, ex.Dir), "manifest_sha256", ex.ManifestSHA256)
	return Produced{Export: ex, Created: true}, nil
}

// adopt handles a folder that exists but is not registered: a crash
// between publishing it and committing its row. If a regeneration is
// identical it is complete and is registered as is; otherwise it is left
// for an operator, never overwritten.
func (e *Exporter) adopt(ctx context.Context, run runRow, previous *string, src runSource) (reporting.Written, error) {
	dir := filepath.Join(e.cfg.Root, filepath.FromSlash(reporting.Dir(run.OperatingDay, run.RunType, run.Version)))
	differs, err := reporting.Regenerate(ctx, e.cfg.Root, run.Run, previous, src, e.cfg.Export)
	if err != nil {
		return reporting.Written{}, err
	}
	if differs != "" {
		return reporting.Written{}, fmt.Errorf("folder %s exists but is not registered, and %s differs from a regeneration: move the folder aside to export the run again", dir, differs)
	}
	r, err := reporting.Verify(ctx, dir, e.cfg.Export.PublicKey())
	if err != nil {
		return reporting.Written{}, fmt.Errorf("unregistered folder %s: %w", dir, err)
	}
	e.log.Warn("registering an export folder left unregistered by an interrupted export", "dir", dir)
	return reporting.Written{Manifest: r.Manifest, ManifestSHA256: r.ManifestSHA256}, nil
}

// previousManifest is the manifest hash of the day's export registered
// last before seq, or nil.
func previousManifest(ctx context.Context, q querier, day settlement.Day, before int64) (*string, error) {
	var sum string
	err := q.QueryRow(ctx, `SELECT manifest_sha256 FROM exports WHERE operating_day = $1 AND seq < $2 ORDER BY seq DESC LIMIT 1`,
		dayTime(day), before).Scan(&sum)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("find the previous export of %s: %w", day, err)
	}
	return &sum, nil
}

// ExportID is the id of the export of (day, runType, version).
func ExportID(day settlement.Day, runType string, version int) string {
	return fmt.Sprintf("export-%s-%s-v%d", day, runType, version)
}

func (e *Exporter) register(ctx context.Context, tx pgx.Tx, run runRow, w reporting.Written) (Export, error) {
	dir := reporting.Dir(run.OperatingDay, run.RunType, run.Version)
	listed, err := reporting.ListFolder(ctx, filepath.Join(e.cfg.Root, filepath.FromSlash(dir)), w.Manifest)
	if err != nil {
		return Export{}, err
	}
	files, err := json.Marshal(listed)
	if err != nil {
		return Export{}, fmt.Errorf("encode export files: %w", err)
	}
	manifest, err := json.Marshal(w.Manifest)
	if err != nil {
		return Export{}, fmt.Errorf("encode export manifest: %w", err)
	}
	id := ExportID(run.OperatingDay, run.RunType, run.Version)
	if _, err := tx.Exec(ctx, `
		INSERT INTO exports (export_id, operating_day, run_type, version, run_id, dir, manifest_sha256, previous_manifest_sha256, files, manifest)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		id, dayTime(run.OperatingDay), run.RunType, run.Version, run.RunID, dir,
		w.ManifestSHA256, w.Manifest.PreviousManifestSHA256, files, manifest); err != nil {
		return Export{}, fmt.Errorf("register export %s: %w", id, err)
	}
	return e.get(ctx, tx, `export_id = $1`, id)
}

const exportColumns = `export_id, seq, operating_day, run_type, version, run_id, dir, manifest_sha256, files, manifest, created_at`

func scanExport(row pgx.Row) (Export, error) {
	var x Export
	var day time.Time
	var files, manifest []byte
	if err := row.Scan(&x.ExportID, &x.Seq, &day, &x.RunType, &x.Version, &x.RunID, &x.Dir, &x.ManifestSHA256, &files, &manifest, &x.CreatedAt); err != nil {
		return x, err
	}
	x.OperatingDay, x.CreatedAt = dayOf(day).String(), x.CreatedAt.UTC()
	if err := json.Unmarshal(files, &x.Files); err != nil {
		return x, fmt.Errorf("decode export %s files: %w", x.ExportID, err)
	}
	if err := json.Unmarshal(manifest, &x.Manifest); err != nil {
		return x, fmt.Errorf("decode export %s manifest: %w", x.ExportID, err)
	}
	return x, nil
}

func (e *Exporter) get(ctx context.Context, q querier, where string, args ...any) (Export, error) {
	x, err := scanExport(q.QueryRow(ctx, `SELECT `+exportColumns+` FROM exports WHERE `+where, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return x, fmt.Errorf("export: %w", ErrNotFound)
	} else if err != nil {
		return x, fmt.Errorf("read export: %w", err)
	}
	return x, e.completeFiles(ctx, &x)
}

// completeFiles lists the whole folder of an export registered when the
// registry held only the manifest's Parquet files.
func (e *Exporter) completeFiles(ctx context.Context, x *Export) error {
	if len(x.Files) > len(x.Manifest.Files) {
		return nil
	}
	files, err := reporting.ListFolder(ctx, filepath.Join(e.cfg.Root, filepath.FromSlash(x.Dir)), x.Manifest)
	if err != nil {
		return fmt.Errorf("export %s: %w", x.ExportID, err)
	}
	x.Files = files
	return nil
}

// Get is one export by id.
func (e *Exporter) Get(ctx context.Context, exportID string) (Export, error) {
	return e.get(ctx, e.pool, `export_id = $1`, exportID)
}

// List is up to limit exports in registry order after the one with seq
// afterSeq (0 for the first page), of one operating day when day is set.
func (e *Exporter) List(ctx context.Context, day *settlement.Day, afterSeq int64, limit int) ([]Export, error) {
	var dayArg *time.Time
	if day != nil {
		t := dayTime(*day)
		dayArg = &t
	}
	rows, err := e.pool.Query(ctx, `SELECT `+exportColumns+` FROM exports
		WHERE ($1::date IS NULL OR operating_day = $1) AND seq > $2 ORDER BY seq LIMIT $3`, dayArg, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	defer rows.Close()
	out := []Export{}
	for rows.Next() {
		x, err := scanExport(rows)
		if err != nil {
			return nil, fmt.Errorf("list exports: %w", err)
		}
		if err := e.completeFiles(ctx, &x); err != nil {
			return nil, fmt.Errorf("list exports: %w", err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	return out, nil
}

// Open opens one file of an export's folder (a name of the folder files of
// its format) for serving byte for byte.
func (e *Exporter) Open(ctx context.Context, exportID, name string) (*os.File, error) {
	if !slices.Contains(reporting.FolderFiles, name) {
		return nil, fmt.Errorf("export file %q: %w", name, ErrNotFound)
	}
	x, err := e.Get(ctx, exportID)
	if err != nil {
		return nil, err
	}
	layout, err := reporting.LayoutOf(x.Manifest.Format)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", exportID, err)
	}
	if !slices.Contains(layout.FolderFiles(), name) {
		return nil, fmt.Errorf("export file %q of a %s export: %w", name, layout.Format, ErrNotFound)
	}
	f, err := os.Open(filepath.Join(e.cfg.Root, filepath.FromSlash(x.Dir), name))
	if err != nil {
		return nil, fmt.Errorf("open export file %s of %s: %w", name, exportID, err)
	}
	return f, nil
}

// Verify verifies an export's folder with the signing key's public half
// (see reporting.Verify). A failed verification is a *reporting.Discrepancy.
func (e *Exporter) Verify(ctx context.Context, exportID string) (reporting.Report, error) {
	x, err := e.Get(ctx, exportID)
	if err != nil {
		return reporting.Report{}, err
	}
	return reporting.Verify(ctx, filepath.Join(e.cfg.Root, filepath.FromSlash(x.Dir)), e.cfg.Export.PublicKey())
}

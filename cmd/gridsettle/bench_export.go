package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gridsettle/gridsettle/reporting"
	"github.com/gridsettle/gridsettle/reporting/parquet"
	exportpg "github.com/gridsettle/gridsettle/reporting/postgres"
)

// export measures the export of the run the runs bench completed (settling
// it first when runs did not run). It prints two figures over the run's
// intervals.parquet rows, both against the same limit, a COPY of those rows
// out of Postgres in the same order:
//   - the figure, compared with its target: writing
//     intervals.parquet, from the first row read from Postgres to the
//     file's fsync (rows checked, encoded, compressed and hashed);
//   - the whole export, as an operator waits for it: the Parquet
//     files, manifest, signature, and the read-back verification Publish
//     does before renaming the folder into place.
func (b *bench) export(ctx context.Context) error {
	d, err := b.completedRun(ctx)
	if err != nil {
		return err
	}
	key, err := reporting.LoadOrCreateSigningKey(ctx, filepath.Join(b.tmp, "keys", "export-signing.pem"), b.quiet)
	if err != nil {
		return err
	}
	rows, err := exportpg.CountRunIntervals(ctx, b.pool, d.run.RunID)
	if err != nil {
		return err
	}
	var intervals, whole, limits []float64
	for rep := range b.opts.repeat {
		// Each repetition writes a new export: an empty root and registry.
		if err := exportpg.ForgetExports(ctx, b.pool); err != nil {
			return err
		}
		ex, err := exportpg.NewExporter(b.pool, exportpg.Config{
			Root: filepath.Join(b.tmp, "exports-"+strconv.Itoa(rep)),
			Export: reporting.Config{
				Generator: readBuild().generator(), Market: b.cfg.Market, Codec: parquet.ZSTD, Key: key,
			},
		}, nil, b.quiet)
		if err != nil {
			return err
		}
		var file, verified time.Duration
		traced := reporting.WithTrace(ctx, &reporting.Trace{
			FileWritten: func(f reporting.File, took time.Duration) {
				if f.Name == parquet.IntervalsFile {
					file = took
				}
			},
			Verified: func(took time.Duration) { verified = took },
		})
		t0 := time.Now()
		p, err := ex.Produce(traced, d.day, d.run.RunType, d.run.Version)
		took := time.Since(t0)
		if err != nil {
			return err
		}
		if !p.Created || file == 0 {
			return fmt.Errorf("export %s was not written", p.Export.ExportID)
		}
		l, err := b.copyOut(ctx, func(pg *pgconn.PgConn) error { return exportpg.CopyRunIntervals(ctx, pg, io.Discard, d.run.RunID) })
		if err != nil {
			return err
		}
		intervals = append(intervals, float64(rows)/file.Seconds())
		whole = append(whole, float64(rows)/took.Seconds())
		limits = append(limits, float64(rows)/l.Seconds())
		if rep == 0 {
			fmt.Fprintf(b.out, "export check: %s written and verified in %s (intervals.parquet %s, read-back verification %s; %s intervals rows)\n",
				p.Export.ExportID, took.Round(time.Millisecond), file.Round(time.Millisecond), verified.Round(time.Millisecond), human(float64(rows)))
		}
	}
	const limitWhat = "COPY of the run's intervals rows out of Postgres, same order"
	b.print(benchFigure{name: "export: intervals.parquet", unit: "rows/s", values: intervals, limits: limits,
		limitWhat: limitWhat, target: "≥ 300,000 rows/s", pass: atLeast(300_000),
		note: "the target's figure: rows read from Postgres, checked, encoded, compressed, hashed, fsynced"})
	b.print(benchFigure{name: "export: whole folder", unit: "rows/s", values: whole, limits: limits,
		limitWhat: limitWhat,
		note:      "not the target's figure: 3 Parquet files, manifest, signature and read-back verification, per intervals row"})
	return nil
}

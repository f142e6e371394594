package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/gridsettle/gridsettle/api"
	"github.com/gridsettle/gridsettle/meters"
	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/reporting"
	exportpg "github.com/gridsettle/gridsettle/reporting/postgres"
	"github.com/gridsettle/gridsettle/settlement"
	alertspg "github.com/gridsettle/gridsettle/settlement/alerts/postgres"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
	"github.com/gridsettle/gridsettle/settlement/publish"
	"github.com/gridsettle/gridsettle/settlement/simulate"
)

// demoDay is the operating day the demo settles: the fall-back day of
// America/Chicago in 2026, a 25-hour day of 100 settlement intervals.
var demoDay = settlement.Day{Year: 2026, Month: time.November, Day: 1}

// demoComponents run under the demo's driver. The scheduler stays off: the
// driver starts its own runs, and a scheduler would settle the day too.
var demoComponents = []string{"ingest", "publish", "api"}

// demoWait bounds each wait of the demo for the platform (ingest lag 0, an
// empty outbox): far more than a healthy platform needs for the sample day.
const demoWait = 2 * time.Minute

// demoTransactionalID is the producer of the demo's input stream.
const demoTransactionalID = "gridsettle-demo"

// demoOptions are the demo's own flags.
type demoOptions struct {
	exit   bool
	meters int
	seed   int64
}

// newDemoCmd is `gridsettle demo` (api/README.md): dev plus a driver that loads
// a sample registry, streams one operating day through Kafka, settles it
// twice, exports and verifies, and prints what happened.
func newDemoCmd(m *Main) *cobra.Command {
	var opts demoOptions
	c := m.command(&cobra.Command{
		Use:   "demo",
		Short: "Settle a sample operating day end to end on the embedded platform and print what happened",
		Long: "demo starts what dev starts (broker child, PostgreSQL, ingest, publish and the API; not the\n" +
			"scheduler), loads a sample registry, streams the 25-hour DST day 2026-11-01 of America/Chicago\n" +
			"through Kafka (5-minute prices with a spike and negative prices, late and corrected reads, bad\n" +
			"records), runs initial, streams the corrections, runs final, verifies the signed exports and\n" +
			"prints a summary (with the explanation of the largest restatement), an API token and commands to try. It keeps serving until interrupted\n" +
			"(--exit stops after the summary). On a data dir that already holds the day, the same stream is\n" +
			"sent again: identical records are ignored, so the new runs (versions 3, 4, ...) have zero deltas.",
	}, platformGroups|groupEmbedded, func(ctx context.Context, cfg Config, log *slog.Logger) error {
		cfg.Components = demoComponents
		return m.runDemo(ctx, cfg, log, opts)
	})
	fs := c.Flags()
	// The driver starts the runs, so the components and run lags are fixed.
	_ = fs.MarkHidden("components")
	_ = fs.MarkHidden("run-lags")
	fs.BoolVar(&opts.exit, "exit", false, "stop after the summary instead of serving (env GRIDSETTLE_DEMO_EXIT)")
	fs.IntVar(&opts.meters, "meters", 300, "`number` of meters of the sample registry; keep it for every run on one data dir (env GRIDSETTLE_DEMO_METERS)")
	fs.Int64Var(&opts.seed, "seed", 1, "`seed` of the sample data: the same seed gives the same stream; keep it for every run on one data dir (env GRIDSETTLE_DEMO_SEED)")
	// The demo speaks for itself on stdout; the log is for when it fails.
	level := fs.Lookup("log-level")
	level.DefValue = "warn"
	_ = level.Value.Set("warn") // a default, not a change: the environment still wins
	run := c.RunE
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := applyEnv(cmd, m.LookupEnv, "exit", "meters", "seed"); err != nil {
			return err
		}
		if opts.meters < simulate.MinMeters {
			return flagError("meters", "", fmt.Errorf("%d is below %d", opts.meters, simulate.MinMeters))
		}
		return run(cmd, args)
	}
	return c
}

// runDemo runs the platform of dev with the demo's driver as its last
// component (so it stops first). With --exit the driver ends the platform
// after the summary, and the last line is printed once everything stopped.
func (m *Main) runDemo(ctx context.Context, cfg Config, log *slog.Logger, opts demoOptions) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	d := &demo{out: m.Stdout, log: log, opts: opts, began: time.Now(), stop: stop}
	if cfg.AdminToken == "" {
		// Not stored: valid while this demo runs, like a --admin-token.
		cfg.AdminToken = "gs_" + rand.Text()
		d.adminGenerated = true
	}
	d.startup(cfg)
	if err := m.runPlatform(ctx, cfg, log, true, d.component); err != nil {
		return err
	}
	if !d.finished {
		return nil // interrupted before the summary
	}
	if opts.exit {
		fmt.Fprintf(d.out, "demo ok: %s; everything stopped (--exit)\n", d.outcome)
	}
	return nil
}

// demo is the driver: one pass through the story, then serving.
type demo struct {
	out   io.Writer
	log   *slog.Logger
	opts  demoOptions
	began time.Time
	stop  context.CancelFunc // ends the platform (--exit)

	p              *Platform
	svc            demoServices
	adminGenerated bool

	finished bool   // the summary was printed
	outcome  string // the demo ok line's story
}

// demoServices are the parts of the platform the driver calls directly.
type demoServices struct {
	runs         *settlementpg.Runs
	exporter     *exportpg.Exporter // its worker runs beside the api component
	exportRoot   string
	publicKey    ed25519.PublicKey
	publicKeyPEM []byte
}

// component is the driver as the platform's last component.
func (d *demo) component(p *Platform) (Component, error) {
	s, err := p.shared()
	if err != nil {
		return Component{}, err
	}
	pub, err := reporting.ParsePublicKeyPEM(s.exporter.PublicKeyPEM())
	if err != nil {
		return Component{}, err
	}
	d.p = p
	d.svc = demoServices{runs: s.runs, exporter: s.exporter, exportRoot: p.Config.ExportDir, publicKey: pub, publicKeyPEM: s.exporter.PublicKeyPEM()}
	return Component{Name: "demo", Run: d.run}, nil
}

func (d *demo) run(ctx context.Context) error {
	if err := d.drive(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted: not a failure
		}
		return fmt.Errorf("demo: %w", err)
	}
	d.finished = true
	if d.opts.exit {
		d.stop()
	} else {
		fmt.Fprintf(d.out, "demo ok: %s; serving until Ctrl-C\n", d.outcome)
	}
	<-ctx.Done()
	return nil
}

// say prints one progress line with the time since the demo started.
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.1fs] %s\n", time.Since(d.began).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) startup(cfg Config) {
	db := "PostgreSQL at --database-url"
	if cfg.DatabaseURL == "" {
		db = "a private PostgreSQL cluster in " + filepath.Join(cfg.DataDir, "postgres")
	}
	fmt.Fprintf(d.out, "gridsettle demo: one operating day, end to end (data dir %s)\n", cfg.DataDir)
	d.say("starting the Kafka-protocol broker on %s (a child process), %s, ingest, publish and the API",
		cfg.KafkaAddr, db)
}

// story is what the driver did, for the summary.
type story struct {
	reused        []settlementpg.Run // runs of the day found before this demo
	scenario      *simulate.Scenario
	initial       settlementpg.Run
	final         settlementpg.Run
	quarantinedID int64 // the largest quarantine id before the stream
	alertsBefore  int
	exports       []verifiedExport
	publicKeyFile string // the export signing key's public half, for export verify
	token         api.NewToken
}

type verifiedExport struct {
	name   string // relative to the export root
	dir    string
	report reporting.Report
}

func (d *demo) drive(ctx context.Context) error {
	p := d.p
	d.say("platform ready: API on http://%s, Kafka on %s", p.Config.HTTPAddr, p.Config.KafkaAddr)
	var s story
	var err error
	day := demoDay
	if s.reused, err = d.svc.runs.List(ctx, &day, nil, 1000); err != nil {
		return err
	}
	if n := len(s.reused); n > 0 {
		versions := fmt.Sprintf("versions 1-%d", s.reused[n-1].Version)
		if s.reused[n-1].Version == 1 {
			versions = "version 1"
		}
		d.say("this data dir already settled %s (%s): sending the same stream again; identical records are ignored (exactly once), so the new runs restate the day",
			day, versions)
	}
	if s.quarantinedID, err = lastQuarantineID(ctx, p); err != nil {
		return err
	}
	before, err := d.alerts(ctx)
	if err != nil {
		return err
	}
	s.alertsBefore = len(before)

	if s.scenario, err = d.loadRegistry(ctx); err != nil {
		return err
	}
	if err := d.stream(ctx, "streaming", s.scenario.Records, describeStream(s.scenario, p.Config.Market)); err != nil {
		return err
	}
	if s.initial, err = d.settle(ctx, settlement.Initial); err != nil {
		return err
	}
	if err := d.stream(ctx, "streaming corrections:", s.scenario.Late,
		fmt.Sprintf("%d late reads (the outage's actuals among them), upward read corrections and price corrections", len(s.scenario.Late))); err != nil {
		return err
	}
	if s.final, err = d.settle(ctx, settlement.Final); err != nil {
		return err
	}
	if err := d.waitPublished(ctx); err != nil {
		return err
	}
	for _, r := range []settlementpg.Run{s.initial, s.final} {
		v, err := d.verify(ctx, r)
		if err != nil {
			return err
		}
		s.exports = append(s.exports, v)
	}
	d.say("exports verified: %s (signature, file hashes and sizes, row counts, control totals)",
		strings.Join(exportNames(s.exports), ", "))
	// What an operator hands a regulator, so that the verify command
	// printed below authenticates the signer.
	s.publicKeyFile = filepath.Join(p.Config.DataDir, "demo", "export-signing.pub.pem")
	if err := os.WriteFile(s.publicKeyFile, d.svc.publicKeyPEM, 0o644); err != nil {
		return fmt.Errorf("write the export public key: %w", err)
	}
	if s.token, err = api.CreateToken(ctx, p.DB, api.Analyst, "demo analyst "+time.Now().UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	if err := d.summary(ctx, &s); err != nil {
		return err
	}
	d.outcome = fmt.Sprintf("%s settled (%s v%d, %s v%d), %d exports verified, in %s",
		day, s.initial.RunType, s.initial.Version, s.final.RunType, s.final.Version, len(s.exports),
		time.Since(d.began).Round(100*time.Millisecond))
	return nil
}

// loadRegistry generates the sample day and loads its registry through
// the registry CSV files, kept under <data-dir>/demo/registry to look at.
func (d *demo) loadRegistry(ctx context.Context) (*simulate.Scenario, error) {
	p := d.p
	sc, err := simulate.Generate(simulate.Config{
		Seed: d.opts.seed, Meters: d.opts.meters, Days: 1, StartDay: demoDay,
		Market: p.Config.Market, Topics: p.Topics,
	})
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(p.Config.DataDir, "demo", "registry")
	if err := simulate.WriteRegistry(dir, sc); err != nil {
		return nil, err
	}
	var files []string
	for _, name := range []string{simulate.ParticipantsFile, simulate.SettlementPointsFile, simulate.AccountsFile, simulate.MetersFile} {
		files = append(files, filepath.Join(dir, name))
	}
	s, err := p.shared()
	if err != nil {
		return nil, err
	}
	if _, err := registrystore.ImportFiles(ctx, p.DB, s.alerts.SettingsChanged, files...); err != nil {
		return nil, fmt.Errorf("load the sample registry: %w", err)
	}
	prosumers, switches := registryFeatures(sc)
	d.say("registry loaded from %s: %d participants, %d settlement points, %d accounts, %d meters (%d prosumers, %d retailer switch)",
		dir, len(sc.Participants), len(sc.SettlementPoints), len(sc.Accounts), d.opts.meters, prosumers, switches)
	return sc, nil
}

// registryFeatures counts the meters with an export channel and the meters
// whose participant changes during the day.
func registryFeatures(sc *simulate.Scenario) (prosumers, switches int) {
	exporting := map[string]bool{}
	for _, r := range sc.Records {
		if r.Topic != sc.Config.Topics.Reads || r.Reason != "" {
			continue
		}
		var v struct {
			MeterID string `json:"meter_id"`
			Channel string `json:"channel"`
		}
		if json.Unmarshal(r.Value, &v) == nil && v.Channel == string(meters.Export) {
			exporting[v.MeterID] = true
		}
	}
	participants := map[string]map[string]bool{}
	for _, a := range sc.Assignments {
		if participants[a.MeterID] == nil {
			participants[a.MeterID] = map[string]bool{}
		}
		participants[a.MeterID][a.ParticipantID] = true
	}
	for _, ps := range participants {
		if len(ps) > 1 {
			switches++
		}
	}
	return len(exporting), switches
}

func describeStream(sc *simulate.Scenario, m settlement.Market) string {
	var reads, prices, bad int
	for _, r := range sc.Records {
		switch {
		case r.Reason != "":
			bad++
		case r.Topic == sc.Config.Topics.Reads:
			reads++
		default:
			prices++
		}
	}
	start, end := m.Bounds(demoDay)
	hours := int(end.Sub(start) / time.Hour)
	shape := fmt.Sprintf("%d hours, %d settlement intervals", hours, len(m.Intervals(demoDay)))
	switch {
	case hours > 24:
		shape = fmt.Sprintf("a %d-hour day as clocks fall back: %d settlement intervals", hours, len(m.Intervals(demoDay)))
	case hours < 24:
		shape = fmt.Sprintf("a %d-hour day as clocks spring forward: %d settlement intervals", hours, len(m.Intervals(demoDay)))
	}
	history := historyBlocks(sc, m)
	return fmt.Sprintf("operating day %s (%s, %s): %d read blocks (%d of them the week before, the like days estimates draw on; a head-end outage and short gaps left for estimation), %d prices (5-minute at the hub, with a spike and negative prices), %d bad records",
		demoDay, m.Location, shape, reads, history, prices, bad)
}

// stream produces records in Kafka transactions, as an upstream system
// would, and waits until ingest has applied all of them.
func (d *demo) stream(ctx context.Context, what string, records []simulate.Record, about string) error {
	d.say("%s %s", what, about)
	began := time.Now()
	produced, err := simulate.Produce(ctx, d.p.Config.Kafka, records, simulate.ProduceOptions{TransactionalID: demoTransactionalID}, d.log)
	if err != nil {
		return err
	}
	d.say("  %d records committed to Kafka in %s; waiting for ingest", len(produced), time.Since(began).Round(time.Millisecond))
	return d.waitIngested(ctx)
}

// waitIngested waits until every input partition has lag 0: everything
// committed to the input topics has been applied (or quarantined).
func (d *demo) waitIngested(ctx context.Context) error {
	adm := kadm.NewClient(d.p.Kafka)
	began := time.Now()
	lastSaid := began
	var lag int64 = -1
	var last error
	for {
		st, err := ingest.ReadStatus(ctx, d.p.DB, adm, d.p.Topics)
		if err == nil {
			lag = 0
			for _, in := range st.Inputs {
				lag += in.Lag
			}
			if lag == 0 {
				d.say("  ingested: lag 0 on all %d input partitions (%s)", len(st.Inputs), time.Since(began).Round(time.Millisecond))
				return nil
			}
		}
		last = err
		if time.Since(began) > demoWait {
			if last != nil {
				return fmt.Errorf("ingest did not catch up within %s: %w", demoWait, last)
			}
			return fmt.Errorf("ingest did not catch up within %s (lag %d); see the log (--log-level info)", demoWait, lag)
		}
		if time.Since(lastSaid) >= 5*time.Second {
			d.say("  … ingesting, lag %d", lag)
			lastSaid = time.Now()
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// settle runs a settlement of the demo day; the export worker writes its
// export apart from the run (verify waits for it).
func (d *demo) settle(ctx context.Context, t settlement.RunType) (settlementpg.Run, error) {
	run, err := d.svc.runs.Start(ctx, demoDay, t)
	if err != nil {
		return run, err
	}
	if run.Status != settlementpg.Completed {
		return run, fmt.Errorf("run %s %s: %s", run.RunID, run.Status, run.Error)
	}
	lines, err := d.svc.runs.Statements(ctx, settlementpg.StatementQuery{Day: &demoDay, Version: run.Version, Limit: 10000})
	if err != nil {
		return run, err
	}
	changes := ""
	if len(lines) > 0 && lines[0].Run.PreviousVersion != nil {
		changed := 0
		for _, l := range lines {
			if !l.DeltaAmount.IsZero() || !l.DeltaEnergyMWh.IsZero() {
				changed++
			}
		}
		changes = fmt.Sprintf(", %d changed since v%d", changed, *lines[0].Run.PreviousVersion)
	}
	d.say("run %s v%d completed in %s: %d statement lines%s, %s; its export %s is being written",
		t, run.Version, run.FinishedAt.Sub(run.StartedAt).Round(time.Millisecond), len(lines), changes,
		totalEstimates(lines), reporting.Dir(demoDay, string(t), run.Version))
	return run, nil
}

// waitPublished waits until the outbox is empty: every statement line,
// account charge, alert and dead letter is committed to its topic.
func (d *demo) waitPublished(ctx context.Context) error {
	began := time.Now()
	var pending int64
	for {
		n, err := publish.Pending(ctx, d.p.DB)
		if err != nil {
			return err
		}
		if n == 0 {
			d.say("published: the outbox is empty; statement lines, account charges, alerts and dead letters are committed to their topics")
			return nil
		}
		if pending == 0 {
			d.say("publishing %d outbox records with Kafka transactions", n)
		}
		pending = n
		if time.Since(began) > demoWait {
			return fmt.Errorf("%d outbox records still unpublished after %s; if this data dir's database was reset while its broker log was kept, start again with a fresh --data-dir",
				pending, demoWait)
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// verify waits (demoWait at most) until the export worker has registered
// the run's export, and checks its folder offline against the platform's
// own signing key.
func (d *demo) verify(ctx context.Context, r settlementpg.Run) (verifiedExport, error) {
	dir := exportDir(d.svc.exportRoot, r)
	wait, cancel := context.WithTimeoutCause(ctx, demoWait,
		fmt.Errorf("not written to %s within %s; see the log (--log-level info)", dir, demoWait))
	defer cancel()
	if _, err := d.svc.exporter.Await(wait, exportpg.ExportID(demoDay, string(r.RunType), r.Version)); err != nil {
		return verifiedExport{}, fmt.Errorf("the export of run %s: %w", r.RunID, err)
	}
	rep, err := reporting.Verify(ctx, dir, d.svc.publicKey)
	if err != nil {
		return verifiedExport{}, fmt.Errorf("export %s does not verify: %w", dir, err)
	}
	return verifiedExport{name: reporting.Dir(demoDay, string(r.RunType), r.Version), dir: dir, report: rep}, nil
}

func exportNames(es []verifiedExport) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.name
	}
	return out
}

// alerts lists every stored alert.
func (d *demo) alerts(ctx context.Context) ([]alertsRow, error) {
	var out []alertsRow
	f := alertspg.Filter{}
	for {
		page, err := alertspg.List(ctx, d.p.DB, d.p.Config.Market.Location, f, 1000)
		if err != nil {
			return nil, err
		}
		for _, a := range page {
			out = append(out, alertsRow{Type: string(a.Type), Message: a.Message})
		}
		if len(page) < 1000 {
			return out, nil
		}
		last := page[len(page)-1]
		f.After = &alertspg.Key{EventTime: last.EventTime, AlertID: last.AlertID}
	}
}

type alertsRow struct{ Type, Message string }

// lastQuarantineID is the id of the newest quarantine item, 0 for none.
func lastQuarantineID(ctx context.Context, p *Platform) (int64, error) {
	var last int64
	for {
		page, err := readstore.QuarantineItems(ctx, p.DB, readstore.QuarantineFilter{AfterID: last}, 1000)
		if err != nil {
			return 0, err
		}
		if len(page) == 0 {
			return last, nil
		}
		last = page[len(page)-1].ID
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/ledger"
	ledgerpg "github.com/gridsettle/gridsettle/ledger/postgres"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/failpoint"
	"github.com/gridsettle/gridsettle/settlement/outbox"
)

// Run statuses.
const (
	Running   = "running"
	Completed = "completed"
	Failed    = "failed"
)

// runLock is the advisory lock class (two-key form) of the runs of one
// operating day; the second key is the day's number (days since 1970).
const runLock = 2002

// Run is a settlement run as stored and served (api/README.md "A run").
type Run struct {
	RunID        string             `json:"run_id"`
	OperatingDay string             `json:"operating_day"`
	RunType      settlement.RunType `json:"run_type"`
	Version      int                `json:"version"`
	Status       string             `json:"status"`
	Error        string             `json:"error,omitempty"`
	StartedAt    time.Time          `json:"started_at"`
	FinishedAt   *time.Time         `json:"finished_at"`
	Lineage      Lineage            `json:"lineage"`
	// Completeness is nil for a failed run and for runs made before ingest
	// counted its records.
	Completeness *Completeness `json:"completeness"`
	// ComputedAt is the run's time as written into its statement lines and
	// reused by exports; zero for a failed run.
	ComputedAt time.Time `json:"-"`
}

// Lineage is what a run's snapshot included: for every input partition
// with anything consumed, the last offset applied; the quarantine replays
// and the registry version it saw (migrations/00903_explain.sql), so that
// explain rebuilds its inputs exactly however the store moved on. Both are
// nil for runs made before runs recorded them.
type Lineage struct {
	Inputs          []LineageInput `json:"inputs"`
	ReplaysThrough  *int64         `json:"replays_through,omitempty"`
	RegistryVersion *int64         `json:"registry_version,omitempty"`
}

// LineageInput is one input partition of a run's lineage.
type LineageInput struct {
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	OffsetThrough int64  `json:"offset_through"`
}

// Completeness and CompletenessInput are settlement's one shape of the
// input counts (settlement/completeness.go), as a run stores and answers
// them.
type (
	Completeness      = settlement.Completeness
	CompletenessInput = settlement.CompletenessInput
)

// Config is what runs need besides the database.
type Config struct {
	Market          settlement.Market
	ReadsTopic      string         // ami.interval-reads: its partitions' completeness carries the reads counts
	StatementsTopic string         // settlement.statements
	ChargesTopic    string         // settlement.account-charges
	Outbox          *outbox.Writer // statement and charge messages go through it
	// Completed, when set, is called after a run has committed as completed,
	// before Start returns, in the caller's path (the scheduler's loop, an
	// API request): it must return at once (the exports area only wakes
	// its export worker from it). Its error is logged; the run stays
	// completed.
	Completed func(ctx context.Context, run Run) error
	// Now is the clock for started_at, computed_at and posting times;
	// nil means time.Now.
	Now func() time.Time
}

// Runs starts settlement runs and reads what they produced.
type Runs struct {
	pool *pgxpool.Pool
	cfg  Config
	log  *slog.Logger
}

// NewRuns returns Runs over pool.
func NewRuns(pool *pgxpool.Pool, cfg Config, log *slog.Logger) *Runs {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Runs{pool: pool, cfg: cfg, log: log}
}

// errScheduledDone means the scheduler's run of (day, type) is already
// recorded, by this instance or another.
var errScheduledDone = errors.New("scheduled run already recorded")

// Start runs a settlement of day of type t (any run type, resettlement
// included) and returns the run once it has committed. A run that fails is
// recorded as failed with its error and returned with a nil error; the error
// is non-nil only when nothing could be recorded (the database is away or
// ctx ended), and then no run exists.
func (r *Runs) Start(ctx context.Context, day settlement.Day, t settlement.RunType) (Run, error) {
	return r.startWith(ctx, day, t, nil, nil)
}

// RunHook runs in the transaction that records a run (completed, or
// failed), just before it commits, with the run as recorded: a caller that
// must commit something with the run (the API's audit row) writes it in tx.
// When the hook fails, nothing of that transaction is kept.
type RunHook func(ctx context.Context, tx pgx.Tx, run Run) error

// StartWithHook is Start with hook run in the run's recording transaction.
func (r *Runs) StartWithHook(ctx context.Context, day settlement.Day, t settlement.RunType, hook RunHook) (Run, error) {
	return r.startWith(ctx, day, t, nil, hook)
}

func (r *Runs) start(ctx context.Context, day settlement.Day, t settlement.RunType, sched *scheduledAttempt) (Run, error) {
	return r.startWith(ctx, day, t, sched, nil)
}

func (r *Runs) startWith(ctx context.Context, day settlement.Day, t settlement.RunType, sched *scheduledAttempt, hook RunHook) (Run, error) {
	if _, err := settlement.ParseRunType(string(t)); err != nil {
		return Run{}, err
	}
	if err := r.cfg.Market.CheckDay(day); err != nil {
		return Run{}, err
	}
	run, err := r.locked(ctx, day, t, sched, hook)
	if err != nil {
		return Run{}, err
	}
	if run.Status == Failed {
		r.log.Error("settlement run failed", "run_id", run.RunID, "err", run.Error)
		return run, nil
	}
	r.log.Info("settlement run completed", "run_id", run.RunID, "duration", run.FinishedAt.Sub(run.StartedAt))
	// After the day's lock and connection are given back.
	if r.cfg.Completed != nil {
		if err := r.cfg.Completed(ctx, run); err != nil {
			r.log.Error("after settlement run", "run_id", run.RunID, "err", err)
		}
	}
	return run, nil
}

// locked runs the settlement holding the day's lock on one connection, and
// records a failure afterwards on another: the failure may be that the
// run's own session died (terminated, its server restarted, its socket
// gone), and then nothing more can be said on it.
func (r *Runs) locked(ctx context.Context, day settlement.Day, t settlement.RunType, sched *scheduledAttempt, hook RunHook) (Run, error) {
	startedAt := r.cfg.Now().UTC().Truncate(time.Microsecond)
	run, err := r.attempt(ctx, day, t, sched, startedAt, hook)
	if err == nil || errors.Is(err, errScheduledDone) || ctx.Err() != nil {
		return run, err
	}
	failed, ferr := r.recordFailure(ctx, day, t, sched, startedAt, err, hook)
	if ferr != nil {
		return Run{}, fmt.Errorf("settlement run of %s (%s) failed (%v) and could not be recorded: %w", day, t, err, ferr)
	}
	return failed, nil
}

// attempt runs the settlement on a connection of its own that holds the
// day's lock, and gives both back before it returns.
func (r *Runs) attempt(ctx context.Context, day settlement.Day, t settlement.RunType, sched *scheduledAttempt, startedAt time.Time, hook RunHook) (Run, error) {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return Run{}, fmt.Errorf("run of %s: %w", day, err)
	}
	defer conn.Release()
	unlock, err := lockDay(ctx, conn, day)
	if err != nil {
		return Run{}, err
	}
	defer unlock()
	return r.execute(ctx, conn.Conn(), day, t, sched, startedAt, hook)
}

func dayTime(d settlement.Day) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)
}

func dayOf(t time.Time) settlement.Day {
	return settlement.Day{Year: t.Year(), Month: t.Month(), Day: t.Day()}
}

// lockDay takes the session-level lock of day's runs on conn and returns
// its release. A session lock (not a transaction one) spans the snapshot
// and the write transaction on the one connection, so the snapshot is
// taken after the lock and a run needs a single pool connection. When the
// release cannot be confirmed the connection is closed, which releases it.
func lockDay(ctx context.Context, conn *pgxpool.Conn, day settlement.Day) (func(), error) {
	n := dayKey(day)
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, runLock, n); err != nil {
		conn.Conn().Close(context.WithoutCancel(ctx)) //nolint:errcheck // the lock may be held: drop the session
		return nil, fmt.Errorf("lock runs of %s: %w", day, err)
	}
	return func() {
		uctx := context.WithoutCancel(ctx)
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1, $2)`, runLock, n); err != nil {
			conn.Conn().Close(uctx) //nolint:errcheck // closing the session releases the lock
		}
	}, nil
}

// dayKey is the second key of day's lock: the day's number since 1970.
func dayKey(day settlement.Day) int32 {
	return int32(dayTime(day).Unix() / 86400)
}

// nextVersion is the version the next run of day takes and the latest
// completed version before it (nil for none). Call it under the day's lock.
func nextVersion(ctx context.Context, tx pgx.Tx, day settlement.Day) (int, *int, error) {
	var next int
	var prev *int
	err := tx.QueryRow(ctx, `
		SELECT coalesce(max(version), 0) + 1, max(version) FILTER (WHERE status = 'completed')
		FROM runs WHERE operating_day = $1`, dayTime(day)).Scan(&next, &prev)
	if err != nil {
		return 0, nil, fmt.Errorf("number the run of %s: %w", day, err)
	}
	return next, prev, nil
}

// execute runs the settlement on conn, which holds the day's lock: the
// snapshot in one read-only REPEATABLE READ transaction, then every write
// in one READ COMMITTED transaction (the ledger head and the outbox
// sequences must be read as committed now, not as of the snapshot).
func (r *Runs) execute(ctx context.Context, conn *pgx.Conn, day settlement.Day, t settlement.RunType, sched *scheduledAttempt, startedAt time.Time, hook RunHook) (Run, error) {
	if sched != nil {
		// Done, or attempted by another instance since this one listed it:
		// that instance's attempt counts, and its backoff holds.
		var done bool
		if err := conn.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM scheduled_runs WHERE operating_day = $1 AND run_type = $2)
			    OR coalesce((SELECT attempts FROM scheduled_attempts WHERE operating_day = $1 AND run_type = $2), 0) <> $3`,
			dayTime(day), t, sched.seen).Scan(&done); err != nil {
			return Run{}, fmt.Errorf("check scheduled run: %w", err)
		}
		if done {
			return Run{}, errScheduledDone
		}
	}
	t0 := time.Now()
	snap, err := r.snapshot(ctx, conn, day)
	if err != nil {
		return Run{}, err
	}
	t1 := time.Now()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return Run{}, fmt.Errorf("begin run: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	version, prevVersion, err := nextVersion(ctx, tx, day)
	if err != nil {
		return Run{}, err
	}
	ref := settlement.RunRef{
		RunID: settlement.RunID(day, t, version), Day: day, Type: t, Version: version,
		PreviousVersion: prevVersion, Currency: r.cfg.Market.Currency,
		ComputedAt: startedAt.Truncate(time.Second),
	}
	prev, err := loadPrevious(ctx, tx, day, prevVersion)
	if err != nil {
		return Run{}, err
	}
	res := settle(r.cfg.Market, ref, snap, prev)
	t2 := time.Now()

	run := Run{
		RunID: ref.RunID, OperatingDay: day.String(), RunType: t, Version: version, Status: Running,
		StartedAt: startedAt, Lineage: snap.lineage, Completeness: snap.completeness, ComputedAt: ref.ComputedAt,
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO runs (run_id, operating_day, run_type, version, status, started_at, computed_at, lineage, previous_version, currency,
			completeness)
		VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, $9, $10)`,
		run.RunID, dayTime(day), t, version, startedAt, ref.ComputedAt, snap.lineage, prevVersion, ref.Currency,
		snap.completeness); err != nil {
		return Run{}, fmt.Errorf("record run %s: %w", run.RunID, err)
	}
	if err := writeResult(ctx, tx, res); err != nil {
		return Run{}, fmt.Errorf("write run %s: %w", run.RunID, err)
	}
	if err := writeEstimates(ctx, tx, run.RunID, res.estimates); err != nil {
		return Run{}, fmt.Errorf("write run %s: %w", run.RunID, err)
	}
	t3 := time.Now()
	finished := r.cfg.Now().UTC().Truncate(time.Microsecond)
	if _, err := ledgerpg.Post(ctx, tx, finished, postings(res.lines)...); err != nil {
		return Run{}, fmt.Errorf("post run %s to the ledger: %w", run.RunID, err)
	}
	if sched != nil {
		if _, err := tx.Exec(ctx, `INSERT INTO scheduled_runs (operating_day, run_type, run_id) VALUES ($1, $2, $3)`,
			dayTime(day), t, run.RunID); err != nil {
			return Run{}, fmt.Errorf("mark scheduled run %s: %w", run.RunID, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM scheduled_attempts WHERE operating_day = $1 AND run_type = $2`,
			dayTime(day), t); err != nil {
			return Run{}, fmt.Errorf("clear failed attempts of %s: %w", run.RunID, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE runs SET status = 'completed', finished_at = $2 WHERE run_id = $1`, run.RunID, finished); err != nil {
		return Run{}, fmt.Errorf("complete run %s: %w", run.RunID, err)
	}
	t4 := time.Now()
	msgs, err := r.messages(res)
	if err != nil {
		return Run{}, err
	}
	if err := r.cfg.Outbox.Enqueue(ctx, tx, msgs...); err != nil {
		return Run{}, fmt.Errorf("enqueue run %s: %w", run.RunID, err)
	}
	failpoint.Hit(failpoint.RunMid)
	run.Status, run.FinishedAt = Completed, &finished
	if hook != nil {
		if err := hook(ctx, tx, run); err != nil {
			return Run{}, fmt.Errorf("run %s: %w", run.RunID, err)
		}
	}
	t5 := time.Now()
	if err := tx.Commit(ctx); err != nil {
		return Run{}, fmt.Errorf("commit run %s: %w", run.RunID, err)
	}
	r.log.Debug("settlement run phases", "run_id", run.RunID, "lines", len(res.lines), "charges", len(res.charges),
		"snapshot", t1.Sub(t0), "settle", t2.Sub(t1), "write", t3.Sub(t2), "post", t4.Sub(t3),
		"outbox", t5.Sub(t4), "commit", time.Since(t5))
	return run, nil
}

// recordFailure writes a failed run of day with the error that stopped it,
// on a connection of the pool (not the run's, which may be dead), under the
// day's lock taken for the transaction: the run's own session lock is given
// back by then, or went with its session. It takes a version like any run,
// so the record is never lost or reused. A scheduled attempt is counted in
// the same transaction.
func (r *Runs) recordFailure(ctx context.Context, day settlement.Day, t settlement.RunType, sched *scheduledAttempt, startedAt time.Time, cause error, hook RunHook) (Run, error) {
	var run Run
	var outcome string
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, runLock, dayKey(day)); err != nil {
			return fmt.Errorf("lock runs of %s: %w", day, err)
		}
		version, _, err := nextVersion(ctx, tx, day)
		if err != nil {
			return err
		}
		finished := r.cfg.Now().UTC().Truncate(time.Microsecond)
		run = Run{
			RunID: settlement.RunID(day, t, version), OperatingDay: day.String(), RunType: t, Version: version,
			Status: Failed, Error: cause.Error(), StartedAt: startedAt, FinishedAt: &finished,
			Lineage: Lineage{Inputs: []LineageInput{}},
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO runs (run_id, operating_day, run_type, version, status, error, started_at, finished_at, lineage, currency)
			VALUES ($1, $2, $3, $4, 'failed', $5, $6, $7, $8, $9)`,
			run.RunID, dayTime(day), t, version, run.Error, startedAt, finished, run.Lineage, r.cfg.Market.Currency); err != nil {
			return fmt.Errorf("record failed run: %w", err)
		}
		if sched != nil {
			if outcome, err = sched.record(ctx, tx, run); err != nil {
				return err
			}
		}
		if hook != nil {
			return hook(ctx, tx, run)
		}
		return nil
	})
	if err == nil && sched != nil {
		sched.outcome = outcome
	}
	return run, err
}

// postings are the ledger entries of a run: one per line whose amount
// changed, keyed by its statement id.
func postings(lines []settlement.StatementLine) []ledger.Entry {
	var out []ledger.Entry
	for _, l := range lines {
		if l.DeltaAmount.IsZero() {
			continue
		}
		day := dayTime(l.Run.Day)
		out = append(out, ledger.Entry{
			Key: l.StatementID, RunID: l.Run.RunID, EffectiveDate: day, Currency: l.Run.Currency,
			Lines: []ledger.Line{
				{Account: ReceivableAccount(l.ParticipantID), Amount: l.DeltaAmount, SettlementPoint: l.SettlementPoint, OperatingDay: day},
				{Account: ClearingAccount(l.SettlementPoint), Amount: l.DeltaAmount.Neg(), SettlementPoint: l.SettlementPoint, OperatingDay: day},
			},
		})
	}
	return out
}

// ReceivableAccount is the ledger account of what participant owes.
func ReceivableAccount(participant string) string {
	return "participant:" + participant + ":energy_receivable"
}

// ClearingAccount is the ledger account settlement point s clears through.
func ClearingAccount(point string) string {
	return "settlement_point:" + point + ":energy_clearing"
}

// messages are the run's outbox messages: every statement line, then every
// account charge.
func (r *Runs) messages(res result) ([]outbox.Message, error) {
	msgs := make([]outbox.Message, 0, len(res.lines)+len(res.charges))
	for _, l := range res.lines {
		v, err := json.Marshal(l.Message())
		if err != nil {
			return nil, fmt.Errorf("encode statement %s: %w", l.StatementID, err)
		}
		msgs = append(msgs, outbox.Message{Topic: r.cfg.StatementsTopic, Key: []byte(l.ParticipantID), Value: v,
			ID: l.StatementID, Schema: settlement.StatementSchema})
	}
	for _, c := range res.charges {
		v, err := json.Marshal(c.Message())
		if err != nil {
			return nil, fmt.Errorf("encode account charge %s: %w", c.ChargeID, err)
		}
		msgs = append(msgs, outbox.Message{Topic: r.cfg.ChargesTopic, Key: []byte(c.AccountID), Value: v,
			ID: c.ChargeID, Schema: settlement.ChargeSchema})
	}
	return msgs, nil
}

// previous holds the figures of the latest earlier completed version.
type previous struct {
	lines   map[lineKey]prevLine
	charges map[chargeKey]decimal.Decimal // energy_cost
}

type prevLine struct{ energy, amount decimal.Decimal }

type lineKey struct{ participant, point string }

type chargeKey struct{ account, participant string }

func loadPrevious(ctx context.Context, tx pgx.Tx, day settlement.Day, version *int) (previous, error) {
	p := previous{lines: map[lineKey]prevLine{}, charges: map[chargeKey]decimal.Decimal{}}
	if version == nil {
		return p, nil
	}
	rows, err := tx.Query(ctx, `SELECT participant_id, settlement_point, energy_mwh, amount
		FROM statement_lines WHERE operating_day = $1 AND version = $2`, dayTime(day), *version)
	if err != nil {
		return p, fmt.Errorf("read version %d of %s: %w", *version, day, err)
	}
	var k lineKey
	var l prevLine
	_, err = pgx.ForEachRow(rows, []any{&k.participant, &k.point, &l.energy, &l.amount}, func() error {
		p.lines[k] = l
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("read version %d of %s: %w", *version, day, err)
	}
	rows, err = tx.Query(ctx, `SELECT account_id, participant_id, energy_cost
		FROM account_charges WHERE operating_day = $1 AND version = $2`, dayTime(day), *version)
	if err != nil {
		return p, fmt.Errorf("read charges of version %d of %s: %w", *version, day, err)
	}
	var ck chargeKey
	var cost decimal.Decimal
	_, err = pgx.ForEachRow(rows, []any{&ck.account, &ck.participant, &cost}, func() error {
		p.charges[ck] = cost
		return nil
	})
	if err != nil {
		return p, fmt.Errorf("read charges of version %d of %s: %w", *version, day, err)
	}
	return p, nil
}

// result is everything a run writes.
type result struct {
	lines     []settlement.StatementLine
	intervals map[lineKey][]settlement.Interval // every interval of the day, per line
	charges   []settlement.AccountCharge
	estimates []runEstimate
}

// settle computes the full statement of the day from the snapshot and the
// previous version: every line and charge with current data or an earlier
// figure, in a stable order.
func settle(m settlement.Market, ref settlement.RunRef, s *snapshot, prev previous) result {
	res := result{intervals: map[lineKey][]settlement.Interval{}, estimates: s.estimates}
	keys := make([]lineKey, 0, len(s.lines)+len(prev.lines))
	for k := range s.lines {
		keys = append(keys, k)
	}
	for k := range prev.lines {
		if _, ok := s.lines[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b lineKey) int {
		return strings.Compare(a.participant+"\x00"+a.point, b.participant+"\x00"+b.point)
	})
	starts := m.Intervals(ref.Day)
	for _, k := range keys {
		cells := s.lines[k]
		prices := s.prices[k.point]
		ivs := make([]settlement.Interval, len(starts))
		var reads settlement.ReadCounts
		for i, t := range starts {
			ivs[i] = settlement.Interval{Start: t, MWh: decimal.Zero, EstimatedMWh: decimal.Zero}
			if prices != nil {
				ivs[i].Price = prices[i]
			}
			if cells != nil {
				c := cells.cells[i]
				ivs[i].MWh, ivs[i].ActualReads, ivs[i].EstimatedReads = c.mwh, c.actual, c.estimated
				if c.gsEstimated > 0 {
					ivs[i].EstimatedMWh, ivs[i].GridsettleEstimatedReads = c.estMWh, c.gsEstimated
				}
			}
		}
		if cells != nil {
			reads = cells.reads
		}
		p := prev.lines[k] // the zero value is zero: a line new in this version
		res.lines = append(res.lines, ref.Line(k.participant, k.point, settlement.LineFiguresOf(ivs), reads, p.energy, p.amount))
		res.intervals[k] = ivs
	}

	ckeys := make([]chargeKey, 0, len(s.charges)+len(prev.charges))
	for k := range s.charges {
		ckeys = append(ckeys, k)
	}
	for k := range prev.charges {
		if _, ok := s.charges[k]; !ok {
			ckeys = append(ckeys, k)
		}
	}
	slices.SortFunc(ckeys, func(a, b chargeKey) int {
		return strings.Compare(a.account+"\x00"+a.participant, b.account+"\x00"+b.participant)
	})
	for _, k := range ckeys {
		sums := s.charges[k] // zero sums: only in an earlier version
		fig := settlement.ChargeFiguresOf(sums.importKWh, sums.exportKWh, sums.estimatedKWh, sums.pricedAmount)
		res.charges = append(res.charges, ref.Charge(k.account, k.participant, fig, prev.charges[k]))
	}
	return res
}

// writeResult copies lines, charges and run intervals into their tables.
func writeResult(ctx context.Context, tx pgx.Tx, res result) error {
	var lineRows, ivRows [][]any
	for _, l := range res.lines {
		r := l.Run
		lineRows = append(lineRows, []any{
			l.StatementID, r.RunID, l.ParticipantID, l.SettlementPoint, dayTime(r.Day), string(r.Type), r.Version,
			r.PreviousVersion, r.Currency, l.EnergyMWh, l.UnpricedEnergyMWh, l.Amount, l.PreviousEnergyMWh,
			l.PreviousAmount, l.DeltaEnergyMWh, l.DeltaAmount, l.Intervals, l.PricedIntervals,
			l.Reads.Actual, l.Reads.Estimated, l.Reads.Substituted, r.ComputedAt, l.EstimatedEnergyMWh,
			l.Reads.GridsettleEstimated.LIN, l.Reads.GridsettleEstimated.LDY, l.Reads.GridsettleEstimated.ZER,
		})
		for _, iv := range res.intervals[lineKey{l.ParticipantID, l.SettlementPoint}] {
			ivRows = append(ivRows, []any{r.RunID, l.ParticipantID, l.SettlementPoint, iv.Start, iv.MWh,
				iv.Price, iv.Amount(), iv.ActualReads, iv.EstimatedReads, iv.EstimatedMWh, iv.GridsettleEstimatedReads})
		}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"statement_lines"}, []string{
		"statement_id", "run_id", "participant_id", "settlement_point", "operating_day", "run_type", "version",
		"previous_version", "currency", "energy_mwh", "unpriced_energy_mwh", "amount", "previous_energy_mwh",
		"previous_amount", "delta_energy_mwh", "delta_amount", "intervals", "priced_intervals",
		"reads_actual", "reads_estimated", "reads_substituted", "computed_at", "estimated_energy_mwh",
		"reads_estimated_lin", "reads_estimated_ldy", "reads_estimated_zer",
	}, pgx.CopyFromRows(lineRows)); err != nil {
		return fmt.Errorf("write %d statement lines: %w", len(lineRows), err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"run_intervals"}, []string{
		"run_id", "participant_id", "settlement_point", "interval_start", "energy_mwh", "price", "amount",
		"actual_reads", "estimated_reads", "estimated_energy_mwh", "gridsettle_estimated_reads",
	}, pgx.CopyFromRows(ivRows)); err != nil {
		return fmt.Errorf("write %d run intervals: %w", len(ivRows), err)
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"account_charges"}, []string{
		"charge_id", "run_id", "account_id", "participant_id", "operating_day", "run_type", "version",
		"import_kwh", "export_kwh", "net_kwh", "energy_cost", "previous_energy_cost", "delta_energy_cost", "currency",
		"estimated_kwh",
	}, pgx.CopyFromSlice(len(res.charges), func(i int) ([]any, error) {
		c := res.charges[i]
		r := c.Run
		return []any{c.ChargeID, r.RunID, c.AccountID, c.ParticipantID, dayTime(r.Day), string(r.Type), r.Version,
			c.ImportKWh, c.ExportKWh, c.NetKWh, c.EnergyCost, c.PreviousEnergyCost, c.DeltaEnergyCost, r.Currency,
			c.EstimatedKWh}, nil
	}))
	if err != nil {
		return fmt.Errorf("write %d account charges: %w", n, err)
	}
	return nil
}

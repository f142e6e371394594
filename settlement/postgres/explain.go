package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// Explaining a statement line (settlement/README.md "Explaining every figure")
// rebuilds, for each of the two runs, the inputs of that line exactly as the
// run saw them, from what the store keeps and what the run recorded
// (migrations/00903_explain.sql):
//   - a read or price version was in a run's snapshot when its input record
//     was: its offset is at most the run's lineage offset of its partition,
//     and, when the record was applied by a quarantine replay, the replay's
//     number is at most the run's replays_through;
//   - the run's current read of a key is the highest version among the
//     stored versions it saw (only versions that became current are stored,
//     so none it saw was ever superseded by one it did not see);
//   - the assignments it used are meter_assignment_history's rows valid at
//     its registry version;
//   - its estimates are its own run_estimates rows.
// The figures the runs stored (run_intervals) are the reference: the read
// changes of every interval must add up to its stored energy difference,
// and the rebuilt settlement prices must equal the stored ones, or the
// explanation is refused as a defect (settlement.ErrUnexplained) rather
// than answered wrong.

// ErrNotExplainable means a run of the explanation was made before runs
// recorded the replays and registry version they included
// (migrations/00903_explain.sql), so its inputs cannot be rebuilt exactly.
var ErrNotExplainable = errors.New("run made before runs recorded what explain needs")

// MaxExplainChanges bounds what Explain holds: an explanation with more
// changes is read in pages (ExplainPage), whose memory is the page's.
const MaxExplainChanges = 200_000

// ErrTooLarge means an explanation has more changes than Explain holds.
var ErrTooLarge = errors.New("explanation too large to hold at once: read it in pages")

// Explain explains statement line statementID against version against of
// its day (nil: the latest completed version before the line's own; 0:
// nothing), with every change (settlement/README.md "Explaining every figure"),
// or ErrTooLarge beyond MaxExplainChanges. ErrNotFound when the statement does
// not exist, the day has no completed run of version against, or against is not
// lower than the statement's version.
func (r *Runs) Explain(ctx context.Context, statementID string, against *int) (*settlement.Explanation, error) {
	var kept int
	e, err := r.explain(ctx, statementID, against, func(_ int, _ *settlement.Change) bool {
		kept++
		return kept <= MaxExplainChanges
	})
	if err != nil {
		return nil, err
	}
	if n := e.Summary[settlement.ChangeRead].Changes + e.Summary[settlement.ChangePrice].Changes; n > MaxExplainChanges {
		return nil, fmt.Errorf("explain %s: %d changes: %w", statementID, n, ErrTooLarge)
	}
	return e, nil
}

// ExplainPage is Explain with, of the changes after `after` in the
// contract's order (nil: from the first), only the first limit; its totals
// and summary still cover every change. remaining is the number of changes
// after `after`, this page's included. It streams the line's inputs once
// and holds at most 2 × limit changes, whatever the explanation's size.
func (r *Runs) ExplainPage(ctx context.Context, statementID string, against *int, after *settlement.ChangeKey, limit int) (
	e *settlement.Explanation, remaining int, err error) {
	if limit < 1 {
		return nil, 0, fmt.Errorf("explain %s: page of %d changes", statementID, limit)
	}
	var page []settlement.Change
	e, err = r.explain(ctx, statementID, against, func(_ int, c *settlement.Change) bool {
		if after != nil && !c.Follows(*after) {
			return false
		}
		remaining++
		page = append(page, *c)
		if len(page) >= 2*limit { // keep the first limit: amortised, never more than 2 × limit
			settlement.SortChanges(page)
			page = page[:limit]
		}
		return false
	})
	if err != nil {
		return nil, 0, err
	}
	settlement.SortChanges(page)
	e.Changes = page[:min(limit, len(page))]
	return e, remaining, nil
}

// explain builds the explanation, giving keep every change (it keeps
// those it returns true for).
func (r *Runs) explain(ctx context.Context, statementID string, against *int, keep func(int, *settlement.Change) bool) (*settlement.Explanation, error) {
	tx, err := r.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("explain %s: %w", statementID, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	x, err := r.loadExplain(ctx, tx, statementID, against)
	if err != nil {
		return nil, err
	}
	if err := x.rebuild(ctx, tx, keep); err != nil {
		return nil, fmt.Errorf("explain %s: %w", statementID, err)
	}
	return x.explainer.Finish()
}

// explainRun is one of the two runs as explain rebuilds it.
type explainRun struct {
	version  int
	runID    string
	offsets  map[topicPartition]int64 // lineage: last offset included
	replays  int64
	registry int64
	// line figures, rounded; zero when the run has no line
	energy, amount decimal.Decimal
	// intervals are the stored exact figures of the line by start (unix
	// seconds); nil when the run has no line.
	intervals   map[int64]storedInterval
	prices      []decimal.NullDecimal       // rebuilt settlement prices of the point, per interval
	assignments map[string][]histAssignment // by meter, by effective_from
	estimates   map[chanKey]map[int64]*settlement.ReadState
	estLength   map[chanKey]int64
}

type topicPartition struct {
	topic     string
	partition int32
}

type storedInterval struct {
	energy decimal.Decimal
	price  decimal.NullDecimal
}

type histAssignment struct {
	participant, point string
	lf                 decimal.Decimal
	from, to           int64 // unix seconds; to == noEnd when open
}

type chanKey struct{ meter, channel string }

// explainJob is one explanation being built.
type explainJob struct {
	m                  settlement.Market
	statementID        string
	participant, point string
	day                settlement.Day
	starts             []time.Time
	index              map[int64]int // interval start (unix seconds) → index
	before, after      *explainRun   // before nil: against 0
	againstVersion     int
	replayed           map[readstore.Origin]int64 // record → replay number, the replays that matter
	explainer          *settlement.Explainer
}

func (r *Runs) loadExplain(ctx context.Context, tx pgx.Tx, statementID string, against *int) (*explainJob, error) {
	x := &explainJob{m: r.cfg.Market, statementID: statementID}
	var (
		day          time.Time
		version      int
		previous     *int
		energy, amnt decimal.Decimal
	)
	err := tx.QueryRow(ctx, `SELECT participant_id, settlement_point, operating_day, version, previous_version, energy_mwh, amount
		FROM statement_lines WHERE statement_id = $1`, statementID).
		Scan(&x.participant, &x.point, &day, &version, &previous, &energy, &amnt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("statement %s: %w", statementID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("explain %s: %w", statementID, err)
	}
	x.day = dayOf(day)
	switch {
	case against != nil:
		x.againstVersion = *against
	case previous != nil:
		x.againstVersion = *previous
	}
	if x.againstVersion < 0 || x.againstVersion >= version {
		return nil, fmt.Errorf("statement %s against version %d: %w", statementID, x.againstVersion, ErrNotFound)
	}
	x.starts = x.m.Intervals(x.day)
	x.index = make(map[int64]int, len(x.starts))
	for i, t := range x.starts {
		x.index[t.Unix()] = i
	}
	if x.after, err = x.loadRun(ctx, tx, version); err != nil {
		return nil, err
	}
	if x.after.intervals == nil {
		return nil, fmt.Errorf("statement %s: its run %s stored no intervals: %w", statementID, x.after.runID, settlement.ErrUnexplained)
	}
	if x.againstVersion > 0 {
		if x.before, err = x.loadRun(ctx, tx, x.againstVersion); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// loadRun reads the completed run of version v of the job's day: its
// lineage and the line's stored figures.
func (x *explainJob) loadRun(ctx context.Context, tx pgx.Tx, v int) (*explainRun, error) {
	run := &explainRun{version: v, offsets: map[topicPartition]int64{}}
	var lineage Lineage
	err := tx.QueryRow(ctx, `SELECT run_id, lineage FROM runs WHERE operating_day = $1 AND version = $2 AND status = 'completed'`,
		dayTime(x.day), v).Scan(&run.runID, &lineage)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("completed run of %s version %d: %w", x.day, v, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read run of %s version %d: %w", x.day, v, err)
	}
	if lineage.ReplaysThrough == nil || lineage.RegistryVersion == nil {
		return nil, fmt.Errorf("run %s: %w", run.runID, ErrNotExplainable)
	}
	run.replays, run.registry = *lineage.ReplaysThrough, *lineage.RegistryVersion
	for _, in := range lineage.Inputs {
		run.offsets[topicPartition{in.Topic, in.Partition}] = in.OffsetThrough
	}
	err = tx.QueryRow(ctx, `SELECT energy_mwh, amount FROM statement_lines
		WHERE operating_day = $1 AND version = $2 AND participant_id = $3 AND settlement_point = $4`,
		dayTime(x.day), v, x.participant, x.point).Scan(&run.energy, &run.amount)
	if errors.Is(err, pgx.ErrNoRows) {
		return run, nil // no line: zero, and no intervals
	}
	if err != nil {
		return nil, fmt.Errorf("read line of run %s: %w", run.runID, err)
	}
	rows, err := tx.Query(ctx, `SELECT interval_start, energy_mwh, price FROM run_intervals
		WHERE run_id = $1 AND participant_id = $2 AND settlement_point = $3`, run.runID, x.participant, x.point)
	if err != nil {
		return nil, fmt.Errorf("read intervals of run %s: %w", run.runID, err)
	}
	run.intervals = map[int64]storedInterval{}
	var (
		at time.Time
		si storedInterval
	)
	if _, err := pgx.ForEachRow(rows, []any{&at, &si.energy, &si.price}, func() error {
		run.intervals[at.Unix()] = si
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read intervals of run %s: %w", run.runID, err)
	}
	return run, nil
}

func (x *explainJob) runs() []*explainRun {
	if x.before == nil {
		return []*explainRun{x.after}
	}
	return []*explainRun{x.before, x.after}
}

// rebuild reads both runs' inputs of the line and gives every read change
// to the job's explainer, which gives keep every change.
func (x *explainJob) rebuild(ctx context.Context, tx pgx.Tx, keep func(int, *settlement.Change) bool) error {
	dayStart, dayEnd := x.starts[0], x.starts[len(x.starts)-1].Add(x.m.Interval())
	// The reads that can reach into the day start after dayStart − the
	// longest read (as the run's window, energy.go).
	lo := dayStart.Add(-maxReadSeconds * time.Second)
	// The replays first: whether a run included a price or a read depends
	// on them.
	minReplays := x.after.replays
	for _, run := range x.runs() {
		minReplays = min(minReplays, run.replays)
	}
	if err := x.loadReplays(ctx, tx, minReplays); err != nil {
		return err
	}
	prices, err := x.loadPriceVersions(ctx, tx, lo, dayEnd)
	if err != nil {
		return err
	}
	for _, run := range x.runs() {
		if err := x.loadEstimates(ctx, tx, run); err != nil {
			return err
		}
		if run.prices, err = x.settlePrices(run, prices); err != nil {
			return err
		}
	}
	meterIDs, err := x.loadAssignments(ctx, tx, lo, dayEnd)
	if err != nil {
		return err
	}
	x.explainer = x.newExplainer(keep)
	seen := map[chanKey]bool{}
	if len(meterIDs) == 0 { // a nil list would select every meter
		meterIDs = []string{}
	}
	err = readstore.StreamChannels(ctx, tx, readstore.BlockWindow{From: lo, To: dayEnd, MeterIDs: meterIDs},
		func(blocks []readstore.StoredBlock) error {
			k := chanKey{blocks[0].MeterID, string(blocks[0].Channel)}
			seen[k] = true
			return x.channel(k, blocks)
		})
	if err != nil {
		return err
	}
	// Channels with estimates and no stored read in the window.
	var rest []chanKey
	for _, run := range x.runs() {
		for k := range run.estimates {
			if !seen[k] {
				seen[k] = true
				rest = append(rest, k)
			}
		}
	}
	for _, k := range rest {
		if err := x.channel(k, nil); err != nil {
			return err
		}
	}
	return nil
}

// loadEstimates reads the run's estimates of the line.
func (x *explainJob) loadEstimates(ctx context.Context, tx pgx.Tx, run *explainRun) error {
	run.estimates, run.estLength = map[chanKey]map[int64]*settlement.ReadState{}, map[chanKey]int64{}
	rows, err := tx.Query(ctx, `SELECT meter_id, channel, interval_start, interval_seconds, value_kwh, method, loss_factor
		FROM run_estimates WHERE run_id = $1 AND participant_id = $2 AND settlement_point = $3`,
		run.runID, x.participant, x.point)
	if err != nil {
		return fmt.Errorf("read estimates of run %s: %w", run.runID, err)
	}
	var (
		k       chanKey
		at      time.Time
		seconds int64
		value   decimal.Decimal
		method  string
		lf      decimal.Decimal
	)
	_, err = pgx.ForEachRow(rows, []any{&k.meter, &k.channel, &at, &seconds, &value, &method, &lf}, func() error {
		m := run.estimates[k]
		if m == nil {
			m = map[int64]*settlement.ReadState{}
			run.estimates[k] = m
		}
		method := method
		m[at.Unix()] = &settlement.ReadState{Value: value, LossFactor: lf, Estimate: &method}
		run.estLength[k] = seconds
		return nil
	})
	if err != nil {
		return fmt.Errorf("read estimates of run %s: %w", run.runID, err)
	}
	return nil
}

// loadReplays reads the records applied by replays numbered after from:
// those some run of the job may not have included. Replays are rare
// operator actions, so the set is small.
func (x *explainJob) loadReplays(ctx context.Context, tx pgx.Tx, from int64) error {
	x.replayed = map[readstore.Origin]int64{}
	rows, err := tx.Query(ctx, `SELECT topic, partition, "offset", replay_version FROM quarantine WHERE replay_version > $1`, from)
	if err != nil {
		return fmt.Errorf("read replays: %w", err)
	}
	var (
		o readstore.Origin
		n int64
	)
	_, err = pgx.ForEachRow(rows, []any{&o.Topic, &o.Partition, &o.Offset, &n}, func() error {
		x.replayed[o] = n
		return nil
	})
	if err != nil {
		return fmt.Errorf("read replays: %w", err)
	}
	return nil
}

// includes reports whether run's snapshot included the input record o.
func (x *explainJob) includes(run *explainRun, o readstore.Origin) bool {
	through, ok := run.offsets[topicPartition{o.Topic, o.Partition}]
	if !ok || o.Offset > through {
		return false
	}
	n, replayed := x.replayed[o]
	return !replayed || n <= run.replays
}

// loadAssignments reads, for both runs' registry versions, the assignments
// of every meter that either version assigned to the line near the day,
// and returns those meters.
func (x *explainJob) loadAssignments(ctx context.Context, tx pgx.Tx, lo, hi time.Time) ([]string, error) {
	before := int64(-1) // no registry version is negative
	if x.before != nil {
		before = x.before.registry
	}
	const validAt = `((valid_from <= $1 AND (valid_to IS NULL OR valid_to > $1)) OR
		(valid_from <= $2 AND (valid_to IS NULL OR valid_to > $2)))`
	rows, err := tx.Query(ctx, `SELECT DISTINCT meter_id FROM meter_assignment_history
		WHERE participant_id = $3 AND settlement_point = $4 AND effective_from < $6
		  AND (effective_to IS NULL OR effective_to > $5) AND `+validAt+` ORDER BY meter_id`,
		before, x.after.registry, x.participant, x.point, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("read the line's meters: %w", err)
	}
	meterIDs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read the line's meters: %w", err)
	}
	for _, run := range x.runs() {
		run.assignments = map[string][]histAssignment{}
	}
	rows, err = tx.Query(ctx, `SELECT meter_id, participant_id, settlement_point, loss_factor, effective_from, effective_to,
			valid_from, valid_to
		FROM meter_assignment_history WHERE meter_id = ANY($3) AND `+validAt+` ORDER BY meter_id, effective_from`,
		before, x.after.registry, meterIDs)
	if err != nil {
		return nil, fmt.Errorf("read the line's assignments: %w", err)
	}
	var (
		meter string
		a     histAssignment
		from  time.Time
		to    *time.Time
		vFrom int64
		vTo   *int64
	)
	_, err = pgx.ForEachRow(rows, []any{&meter, &a.participant, &a.point, &a.lf, &from, &to, &vFrom, &vTo}, func() error {
		a.from, a.to = from.Unix(), noEnd
		if to != nil {
			a.to = to.Unix()
		}
		for _, run := range x.runs() {
			if vFrom <= run.registry && (vTo == nil || *vTo > run.registry) {
				run.assignments[meter] = append(run.assignments[meter], a)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the line's assignments: %w", err)
	}
	return meterIDs, nil
}

// lfAt is the loss factor of the assignment run used for a read of meter
// starting at start, when it puts the read in the job's line.
func (x *explainJob) lfAt(run *explainRun, meter string, start int64) (decimal.Decimal, bool) {
	for _, a := range run.assignments[meter] {
		if a.from <= start && start < a.to {
			return a.lf, a.participant == x.participant && a.point == x.point
		}
	}
	return decimal.Decimal{}, false
}

// side is one read key's state in one run.
type side struct {
	block *readstore.StoredBlock // nil: an estimate, or nothing
	i     int
	lf    decimal.Decimal
	est   *settlement.ReadState
}

func (s side) none() bool { return s.block == nil && s.est == nil }

// same reports whether two sides show the same thing, without building
// their states for the common case of an unchanged read.
func (s side) same(o side) bool {
	switch {
	case s.none() || o.none():
		return s.none() && o.none()
	case s.block != nil && o.block != nil:
		return s.block.Origin == o.block.Origin && s.block.Version == o.block.Version && s.lf.Equal(o.lf) &&
			s.block.Values[s.i] == o.block.Values[o.i] && s.block.QualityAt(s.i) == o.block.QualityAt(o.i)
	}
	return s.state().Equal(o.state())
}

func (s side) state() *settlement.ReadState {
	switch {
	case s.block != nil:
		b := s.block
		v, q, o := b.Version, string(b.QualityAt(s.i)), b.Origin
		return &settlement.ReadState{Value: readstore.KWh(b.Values[s.i]), Version: &v, Quality: &q, LossFactor: s.lf,
			Topic: &o.Topic, Partition: &o.Partition, Offset: &o.Offset}
	case s.est != nil:
		return s.est
	}
	return nil
}

// channel finds the changes of one meter channel: its stored blocks in the
// window (nil when it has none) and both runs' estimates of it.
func (x *explainJob) channel(k chanKey, blocks []readstore.StoredBlock) error {
	runs := x.runs()
	sides := make([]map[int64]side, len(runs))
	length := int64(0)
	if len(blocks) > 0 {
		length = blocks[0].IntervalSeconds
	}
	for j, run := range runs {
		sides[j] = map[int64]side{}
		included := make([]readstore.StoredBlock, 0, len(blocks))
		for _, b := range blocks {
			if x.includes(run, b.Origin) {
				included = append(included, b)
			}
		}
		readstore.Current(included, func(b *readstore.StoredBlock, i int) {
			start := b.StartAt(i)
			if lf, ok := x.lfAt(run, k.meter, start); ok {
				sides[j][start] = side{block: b, i: i, lf: lf}
			}
		})
		for start, est := range run.estimates[k] {
			if _, ok := sides[j][start]; !ok {
				sides[j][start] = side{est: est}
			}
			length = run.estLength[k]
		}
	}
	starts := make([]int64, 0, len(sides[len(sides)-1]))
	for j := range sides {
		for start := range sides[j] {
			if j == 0 || !has(sides[0], start) {
				starts = append(starts, start)
			}
		}
	}
	slices.Sort(starts)
	for _, start := range starts {
		var before, after side
		if len(runs) == 2 {
			before, after = sides[0][start], sides[1][start]
		} else {
			after = sides[0][start]
		}
		if before.same(after) {
			continue
		}
		if err := x.change(k, start, length, before.state(), after.state()); err != nil {
			return err
		}
	}
	return nil
}

func has(m map[int64]side, k int64) bool {
	_, ok := m[k]
	return ok
}

// change adds one read key's change to every interval of the day it
// reaches, with its MWh there in each run (settlement/README.md steps 2–4).
func (x *explainJob) change(k chanKey, start, length int64, before, after *settlement.ReadState) error {
	if length <= 0 {
		return fmt.Errorf("meter %s %s: no interval length", k.meter, k.channel)
	}
	at := time.Unix(start, 0).UTC()
	pieces := func(s *settlement.ReadState) map[int64]decimal.Decimal {
		if s == nil {
			return nil
		}
		out := map[int64]decimal.Decimal{}
		for _, p := range meters.ToSettlementIntervals(at, int(length), s.Value, x.m.IntervalSeconds) {
			mwh := p.KWh.Mul(s.LossFactor).Shift(-3)
			if k.channel == string(meters.Export) {
				mwh = mwh.Neg()
			}
			out[p.Start.Unix()] = mwh
		}
		return out
	}
	p0, p1 := pieces(before), pieces(after)
	reached := slices.AppendSeq(slices.Collect(maps.Keys(p0)), maps.Keys(p1))
	slices.Sort(reached)
	for _, t := range slices.Compact(reached) {
		i, ok := x.index[t]
		if !ok {
			continue // outside the day
		}
		x.explainer.Read(i, settlement.ReadChange{MeterID: k.meter, Channel: k.channel, Start: at,
			Before: before, After: after, BeforeMWh: p0[t], AfterMWh: p1[t]})
	}
	return nil
}

// priceVersion is one stored version of one of the point's RT prices.
type priceVersion struct {
	at      time.Time
	seconds int
	price   decimal.Decimal
	version int64
	origin  readstore.Origin
}

// loadPriceVersions reads every stored version of the point's RT prices
// that can price an interval of the day: the current ones and those
// superseded (price_versions), once for both runs.
func (x *explainJob) loadPriceVersions(ctx context.Context, tx pgx.Tx, lo, hi time.Time) ([]priceVersion, error) {
	rows, err := tx.Query(ctx, `
		SELECT interval_start, interval_seconds, price, version, topic, partition, "offset" FROM prices
		WHERE market = 'RT' AND settlement_point = $1 AND interval_start > $2 AND interval_start < $3
		UNION ALL
		SELECT interval_start, interval_seconds, price, version, topic, partition, "offset" FROM price_versions
		WHERE market = 'RT' AND settlement_point = $1 AND interval_start > $2 AND interval_start < $3`,
		x.point, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("read price versions of %s: %w", x.point, err)
	}
	var (
		out []priceVersion
		v   priceVersion
	)
	_, err = pgx.ForEachRow(rows, []any{&v.at, &v.seconds, &v.price, &v.version, &v.origin.Topic, &v.origin.Partition, &v.origin.Offset},
		func() error {
			out = append(out, v)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("read price versions of %s: %w", x.point, err)
	}
	return out, nil
}

// settlePrices settles the point's RT prices of the day from the versions
// run included, as the run's readPrices did from the current ones, and
// holds them to the prices the run stored.
func (x *explainJob) settlePrices(run *explainRun, versions []priceVersion) ([]decimal.NullDecimal, error) {
	current := map[time.Time]priceVersion{}
	for _, v := range versions {
		if !x.includes(run, v.origin) {
			continue
		}
		if c, ok := current[v.at]; !ok || v.version > c.version {
			current[v.at] = v
		}
	}
	p := &settlement.Prices{}
	for _, at := range slices.SortedFunc(maps.Keys(current), time.Time.Compare) {
		c := current[at]
		if err := p.Add(at, c.seconds, c.price); err != nil {
			return nil, fmt.Errorf("RT prices of %s in run %s: %w", x.point, run.runID, err)
		}
	}
	prices := x.m.DayPrices(x.day, p)
	if run.intervals != nil {
		for i, t := range x.starts {
			stored := run.intervals[t.Unix()].price
			if stored.Valid != prices[i].Valid || (stored.Valid && !stored.Decimal.Equal(prices[i].Decimal)) {
				return nil, fmt.Errorf("run %s priced %s at %s %v, the price versions it included give %v: %w",
					run.runID, x.point, t.UTC().Format(time.RFC3339), stored, prices[i], settlement.ErrUnexplained)
			}
		}
	}
	return prices, nil
}

// newExplainer starts the attribution (settlement.Explainer) over the two
// runs' stored figures of every interval.
func (x *explainJob) newExplainer(keep func(int, *settlement.Change) bool) *settlement.Explainer {
	intervals := make([]settlement.ExplainInterval, len(x.starts))
	for i, t := range x.starts {
		in := settlement.ExplainInterval{Start: t.UTC()}
		in.EnergyAfter, in.PriceAfter = x.after.intervals[t.Unix()].energy, x.after.prices[i]
		if x.before != nil {
			in.EnergyBefore, in.PriceBefore = x.before.intervals[t.Unix()].energy, x.before.prices[i]
		}
		intervals[i] = in
	}
	var e0, a0 decimal.Decimal
	if x.before != nil {
		e0, a0 = x.before.energy, x.before.amount
	}
	return settlement.NewExplainer(x.statementID, settlement.StatementID(x.point, x.participant, x.day, x.againstVersion), x.point,
		x.after.energy.Sub(e0), x.after.amount.Sub(a0), intervals, keep)
}

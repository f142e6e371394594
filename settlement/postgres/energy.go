package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/exact"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// The per-read work of a run — the assignment in force, the mapping onto
// settlement intervals (settlement/README.md steps 1-3,
// meters.ToSettlementIntervals) and the exact sums per line and per account —
// is done here, on the day's read blocks streamed once
// (settlement/ingest/readstore/blocks.go), with integer arithmetic: a value is
// stored in micro-kWh and held in nano-kWh (exact), a piece of a split read is
// rounded half-even to 9 places exactly as the rule says, and sums are 128-bit,
// so nothing can overflow or round. The loss factor is applied once per (line
// or account, loss factor) sum, which is exact since multiplication distributes
// over the sum. Each sum keeps the decimal scale of the values it adds (a
// numeric sum's scale), each stored value at its shortest exact scale
// (readstore.KWh) and a split piece at 9, so the figures carry the digits they
// had when Postgres summed the values as sent.

// nanoScale is the fixed point of kWh sums: 9 decimal places.
const nanoScale = 9

// maxReadMicro bounds a stored value, 10^6 kWh (meters/README.md), so that
// nano-kWh pieces and their sums stay far inside int64 and int128.
const maxReadMicro = 1_000_000_000_000

// kwhSum is an exact sum of kWh pieces and the largest scale among them.
type kwhSum struct {
	sum   exact.Int128
	scale int8
	any   bool
}

func (s *kwhSum) add(nano int64, scale int8) {
	s.sum.Add64(nano)
	s.scale = max(s.scale, scale)
	s.any = true
}

// value is the sum as Postgres's coalesce(sum(...), 0) would give it.
func (s *kwhSum) value(fixed int) decimal.Decimal {
	if !s.any {
		return decimal.Zero
	}
	return s.sum.Rescaled(fixed, int(s.scale))
}

// energyCell is one (line, loss factor) group's settlement interval.
type energyCell struct {
	net               kwhSum // import − export
	actual, estimated int
	estNet            kwhSum // the part of net that gridsettle's estimates make
	gsEstimated       int    // estimate pieces
}

// chargeAcc is one (account, participant, loss factor) group.
type chargeAcc struct {
	imp, exp kwhSum
	est      kwhSum // Σ import − Σ export of gridsettle's estimates
	priced   kwhSum // Σ net kWh × settlement price, at nanoScale + the prices' scale
}

type lineGroupKey struct {
	participant, point, lf string
}

type chargeGroupKey struct {
	account, participant, lf string
}

// assignment is a registry row as the read loop needs it.
type assignment struct {
	fromMicros, toMicros int64 // pg microseconds; toMicros == noEnd when open

	line, chg  int32 // group indexes
	point      int32
	lineOfLine int32 // index of the (participant, point) line
}

const noEnd = int64(^uint64(0) >> 1)

// priceCell is the settlement price of one point and interval as an
// integer at the day's common price scale.
type priceCell struct {
	coef  int64
	scale int8
	valid bool
}

// dayReads is the state of streaming one day's reads.
type dayReads struct {
	firstMicros, endMicros int64 // pg microseconds of the first interval's start and the last one's end
	intervalMicros         int64 // L
	intervalSeconds        int64 // L

	n          int // intervals
	meters     map[string][]assignment
	lineKeys   []lineGroupKey
	lineLF     []decimal.Decimal
	lines      []lineKey // per (participant, point)
	cells      []energyCell
	reads      []settlement.ReadCounts // per (participant, point)
	chgKeys    []chargeGroupKey
	chgLF      []decimal.Decimal
	charges    []chargeAcc
	prices     [][]priceCell // per point index, per interval
	priceScale int           // the common scale of priceCell.coef
	points     []string      // settlement points by index
	est        *dayEstimates // nil when estimation is off
}

// readEnergy settles the day's current reads into s.lines and s.charges.
func (s *snapshot) readEnergy(ctx context.Context, tx pgx.Tx, m settlement.Market, starts []time.Time) error {
	d := &dayReads{
		firstMicros: toPG(starts[0]), endMicros: toPG(starts[len(starts)-1].Add(m.Interval())),
		intervalMicros: int64(m.IntervalSeconds) * 1e6, intervalSeconds: int64(m.IntervalSeconds), n: len(starts),
		meters: map[string][]assignment{},
	}
	if !m.Estimation.Off {
		ml := m.Estimation.MaxLinearGap()
		if ml < time.Second || ml > settlement.MaxLinearLimit {
			return fmt.Errorf("the longest linear estimate, %s, is not from 1s to %s", ml, settlement.MaxLinearLimit)
		}
		d.est = &dayEstimates{maxLinearSeconds: int64(ml / time.Second)}
	}
	for i, t := range starts {
		if toPG(t) != d.firstMicros+int64(i)*d.intervalMicros {
			return fmt.Errorf("the intervals of the day are not contiguous at %s", t.UTC().Format(time.RFC3339))
		}
	}
	if err := d.loadAssignments(ctx, tx); err != nil {
		return err
	}
	if err := d.loadPrices(s.prices); err != nil {
		return err
	}
	if d.est != nil {
		if err := d.est.loadChannels(ctx, tx, d.meters); err != nil {
			return err
		}
	}
	if err := d.stream(ctx, tx); err != nil {
		return err
	}
	if d.est != nil {
		if err := d.estimateRest(ctx, tx); err != nil {
			return err
		}
	}
	d.collect(s)
	return nil
}

func toPG(t time.Time) int64 { return t.UnixMicro() - exact.PGEpochMicros }

func fromPG(us int64) time.Time { return time.UnixMicro(us + exact.PGEpochMicros).UTC() }

// window is the span of read starts (pg microseconds, exclusive both) the
// run looks at: those that can reach into the day and, when estimating,
// those that can bound a gap that reaches into it or be in it.
func (d *dayReads) window() (lo, hi int64) {
	lo, hi = d.firstMicros-maxReadSeconds*1e6, d.endMicros
	if d.est != nil {
		margin := (d.est.maxLinearSeconds + maxReadSeconds) * 1e6
		lo, hi = lo-margin, hi+margin
	}
	return lo, hi
}

// loadAssignments reads the registry rows that can cover a read of the
// window and numbers the line and charge groups and settlement points.
func (d *dayReads) loadAssignments(ctx context.Context, tx pgx.Tx) error {
	lo, hi := d.window()
	rows, err := tx.Query(ctx, `
		SELECT meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to
		FROM meter_assignments
		WHERE effective_from < $2 AND (effective_to IS NULL OR effective_to > $1)
		ORDER BY meter_id, effective_from`,
		fromPG(lo), fromPG(hi))
	if err != nil {
		return fmt.Errorf("read assignments: %w", err)
	}
	lineIdx := map[lineGroupKey]int32{}
	lineOf := map[lineKey]int32{}
	chgIdx := map[chargeGroupKey]int32{}
	pointIdx := map[string]int32{}
	var (
		meter, account, participant, point string
		lf                                 decimal.Decimal
		from                               time.Time
		to                                 *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&meter, &account, &participant, &point, &lf, &from, &to}, func() error {
		lfs := lf.String()
		a := assignment{fromMicros: toPG(from), toMicros: noEnd}
		if to != nil {
			a.toMicros = toPG(*to)
		}
		p, ok := pointIdx[point]
		if !ok {
			p = int32(len(d.points))
			pointIdx[point] = p
			d.points = append(d.points, point)
		}
		a.point = p
		lk := lineKey{participant, point}
		if a.lineOfLine, ok = lineOf[lk]; !ok {
			a.lineOfLine = int32(len(d.lines))
			lineOf[lk] = a.lineOfLine
			d.lines = append(d.lines, lk)
		}
		gk := lineGroupKey{participant, point, lfs}
		if a.line, ok = lineIdx[gk]; !ok {
			a.line = int32(len(d.lineKeys))
			lineIdx[gk] = a.line
			d.lineKeys, d.lineLF = append(d.lineKeys, gk), append(d.lineLF, lf)
		}
		ck := chargeGroupKey{account, participant, lfs}
		if a.chg, ok = chgIdx[ck]; !ok {
			a.chg = int32(len(d.chgKeys))
			chgIdx[ck] = a.chg
			d.chgKeys, d.chgLF = append(d.chgKeys, ck), append(d.chgLF, lf)
		}
		d.meters[meter] = append(d.meters[meter], a)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read assignments: %w", err)
	}
	d.cells = make([]energyCell, len(d.lineKeys)*d.n)
	d.reads = make([]settlement.ReadCounts, len(d.lines))
	d.charges = make([]chargeAcc, len(d.chgKeys))
	return nil
}

// loadPrices turns the settlement prices into integers at one common
// scale, so that a priced piece costs one 128-bit multiply-add.
func (d *dayReads) loadPrices(prices map[string][]decimal.NullDecimal) error {
	for _, ps := range prices {
		for _, p := range ps {
			if p.Valid && p.Decimal.Exponent() < 0 {
				d.priceScale = max(d.priceScale, int(-p.Decimal.Exponent()))
			}
		}
	}
	d.prices = make([][]priceCell, len(d.points))
	for i, point := range d.points {
		ps := prices[point]
		if ps == nil {
			continue
		}
		cells := make([]priceCell, d.n)
		for j, p := range ps {
			if !p.Valid {
				continue
			}
			c := p.Decimal.Shift(int32(d.priceScale))
			if !c.IsInteger() || !c.BigInt().IsInt64() || c.Abs().GreaterThan(decimal.New(1, 17)) {
				return fmt.Errorf("settlement price %s of %s is out of range", p.Decimal, point)
			}
			cells[j] = priceCell{coef: c.IntPart(), scale: int8(max(0, -p.Decimal.Exponent())), valid: true}
		}
		d.prices[i] = cells
	}
	return nil
}

// stream reads the current reads of the window once: the blocks that can
// hold a read starting in it (settlement/ingest/readstore/blocks.go), each
// channel's resolved to its current reads. Those starting in
// (first − maxReadSeconds, end) can reach into the day and are settled;
// when estimating, every channel's reads of the window then settle its
// gaps (estimate.go).
func (d *dayReads) stream(ctx context.Context, tx pgx.Tx) error {
	lo := d.firstMicros - maxReadSeconds*1e6 // exclusive: a read starting there ends by the day's start
	wlo, whi := d.window()
	w := readstore.BlockWindow{From: fromPG(wlo), To: fromPG(whi)}
	var failed error
	err := readstore.StreamChannels(ctx, tx, w, func(blocks []readstore.StoredBlock) error {
		as := d.meters[blocks[0].MeterID]
		if as == nil {
			return nil // no assignment: not settled (as the registry join drops it)
		}
		export := blocks[0].Channel == meters.Export
		if d.est != nil {
			d.est.reads = d.est.reads[:0]
		}
		readstore.Current(blocks, func(b *readstore.StoredBlock, i int) {
			if failed != nil {
				return
			}
			if d.est != nil {
				d.est.reads = append(d.est.reads, chanRead{start: b.StartAt(i), micro: b.Values[i]})
			}
			start := b.StartAt(i)*1e6 - exact.PGEpochMicros
			if start <= lo || start >= d.endMicros {
				return
			}
			quality := byte('A')
			if b.Quality != "" {
				quality = b.Quality[i]
			}
			if err := d.read(as, start, b.IntervalSeconds, b.Values[i], export, quality); err != nil {
				failed = fmt.Errorf("read of %s at %s: %w", b.MeterID, fromPG(start).Format(time.RFC3339), err)
			}
		})
		if failed == nil && d.est != nil {
			failed = d.estimateChannel(blocks[0].MeterID, blocks[0].Channel, as, d.est.reads)
		}
		return failed
	})
	if err != nil {
		return fmt.Errorf("read the day's reads: %w", err)
	}
	return nil
}

// read maps one read (micro-kWh, starting at startMicros) onto
// the day's intervals and adds it to its line and account, as the
// assignment covering its start says.
func (d *dayReads) read(as []assignment, startMicros, secs, micro int64, export bool, quality byte) error {
	a := coverAt(as, startMicros)
	if a == nil {
		return nil
	}
	if micro < 0 || micro > maxReadMicro {
		return fmt.Errorf("value of %d micro-kWh is out of range", micro)
	}
	// A stored value is micro-kWh: in nano-kWh it is exact. It counts at its
	// shortest exact scale, as readstore.KWh reads it back (1500000 is 1.5):
	// the scale producers mostly write, so sums keep the digits their inputs
	// had.
	return d.mapRead(a, startMicros, secs, micro*1000, int8(readstore.ShortestScale(micro)), export, quality)
}

// mapRead adds a read of nano nano-kWh at scale to the intervals of the day
// it has pieces in. A piece of a split read is rounded half-even to 9
// places; stored micro-kWh never tie there (a tie of 1000·v nano over n
// pieces needs n to be a multiple of 16, and n is at most 12), but the rule
// is kept whole.
func (d *dayReads) mapRead(a *assignment, startMicros, secs, nano int64, scale int8, export bool, quality byte) error {
	if secs <= d.intervalSeconds {
		if startMicros < d.firstMicros || startMicros >= d.endMicros {
			return nil
		}
		t := meters.Floor(startMicros+exact.PGEpochMicros, d.intervalMicros) - exact.PGEpochMicros
		return d.piece(a, (t-d.firstMicros)/d.intervalMicros, nano, scale, export, quality, true)
	}
	if secs%d.intervalSeconds != 0 {
		return fmt.Errorf("a %d-second read does not split into %d-second intervals", secs, d.intervalSeconds)
	}
	n := secs / d.intervalSeconds
	q, last := meters.SplitNano(nano, n)
	for k := range n {
		t := startMicros + k*d.intervalMicros
		if t < d.firstMicros || t >= d.endMicros {
			continue
		}
		p := q
		if k == n-1 {
			p = last
		}
		if err := d.piece(a, (t-d.firstMicros)/d.intervalMicros, p, max(scale, nanoScale), export, quality, k == 0 || t == d.firstMicros); err != nil {
			return err
		}
	}
	return nil
}

// coverAt is the assignment of as covering startMicros, or nil.
func coverAt(as []assignment, startMicros int64) *assignment {
	for i := range as {
		if as[i].fromMicros <= startMicros && startMicros < as[i].toMicros {
			return &as[i]
		}
	}
	return nil
}

// piece adds kWh landing in interval i (counted as a read of its line when
// first).
func (d *dayReads) piece(a *assignment, i int64, nano int64, scale int8, export bool, quality byte, first bool) error {
	if i < 0 || i >= int64(d.n) {
		return fmt.Errorf("energy at %s is not in an interval of the day", fromPG(d.firstMicros+i*d.intervalMicros).Format(time.RFC3339))
	}
	signed := nano
	if export {
		signed = -nano
	}
	c := &d.cells[int(a.line)*d.n+int(i)]
	c.net.add(signed, scale)
	ch := &d.charges[a.chg]
	rc := &d.reads[a.lineOfLine]
	switch m := method(quality); m {
	case methodLIN, methodLDY, methodZER:
		c.estNet.add(signed, scale)
		c.gsEstimated++
		ch.est.add(signed, scale)
		if first {
			countEstimate(&rc.GridsettleEstimated, m)
		}
	case 'A':
		c.actual++
	default:
		c.estimated++
	}
	if first {
		switch quality {
		case 'A':
			rc.Actual++
		case 'E':
			rc.Estimated++
		case 'S':
			rc.Substituted++
		}
	}
	if export {
		ch.exp.add(nano, scale)
	} else {
		ch.imp.add(nano, scale)
	}
	if ps := d.prices[a.point]; ps != nil && ps[i].valid {
		ch.priced.sum.Accumulate(exact.Mul64(signed, ps[i].coef))
		ch.priced.scale = max(ch.priced.scale, scale+ps[i].scale)
		ch.priced.any = true
	}
	return nil
}

// collect turns the integer sums into the snapshot's exact decimals.
func (d *dayReads) collect(s *snapshot) {
	for g, gk := range d.lineKeys {
		cells := d.cells[g*d.n : (g+1)*d.n]
		k := lineKey{gk.participant, gk.point}
		var lc *lineCells
		for i := range cells {
			c := &cells[i]
			if !c.net.any {
				continue
			}
			if lc == nil {
				if lc = s.lines[k]; lc == nil {
					lc = &lineCells{cells: make([]cell, d.n)}
					s.lines[k] = lc
				}
			}
			out := &lc.cells[i]
			out.mwh = out.mwh.Add(settlement.MWh(c.net.value(nanoScale), d.lineLF[g]))
			out.actual += c.actual
			out.estimated += c.estimated
			if c.estNet.any {
				out.estMWh = out.estMWh.Add(settlement.MWh(c.estNet.value(nanoScale), d.lineLF[g]))
				out.gsEstimated += c.gsEstimated
			}
		}
	}
	for i, k := range d.lines {
		if lc := s.lines[k]; lc != nil {
			lc.reads = d.reads[i]
		}
	}
	for g, gk := range d.chgKeys {
		a := &d.charges[g]
		if !a.imp.any && !a.exp.any {
			continue
		}
		k := chargeKey{gk.account, gk.participant}
		c := s.charges[k]
		s.charges[k] = chargeSums{
			importKWh:    c.importKWh.Add(a.imp.value(nanoScale)),
			exportKWh:    c.exportKWh.Add(a.exp.value(nanoScale)),
			estimatedKWh: c.estimatedKWh.Add(a.est.value(nanoScale)),
			pricedAmount: c.pricedAmount.Add(settlement.MWh(a.priced.value(nanoScale+d.priceScale), d.chgLF[g])),
		}
	}
	if d.est != nil {
		s.estimates = d.est.rows(d)
	}
}

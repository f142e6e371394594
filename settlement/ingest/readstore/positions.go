package readstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
)

// ReplaySlot is the positions slot of quarantine replays, which no consumer
// owns (consumers use their input partition).
const ReplaySlot = -1

// Positions are maintained incrementally: a new read adds its energy, a
// correction removes the previous read's and adds its own, both under the
// assignment in force at the read's start when the batch is applied. A later
// registry change (a retroactive retailer switch) does not move energy
// already applied; settlement runs, which read the registry when they run,
// are the settled truth.

// positionDeltas accumulates how a batch moves live positions. Reads are
// summed as signed kWh per (assignment, settlement interval) first, so the
// loss factor is applied once per group rather than once per read; the
// arithmetic is exact either way.
type positionDeltas struct {
	settlementSeconds int
	kwh               map[groupKey]decimal.Decimal
	// micro holds, in micro-kWh, the reads no longer than a settlement
	// interval: each lands whole in one interval, so the common case sums
	// integers and leaves decimals to queue. They are summed by what the
	// loss factor multiplies (participant, point, loss factor: a rate) and
	// interval as they come: every meter has its own assignment, but a
	// batch's meters share a few rates, so the maps stay a few thousand
	// entries where one per meter and interval grew to hundreds of
	// thousands (a tenth of ingest's CPU in records of 96). micro[i] is
	// rateOf[i]'s, by interval start: an int64 key hashes faster than a
	// struct of rate and start.
	micro  []map[int64]int64
	rates  map[*meters.Assignment]int32 // index into rateOf, per assignment
	byRate map[rateKey]int32            // index into rateOf, per rate
	rateOf []rate
	// last and lastRate are the latest assignment rateIndex was asked for
	// and its rate: a record's reads mostly share one.
	last     *meters.Assignment
	lastRate int32
}

type groupKey struct {
	assignment *meters.Assignment
	start      int64
}

// rateKey is what the loss factor multiplies: a participant at a point
// under one loss factor (its text, a comparable key).
type rateKey struct {
	participant, point, lossFactor string
}

type rate struct {
	rateKey
	factor decimal.Decimal
}

func newPositionDeltas(settlementSeconds int) *positionDeltas {
	return &positionDeltas{settlementSeconds: settlementSeconds, kwh: map[groupKey]decimal.Decimal{},
		rates: map[*meters.Assignment]int32{}, byRate: map[rateKey]int32{}}
}

// rateIndex is a's rate, added on first sight.
func (p *positionDeltas) rateIndex(a *meters.Assignment) int32 {
	if a == p.last {
		return p.lastRate
	}
	i, ok := p.rates[a]
	if !ok {
		i = p.newRate(a)
	}
	p.last, p.lastRate = a, i
	return i
}

// newRate is the rate of a, an assignment not seen before.
func (p *positionDeltas) newRate(a *meters.Assignment) int32 {
	k := rateKey{a.ParticipantID, a.SettlementPoint, a.LossFactor.String()}
	i, ok := p.byRate[k]
	if !ok {
		i = int32(len(p.rateOf))
		p.rateOf = append(p.rateOf, rate{k, a.LossFactor})
		p.micro = append(p.micro, map[int64]int64{})
		p.byRate[k] = i
	}
	p.rates[a] = i
	return i
}

// addMicro is add for a read of ch starting at startUnix, seconds long,
// of micro micro-kWh. Sums stay far inside int64: a batch
// holds at most a few hundred thousand reads of at most 10^12 micro-kWh.
func (p *positionDeltas) addMicro(a *meters.Assignment, startUnix, seconds, micro int64, ch meters.Channel, remove bool) {
	L := int64(p.settlementSeconds)
	if seconds > L {
		p.add(a, meters.Read{Channel: ch, Start: time.Unix(startUnix, 0).UTC(), IntervalSeconds: int(seconds),
			Value: KWh(micro)}, remove)
		return
	}
	if (ch == meters.Export) != remove {
		micro = -micro
	}
	p.micro[p.rateIndex(a)][meters.Floor(startUnix, L)] += micro
}

// add adds read's energy under assignment a (subtracts it when remove),
// mapped onto settlement intervals (settlement/README.md steps 1-3: import
// counts positive, export negative).
func (p *positionDeltas) add(a *meters.Assignment, read meters.Read, remove bool) {
	neg := (read.Channel == meters.Export) != remove
	for _, s := range meters.ToSettlementIntervals(read.Start, read.IntervalSeconds, read.Value, p.settlementSeconds) {
		k := groupKey{a, s.Start.Unix()}
		v := s.KWh
		if neg {
			v = v.Neg()
		}
		if old, ok := p.kwh[k]; ok {
			v = old.Add(v)
		}
		p.kwh[k] = v
	}
}

type positionKey struct {
	participant, point string
	start              int64
}

// queue adds the deltas, in MWh with the loss factor (step 4), to slot's
// rows. Rows are written in key order so that writers sharing a slot (only
// replays do) cannot deadlock.
func (p *positionDeltas) queue(b *pgx.Batch, slot int32) {
	if len(p.kwh) == 0 && len(p.micro) == 0 {
		return
	}
	sum := map[positionKey]decimal.Decimal{}
	addMWh := func(k positionKey, mwh decimal.Decimal) {
		if old, ok := sum[k]; ok {
			mwh = old.Add(mwh)
		}
		sum[k] = mwh
	}
	for g, kwh := range p.kwh {
		addMWh(positionKey{g.assignment.ParticipantID, g.assignment.SettlementPoint, g.start},
			kwh.Mul(g.assignment.LossFactor).Shift(-3))
	}
	for i, starts := range p.micro {
		r := &p.rateOf[i]
		for start, m := range starts {
			addMWh(positionKey{r.participant, r.point, start}, decimal.New(m, -microPerKWh).Mul(r.factor).Shift(-3))
		}
	}
	keys := make([]positionKey, 0, len(sum))
	for k := range sum {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b positionKey) int {
		return cmp.Or(cmp.Compare(a.participant, b.participant), cmp.Compare(a.point, b.point), cmp.Compare(a.start, b.start))
	})
	// One row per (participant, point, UTC day) in key order, its deltas an
	// array literal from 00:00 UTC to the last moved interval (NULL: not
	// moved), migrations/00805_position_days.sql. The literal is sent as
	// text and cast in SQL: encoding 2,400 deltas as a numeric[] parameter
	// (the shopspring codec) took 1.4-3 ms and 31,000 allocations on the
	// 2-core dev machine, writing them as 25 literals of 96 and encoding
	// those as text[] 0.3 ms and 68. Each value keeps its scale
	// (appendNumeric), so the database holds what a numeric parameter gave.
	L := int64(p.settlementSeconds)
	var parts, points, deltas []string
	var days []time.Time
	var lit []byte
	for i := 0; i < len(keys); {
		k := keys[i]
		day := meters.Floor(k.start, 86400)
		lit = append(lit[:0], '{')
		next := int64(0) // the index the next element of the literal has
		for ; i < len(keys) && keys[i].participant == k.participant && keys[i].point == k.point &&
			meters.Floor(keys[i].start, 86400) == day; i++ {
			at := (keys[i].start - day) / L
			for ; next < at; next++ {
				lit = append(lit, "NULL,"...)
			}
			lit = appendNumeric(lit, sum[keys[i]])
			lit = append(lit, ',')
			next++
		}
		lit[len(lit)-1] = '}'
		parts, points = append(parts, k.participant), append(points, k.point)
		days, deltas = append(days, time.Unix(day, 0).UTC()), append(deltas, string(lit))
	}
	b.Queue(`
		INSERT INTO position_days AS p (participant_id, settlement_point, day, slot, interval_seconds, energy_mwh)
		SELECT u.participant_id, u.settlement_point, u.day, $5, $6, u.energy_mwh::numeric[]
		FROM unnest($1::text[], $2::text[], $3::date[], $4::text[]) AS u(participant_id, settlement_point, day, energy_mwh)
		ON CONFLICT (participant_id, settlement_point, day, slot)
		DO UPDATE SET interval_seconds = least(p.interval_seconds, excluded.interval_seconds),
			energy_mwh = position_days_add(p.interval_seconds, p.energy_mwh, excluded.interval_seconds, excluded.energy_mwh)`,
		parts, points, days, deltas, slot, p.settlementSeconds)
}

// appendNumeric appends d as a numeric literal of d's scale (its exponent,
// when negative): the coefficient's digits with a point inserted, which is
// what a numeric parameter would have given the database.
func appendNumeric(buf []byte, d decimal.Decimal) []byte {
	var tmp [48]byte
	var digits []byte
	if d.NumDigits() <= 18 { // the coefficient fits an int64: no big.Int copied
		digits = strconv.AppendInt(tmp[:0], d.CoefficientInt64(), 10)
	} else {
		digits = d.Coefficient().Append(tmp[:0], 10)
	}
	if digits[0] == '-' {
		buf, digits = append(buf, '-'), digits[1:]
	}
	scale := -int(d.Exponent())
	if scale <= 0 {
		buf = append(buf, digits...)
		for range -scale {
			buf = append(buf, '0')
		}
		return buf
	}
	if len(digits) <= scale { // at least one digit before the point
		buf = append(buf, '0', '.')
		for range scale - len(digits) {
			buf = append(buf, '0')
		}
		return append(buf, digits...)
	}
	buf = append(buf, digits[:len(digits)-scale]...)
	buf = append(buf, '.')
	return append(buf, digits[len(digits)-scale:]...)
}

// PositionEnergy is the live energy of one participant at one settlement
// point in one settlement interval: the exact sum of every current read's
// settlement energy (settlement/README.md, "From reads to settlement
// intervals").
type PositionEnergy struct {
	ParticipantID   string
	SettlementPoint string
	IntervalStart   time.Time
	EnergyMWh       decimal.Decimal
}

// PositionFilter selects positions: settlement intervals starting in
// [From, To), optionally of one participant and/or settlement point, after a
// key (keyset pagination in (participant, point, interval) order).
type PositionFilter struct {
	From, To        time.Time
	ParticipantID   string // "" = all
	SettlementPoint string // "" = all
	After           *PositionKey
}

// PositionKey is the key of a position, for pagination.
type PositionKey struct {
	ParticipantID   string    `json:"p"`
	SettlementPoint string    `json:"s"`
	IntervalStart   time.Time `json:"t"`
}

// PositionEnergies lists live positions in (participant, point, interval)
// order, summing the slots, at most limit of them.
func PositionEnergies(ctx context.Context, db Querier, f PositionFilter, limit int) ([]PositionEnergy, error) {
	after := PositionKey{}
	if f.After != nil {
		after = *f.After
	}
	// Only the rows of the UTC days the range touches are read (the
	// primary key leads (participant, point, day), position_days_day serves
	// the days of every participant), and the page's first (participant,
	// point) bounds the key range as well.
	dayFrom := time.Unix(meters.Floor(f.From.Unix(), 86400), 0).UTC()
	dayTo := time.Unix(meters.Floor(f.To.Add(-time.Nanosecond).Unix(), 86400), 0).UTC()
	rows, err := db.Query(ctx, `
		SELECT d.participant_id, d.settlement_point, t.interval_start, sum(e.energy_mwh)
		FROM position_days d
		CROSS JOIN LATERAL unnest(d.energy_mwh) WITH ORDINALITY AS e(energy_mwh, i)
		CROSS JOIN LATERAL (SELECT (d.day + (e.i - 1) * d.interval_seconds * interval '1 second') AT TIME ZONE 'UTC') AS t(interval_start)
		WHERE d.day BETWEEN $10 AND $11 AND e.energy_mwh IS NOT NULL
		  AND t.interval_start >= $1 AND t.interval_start < $2
		  AND ($3 = '' OR d.participant_id = $3) AND ($4 = '' OR d.settlement_point = $4)
		  AND (NOT $5 OR (d.participant_id, d.settlement_point) >= ($6, $7))
		  AND (NOT $5 OR (d.participant_id, d.settlement_point, t.interval_start) > ($6, $7, $8))
		GROUP BY d.participant_id, d.settlement_point, t.interval_start
		ORDER BY d.participant_id, d.settlement_point, t.interval_start
		LIMIT $9`,
		f.From, f.To, f.ParticipantID, f.SettlementPoint, f.After != nil,
		after.ParticipantID, after.SettlementPoint, after.IntervalStart, limit, dayFrom, dayTo)
	if err != nil {
		return nil, fmt.Errorf("list positions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (PositionEnergy, error) {
		var p PositionEnergy
		err := row.Scan(&p.ParticipantID, &p.SettlementPoint, &p.IntervalStart, &p.EnergyMWh)
		p.IntervalStart = p.IntervalStart.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("list positions: %w", err)
	}
	return out, nil
}

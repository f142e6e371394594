package readstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
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
	// integers and leaves decimals to queue.
	micro map[groupKey]int64
}

type groupKey struct {
	assignment *meters.Assignment
	start      int64
}

func newPositionDeltas(settlementSeconds int) *positionDeltas {
	return &positionDeltas{settlementSeconds: settlementSeconds, kwh: map[groupKey]decimal.Decimal{}, micro: map[groupKey]int64{}}
}

// addMicro is add for a read of ch starting at start (unix seconds),
// seconds long, of micro micro-kWh. Sums stay far inside int64: a batch
// holds at most a few hundred thousand reads of at most 10^12 micro-kWh.
func (p *positionDeltas) addMicro(a *meters.Assignment, start, seconds, micro int64, ch meters.Channel, remove bool) {
	L := int64(p.settlementSeconds)
	if seconds > L {
		p.add(a, meters.Read{Channel: ch, Start: time.Unix(start, 0).UTC(), IntervalSeconds: int(seconds),
			Value: KWh(micro)}, remove)
		return
	}
	if (ch == meters.Export) != remove {
		micro = -micro
	}
	p.micro[groupKey{a, meters.Floor(start, L)}] += micro
}

// add adds read's energy under assignment a (subtracts it when remove),
// mapped onto settlement intervals (settlement.md steps 1-3: import counts
// positive, export negative).
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
	// Integer sums regrouped by what the loss factor multiplies (participant,
	// point, loss factor, interval) first: every meter has its own
	// assignment, but a batch's meters share a few loss factors, so the
	// decimal multiply runs per group, not per read. Exact either way.
	type rate struct {
		participant, point, lossFactor string
	}
	type rateKey struct {
		rate
		start int64
	}
	rates := map[*meters.Assignment]rate{}
	factors := map[string]decimal.Decimal{}
	micro := map[rateKey]int64{}
	for g, m := range p.micro {
		r, ok := rates[g.assignment]
		if !ok {
			r = rate{g.assignment.ParticipantID, g.assignment.SettlementPoint, g.assignment.LossFactor.String()}
			rates[g.assignment] = r
			factors[r.lossFactor] = g.assignment.LossFactor
		}
		micro[rateKey{r, g.start}] += m
	}
	for k, m := range micro {
		addMWh(positionKey{k.participant, k.point, k.start},
			decimal.New(m, -microPerKWh).Mul(factors[k.lossFactor]).Shift(-3))
	}
	keys := make([]positionKey, 0, len(sum))
	for k := range sum {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b positionKey) int {
		return cmp.Or(cmp.Compare(a.participant, b.participant), cmp.Compare(a.point, b.point), cmp.Compare(a.start, b.start))
	})
	n := len(keys)
	parts, points, starts, mwh := make([]string, n), make([]string, n), make([]time.Time, n), make([]decimal.Decimal, n)
	for i, k := range keys {
		parts[i], points[i], starts[i], mwh[i] = k.participant, k.point, time.Unix(k.start, 0).UTC(), sum[k]
	}
	b.Queue(`
		INSERT INTO positions AS p (participant_id, settlement_point, interval_start, slot, energy_mwh)
		SELECT u.participant_id, u.settlement_point, u.interval_start, $5, u.energy_mwh
		FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::numeric[]) AS u(participant_id, settlement_point, interval_start, energy_mwh)
		ON CONFLICT (participant_id, settlement_point, interval_start, slot)
		DO UPDATE SET energy_mwh = p.energy_mwh + excluded.energy_mwh`,
		parts, points, starts, mwh, slot)
}

// PositionEnergy is the live energy of one participant at one settlement
// point in one settlement interval: the exact sum of every current read's
// settlement energy (settlement.md, "From reads to settlement intervals").
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
	rows, err := db.Query(ctx, `
		SELECT participant_id, settlement_point, interval_start, sum(energy_mwh)
		FROM positions
		WHERE interval_start >= $1 AND interval_start < $2
		  AND ($3 = '' OR participant_id = $3) AND ($4 = '' OR settlement_point = $4)
		  AND (NOT $5 OR (participant_id, settlement_point, interval_start) > ($6, $7, $8))
		GROUP BY participant_id, settlement_point, interval_start
		ORDER BY participant_id, settlement_point, interval_start
		LIMIT $9`,
		f.From, f.To, f.ParticipantID, f.SettlementPoint, f.After != nil,
		after.ParticipantID, after.SettlementPoint, after.IntervalStart, limit)
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

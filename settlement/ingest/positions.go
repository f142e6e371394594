package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// Position is the live (unsettled) position of one participant at one
// settlement point in one settlement interval: its exact energy, and where
// the interval is priced its settlement price and exact amount.
type Position struct {
	ParticipantID   string
	SettlementPoint string
	IntervalStart   time.Time
	EnergyMWh       decimal.Decimal     // exact, unrounded
	Price           decimal.NullDecimal // settlement price (settlement/README.md "Prices"); invalid: unpriced
	Amount          decimal.NullDecimal // EnergyMWh × Price, exact; invalid: unpriced
}

// PositionQuery selects positions of one operating day.
type PositionQuery struct {
	Day             settlement.Day
	ParticipantID   string // "" = all
	SettlementPoint string // "" = all
	After           *readstore.PositionKey
	Limit           int
}

// Positions lists live positions in (participant, point, interval) order,
// priced with the settlement prices of settlement.Prices from the current
// RT prices.
func Positions(ctx context.Context, db readstore.Querier, market settlement.Market, q PositionQuery) ([]Position, error) {
	from, to := market.Bounds(q.Day)
	energies, err := readstore.PositionEnergies(ctx, db, readstore.PositionFilter{
		From: from, To: to, ParticipantID: q.ParticipantID, SettlementPoint: q.SettlementPoint, After: q.After,
	}, q.Limit)
	if err != nil {
		return nil, err
	}
	if len(energies) == 0 {
		return nil, nil
	}
	point := q.SettlementPoint
	if energies[0].SettlementPoint == energies[len(energies)-1].SettlementPoint {
		point = energies[0].SettlementPoint // a page of one point needs only its prices
	}
	rt, err := readstore.CurrentPrices(ctx, db, readstore.PriceFilter{
		Market: meters.RealTime, SettlementPoint: point, From: from.Add(-meters.LongestPrice), To: to}, 0)
	if err != nil {
		return nil, err
	}
	series := map[string]*settlement.Prices{}
	for _, p := range rt {
		s := series[p.SettlementPoint]
		if s == nil {
			s = &settlement.Prices{}
			series[p.SettlementPoint] = s
		}
		if err := s.Add(p.Start, p.IntervalSeconds, p.Price.Price); err != nil {
			return nil, fmt.Errorf("prices of %s: %w", p.SettlementPoint, err)
		}
	}
	out := make([]Position, len(energies))
	for i, e := range energies {
		price := series[e.SettlementPoint].At(market.IntervalSeconds, e.IntervalStart)
		out[i] = Position{ParticipantID: e.ParticipantID, SettlementPoint: e.SettlementPoint, IntervalStart: e.IntervalStart,
			EnergyMWh: e.EnergyMWh, Price: price}
		if price.Valid {
			out[i].Amount = decimal.NullDecimal{Decimal: e.EnergyMWh.Mul(price.Decimal), Valid: true}
		}
	}
	return out, nil
}

package readstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/meters"
)

// StoredRead is a current read with the input record it came from.
type StoredRead struct {
	meters.Read
	Origin Origin
}

// ReadFilter selects the current reads of one meter in (start, channel)
// order: interval starts in [From, To) (zero = unbounded), optionally one
// channel, after a key.
type ReadFilter struct {
	MeterID  string
	Channel  meters.Channel // "" = both
	From, To time.Time
	After    *ReadKey
}

// ReadKey is the key of a read within a meter, for pagination.
type ReadKey struct {
	Start   time.Time      `json:"t"`
	Channel meters.Channel `json:"c"`
}

// CurrentReads lists the current reads matching f, at most limit.
func CurrentReads(ctx context.Context, db Querier, f ReadFilter, limit int) ([]StoredRead, error) {
	var after ReadKey
	if f.After != nil {
		after = *f.After
	}
	rows, err := db.Query(ctx, `
		SELECT meter_id, channel, interval_start, interval_seconds, value, quality, version, source, topic, partition, "offset"
		FROM reads
		WHERE meter_id = $1 AND ($2 = '' OR channel = $2)
		  AND ($3::timestamptz IS NULL OR interval_start >= $3) AND ($4::timestamptz IS NULL OR interval_start < $4)
		  AND (NOT $5 OR (interval_start, channel) > ($6, $7))
		ORDER BY interval_start, channel LIMIT $8`,
		f.MeterID, string(f.Channel), nullTime(f.From), nullTime(f.To), f.After != nil, after.Start, string(after.Channel), limit)
	if err != nil {
		return nil, fmt.Errorf("list reads of %s: %w", f.MeterID, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StoredRead, error) {
		var r StoredRead
		err := row.Scan(&r.MeterID, &r.Channel, &r.Start, &r.IntervalSeconds, &r.Value, &r.Quality, &r.Version, &r.Source,
			&r.Origin.Topic, &r.Origin.Partition, &r.Origin.Offset)
		r.Start = r.Start.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list reads of %s: %w", f.MeterID, err)
	}
	return out, nil
}

// StoredPrice is a current price with the input record it came from.
type StoredPrice struct {
	meters.Price
	Origin Origin
}

// PriceFilter selects current prices in (market, point, start) order.
type PriceFilter struct {
	Market          meters.Market // "" = both
	SettlementPoint string        // "" = all
	From, To        time.Time     // interval starts in [From, To); zero = unbounded
	After           *PriceKey
}

// PriceKey is the key of a price, for pagination.
type PriceKey struct {
	Market          meters.Market `json:"m"`
	SettlementPoint string        `json:"s"`
	Start           time.Time     `json:"t"`
}

// CurrentPrices lists the current prices matching f, at most limit (0 = no
// limit).
func CurrentPrices(ctx context.Context, db Querier, f PriceFilter, limit int) ([]StoredPrice, error) {
	var after PriceKey
	if f.After != nil {
		after = *f.After
	}
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	rows, err := db.Query(ctx, `
		SELECT market, settlement_point, interval_start, interval_seconds, price, currency, version, topic, partition, "offset"
		FROM prices
		WHERE ($1 = '' OR market = $1) AND ($2 = '' OR settlement_point = $2)
		  AND ($3::timestamptz IS NULL OR interval_start >= $3) AND ($4::timestamptz IS NULL OR interval_start < $4)
		  AND (NOT $5 OR (market, settlement_point, interval_start) > ($6, $7, $8))
		ORDER BY market, settlement_point, interval_start LIMIT $9`,
		string(f.Market), f.SettlementPoint, nullTime(f.From), nullTime(f.To),
		f.After != nil, string(after.Market), after.SettlementPoint, after.Start, lim)
	if err != nil {
		return nil, fmt.Errorf("list prices: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StoredPrice, error) {
		var p StoredPrice
		err := row.Scan(&p.Market, &p.SettlementPoint, &p.Start, &p.IntervalSeconds, &p.Price.Price, &p.Currency, &p.Version,
			&p.Origin.Topic, &p.Origin.Partition, &p.Origin.Offset)
		p.Start = p.Start.UTC()
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("list prices: %w", err)
	}
	return out, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

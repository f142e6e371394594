package readstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/meters"
)

// StoredRead is a current read with the input record it came from.
type StoredRead struct {
	meters.Read
	Origin Origin
}

// ReadFilter selects the reads of one meter: interval starts in [From, To)
// (zero = unbounded), optionally one channel, after a key.
type ReadFilter struct {
	MeterID  string
	Channel  meters.Channel // "" = both
	From, To time.Time
	After    *ReadKey
}

// ReadKey is the key of a read within a meter, for pagination. Version is
// part of it only in listings of every version (ReadVersions); CurrentReads
// ignores it.
type ReadKey struct {
	Start   time.Time      `json:"t"`
	Channel meters.Channel `json:"c"`
	Version int64          `json:"v,omitempty"`
}

// CurrentReads lists the current reads matching f in (start, channel)
// order, at most limit: per interval, the read of highest version among
// the meter's blocks (Current).
func CurrentReads(ctx context.Context, db Querier, f ReadFilter, limit int) ([]StoredRead, error) {
	return listReads(ctx, db, f, limit, "current reads",
		func(blocks []StoredBlock, emit func(StoredRead) bool) {
			stop := false
			Current(blocks, func(b *StoredBlock, i int) {
				if !stop {
					stop = !emit(StoredRead{Read: b.ReadAt(i), Origin: b.Origin})
				}
			})
		},
		func(r *StoredRead) readPos { return readPos{r.Start.Unix(), r.Channel, 0} })
}

// ReadVersions lists every stored version of the reads matching f, in
// (start, channel, version) order, at most limit, each with the record
// that superseded it (nil for the current one).
func ReadVersions(ctx context.Context, db Querier, f ReadFilter, limit int) ([]ReadVersion, error) {
	return listReads(ctx, db, f, limit, "read versions",
		func(blocks []StoredBlock, emit func(ReadVersion) bool) {
			for _, v := range Versions(blocks) {
				if !emit(v) {
					return
				}
			}
		},
		func(v *ReadVersion) readPos { return readPos{v.Start.Unix(), v.Channel, v.Version} })
}

// readPos is a read's place in a listing: (start, channel, version), the
// version 0 where a listing holds one read per interval.
type readPos struct {
	start   int64
	channel meters.Channel
	version int64
}

func cmpPos(a, b readPos) int {
	return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.channel, b.channel), cmp.Compare(a.version, b.version))
}

// readsPerDay sizes listReads's first window: a 15-minute channel's day.
const readsPerDay = 96

// listReads walks one meter's blocks (StreamChannels) forward in windows of
// whole UTC days, doubling, from the first place the filter and the key
// allow, until it holds limit items: a page reads about the blocks it
// answers with, not the meter's whole history. Each window holds every
// block of the reads starting in it, since a block never crosses a UTC day
// (migrations/00800_read_blocks.sql), so resolving versions within a window
// is resolving them in the store. items gets each (meter, channel) group of
// blocks and emits its items in pos order; emit reports whether it wants
// more.
func listReads[T any](ctx context.Context, db Querier, f ReadFilter, limit int, what string,
	items func(blocks []StoredBlock, emit func(T) bool), pos func(*T) readPos) ([]T, error) {
	if limit < 0 {
		return nil, fmt.Errorf("list %s of %s: negative limit %d", what, f.MeterID, limit)
	}
	if limit == 0 {
		return nil, nil
	}
	lo := f.From
	if lo.IsZero() {
		lo = meters.Earliest // no interval starts before it, and the window needs a start
	}
	var after readPos
	if f.After != nil {
		after = readPos{f.After.Start.Unix(), f.After.Channel, f.After.Version}
		if f.After.Start.After(lo) {
			lo = f.After.Start
		}
	}
	if !f.To.IsZero() && !lo.Before(f.To) {
		return nil, nil
	}
	// Where the meter's blocks in range begin and end: the walk starts at
	// the first and stops after the day of the last, also when To is
	// unbounded.
	var first, last *time.Time
	if err := db.QueryRow(ctx, `
		SELECT min(start), max(start) FROM read_blocks
		WHERE meter_id = $1 AND ($2 = '' OR channel = $2) AND start >= $3 AND ($4::timestamptz IS NULL OR start < $4)`,
		f.MeterID, string(f.Channel), time.Unix(utcDay(lo.Unix()), 0).UTC(), nullTime(f.To)).Scan(&first, &last); err != nil {
		return nil, fmt.Errorf("list %s of %s: bounds: %w", what, f.MeterID, err)
	}
	if first == nil || last == nil {
		return nil, nil
	}
	from := max(lo.Unix(), first.Unix())
	end := utcDay(last.Unix()) + secondsPerDay
	if !f.To.IsZero() {
		end = min(end, f.To.Unix())
	}
	days := int64(1 + limit/readsPerDay)
	var out, window []T
	for from < end && len(out) < limit {
		to := min(utcDay(from)+days*secondsPerDay, end)
		need := limit - len(out)
		window = window[:0]
		w := BlockWindow{From: time.Unix(from, 0).UTC(), To: time.Unix(to, 0).UTC(), MeterIDs: []string{f.MeterID}, Channel: f.Channel}
		err := StreamChannels(ctx, db, w, func(blocks []StoredBlock) error {
			n := 0
			items(blocks, func(it T) bool {
				p := pos(&it)
				if p.start < from || p.start >= to || (f.After != nil && cmpPos(p, after) <= 0) {
					return p.start < to
				}
				window = append(window, it)
				n++
				return n < need
			})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list %s of %s: %w", what, f.MeterID, err)
		}
		// Each channel's items are in order; the page interleaves them.
		slices.SortStableFunc(window, func(a, b T) int { return cmpPos(pos(&a), pos(&b)) })
		out = append(out, window[:min(len(window), need)]...)
		from, days = to, 2*days
	}
	return out, nil
}

// StoredPrice is a price with the input record it came from and, in
// listings of every version, the record that superseded it.
type StoredPrice struct {
	meters.Price
	Origin       Origin
	SupersededBy *Origin // nil: current
}

// PriceFilter selects prices in (market, point, start) order: the current
// ones, or with AllVersions every stored version, in (market, point,
// start, version) order.
type PriceFilter struct {
	Market          meters.Market // "" = both
	SettlementPoint string        // "" = all
	From, To        time.Time     // interval starts in [From, To); zero = unbounded
	After           *PriceKey
	AllVersions     bool
}

// PriceKey is the key of a price, for pagination; Version is part of it
// only with AllVersions.
type PriceKey struct {
	Market          meters.Market `json:"m"`
	SettlementPoint string        `json:"s"`
	Start           time.Time     `json:"t"`
	Version         int64         `json:"v,omitempty"`
}

// priceSelect is the current prices matching a filter ($1-$4), as rows of
// a listing of every version.
const priceSelect = `
	SELECT market, settlement_point, interval_start, interval_seconds, price, currency, version, topic, partition, "offset",
	       NULL::text AS superseded_topic, NULL::int AS superseded_partition, NULL::bigint AS superseded_offset
	FROM prices
	WHERE ($1 = '' OR market = $1) AND ($2 = '' OR settlement_point = $2)
	  AND ($3::timestamptz IS NULL OR interval_start >= $3) AND ($4::timestamptz IS NULL OR interval_start < $4)`

// CurrentPrices lists the prices matching f, at most limit (0 = no limit).
func CurrentPrices(ctx context.Context, db Querier, f PriceFilter, limit int) ([]StoredPrice, error) {
	var after PriceKey
	if f.After != nil {
		after = *f.After
	}
	var lim *int
	if limit > 0 {
		lim = &limit
	}
	var rows pgx.Rows
	var err error
	if f.AllVersions {
		// Superseded versions live in price_versions
		// (migrations/00802_price_versions.sql), current ones in prices.
		rows, err = db.Query(ctx, `
			SELECT * FROM (`+priceSelect+`
				UNION ALL
				SELECT market, settlement_point, interval_start, interval_seconds, price, currency, version, topic, partition, "offset",
				       superseded_topic, superseded_partition, superseded_offset
				FROM price_versions
				WHERE ($1 = '' OR market = $1) AND ($2 = '' OR settlement_point = $2)
				  AND ($3::timestamptz IS NULL OR interval_start >= $3) AND ($4::timestamptz IS NULL OR interval_start < $4)
			) p
			WHERE NOT $5 OR (market, settlement_point, interval_start, version) > ($6, $7, $8, $9)
			ORDER BY market, settlement_point, interval_start, version LIMIT $10`,
			string(f.Market), f.SettlementPoint, nullTime(f.From), nullTime(f.To),
			f.After != nil, string(after.Market), after.SettlementPoint, after.Start, after.Version, lim)
	} else {
		rows, err = db.Query(ctx, priceSelect+`
			  AND (NOT $5 OR (market, settlement_point, interval_start) > ($6, $7, $8))
			ORDER BY market, settlement_point, interval_start LIMIT $9`,
			string(f.Market), f.SettlementPoint, nullTime(f.From), nullTime(f.To),
			f.After != nil, string(after.Market), after.SettlementPoint, after.Start, lim)
	}
	if err != nil {
		return nil, fmt.Errorf("list prices: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (StoredPrice, error) {
		var p StoredPrice
		var byTopic *string
		var byPartition *int32
		var byOffset *int64
		err := row.Scan(&p.Market, &p.SettlementPoint, &p.Start, &p.IntervalSeconds, &p.Price.Price, &p.Currency, &p.Version,
			&p.Origin.Topic, &p.Origin.Partition, &p.Origin.Offset, &byTopic, &byPartition, &byOffset)
		p.Start = p.Start.UTC()
		if byTopic != nil && byPartition != nil && byOffset != nil {
			p.SupersededBy = &Origin{Topic: *byTopic, Partition: *byPartition, Offset: *byOffset}
		}
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

package readstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
)

// PriceRecord is one market.prices record of a batch: the price decoded from
// it, or decoding's rejection.
type PriceRecord struct {
	Source
	Price     meters.Price
	Rejection *meters.Rejection // nil when Price is valid
}

// PriceChange is a price whose current value changed: a new price, or a
// correction (higher version) replacing Previous.
type PriceChange struct {
	Price    meters.Price
	Previous *meters.Price // nil for the first price of its key
	Origin   Origin
}

// PricesOutcome is what ApplyPrices did.
type PricesOutcome struct {
	Applied     []int // indexes of the records applied (stale and duplicates included)
	Changes     []PriceChange
	Quarantined []Quarantined
	Stale       int // prices ignored: lower version than the current one
	Duplicates  int // prices ignored: same version and price
}

type pointKey struct {
	market meters.Market
	point  string
}

type priceKey struct {
	pointKey
	start int64
}

type currentPrice struct {
	price  meters.Price
	origin Origin
	stored *Origin
	dirty  bool
}

type priceState struct {
	points     map[string]bool
	lengths    map[pointKey]int
	newLengths []pointKey
	prices     map[priceKey]*currentPrice
	written    []priceKey
	superseded []supersededPrice
}

// supersededPrice is a version a correction of the batch replaced: the
// stored one, or one an earlier record of the batch made current.
type supersededPrice struct {
	currentPrice
	by Origin
}

// ApplyPrices applies a batch of price records inside tx, in slice order,
// like ApplyReads: the settlement point must exist in the registry, the
// currency must be the market's, the (market, point)'s interval length must
// match the first one seen, and versions decide between prices of one key
// (a same-version different price is a conflict). It returns
// ErrConcurrentWrite when a row it read changed before it wrote.
func ApplyPrices(ctx context.Context, tx pgx.Tx, marketCurrency string, recs []PriceRecord) (PricesOutcome, error) {
	var out PricesOutcome
	st, err := loadPriceState(ctx, tx, recs)
	if err != nil {
		return out, err
	}
	for i := range recs {
		r := &recs[i]
		rej := r.Rejection
		if rej == nil {
			rej = st.check(&r.Price, marketCurrency)
		}
		if rej != nil {
			out.Quarantined = append(out.Quarantined, quarantined(r.Source, rej))
			continue
		}
		st.apply(r, &out)
		out.Applied = append(out.Applied, i)
	}
	b := &pgx.Batch{}
	st.queueWrites(b)
	writeQuarantine(b, out.Quarantined)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return PricesOutcome{}, fmt.Errorf("write prices batch: %w", err)
	}
	return out, nil
}

func loadPriceState(ctx context.Context, tx pgx.Tx, recs []PriceRecord) (*priceState, error) {
	st := &priceState{points: map[string]bool{}, lengths: map[pointKey]int{}, prices: map[priceKey]*currentPrice{}}
	seenPoint := map[string]bool{}
	seenKey := map[pointKey]bool{}
	seenPrice := map[priceKey]bool{}
	var points, keyMarkets, keyPoints, pMarkets, pPoints []string
	var pStarts []time.Time
	for i := range recs {
		if recs[i].Rejection != nil {
			continue
		}
		p := &recs[i].Price
		pk := pointKey{p.Market, p.SettlementPoint}
		if !seenPoint[p.SettlementPoint] {
			seenPoint[p.SettlementPoint] = true
			points = append(points, p.SettlementPoint)
		}
		if !seenKey[pk] {
			seenKey[pk] = true
			keyMarkets, keyPoints = append(keyMarkets, string(p.Market)), append(keyPoints, p.SettlementPoint)
		}
		if k := (priceKey{pk, p.Start.Unix()}); !seenPrice[k] {
			seenPrice[k] = true
			pMarkets, pPoints, pStarts = append(pMarkets, string(p.Market)), append(pPoints, p.SettlementPoint), append(pStarts, p.Start)
		}
	}
	if len(points) == 0 {
		return st, nil
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT settlement_point FROM settlement_points WHERE settlement_point = ANY($1::text[])`, points).Query(func(rows pgx.Rows) error {
		var s string
		_, err := pgx.ForEachRow(rows, []any{&s}, func() error {
			st.points[s] = true
			return nil
		})
		return err
	})
	b.Queue(`
		SELECT l.market, l.settlement_point, l.interval_seconds
		FROM unnest($1::text[], $2::text[]) AS k(market, settlement_point)
		JOIN price_lengths l USING (market, settlement_point)`, keyMarkets, keyPoints,
	).Query(func(rows pgx.Rows) error {
		var k pointKey
		var n int
		_, err := pgx.ForEachRow(rows, []any{&k.market, &k.point, &n}, func() error {
			st.lengths[k] = n
			return nil
		})
		return err
	})
	b.Queue(`
		SELECT p.market, p.settlement_point, p.interval_start, p.interval_seconds, p.price, p.currency, p.version,
		       p.topic, p.partition, p."offset"
		FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS k(market, settlement_point, interval_start)
		JOIN prices p USING (market, settlement_point, interval_start)`, pMarkets, pPoints, pStarts,
	).Query(func(rows pgx.Rows) error {
		var p meters.Price
		var o Origin
		_, err := pgx.ForEachRow(rows, []any{&p.Market, &p.SettlementPoint, &p.Start, &p.IntervalSeconds, &p.Price,
			&p.Currency, &p.Version, &o.Topic, &o.Partition, &o.Offset}, func() error {
			p.Start = p.Start.UTC()
			stored := o
			st.prices[priceKey{pointKey{p.Market, p.SettlementPoint}, p.Start.Unix()}] = &currentPrice{price: p, origin: o, stored: &stored}
			return nil
		})
		return err
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("load state of prices batch: %w", err)
	}
	return st, nil
}

// check runs the checks that need state, in the contract's order.
func (st *priceState) check(p *meters.Price, marketCurrency string) *meters.Rejection {
	if !st.points[p.SettlementPoint] {
		return &meters.Rejection{Reason: meters.UnknownSettlementPoint,
			Detail: fmt.Sprintf("settlement_point: %s is not in the registry", p.SettlementPoint)}
	}
	if p.Currency != marketCurrency {
		return &meters.Rejection{Reason: meters.CurrencyMismatch,
			Detail: fmt.Sprintf("currency: %s, the market settles in %s", p.Currency, marketCurrency)}
	}
	pk := pointKey{p.Market, p.SettlementPoint}
	if n, ok := st.lengths[pk]; ok && n != p.IntervalSeconds {
		return &meters.Rejection{Reason: meters.IntervalLengthMismatch,
			Detail: fmt.Sprintf("interval_seconds: %s %s prices have %d-second intervals, the record has %d", p.Market, p.SettlementPoint, n, p.IntervalSeconds)}
	}
	if c := st.prices[priceKey{pk, p.Start.Unix()}]; c != nil && c.price.Version == p.Version && !c.price.Price.Equal(p.Price) {
		return &meters.Rejection{Reason: meters.ConflictingDuplicate,
			Detail: fmt.Sprintf("price: version %d of %s %s at %s is %s, the record has %s",
				p.Version, p.Market, p.SettlementPoint, p.Start.Format(time.RFC3339), c.price.Price, p.Price)}
	}
	return nil
}

func (st *priceState) apply(r *PriceRecord, out *PricesOutcome) {
	p := r.Price
	pk := pointKey{p.Market, p.SettlementPoint}
	if _, ok := st.lengths[pk]; !ok {
		st.lengths[pk] = p.IntervalSeconds
		st.newLengths = append(st.newLengths, pk)
	}
	k := priceKey{pk, p.Start.Unix()}
	c := st.prices[k]
	switch {
	case c != nil && p.Version < c.price.Version:
		out.Stale++
		return
	case c != nil && p.Version == c.price.Version:
		out.Duplicates++ // check ruled out a conflict
		return
	}
	var prev *meters.Price
	if c == nil {
		c = &currentPrice{}
		st.prices[k] = c
	} else {
		was := c.price
		prev = &was
		st.superseded = append(st.superseded, supersededPrice{currentPrice: currentPrice{price: was, origin: c.origin}, by: r.Origin})
	}
	if !c.dirty {
		c.dirty = true
		st.written = append(st.written, k)
	}
	c.price, c.origin = p, r.Origin
	out.Changes = append(out.Changes, PriceChange{Price: p, Previous: prev, Origin: r.Origin})
}

// queueWrites writes the final current prices, the versions they superseded
// and new lengths, guarded like readState.queueWrites.
func (st *priceState) queueWrites(b *pgx.Batch) {
	var ins, upd priceColumns
	for _, k := range st.written {
		c := st.prices[k]
		if c.stored == nil {
			ins.add(c)
		} else {
			upd.add(c)
		}
	}
	if ins.n > 0 {
		b.Queue(`
			INSERT INTO prices (market, settlement_point, interval_start, interval_seconds, price, currency, version, topic, partition, "offset")
			SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::numeric[], $6::text[], $7::bigint[],
			                     $8::text[], $9::int[], $10::bigint[])
			ON CONFLICT DO NOTHING`, ins.args()...,
		).Exec(expectRows("insert new prices", ins.n))
	}
	if upd.n > 0 {
		b.Queue(`
			UPDATE prices p SET interval_seconds = u.interval_seconds, price = u.price, currency = u.currency, version = u.version,
			       topic = u.topic, partition = u.partition, "offset" = u."offset"
			FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::numeric[], $6::text[], $7::bigint[],
			            $8::text[], $9::int[], $10::bigint[], $11::text[], $12::int[], $13::bigint[])
			     AS u(market, settlement_point, interval_start, interval_seconds, price, currency, version, topic, partition, "offset",
			          was_topic, was_partition, was_offset)
			WHERE p.market = u.market AND p.settlement_point = u.settlement_point AND p.interval_start = u.interval_start
			  AND p.topic = u.was_topic AND p.partition = u.was_partition AND p."offset" = u.was_offset`,
			append(upd.args(), upd.wasTopic, upd.wasPartition, upd.wasOffset)...,
		).Exec(expectRows("update corrected prices", upd.n))
	}
	// After the guarded writes: a batch that lost a race fails there with
	// ErrConcurrentWrite, not here on the key of a version both superseded.
	if n := len(st.superseded); n > 0 {
		var old priceColumns
		byTopic, byPartition, byOffset := make([]string, n), make([]int32, n), make([]int64, n)
		for i := range st.superseded {
			s := &st.superseded[i]
			old.add(&s.currentPrice)
			byTopic[i], byPartition[i], byOffset[i] = s.by.Topic, s.by.Partition, s.by.Offset
		}
		b.Queue(`
			INSERT INTO price_versions (market, settlement_point, interval_start, interval_seconds, price, currency, version,
			                            topic, partition, "offset", superseded_topic, superseded_partition, superseded_offset)
			SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::numeric[], $6::text[], $7::bigint[],
			                     $8::text[], $9::int[], $10::bigint[], $11::text[], $12::int[], $13::bigint[])`,
			append(old.args(), byTopic, byPartition, byOffset)...)
	}
	if n := len(st.newLengths); n > 0 {
		ms, ps, ls := make([]string, n), make([]string, n), make([]int32, n)
		for i, k := range st.newLengths {
			ms[i], ps[i], ls[i] = string(k.market), k.point, int32(st.lengths[k])
		}
		b.Queue(`
			INSERT INTO price_lengths (market, settlement_point, interval_seconds)
			SELECT * FROM unnest($1::text[], $2::text[], $3::int[]) ON CONFLICT DO NOTHING`, ms, ps, ls,
		).Exec(expectRows("insert price lengths", n))
	}
}

type priceColumns struct {
	n                                int
	market, point, currency, topic   []string
	start                            []time.Time
	seconds, partition, wasPartition []int32
	price                            []decimal.Decimal
	version, offset, wasOffset       []int64
	wasTopic                         []string
}

func (c *priceColumns) add(p *currentPrice) {
	c.n++
	c.market = append(c.market, string(p.price.Market))
	c.point = append(c.point, p.price.SettlementPoint)
	c.start = append(c.start, p.price.Start)
	c.seconds = append(c.seconds, int32(p.price.IntervalSeconds))
	c.price = append(c.price, p.price.Price)
	c.currency = append(c.currency, p.price.Currency)
	c.version = append(c.version, p.price.Version)
	c.topic = append(c.topic, p.origin.Topic)
	c.partition = append(c.partition, p.origin.Partition)
	c.offset = append(c.offset, p.origin.Offset)
	if p.stored != nil {
		c.wasTopic = append(c.wasTopic, p.stored.Topic)
		c.wasPartition = append(c.wasPartition, p.stored.Partition)
		c.wasOffset = append(c.wasOffset, p.stored.Offset)
	}
}

func (c *priceColumns) args() []any {
	return []any{c.market, c.point, c.start, c.seconds, c.price, c.currency, c.version, c.topic, c.partition, c.offset}
}

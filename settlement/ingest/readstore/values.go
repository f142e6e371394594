package readstore

import (
	"context"
	"fmt"
	"time"

	"github.com/gridsettle/gridsettle/meters"
)

// ValueKey names one read: (meter, channel, interval start in unix seconds).
type ValueKey struct {
	MeterID string
	Channel meters.Channel
	Start   int64
}

// CurrentValues looks up the current read of each key, in one query: its
// value in micro-kWh at the key's index, NoRead where the key has none.
// Each key is one bounded range of read_blocks_key (a block holding a read
// starting at t starts in [UTC day of t, t]), so the cost is that of the
// keys, not of the days between them: runs ask it for like days
// (settlement/postgres/energy.go) without scanning the weeks in between.
func CurrentValues(ctx context.Context, db Querier, keys []ValueKey) ([]int64, error) {
	out := make([]int64, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	ms, cs := make([]string, len(keys)), make([]string, len(keys))
	ats, days := make([]time.Time, len(keys)), make([]time.Time, len(keys))
	for i, k := range keys {
		out[i] = NoRead
		ms[i], cs[i] = k.MeterID, string(k.Channel)
		ats[i], days[i] = time.Unix(k.Start, 0).UTC(), time.Unix(utcDay(k.Start), 0).UTC()
	}
	// The value's index within a block is whole seconds from the block's
	// start over its interval length; a read of another alignment is not
	// the key's. Of the blocks holding a read there, the highest version's
	// is current (Current).
	rows, err := db.Query(ctx, `
		SELECT k.i, v.micro
		FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) WITH ORDINALITY
		     AS k(meter_id, channel, at, day, i)
		CROSS JOIN LATERAL (
			SELECT b.values_micro[x.s / b.interval_seconds + 1] AS micro
			FROM read_blocks b
			CROSS JOIN LATERAL (SELECT extract(epoch FROM k.at - b.start)::bigint AS s) x
			WHERE b.meter_id = k.meter_id AND b.channel = k.channel AND b.start >= k.day AND b.start <= k.at
			  AND x.s % b.interval_seconds = 0
			  AND b.values_micro[x.s / b.interval_seconds + 1] IS NOT NULL
			ORDER BY b.version DESC
			LIMIT 1) v`, ms, cs, ats, days)
	if err != nil {
		return nil, fmt.Errorf("look up %d reads: %w", len(keys), err)
	}
	defer rows.Close()
	for rows.Next() {
		var i, micro int64
		if err := rows.Scan(&i, &micro); err != nil {
			return nil, fmt.Errorf("look up %d reads: %w", len(keys), err)
		}
		out[i-1] = micro
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up %d reads: %w", len(keys), err)
	}
	return out, nil
}

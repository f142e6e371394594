package readstore

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
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
// Keys are grouped by (meter, channel, UTC day), and each group is one
// bounded range of read_blocks_key, [UTC day, its last key] (a block
// holding a read starting at t starts in [UTC day of t, t]), so the cost
// is that of the keys, not of the days between them: runs ask it for like
// days (settlement/postgres) without scanning the weeks in between.
func CurrentValues(ctx context.Context, db Querier, keys []ValueKey) ([]int64, error) {
	out := make([]int64, len(keys))
	for i := range out {
		out[i] = NoRead
	}
	if len(keys) == 0 {
		return out, nil
	}
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		x, y := &keys[a], &keys[b]
		return cmp.Or(cmp.Compare(x.MeterID, y.MeterID), cmp.Compare(x.Channel, y.Channel), cmp.Compare(x.Start, y.Start))
	})
	// groups[g] are the indexes (into order) of group g's keys.
	var groups [][2]int
	var ms, cs []string
	var days, lasts []time.Time
	for lo := 0; lo < len(order); {
		k := &keys[order[lo]]
		hi := lo + 1
		for hi < len(order) {
			n := &keys[order[hi]]
			if n.MeterID != k.MeterID || n.Channel != k.Channel || utcDay(n.Start) != utcDay(k.Start) {
				break
			}
			hi++
		}
		groups = append(groups, [2]int{lo, hi})
		ms, cs = append(ms, k.MeterID), append(cs, string(k.Channel))
		days = append(days, time.Unix(utcDay(k.Start), 0).UTC())
		lasts = append(lasts, time.Unix(keys[order[hi-1]].Start, 0).UTC())
		lo = hi
	}
	rows, err := db.Query(ctx, `SELECT b.*, k.g FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[])
		     WITH ORDINALITY AS k(meter_id, channel, day, last, g)
		CROSS JOIN LATERAL (SELECT `+blockColumns+` FROM read_blocks b
			WHERE b.meter_id = k.meter_id AND b.channel = k.channel AND b.start >= k.day AND b.start <= k.last) b`,
		binaryResults, ms, cs, days, lasts)
	if err != nil {
		return nil, fmt.Errorf("look up %d reads: %w", len(keys), err)
	}
	defer rows.Close()
	blocks := make([][]StoredBlock, len(groups))
	for rows.Next() {
		raw := rows.RawValues()
		if len(raw) != 12 || len(raw[11]) != 8 {
			return nil, fmt.Errorf("look up %d reads: %w", len(keys), errBlockShape)
		}
		b, err := scanBlock(raw[:11])
		if err != nil {
			return nil, fmt.Errorf("look up %d reads: %w", len(keys), err)
		}
		g := int64(binary.BigEndian.Uint64(raw[11])) - 1
		if g < 0 || g >= int64(len(groups)) {
			return nil, fmt.Errorf("look up %d reads: %w", len(keys), errBlockShape)
		}
		blocks[g] = append(blocks[g], b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up %d reads: %w", len(keys), err)
	}
	for g, r := range groups {
		for _, i := range order[r[0]:r[1]] {
			out[i] = currentAt(blocks[g], keys[i].Start)
		}
	}
	return out, nil
}

// currentAt is the value of the current read starting at t among blocks
// (those of one channel): that of the highest version holding one, as
// Current resolves it; NoRead when none does.
func currentAt(blocks []StoredBlock, t int64) int64 {
	v, version := int64(NoRead), int64(-1)
	for i := range blocks {
		b := &blocks[i]
		d := t - b.Start
		if d < 0 || d%b.IntervalSeconds != 0 || d/b.IntervalSeconds >= int64(len(b.Values)) {
			continue
		}
		if x := b.Values[d/b.IntervalSeconds]; x != NoRead && b.Version > version {
			v, version = x, b.Version
		}
	}
	return v
}

package postgres

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// The pure part of estimation (settlement/postgres/doc.go and
// settlement/README.md "Which intervals are missing", "Methods"):
// given one channel's current reads around a day, which channel intervals
// of the day are missing, and which of them linear interpolation settles.
// The rest are like-day requests, answered by key after the day's stream
// (energy.go), and zero when no like day has a read.

// method is how an estimate was made.
type method byte

const (
	methodLIN method = 'L'
	methodLDY method = 'D'
	methodZER method = 'Z'
	// methodPending is an estimate not yet answered by a like day.
	methodPending method = '?'
)

// String is the method's name in run_estimates and the API.
func (m method) String() string {
	switch m {
	case methodLIN:
		return settlement.MethodLinear
	case methodLDY:
		return settlement.MethodLikeDay
	case methodZER:
		return settlement.MethodZero
	}
	return "pending"
}

// likeDayWeeks are the like-day offsets, in order: exact UTC weeks.
const likeDayWeeks = 4

const secondsPerWeek = 7 * 86400

// chanRead is one current read of a channel: its start (unix seconds) and
// value (micro-kWh).
type chanRead struct {
	start, micro int64
}

// chanDay is one channel as its day's estimation sees it.
type chanDay struct {
	len int64 // channel interval length, seconds
	// lo and hi bound the starts of the channel intervals of the day
	// (unix seconds, exclusive both): an aligned t with lo < t < hi maps
	// onto at least one settlement interval of the day.
	lo, hi int64
	// reads are the channel's current reads by start, at least those
	// starting within maxLinearSeconds + len of (lo, hi).
	reads []chanRead
	// covered says whether an assignment of the meter covers t.
	covered func(t int64) bool
}

// chanEstimate is one estimated channel interval: LIN with its value, or
// pending (like day, else zero).
type chanEstimate struct {
	start, micro int64
	method       method
}

// readAt is the index of the read starting at t, or -1.
func (c *chanDay) readAt(t int64) int {
	if i, ok := slices.BinarySearchFunc(c.reads, t, func(r chanRead, t int64) int { return cmp.Compare(r.start, t) }); ok {
		return i
	}
	return -1
}

func (c *chanDay) missing(t int64) bool { return c.readAt(t) < 0 && c.covered(t) }

// estimate appends the missing channel intervals of the day to out, in
// start order: LIN with its value where the gap allows it, else pending.
// Its cost is one pass over the day's intervals plus, per gap, at most
// maxLinearSeconds/len steps on either side.
func (c *chanDay) estimate(maxLinearSeconds int64, out []chanEstimate) []chanEstimate {
	maxN := maxLinearSeconds / c.len
	first := meters.Floor(c.lo, c.len) + c.len
	next := 0 // reads[next] is the first read starting at or after t
	for t := first; t < c.hi; t += c.len {
		for next < len(c.reads) && c.reads[next].start < t {
			next++
		}
		if next < len(c.reads) && c.reads[next].start == t || !c.covered(t) {
			continue
		}
		// t starts a gap's part in the day: measure the whole gap, as far
		// as LIN can reach.
		before := int64(0)
		b := t - c.len
		for before <= maxN && c.missing(b) {
			before++
			b -= c.len
		}
		after := int64(0)
		a := t + c.len
		for before+1+after <= maxN && c.missing(a) {
			after++
			a += c.len
		}
		n := before + 1 + after
		if n <= maxN {
			if vb, va := c.neighbour(b), c.neighbour(a); vb >= 0 && va >= 0 {
				for k := before + 1; k <= n && t < c.hi; k++ {
					out = append(out, chanEstimate{start: t, micro: interpolate(vb, va, k, n), method: methodLIN})
					t += c.len
				}
				t -= c.len // the loop's step
				continue
			}
		}
		// Not linear: every missing interval of this gap in the day is
		// estimated on its own.
		for ; t < c.hi && c.missing(t); t += c.len {
			out = append(out, chanEstimate{start: t, method: methodPending})
		}
		t -= c.len
	}
	return out
}

// neighbour is the value of the read bounding a gap at t, or -1 when the
// interval is no neighbour (no read there, or no assignment covers it).
func (c *chanDay) neighbour(t int64) int64 {
	i := c.readAt(t)
	if i < 0 || !c.covered(t) {
		return -1
	}
	return c.reads[i].micro
}

// interpolate is the k-th of n interpolated values between vb and va
// (micro-kWh): round_half_even(vb + (va − vb)·k/(n+1)) micro-kWh, which is
// the contract's rounding to 6 places of kWh. Values are at most 10^12
// (maxReadMicro) and n+1 at most settlement.MaxLinearLimit over the
// shortest channel length, 300 s, plus one: 2017, so nothing overflows.
func interpolate(vb, va, k, n int64) int64 {
	q, _ := meters.SplitNano(vb*(n+1)+(va-vb)*k, n+1) // the half-even quotient
	return q
}

// likeDayBatch bounds the keys of one like-day look-up.
const likeDayBatch = 100_000

// answerLikeDays settles the pending estimates of made: each takes the
// value of its channel's current read exactly 1, else 2, 3, 4 weeks
// earlier (LDY), else zero (ZER). lookup gives the current value of each
// key, readstore.NoRead for none; it is asked once per week back (in
// batches of at most likeDayBatch), for only the estimates still pending.
func answerLikeDays(made []madeEstimate, lookup func([]readstore.ValueKey) ([]int64, error)) error {
	var pending []int // indexes into made
	for i := range made {
		if made[i].method == methodPending {
			pending = append(pending, i)
		}
	}
	var keys []readstore.ValueKey
	for w := int64(1); w <= likeDayWeeks && len(pending) > 0; w++ {
		var rest []int
		for lo := 0; lo < len(pending); lo += likeDayBatch {
			batch := pending[lo:min(lo+likeDayBatch, len(pending))]
			keys = keys[:0]
			for _, i := range batch {
				m := &made[i]
				keys = append(keys, readstore.ValueKey{MeterID: m.meter, Channel: m.channel, Start: m.startUnix - w*secondsPerWeek})
			}
			vals, err := lookup(keys)
			if err != nil {
				return fmt.Errorf("like days %d weeks back: %w", w, err)
			}
			for k, i := range batch {
				if vals[k] == readstore.NoRead {
					rest = append(rest, i)
					continue
				}
				made[i].microKWh, made[i].method = vals[k], methodLDY
			}
		}
		pending = rest
	}
	for _, i := range pending {
		made[i].method = methodZER
	}
	return nil
}

package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/exact"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// Estimation inside a run (settlement/README.md "Estimation of missing reads
// (VEE)"): while the day's blocks stream (energy.go), each channel's reads of
// the window give its missing channel intervals and the LIN ones their value
// (estimate.go); after the stream, channels with no block in the window are
// estimated too, the rest is answered by like days, one keyed look-up per week
// back for only the intervals still unanswered (readstore.CurrentValues), and
// what is left is ZER. Every estimate then enters the sums through the kernel a
// read takes (mapRead), flagged by its method so that it never counts as a
// read.

// dayEstimates is the estimation state of one run's day.
type dayEstimates struct {
	maxLinearSeconds int64

	channels map[string]*meterChannels // channels of the meters with an assignment in the window
	reads    []chanRead                // the streamed channel's current reads, reused
	buf      []chanEstimate            // reused
	made     []madeEstimate            // every estimate of the day
}

// meterChannels are the lengths (meters/README.md "the first interval length
// seen", channel_lengths) of a meter's import and export channels, 0 when
// unknown, and whether the stream saw the channel.
type meterChannels struct {
	len  [2]int64
	seen [2]bool
}

func channelIndex(c meters.Channel) int {
	if c == meters.Export {
		return 1
	}
	return 0
}

var channelOf = [2]meters.Channel{meters.Import, meters.Export}

// madeEstimate is one estimated channel interval of the day.
type madeEstimate struct {
	meter   string
	channel meters.Channel

	startUnix, lenSeconds, microKWh int64

	method method
	a      *assignment // covering start
}

// loadChannels reads the channel lengths of the meters assigned in the
// window.
func (e *dayEstimates) loadChannels(ctx context.Context, tx pgx.Tx, assigned map[string][]assignment) error {
	rows, err := tx.Query(ctx, `SELECT meter_id, channel, interval_seconds FROM channel_lengths`)
	if err != nil {
		return fmt.Errorf("read channel lengths: %w", err)
	}
	e.channels = make(map[string]*meterChannels, len(assigned))
	var (
		meter, channel string
		secs           int32
	)
	_, err = pgx.ForEachRow(rows, []any{&meter, &channel, &secs}, func() error {
		if assigned[meter] == nil {
			return nil
		}
		if secs <= 0 || secs > maxReadSeconds {
			return fmt.Errorf("channel %s/%s has an interval length of %d s", meter, channel, secs)
		}
		mc := e.channels[meter]
		if mc == nil {
			mc = &meterChannels{}
			e.channels[meter] = mc
		}
		mc.len[channelIndex(meters.Channel(channel))] = int64(secs)
		return nil
	})
	if err != nil {
		return fmt.Errorf("read channel lengths: %w", err)
	}
	return nil
}

// estimateChannel estimates the missing channel intervals of the day of one
// channel from its current reads of the window, in start order: LIN ones
// enter the sums at once, the others wait for like days.
func (d *dayReads) estimateChannel(meter string, channel meters.Channel, as []assignment, reads []chanRead) error {
	mc := d.est.channels[meter]
	if mc == nil {
		return nil
	}
	ci := channelIndex(channel)
	mc.seen[ci] = true
	if mc.len[ci] == 0 {
		return nil
	}
	cd := chanDay{
		len: mc.len[ci], lo: unixOfPG(d.firstMicros) - mc.len[ci], hi: unixOfPG(d.endMicros), reads: reads,
		covered: func(t int64) bool { return coverAt(as, t*1e6-exact.PGEpochMicros) != nil },
	}
	d.est.buf = cd.estimate(d.est.maxLinearSeconds, d.est.buf[:0])
	for _, ce := range d.est.buf {
		e := madeEstimate{meter: meter, channel: channel, startUnix: ce.start, lenSeconds: cd.len, microKWh: ce.micro,
			method: ce.method, a: coverAt(as, ce.start*1e6-exact.PGEpochMicros)}
		d.est.made = append(d.est.made, e)
		if e.method == methodLIN {
			if err := d.applyEstimate(&e); err != nil {
				return err
			}
		}
	}
	return nil
}

func unixOfPG(us int64) int64 { return (us + exact.PGEpochMicros) / 1e6 }

// applyEstimate adds an estimate to the sums as the read it stands for
// would be, at the scale a stored read of its value counts at.
func (d *dayReads) applyEstimate(e *madeEstimate) error {
	err := d.mapRead(e.a, e.startUnix*1e6-exact.PGEpochMicros, e.lenSeconds, e.microKWh*1000, int8(readstore.ShortestScale(e.microKWh)),
		e.channel == meters.Export, byte(e.method))
	if err != nil {
		return fmt.Errorf("estimate of %s/%s at %d: %w", e.meter, e.channel, e.startUnix, err)
	}
	return nil
}

// estimateRest estimates the channels the stream did not see (no block in
// the window), answers the pending estimates by like day or zero, and adds
// them to the sums.
func (d *dayReads) estimateRest(ctx context.Context, tx pgx.Tx) error {
	var unseen []string
	for meter, mc := range d.est.channels {
		if !mc.seen[0] || !mc.seen[1] {
			unseen = append(unseen, meter)
		}
	}
	slices.Sort(unseen)
	for _, meter := range unseen {
		mc := d.est.channels[meter]
		for ci, seen := range mc.seen {
			if !seen {
				if err := d.estimateChannel(meter, channelOf[ci], d.meters[meter], nil); err != nil {
					return err
				}
			}
		}
	}
	lookup := func(keys []readstore.ValueKey) ([]int64, error) { return readstore.CurrentValues(ctx, tx, keys) }
	if err := answerLikeDays(d.est.made, lookup); err != nil {
		return err
	}
	for i := range d.est.made {
		if e := &d.est.made[i]; e.method != methodLIN {
			if err := d.applyEstimate(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// countEstimate counts one estimated channel interval by its method.
func countEstimate(c *settlement.EstimateCounts, m method) {
	switch m {
	case methodLIN:
		c.LIN++
	case methodLDY:
		c.LDY++
	case methodZER:
		c.ZER++
	}
}

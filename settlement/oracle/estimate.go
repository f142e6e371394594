package oracle

import (
	"cmp"
	"slices"
	"time"

	"github.com/shopspring/decimal"
)

// Estimation methods, in the order settlement/README.md "Estimation of missing
// reads (VEE)" tries them.
const (
	MethodLinear  = "LIN"
	MethodLikeDay = "LDY"
	MethodZero    = "ZER"
)

// Estimate is one channel interval of a run's day that the run settles on
// an estimate: a run_estimates row (estimates.parquet).
type Estimate struct {
	MeterID         string
	Channel         string
	Start           time.Time // UTC
	IntervalSeconds int64
	ValueKWh        decimal.Decimal // the whole channel interval's, 6 decimal places
	Method          string          // MethodLinear, MethodLikeDay or MethodZero
	// The assignment covering Start.
	AccountID       string
	ParticipantID   string
	SettlementPoint string
	LossFactor      decimal.Decimal
}

// week is the like-day step: exact UTC weeks, whatever the time zone does.
const week = 7 * 24 * 3600

// channel is one meter channel whose interval length is known.
type channel struct {
	meter, name string
	length      int64
}

// estimates are the estimates of the run of the operating day whose
// settlement intervals start in [from, to), by meter, channel and start.
func (s *State) estimates(from, to int64) []Estimate {
	if s.o.m.Estimation.Off {
		return nil
	}
	chs := make([]channel, 0, len(s.channelLen))
	for k, length := range s.channelLen {
		chs = append(chs, channel{k[0], k[1], length})
	}
	slices.SortFunc(chs, func(a, b channel) int { return cmp.Or(cmp.Compare(a.meter, b.meter), cmp.Compare(a.name, b.name)) })
	var out []Estimate
	for _, ch := range chs {
		// The channel intervals of the day are consecutive; run collects
		// the missing ones in a row.
		var run []int64
		for t := floorTo(from, ch.length) - ch.length; t < to; t += ch.length {
			if !s.o.inDay(t, ch.length, from, to) {
				continue
			}
			if s.missing(ch, t) {
				run = append(run, t)
				continue
			}
			out = s.estimateRun(out, ch, run)
			run = nil
		}
		out = s.estimateRun(out, ch, run)
	}
	return out
}

// inDay reports whether a read [start, start+length) has a piece in a
// settlement interval starting in [from, to).
func (o *Oracle) inDay(start, length, from, to int64) bool {
	for _, p := range o.split(start, length, decimal.Zero) {
		if from <= p.t && p.t < to {
			return true
		}
	}
	return false
}

// missing reports whether the channel interval at t has no current read
// while an assignment of the meter covers t.
func (s *State) missing(ch channel, t int64) bool {
	return s.Reads[ReadKey{ch.meter, ch.name, t}] == nil && s.o.reg.assignment(ch.meter, t) >= 0
}

// missingFrom counts the missing channel intervals at t+step, t+2·step, …
// up to limit of them: a gap beyond the longest linear one needs no exact
// length (an open-ended assignment of a silent meter has no end).
func (s *State) missingFrom(ch channel, t, step, limit int64) int64 {
	var n int64
	for n < limit && s.missing(ch, t+(n+1)*step) {
		n++
	}
	return n
}

// neighbour is the value of the current read at t, when it exists and an
// assignment covers t: a bound of a linear gap.
func (s *State) neighbour(ch channel, t int64) (decimal.Decimal, bool) {
	r := s.Reads[ReadKey{ch.meter, ch.name, t}]
	if r == nil || s.o.reg.assignment(ch.meter, t) < 0 {
		return decimal.Decimal{}, false
	}
	return r.Value, true
}

// likeDay is the value of the channel's current read 1, 2, 3 or 4 weeks
// before t, the first that exists.
func (s *State) likeDay(ch channel, t int64) (decimal.Decimal, bool) {
	for w := int64(1); w <= 4; w++ {
		if r := s.Reads[ReadKey{ch.meter, ch.name, t - w*week}]; r != nil {
			return r.Value, true
		}
	}
	return decimal.Decimal{}, false
}

// estimateRun appends the estimates of run, consecutive missing channel
// intervals of the day, to out. The gap holding run may go on beyond the
// day on either side.
func (s *State) estimateRun(out []Estimate, ch channel, run []int64) []Estimate {
	if len(run) == 0 {
		return out
	}
	maxN := int64(s.o.m.Estimation.MaxLinear/time.Second) / ch.length
	n := int64(len(run))
	var back int64 // missing intervals of the gap before run
	var vBefore, vAfter decimal.Decimal
	linear := false
	if n <= maxN {
		back = s.missingFrom(ch, run[0], -ch.length, maxN-n+1)
		fwd := s.missingFrom(ch, run[len(run)-1], ch.length, maxN-n-back+1)
		if n += back + fwd; n <= maxN {
			var okBefore, okAfter bool
			vBefore, okBefore = s.neighbour(ch, run[0]-(back+1)*ch.length)
			vAfter, okAfter = s.neighbour(ch, run[len(run)-1]+(fwd+1)*ch.length)
			linear = okBefore && okAfter
		}
	}
	for i, t := range run {
		e := Estimate{MeterID: ch.meter, Channel: ch.name, Start: time.Unix(t, 0).UTC(), IntervalSeconds: ch.length,
			Method: MethodZero, ValueKWh: roundHalfEven(decimal.Zero, 6)}
		if linear {
			// The k-th of n: v_before + (v_after − v_before) × k / (n+1),
			// rounded once.
			k := decimal.NewFromInt(back + int64(i) + 1)
			num := vBefore.Mul(decimal.NewFromInt(n + 1)).Add(vAfter.Sub(vBefore).Mul(k))
			e.Method, e.ValueKWh = MethodLinear, divHalfEven(num, n+1, 6)
		} else if v, ok := s.likeDay(ch, t); ok {
			e.Method, e.ValueKWh = MethodLikeDay, roundHalfEven(v, 6)
		}
		a := s.o.reg.Meters[ch.meter][s.o.reg.assignment(ch.meter, t)]
		e.AccountID, e.ParticipantID, e.SettlementPoint, e.LossFactor = a.AccountID, a.ParticipantID, a.SettlementPoint, a.LossFactor
		out = append(out, e)
	}
	return out
}

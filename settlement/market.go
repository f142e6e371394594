package settlement

import (
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
)

// Market is the configuration of the market being settled.
type Market struct {
	Location            *time.Location  // market time zone, e.g. America/Chicago
	Currency            string          // ISO 4217, e.g. USD
	IntervalSeconds     int             // settlement interval length L: 300, 900, 1800 or 3600
	PriceSpikeThreshold decimal.Decimal // per MWh; price_spike alerts fire at or above it
	Estimation          Estimation      // how runs estimate missing reads; the zero value is the default, standard
}

// DefaultMaxLinear is --estimation-max-linear's default (settlement/README.md
// "Estimation of missing reads (VEE)").
const DefaultMaxLinear = time.Hour

// MaxLinearLimit bounds --estimation-max-linear: a run reads the reads of
// that long on both sides of its day, and interpolating across a week is
// no estimate of a meter's use any more.
const MaxLinearLimit = 7 * 24 * time.Hour

// Estimation is how runs estimate missing reads (settlement/README.md
// "Estimation of missing reads (VEE)"): the zero value is what users expect by
// default, `--estimation standard` with linear interpolation up to an hour.
type Estimation struct {
	// Off is `--estimation none`: missing intervals contribute nothing.
	Off bool
	// MaxLinear is `--estimation-max-linear`, the longest gap interpolated
	// linearly; 0 means DefaultMaxLinear.
	MaxLinear time.Duration
}

// MaxLinearGap is the longest gap interpolated linearly.
func (e Estimation) MaxLinearGap() time.Duration {
	if e.MaxLinear == 0 {
		return DefaultMaxLinear
	}
	return e.MaxLinear
}

// Interval is the settlement interval length.
func (m Market) Interval() time.Duration { return time.Duration(m.IntervalSeconds) * time.Second }

// Day is an operating day: a calendar date in the market time zone.
type Day struct {
	Year  int
	Month time.Month
	Day   int
}

// ParseDay parses YYYY-MM-DD.
func ParseDay(s string) (Day, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Day{}, fmt.Errorf("operating day %q is not YYYY-MM-DD", s)
	}
	return Day{t.Year(), t.Month(), t.Day()}, nil
}

// String formats the day as YYYY-MM-DD.
func (d Day) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// AddDays returns the day n calendar days later.
func (d Day) AddDays(n int) Day {
	t := time.Date(d.Year, d.Month, d.Day+n, 0, 0, 0, 0, time.UTC)
	return Day{t.Year(), t.Month(), t.Day()}
}

// Before reports whether d is earlier than e.
func (d Day) Before(e Day) bool { return d.String() < e.String() }

// Bounds is [00:00 local on d, 00:00 local on d+1) as UTC instants.
func (m Market) Bounds(d Day) (start, end time.Time) {
	start = time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, m.Location).UTC()
	end = time.Date(d.Year, d.Month, d.Day+1, 0, 0, 0, 0, m.Location).UTC()
	return start, end
}

// ErrDayOutOfRange is a day no run can settle: its intervals reach past
// 9999-12-31T23:59:59Z, the last instant RFC 3339 (JSON, the API, the
// messages) can write.
var ErrDayOutOfRange = errors.New("operating day out of range")

// lastEnd is the end of the last instant RFC 3339 can write.
var lastEnd = time.Date(10000, time.January, 1, 0, 0, 0, 0, time.UTC)

// CheckDay reports ErrDayOutOfRange for a day whose settlement intervals
// cannot all be written: 9999-12-31 in a zone west of UTC ends in year
// 10000.
func (m Market) CheckDay(d Day) error {
	if _, end := m.Bounds(d); end.After(lastEnd) {
		return fmt.Errorf("%w: %s in %s ends at %s, after 9999-12-31T23:59:59Z", ErrDayOutOfRange, d, m.Location,
			end.Format("2006-01-02T15:04Z07:00"))
	}
	return nil
}

// Intervals are the starts of the settlement intervals of d: those aligned
// starts (epoch seconds divisible by L) that lie in d's bounds. 96 on an
// ordinary day at 15 minutes, 92 on spring-forward, 100 on fall-back.
func (m Market) Intervals(d Day) []time.Time {
	start, end := m.Bounds(d)
	L := int64(m.IntervalSeconds)
	s := start.Unix()
	first := meters.Ceil(s, L)
	var out []time.Time
	for t := first; t < end.Unix(); t += L {
		out = append(out, time.Unix(t, 0).UTC())
	}
	return out
}

// DayOf is the operating day holding the instant t.
func (m Market) DayOf(t time.Time) Day {
	l := t.In(m.Location)
	return Day{l.Year(), l.Month(), l.Day()}
}

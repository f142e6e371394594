package settlement

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RunType is the kind of a settlement run.
type RunType string

// The run types of the contract. Initial, Final and TrueUp are scheduled;
// Resettlement is only ever started by an operator.
const (
	Initial      RunType = "initial"
	Final        RunType = "final"
	TrueUp       RunType = "true-up"
	Resettlement RunType = "resettlement"
)

// RunTypes lists every run type, scheduled ones in their natural order.
var RunTypes = []RunType{Initial, Final, TrueUp, Resettlement}

// ParseRunType accepts one of the contract's run type names.
func ParseRunType(s string) (RunType, error) {
	if slices.Contains(RunTypes, RunType(s)) {
		return RunType(s), nil
	}
	return "", fmt.Errorf("run type %q is not one of initial, final, true-up, resettlement", s)
}

// RunID is the id of the run of day with that type and version, e.g.
// run-2026-11-01-final-2.
func RunID(day Day, t RunType, version int) string {
	return fmt.Sprintf("run-%s-%s-%d", day, t, version)
}

// Lag is an ISO 8601 duration (PnYnMnWnDTnHnMnS, no fractions, no sign).
// Its calendar part is applied in the market time zone, so P5D after a
// local midnight is again a local midnight across a DST change.
type Lag struct {
	Years, Months, Days int
	Clock               time.Duration // the T part
	text                string
}

var lagRE = regexp.MustCompile(`^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$`)

// ParseLag parses an ISO 8601 duration such as P5D, P55D or PT36H.
func ParseLag(s string) (Lag, error) {
	m := lagRE.FindStringSubmatch(s)
	if m == nil || s == "P" || strings.HasSuffix(s, "T") {
		return Lag{}, fmt.Errorf("lag %q is not an ISO 8601 duration like P5D or PT12H", s)
	}
	n := make([]int, len(m))
	for i := 1; i < len(m); i++ {
		if m[i] == "" {
			continue
		}
		v, err := strconv.Atoi(m[i])
		if err != nil || v > 100000 {
			return Lag{}, fmt.Errorf("lag %q: component %q out of range", s, m[i])
		}
		n[i] = v
	}
	return Lag{
		Years: n[1], Months: n[2], Days: n[3]*7 + n[4],
		Clock: time.Duration(n[5])*time.Hour + time.Duration(n[6])*time.Minute + time.Duration(n[7])*time.Second,
		text:  s,
	}, nil
}

// String is the lag as it was written.
func (l Lag) String() string { return l.text }

// After is t plus the lag, the calendar part counted in loc.
func (l Lag) After(t time.Time, loc *time.Location) time.Time {
	return t.In(loc).AddDate(l.Years, l.Months, l.Days).Add(l.Clock).UTC()
}

// Schedule says how long after the end of an operating day each scheduled
// run type becomes due.
type Schedule []ScheduledRun

// ScheduledRun is one scheduled run type and its lag.
type ScheduledRun struct {
	Type RunType
	Lag  Lag
}

// DefaultSchedule is the ERCOT timeline: initial P5D, final P55D, true-up
// P180D after the end of the operating day.
func DefaultSchedule() Schedule {
	s, err := ParseSchedule("initial=P5D,final=P55D,true-up=P180D")
	if err != nil {
		panic(err) // a constant that parses
	}
	return s
}

// ParseSchedule parses the --run-lags form "initial=P5D,final=P55D,true-up=P180D".
// Each scheduled type appears at most once; resettlement is never scheduled.
func ParseSchedule(s string) (Schedule, error) {
	var out Schedule
	for part := range strings.SplitSeq(s, ",") {
		name, lag, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("run lag %q is not type=duration", part)
		}
		t, err := ParseRunType(name)
		if err != nil || t == Resettlement {
			return nil, fmt.Errorf("run lag %q: %q is not a scheduled run type (initial, final, true-up)", part, name)
		}
		l, err := ParseLag(lag)
		if err != nil {
			return nil, fmt.Errorf("run lag for %s: %w", t, err)
		}
		if slices.ContainsFunc(out, func(r ScheduledRun) bool { return r.Type == t }) {
			return nil, fmt.Errorf("run lag for %s given twice", t)
		}
		out = append(out, ScheduledRun{Type: t, Lag: l})
	}
	return out, nil
}

// DueAt is when a run with lag becomes due for day d: lag after the local
// midnight that ends d.
func (m Market) DueAt(d Day, lag Lag) time.Time {
	_, end := m.Bounds(d)
	return lag.After(end, m.Location)
}

package postgres

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// retryEvery is how often Run looks for runs left unexported when no
// schedule is configured (runs another instance completed while its
// exports were failing), or when the schedule names no time ahead; it also
// caps the backoff of a failing export.
const retryEvery = 15 * time.Minute

// firesFrom and firesWithin are where a schedule must fire to be accepted.
// Cron has no year field, so one that fires at all fires within any five
// years that hold a 29 February (the window from this fixed instant does;
// a window across 2100 would need eight). The library's own search gives up
// after five years and answers the zero time, which a loop waiting for it
// would take as "now", for ever.
var firesFrom = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

const firesWithin = 5 // years

// ParseSchedule parses an export schedule: a standard cron expression (5
// fields, or a descriptor such as @hourly or @every 1h) that fires in loc,
// the market's time zone, unless it starts with CRON_TZ=ZONE (or TZ=ZONE)
// and a space. The zone prefix is checked here because the cron library
// slices it unchecked: "CRON_TZ=America/Chicago" alone makes it panic, and an
// empty zone silently means UTC. A schedule that never fires (0 0 30 2 *)
// is refused: whether it fires is checked in the zone it fires in, the
// prefix's when it has one.
func ParseSchedule(spec string, loc *time.Location) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New("empty cron expression")
	}
	if name, ok := zonePrefix(spec); ok {
		zone, rest, _ := strings.Cut(spec, " ")
		if zone == spec || strings.TrimSpace(rest) == "" {
			return nil, fmt.Errorf("%s names a time zone but no schedule: write %s followed by a space and 5 fields (or @hourly, @every 1h…)", zone, zone)
		}
		if name == "" || name == "Local" {
			return nil, fmt.Errorf("%s: name an IANA time zone such as CRON_TZ=America/Chicago", zone)
		}
		if _, err := time.LoadLocation(name); err != nil {
			return nil, fmt.Errorf("%s: %q is not an IANA time zone such as America/Chicago", zone, name)
		}
	} else {
		if loc == nil {
			return nil, errors.New("no time zone for the export schedule")
		}
		spec = "CRON_TZ=" + loc.String() + " " + spec
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("not a cron expression (5 fields, or @hourly, @every 1h…): %w", err)
	}
	if next := s.Next(firesFrom); next.IsZero() || next.After(firesFrom.AddDate(firesWithin, 0, 0)) {
		return nil, fmt.Errorf("never fires: no time in %d years matches it (a day such as 30 February does not exist)", firesWithin)
	}
	return s, nil
}

// zonePrefix reports whether spec starts with CRON_TZ= or TZ=, and the zone
// name that follows (up to the first space).
func zonePrefix(spec string) (string, bool) {
	for _, p := range []string{"CRON_TZ=", "TZ="} {
		if rest, ok := strings.CutPrefix(spec, p); ok {
			name, _, _ := strings.Cut(rest, " ")
			return name, true
		}
	}
	return "", false
}

// untilNext is the wait from now to the schedule's next activation, and
// whether it has one ahead: when it has none (the zero time of a schedule
// that never fires, or a time not after now) the wait is retryEvery, so
// that a bad schedule slows exports down instead of spinning the loop.
func untilNext(s cron.Schedule, now time.Time) (time.Duration, bool) {
	next := s.Next(now)
	if !next.After(now) {
		return retryEvery, false
	}
	return next.Sub(now), true
}

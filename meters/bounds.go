package meters

import "time"

// Default future bounds of an input's start (meters/README.md, the `start` rows
// of both input topics).
const (
	DefaultMaxFuture       = 15 * time.Minute   // a read exists only once its interval has ended
	DefaultMaxFuturePrices = 7 * 24 * time.Hour // day-ahead prices are published ahead
)

// Earliest is the earliest instant any input interval may start at.
var Earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Bounds are the time bounds of start_out_of_range: every read interval must
// end at or before Now()+MaxFuture, a price must start before
// Now()+MaxFuturePrices, and everything starts at or after Earliest. The
// zero value means the defaults and the wall clock.
type Bounds struct {
	MaxFuture       time.Duration    // 0: DefaultMaxFuture
	MaxFuturePrices time.Duration    // 0: DefaultMaxFuturePrices
	Now             func() time.Time // nil: time.Now
}

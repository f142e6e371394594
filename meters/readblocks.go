package meters

import (
	"fmt"

	"github.com/shopspring/decimal"
)

// MaxBlockValues is the most values one ami.interval-reads record may hold
// (meters/README.md).
const MaxBlockValues = 10000

// maxKWh is the largest read value of the contract.
var maxKWh = decimal.NewFromInt(1_000_000)

// CheckKWh tells whether v can travel as a read value: 0 ≤ v ≤ 1,000,000
// with at most 6 decimal places (trailing zeros do not count). It returns a
// value_out_of_range or too_many_decimals Rejection, or nil.
func CheckKWh(v decimal.Decimal) *Rejection {
	if v.Sign() < 0 || v.GreaterThan(maxKWh) {
		return &Rejection{Reason: ValueOutOfRange, Detail: fmt.Sprintf("%s kWh is outside 0 to 1000000", v)}
	}
	if !AtMostDecimals(v, MaxDecimals) {
		return &Rejection{Reason: TooManyDecimals, Detail: fmt.Sprintf("%s kWh has more than 6 decimal places", v)}
	}
	return nil
}

// GroupReads packs reads into ReadBlocks: consecutive reads of one meter
// channel (same length, version and source, each starting where the previous
// ended) share a block of at most MaxBlockValues values. reads must be ordered
// by meter, channel and start; a gap, a change of any of those, or a full
// block starts a new block. Quality never splits a block: it is per value.
func GroupReads(reads []Read) []ReadBlock {
	var out []ReadBlock
	for _, r := range reads {
		if n := len(out); n > 0 {
			b := &out[n-1]
			if b.MeterID == r.MeterID && b.Channel == r.Channel &&
				b.IntervalSeconds == r.IntervalSeconds && b.Version == r.Version &&
				b.Source == r.Source && b.End().Equal(r.Start) && len(b.Values) < MaxBlockValues {
				b.Values = append(b.Values, r.Value)
				b.Quality = append(b.Quality, r.Quality)
				continue
			}
		}
		out = append(out, ReadBlock{
			MeterID: r.MeterID, Channel: r.Channel, Start: r.Start.UTC(),
			IntervalSeconds: r.IntervalSeconds,
			Values:          []decimal.Decimal{r.Value}, Quality: []Quality{r.Quality},
			Version: r.Version, Source: r.Source,
		})
	}
	return out
}

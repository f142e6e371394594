package meters

import (
	"time"

	"github.com/shopspring/decimal"
)

// Channel is the direction of energy flow a read measures.
type Channel string

// The channels of the contract.
const (
	Import Channel = "import" // delivered to the premises
	Export Channel = "export" // received from the premises (rooftop solar, a battery)
)

// Quality is a read's data-quality code.
type Quality string

// The quality codes of the contract.
const (
	Actual      Quality = "A"
	Estimated   Quality = "E"
	Substituted Quality = "S"
)

// Market names which price series a price belongs to.
type Market string

// The markets of the contract; only RT prices are used for settlement.
const (
	RealTime Market = "RT"
	DayAhead Market = "DA"
)

// ReadBlock is one record of the ami.interval-reads topic: consecutive
// interval reads of one meter channel. It expands into len(Values) reads.
type ReadBlock struct {
	MeterID         string
	Channel         Channel
	Start           time.Time // UTC, aligned to IntervalSeconds
	IntervalSeconds int
	Values          []decimal.Decimal // kWh, exact; nil when decoded with Decoder.MicroOnly
	// Micro are the values in micro-kWh (values have at most 6 decimal
	// places by value), as the decoder read them; nil for a block built
	// otherwise.
	Micro   []int64
	Quality []Quality // same length as Values
	Version int64
	Source  string
}

// Len is the number of values: of Values, or of Micro when the block was
// decoded without decimals (Decoder.MicroOnly).
func (b ReadBlock) Len() int {
	if b.Values == nil {
		return len(b.Micro)
	}
	return len(b.Values)
}

// End is the end of the block's last interval.
func (b ReadBlock) End() time.Time {
	return b.Start.Add(time.Duration(b.Len()*b.IntervalSeconds) * time.Second)
}

// Read is one interval read, identified by (MeterID, Channel, Start).
type Read struct {
	MeterID         string
	Channel         Channel
	Start           time.Time
	IntervalSeconds int
	Value           decimal.Decimal // kWh
	Quality         Quality
	Version         int64
	Source          string
}

// Reads expands the block into its individual reads (of Values: none for
// a block decoded with Decoder.MicroOnly).
func (b ReadBlock) Reads() []Read {
	out := make([]Read, len(b.Values))
	step := time.Duration(b.IntervalSeconds) * time.Second
	for i, v := range b.Values {
		out[i] = Read{
			MeterID: b.MeterID, Channel: b.Channel,
			Start:           b.Start.Add(time.Duration(i) * step),
			IntervalSeconds: b.IntervalSeconds,
			Value:           v, Quality: b.Quality[i],
			Version: b.Version, Source: b.Source,
		}
	}
	return out
}

// Price is one record of the market.prices topic, identified by
// (Market, SettlementPoint, Start).
type Price struct {
	Market          Market
	SettlementPoint string
	Start           time.Time // UTC, aligned to IntervalSeconds
	IntervalSeconds int
	Price           decimal.Decimal // currency per MWh, may be negative
	Currency        string
	Version         int64
}

// Participant is a market participant the market settles with.
type Participant struct {
	ParticipantID string `json:"participant_id"`
	Name          string `json:"name"`
}

// SettlementPoint is a hub, zone or node with its own price.
type SettlementPoint struct {
	SettlementPoint string `json:"settlement_point"`
	Name            string `json:"name"`
	Kind            string `json:"kind"` // hub, zone or node
}

// Account is the customer a meter serves.
type Account struct {
	AccountID         string           `json:"account_id"`
	Name              string           `json:"name"`
	DailyKWhThreshold *decimal.Decimal `json:"daily_kwh_threshold"` // nil: no alert
	MonthlyBudget     *decimal.Decimal `json:"monthly_budget"`      // nil: no alert
	PriceAlerts       bool             `json:"price_alerts"`
}

// Assignment is one effective-dated meter row of the registry: over
// [EffectiveFrom, EffectiveTo) the meter serves AccountID and is settled with
// ParticipantID at SettlementPoint, its energy scaled by LossFactor.
type Assignment struct {
	MeterID         string          `json:"meter_id"`
	AccountID       string          `json:"account_id"`
	ParticipantID   string          `json:"participant_id"`
	SettlementPoint string          `json:"settlement_point"`
	LossFactor      decimal.Decimal `json:"loss_factor"`
	EffectiveFrom   time.Time       `json:"effective_from"`
	EffectiveTo     *time.Time      `json:"effective_to"` // nil: open-ended
}

// Covers reports whether the assignment is in force at t (half-open).
func (a Assignment) Covers(t time.Time) bool {
	return !t.Before(a.EffectiveFrom) && (a.EffectiveTo == nil || t.Before(*a.EffectiveTo))
}

package alerts

import (
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
)

// Type is an alert type of settlement/alerts/README.md.
type Type string

// The alert types.
const (
	DailyUsage    Type = "daily_usage"
	MonthlyBudget Type = "monthly_budget"
	PriceSpike    Type = "price_spike"
	NegativePrice Type = "negative_price"
	MissingData   Type = "missing_data"
)

// Data-quality labels a customer sees.
const (
	QualityActual    = "actual"
	QualityEstimated = "estimated"
)

// Alert is one customer-facing alert, as published to alerts.customer.
type Alert struct {
	AlertID      string     `json:"alert_id"`
	Type         Type       `json:"type"`
	AccountID    string     `json:"account_id"`
	MeterID      string     `json:"meter_id,omitempty"`
	OperatingDay string     `json:"operating_day,omitempty"`
	Month        string     `json:"month,omitempty"`
	SettlementPt string     `json:"settlement_point,omitempty"`
	GapStart     *time.Time `json:"gap_start,omitempty"`
	Observed     string     `json:"observed"`
	Threshold    string     `json:"threshold"`
	Unit         string     `json:"unit"`
	DataQuality  string     `json:"data_quality"`
	EventTime    time.Time  `json:"event_time"`
	Message      string     `json:"message"`
}

// Schema is the gridsettle-schema header of alert records.
const Schema = "alerts.customer/v1"

// DailyUsageID is the identity of the daily_usage alert of an account's
// operating day (YYYY-MM-DD).
func DailyUsageID(accountID, operatingDay string) string {
	return string(DailyUsage) + "/" + accountID + "/" + operatingDay
}

// MonthlyBudgetID is the identity of the monthly_budget alert of an
// account's local calendar month (YYYY-MM).
func MonthlyBudgetID(accountID, month string) string {
	return string(MonthlyBudget) + "/" + accountID + "/" + month
}

// PriceID is the identity of the price_spike or negative_price alert of an
// account's operating day.
func PriceID(t Type, accountID, operatingDay string) string {
	return string(t) + "/" + accountID + "/" + operatingDay
}

// MissingDataID is the identity of the missing_data alert of a meter whose
// last read ended at gapStart (RFC 3339, UTC).
func MissingDataID(meterID string, gapStart time.Time) string {
	return string(MissingData) + "/" + meterID + "/" + gapStart.UTC().Format(time.RFC3339)
}

// Locale is what a message needs to speak the customer's language: the market
// time zone for local times and the currency for money.
type Locale struct {
	Location *time.Location
	Currency string
}

func quality(allActual bool) string {
	if allActual {
		return QualityActual
	}
	return QualityEstimated
}

func estimatedNote(allActual bool) string {
	if allActual {
		return ""
	}
	return " This figure includes estimated readings and may change when actual readings arrive."
}

// Usage is an account's import energy on one operating day.
type Usage struct {
	AccountID    string
	OperatingDay string          // YYYY-MM-DD
	KWh          decimal.Decimal // current import reads, all the account's meters, raw kWh
	AllActual    bool
	EventTime    time.Time // end of the latest interval behind the figure
}

// CheckDailyUsage returns the daily_usage alert when u reaches threshold.
func CheckDailyUsage(u Usage, threshold decimal.Decimal, loc Locale) (Alert, bool) {
	if u.KWh.LessThan(threshold) {
		return Alert{}, false
	}
	day := dayLabel(u.OperatingDay)
	return Alert{
		AlertID:      DailyUsageID(u.AccountID, u.OperatingDay),
		Type:         DailyUsage,
		AccountID:    u.AccountID,
		OperatingDay: u.OperatingDay,
		Observed:     u.KWh.StringFixedBank(6),
		Threshold:    threshold.String(),
		Unit:         "kWh",
		DataQuality:  quality(u.AllActual),
		EventTime:    u.EventTime.UTC(),
		Message: fmt.Sprintf("Your electricity use on %s reached %s kWh, above your alert level of %s kWh.%s",
			day, u.KWh.RoundBank(1).StringFixedBank(1), threshold.String(), estimatedNote(u.AllActual)),
	}, true
}

// Spend is an account's month-to-date provisional energy cost.
type Spend struct {
	AccountID string
	Month     string          // YYYY-MM, local calendar month
	Amount    decimal.Decimal // Σ amount(m,t) over priced intervals, exact
	AllActual bool
	EventTime time.Time
}

// CheckMonthlyBudget returns the monthly_budget alert when s reaches budget.
func CheckMonthlyBudget(s Spend, budget decimal.Decimal, loc Locale) (Alert, bool) {
	if s.Amount.LessThan(budget) {
		return Alert{}, false
	}
	m, _ := time.Parse("2006-01", s.Month)
	return Alert{
		AlertID:     MonthlyBudgetID(s.AccountID, s.Month),
		Type:        MonthlyBudget,
		AccountID:   s.AccountID,
		Month:       s.Month,
		Observed:    s.Amount.RoundBank(2).StringFixedBank(2),
		Threshold:   budget.String(),
		Unit:        loc.Currency,
		DataQuality: quality(s.AllActual),
		EventTime:   s.EventTime.UTC(),
		Message: fmt.Sprintf("Your estimated electricity cost for %s has reached %s, which meets or exceeds your monthly budget of %s.%s",
			m.Format("January 2006"), money(s.Amount, loc.Currency), money(budget, loc.Currency), estimatedNote(s.AllActual)),
	}, true
}

// PriceEvent is an RT settlement price in one interval at a point where the
// account has a meter assigned during that operating day.
type PriceEvent struct {
	AccountID       string
	OperatingDay    string
	SettlementPoint string
	IntervalStart   time.Time
	IntervalEnd     time.Time
	Price           decimal.Decimal // per MWh
}

// CheckPrice returns the price_spike alert when the price reaches threshold,
// or the negative_price alert when it is below zero.
func CheckPrice(p PriceEvent, threshold decimal.Decimal, loc Locale) (Alert, bool) {
	var t Type
	var msg string
	local := p.IntervalStart.In(loc.Location)
	when := fmt.Sprintf("%s at %s", local.Format("Mon 2 Jan 2006"), local.Format("3:04 PM"))
	switch {
	case p.Price.GreaterThanOrEqual(threshold):
		t = PriceSpike
		msg = fmt.Sprintf("Electricity prices in your area are very high on %s: %s. "+
			"Using less electricity around then will lower your costs.", when, perKWh(p.Price, loc.Currency))
	case p.Price.IsNegative():
		t = NegativePrice
		msg = fmt.Sprintf("Electricity prices in your area drop below zero on %s: %s. "+
			"It is a good time to charge a battery or an electric vehicle.", when, perKWh(p.Price, loc.Currency))
	default:
		return Alert{}, false
	}
	thr := threshold.String()
	if t == NegativePrice {
		thr = "0"
	}
	return Alert{
		AlertID:      PriceID(t, p.AccountID, p.OperatingDay),
		Type:         t,
		AccountID:    p.AccountID,
		OperatingDay: p.OperatingDay,
		SettlementPt: p.SettlementPoint,
		Observed:     p.Price.StringFixedBank(6),
		Threshold:    thr,
		Unit:         loc.Currency + "/MWh",
		DataQuality:  QualityActual,
		EventTime:    p.IntervalEnd.UTC(),
		Message:      msg,
	}, true
}

// Silence is a meter's gap in event time: the end of its last read and the
// event-time watermark of the meter's own input partition.
type Silence struct {
	MeterID   string
	AccountID string
	LastEnd   time.Time // end of the meter's last read: the gap's start
	Watermark time.Time
}

// CheckMissingData returns the missing_data alert when the meter has been
// silent for at least window of event time.
func CheckMissingData(s Silence, window time.Duration, loc Locale) (Alert, bool) {
	gap := s.Watermark.Sub(s.LastEnd)
	if gap < window {
		return Alert{}, false
	}
	start := s.LastEnd.UTC()
	local := start.In(loc.Location)
	return Alert{
		AlertID:     MissingDataID(s.MeterID, start),
		Type:        MissingData,
		AccountID:   s.AccountID,
		MeterID:     s.MeterID,
		GapStart:    &start,
		Observed:    hours(gap),
		Threshold:   hours(window),
		Unit:        "hours",
		DataQuality: QualityActual,
		EventTime:   s.Watermark.UTC(),
		Message: fmt.Sprintf("We have not received readings from your meter %s since %s on %s. "+
			"Your usage figures may be incomplete until the data arrives.",
			s.MeterID, local.Format("3:04 PM"), local.Format("Mon 2 Jan 2006")),
	}, true
}

func hours(d time.Duration) string {
	return meters.DivRoundBank(decimal.NewFromInt(int64(d/time.Second)), 3600, 2).StringFixedBank(2)
}

func dayLabel(day string) string {
	t, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return day
	}
	return t.Format("Mon 2 Jan 2006")
}

var symbols = map[string]string{"USD": "$", "AUD": "A$", "CAD": "C$", "EUR": "€", "GBP": "£"}

// money formats an amount for a customer: $52.10, or "52.10 CHF".
func money(v decimal.Decimal, currency string) string {
	s := v.RoundBank(2).StringFixedBank(2)
	sym, ok := symbols[currency]
	if !ok {
		return s + " " + currency
	}
	if neg, ok := strings.CutPrefix(s, "-"); ok {
		return "-" + sym + neg
	}
	return sym + s
}

// perKWh turns a price per MWh into the unit a customer knows: cents (or the
// currency's minor unit) per kWh, with two decimals. 1 per MWh is 0.1 minor
// units per kWh.
func perKWh(perMWh decimal.Decimal, currency string) string {
	cents := perMWh.Shift(-1).RoundBank(2).StringFixedBank(2)
	switch currency {
	case "USD", "AUD", "CAD":
		return cents + "¢/kWh"
	case "EUR":
		return cents + " euro cents/kWh"
	case "GBP":
		return cents + "p/kWh"
	}
	return perMWh.String() + " " + currency + "/MWh"
}

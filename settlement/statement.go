package settlement

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"
)

// Output scales of the contract: energies (MWh and kWh) have 6 places,
// money 2.
const (
	EnergyScale = 6
	MoneyScale  = 2
)

// MWh is the settlement energy of net kWh at a loss factor:
// kWh × loss factor / 1000, exact.
func MWh(netKWh, lossFactor decimal.Decimal) decimal.Decimal {
	return netKWh.Mul(lossFactor).Shift(-3)
}

// Interval is one settlement interval of one (participant, settlement
// point): the summed settlement energy of its meters and the point's
// settlement price.
type Interval struct {
	Start          time.Time
	MWh            decimal.Decimal     // Σ_m mwh(m,t), exact
	Price          decimal.NullDecimal // invalid: unpriced
	ActualReads    int                 // reads of quality A contributing to the interval
	EstimatedReads int                 // reads of quality E or S contributing to the interval
	// EstimatedMWh is the part of MWh that gridsettle's own estimates
	// contribute (settlement/README.md "Estimation of missing reads (VEE)"),
	// exact; GridsettleEstimatedReads counts those estimates, as ActualReads
	// counts reads.
	EstimatedMWh             decimal.Decimal
	GridsettleEstimatedReads int
}

// Amount is MWh × price, exact; invalid when the interval is unpriced.
func (i Interval) Amount() decimal.NullDecimal {
	if !i.Price.Valid {
		return decimal.NullDecimal{}
	}
	return decimal.NullDecimal{Decimal: i.MWh.Mul(i.Price.Decimal), Valid: true}
}

// ReadCounts are current reads counted by quality, and the channel
// intervals gridsettle estimated, by method (settlement/README.md "Estimation
// of missing reads (VEE)").
type ReadCounts struct {
	Actual              int            `json:"actual"`
	Estimated           int            `json:"estimated"`
	Substituted         int            `json:"substituted"`
	GridsettleEstimated EstimateCounts `json:"gridsettle_estimated"`
}

// EstimateCounts are channel intervals estimated by gridsettle, by method.
type EstimateCounts struct {
	LIN int `json:"LIN"`
	LDY int `json:"LDY"`
	ZER int `json:"ZER"`
}

// LineFigures are the settled figures of one statement line.
type LineFigures struct {
	EnergyMWh          decimal.Decimal // Σ over every interval, half-even to 6 places
	UnpricedEnergyMWh  decimal.Decimal // Σ over unpriced intervals, half-even to 6 places
	EstimatedEnergyMWh decimal.Decimal // Σ of gridsettle's estimates over every interval, half-even to 6 places (included in EnergyMWh)
	Amount             decimal.Decimal // Σ of priced amounts, half-even to 2 places
	Intervals          int
	PricedIntervals    int
}

// LineFiguresOf settles a line from every settlement interval of its day
// (all of them, with or without energy): the sums are exact and each is
// rounded once, half-even.
func LineFiguresOf(intervals []Interval) LineFigures {
	energy, unpriced, amount, estimated := decimal.Zero, decimal.Zero, decimal.Zero, decimal.Zero
	priced := 0
	for _, iv := range intervals {
		energy = energy.Add(iv.MWh)
		estimated = estimated.Add(iv.EstimatedMWh)
		if a := iv.Amount(); a.Valid {
			priced++
			amount = amount.Add(a.Decimal)
		} else {
			unpriced = unpriced.Add(iv.MWh)
		}
	}
	return LineFigures{
		EnergyMWh:          energy.RoundBank(EnergyScale),
		UnpricedEnergyMWh:  unpriced.RoundBank(EnergyScale),
		EstimatedEnergyMWh: estimated.RoundBank(EnergyScale),
		Amount:             amount.RoundBank(MoneyScale),
		Intervals:          len(intervals),
		PricedIntervals:    priced,
	}
}

// ChargeFigures are the settled figures of one account charge.
type ChargeFigures struct {
	ImportKWh    decimal.Decimal
	ExportKWh    decimal.Decimal
	NetKWh       decimal.Decimal
	EstimatedKWh decimal.Decimal // included in NetKWh (settlement/README.md "Estimation of missing reads (VEE)")
	EnergyCost   decimal.Decimal
}

// ChargeFiguresOf settles an account charge from its exact sums: raw kWh
// imported and exported after mapping onto settlement intervals (before the
// loss factor), estimates included, the exact net kWh of gridsettle's
// estimates (import − export), and the exact amount over priced intervals.
func ChargeFiguresOf(importKWh, exportKWh, estimatedKWh, pricedAmount decimal.Decimal) ChargeFigures {
	imp, exp := importKWh.RoundBank(EnergyScale), exportKWh.RoundBank(EnergyScale)
	return ChargeFigures{
		ImportKWh:    imp,
		ExportKWh:    exp,
		NetKWh:       imp.Sub(exp),
		EstimatedKWh: estimatedKWh.RoundBank(EnergyScale),
		EnergyCost:   pricedAmount.RoundBank(MoneyScale),
	}
}

// RunRef identifies the run a statement line or charge belongs to.
type RunRef struct {
	RunID           string
	Day             Day
	Type            RunType
	Version         int
	PreviousVersion *int // the latest earlier completed version of Day; nil for the first
	Currency        string
	ComputedAt      time.Time
}

// StatementID is {settlement_point}/{participant_id}/{operating_day}/{version}.
func StatementID(point, participant string, day Day, version int) string {
	return fmt.Sprintf("%s/%s/%s/%d", point, participant, day, version)
}

// ChargeID is {account_id}/{participant_id}/{operating_day}/{version}.
func ChargeID(account, participant string, day Day, version int) string {
	return fmt.Sprintf("%s/%s/%s/%d", account, participant, day, version)
}

// StatementLine is one line of a run's statement: participant × settlement
// point × operating day × version (meters/README.md settlement.statement/v1).
type StatementLine struct {
	StatementID     string
	ParticipantID   string
	SettlementPoint string
	Run             RunRef
	LineFigures
	PreviousEnergyMWh decimal.Decimal
	PreviousAmount    decimal.Decimal
	DeltaEnergyMWh    decimal.Decimal
	DeltaAmount       decimal.Decimal
	Reads             ReadCounts
}

// Line builds the statement line of (participant, point) in run r from its
// figures and the previous version's (zero when the line is new).
func (r RunRef) Line(participant, point string, fig LineFigures, reads ReadCounts, prevEnergyMWh, prevAmount decimal.Decimal) StatementLine {
	return StatementLine{
		StatementID:       StatementID(point, participant, r.Day, r.Version),
		ParticipantID:     participant,
		SettlementPoint:   point,
		Run:               r,
		LineFigures:       fig,
		PreviousEnergyMWh: prevEnergyMWh,
		PreviousAmount:    prevAmount,
		DeltaEnergyMWh:    fig.EnergyMWh.Sub(prevEnergyMWh),
		DeltaAmount:       fig.Amount.Sub(prevAmount),
		Reads:             reads,
	}
}

// AccountCharge is one account's settled energy and cost with one
// participant for one operating day and version (settlement.account-charge/v1).
type AccountCharge struct {
	ChargeID      string
	AccountID     string
	ParticipantID string
	Run           RunRef
	ChargeFigures
	PreviousEnergyCost decimal.Decimal
	DeltaEnergyCost    decimal.Decimal
}

// Charge builds the account charge of (account, participant) in run r.
func (r RunRef) Charge(account, participant string, fig ChargeFigures, prevCost decimal.Decimal) AccountCharge {
	return AccountCharge{
		ChargeID:           ChargeID(account, participant, r.Day, r.Version),
		AccountID:          account,
		ParticipantID:      participant,
		Run:                r,
		ChargeFigures:      fig,
		PreviousEnergyCost: prevCost,
		DeltaEnergyCost:    fig.EnergyCost.Sub(prevCost),
	}
}

func energy(d decimal.Decimal) string { return d.StringFixedBank(EnergyScale) }
func money(d decimal.Decimal) string  { return d.StringFixedBank(MoneyScale) }

// StatementMessage is a statement line exactly as published on
// settlement.statements (settlement.statement/v1) and served by the API:
// decimals as strings with their fixed scale, fields in the contract's order.
type StatementMessage struct {
	StatementID        string     `json:"statement_id"`
	ParticipantID      string     `json:"participant_id"`
	SettlementPoint    string     `json:"settlement_point"`
	OperatingDay       string     `json:"operating_day"`
	RunType            RunType    `json:"run_type"`
	Version            int        `json:"version"`
	PreviousVersion    *int       `json:"previous_version"`
	Currency           string     `json:"currency"`
	EnergyMWh          string     `json:"energy_mwh"`
	Amount             string     `json:"amount"`
	UnpricedEnergyMWh  string     `json:"unpriced_energy_mwh"`
	PreviousEnergyMWh  string     `json:"previous_energy_mwh"`
	PreviousAmount     string     `json:"previous_amount"`
	DeltaEnergyMWh     string     `json:"delta_energy_mwh"`
	DeltaAmount        string     `json:"delta_amount"`
	Intervals          int        `json:"intervals"`
	PricedIntervals    int        `json:"priced_intervals"`
	EstimatedEnergyMWh string     `json:"estimated_energy_mwh"`
	Reads              ReadCounts `json:"reads"`
	RunID              string     `json:"run_id"`
	ComputedAt         time.Time  `json:"computed_at"`
}

// Message is the line's published form.
func (l StatementLine) Message() StatementMessage {
	return StatementMessage{
		StatementID:        l.StatementID,
		ParticipantID:      l.ParticipantID,
		SettlementPoint:    l.SettlementPoint,
		OperatingDay:       l.Run.Day.String(),
		RunType:            l.Run.Type,
		Version:            l.Run.Version,
		PreviousVersion:    l.Run.PreviousVersion,
		Currency:           l.Run.Currency,
		EnergyMWh:          energy(l.EnergyMWh),
		Amount:             money(l.Amount),
		UnpricedEnergyMWh:  energy(l.UnpricedEnergyMWh),
		PreviousEnergyMWh:  energy(l.PreviousEnergyMWh),
		PreviousAmount:     money(l.PreviousAmount),
		DeltaEnergyMWh:     energy(l.DeltaEnergyMWh),
		DeltaAmount:        money(l.DeltaAmount),
		Intervals:          l.Intervals,
		PricedIntervals:    l.PricedIntervals,
		EstimatedEnergyMWh: energy(l.EstimatedEnergyMWh),
		Reads:              l.Reads,
		RunID:              l.Run.RunID,
		ComputedAt:         l.Run.ComputedAt.UTC(),
	}
}

// ChargeMessage is an account charge exactly as published on
// settlement.account-charges (settlement.account-charge/v1) and served by
// the API.
type ChargeMessage struct {
	ChargeID           string  `json:"charge_id"`
	AccountID          string  `json:"account_id"`
	ParticipantID      string  `json:"participant_id"`
	OperatingDay       string  `json:"operating_day"`
	RunType            RunType `json:"run_type"`
	Version            int     `json:"version"`
	ImportKWh          string  `json:"import_kwh"`
	ExportKWh          string  `json:"export_kwh"`
	NetKWh             string  `json:"net_kwh"`
	EstimatedKWh       string  `json:"estimated_kwh"`
	EnergyCost         string  `json:"energy_cost"`
	PreviousEnergyCost string  `json:"previous_energy_cost"`
	DeltaEnergyCost    string  `json:"delta_energy_cost"`
	Currency           string  `json:"currency"`
}

// Message is the charge's published form.
func (c AccountCharge) Message() ChargeMessage {
	return ChargeMessage{
		ChargeID:           c.ChargeID,
		AccountID:          c.AccountID,
		ParticipantID:      c.ParticipantID,
		OperatingDay:       c.Run.Day.String(),
		RunType:            c.Run.Type,
		Version:            c.Run.Version,
		ImportKWh:          energy(c.ImportKWh),
		ExportKWh:          energy(c.ExportKWh),
		NetKWh:             energy(c.NetKWh),
		EstimatedKWh:       energy(c.EstimatedKWh),
		EnergyCost:         money(c.EnergyCost),
		PreviousEnergyCost: money(c.PreviousEnergyCost),
		DeltaEnergyCost:    money(c.DeltaEnergyCost),
		Currency:           c.Run.Currency,
	}
}

// Kafka schema names of the statement and charge messages.
const (
	StatementSchema = "settlement.statement/v1"
	ChargeSchema    = "settlement.account-charge/v1"
)

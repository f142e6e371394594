package oracle

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// ReadCounts are a statement line's current reads by quality, and the
// channel intervals the run estimated, by method.
type ReadCounts struct {
	Actual              int            `json:"actual"`
	Estimated           int            `json:"estimated"`
	Substituted         int            `json:"substituted"`
	GridsettleEstimated EstimateCounts `json:"gridsettle_estimated"`
}

// EstimateCounts are channel intervals estimated by the run, by method.
type EstimateCounts struct {
	LIN int `json:"LIN"`
	LDY int `json:"LDY"`
	ZER int `json:"ZER"`
}

// add counts f once.
func (c *ReadCounts) add(f flow) {
	switch {
	case f.method == MethodLinear:
		c.GridsettleEstimated.LIN++
	case f.method == MethodLikeDay:
		c.GridsettleEstimated.LDY++
	case f.method == MethodZero:
		c.GridsettleEstimated.ZER++
	case f.quality == "A":
		c.Actual++
	case f.quality == "E":
		c.Estimated++
	default:
		c.Substituted++
	}
}

// Line is a statement line with the fields of meters/README.md
// (settlement.statement/v1) except computed_at, which is wall-clock time.
type Line struct {
	StatementID        string     `json:"statement_id"`
	ParticipantID      string     `json:"participant_id"`
	SettlementPoint    string     `json:"settlement_point"`
	OperatingDay       string     `json:"operating_day"`
	RunType            string     `json:"run_type"`
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
	EstimatedEnergyMWh string     `json:"estimated_energy_mwh"` // the estimates' part of EnergyMWh
	Reads              ReadCounts `json:"reads"`
	RunID              string     `json:"run_id"`
}

// Charge is an account charge with the fields of meters/README.md
// (settlement.account-charge/v1).
type Charge struct {
	ChargeID           string `json:"charge_id"`
	AccountID          string `json:"account_id"`
	ParticipantID      string `json:"participant_id"`
	OperatingDay       string `json:"operating_day"`
	RunType            string `json:"run_type"`
	Version            int    `json:"version"`
	ImportKWh          string `json:"import_kwh"`
	ExportKWh          string `json:"export_kwh"`
	NetKWh             string `json:"net_kwh"`
	EstimatedKWh       string `json:"estimated_kwh"` // the estimates' net kWh, included in NetKWh
	EnergyCost         string `json:"energy_cost"`
	PreviousEnergyCost string `json:"previous_energy_cost"`
	DeltaEnergyCost    string `json:"delta_energy_cost"`
	Currency           string `json:"currency"`
}

// IntervalFigure is one participant × settlement point × settlement
// interval of a statement line, exact (unrounded): the run_intervals row
// and the intervals.parquet row.
type IntervalFigure struct {
	ParticipantID   string
	SettlementPoint string
	Start           time.Time
	EnergyMWh       decimal.Decimal
	Price           *decimal.Decimal // nil: unpriced
	Amount          *decimal.Decimal // nil: unpriced
	ActualReads     int              // quality A reads with energy in the interval
	EstimatedReads  int              // quality E and S
	// EstimatedEnergyMWh is the part of EnergyMWh the run's estimates
	// contribute; GridsettleEstimatedReads counts their pieces in the
	// interval, as ActualReads counts reads.
	EstimatedEnergyMWh       decimal.Decimal
	GridsettleEstimatedReads int
}

// Statement is everything one run of an operating day emits.
type Statement struct {
	OperatingDay string
	RunType      string
	Version      int
	RunID        string
	Lines        []Line           // by statement_id
	Charges      []Charge         // by charge_id
	Intervals    []IntervalFigure // by participant, settlement point, start
	Estimates    []Estimate       // by meter, channel, start; none with Estimation.Off
}

// Run is one completed run of a sequence: its type, version and the input
// it reads.
type Run struct {
	Type string
	// Version is the run's version; zero means one more than the previous
	// run of the sequence (1 for the first). Versions of failed runs are
	// skipped by giving the next completed run its own number.
	Version  int
	Snapshot Snapshot // nil: everything in the log
}

// Runs computes the statements of a sequence of completed runs of day over
// log, each with the one before as its previous version.
func (o *Oracle) Runs(log []Input, day string, runs []Run) ([]*Statement, error) {
	var out []*Statement
	var prev *Statement
	for _, r := range runs {
		s, err := o.Ingest(log, r.Snapshot)
		if err != nil {
			return nil, err
		}
		version := r.Version
		if version == 0 {
			version = 1
			if prev != nil {
				version = prev.Version + 1
			}
		}
		st, err := s.Statement(day, r.Type, version, prev)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
		prev = st
	}
	return out, nil
}

type lineKey struct{ participant, point string }

type chargeKey struct{ account, participant string }

type lineAcc struct {
	energy, unpriced, amount, estimated decimal.Decimal
	reads                               ReadCounts
	perT                                map[int64]*intervalAcc
}

type intervalAcc struct {
	energy, amount, estimatedEnergy decimal.Decimal
	actual, estimated, gridsettle   int
}

// chargeAcc sums kWh before the loss factor; est is the estimates' import
// minus export.
type chargeAcc struct{ imp, exp, est, cost decimal.Decimal }

// flow is what a run settles: a current read, or an estimate, which flows
// exactly like a read of its channel (settlement/README.md "Estimation of
// missing reads (VEE)").
type flow struct {
	meter, channel string
	start, length  int64
	kWh            decimal.Decimal
	quality        string // of a read
	method         string // of an estimate
}

// Statement computes the run of day over s as version version; prev is the
// statement of the latest earlier completed run of day (nil for the first).
func (s *State) Statement(day, runType string, version int, prev *Statement) (*Statement, error) {
	d, err := time.ParseInLocation(time.DateOnly, day, s.o.m.Location)
	if err != nil {
		return nil, fmt.Errorf("oracle: operating day %q: %w", day, err)
	}
	if version < 1 || (prev != nil && (prev.OperatingDay != day || prev.Version >= version)) {
		return nil, fmt.Errorf("oracle: version %d of %s cannot follow the given previous statement", version, day)
	}
	from, to := d.Unix(), d.AddDate(0, 0, 1).Unix()
	L := s.o.m.IntervalSeconds
	var ts []int64
	for t := floorTo(from+L-1, L); t < to; t += L {
		ts = append(ts, t)
	}

	prices := map[pointT]*decimal.Decimal{}
	priceAt := func(point string, t int64) *decimal.Decimal {
		k := pointT{point, t}
		p, ok := prices[k]
		if !ok {
			if v, ok := s.settlementPrice(point, t); ok {
				p = &v
			}
			prices[k] = p
		}
		return p
	}
	estimates := s.estimates(from, to)
	flows := make([]flow, 0, len(s.Reads)+len(estimates))
	for _, r := range s.Reads {
		flows = append(flows, flow{meter: r.MeterID, channel: r.Channel, start: r.Start.Unix(), length: r.IntervalSeconds,
			kWh: r.Value, quality: r.Quality})
	}
	for _, e := range estimates {
		flows = append(flows, flow{meter: e.MeterID, channel: e.Channel, start: e.Start.Unix(), length: e.IntervalSeconds,
			kWh: e.ValueKWh, method: e.Method})
	}
	lines := map[lineKey]*lineAcc{}
	charges := map[chargeKey]*chargeAcc{}
	for _, f := range flows {
		a := s.o.reg.Meters[f.meter][s.o.reg.assignment(f.meter, f.start)]
		scale := a.LossFactor.Shift(-3)
		counted := false
		for _, p := range s.o.split(f.start, f.length, f.kWh) {
			if p.t < from || p.t >= to {
				continue
			}
			lk := lineKey{a.ParticipantID, a.SettlementPoint}
			la := lines[lk]
			if la == nil {
				la = &lineAcc{perT: map[int64]*intervalAcc{}}
				lines[lk] = la
			}
			ck := chargeKey{a.AccountID, a.ParticipantID}
			ca := charges[ck]
			if ca == nil {
				ca = &chargeAcc{}
				charges[ck] = ca
			}
			if !counted {
				counted = true
				la.reads.add(f)
			}
			ia := la.perT[p.t]
			if ia == nil {
				ia = &intervalAcc{}
				la.perT[p.t] = ia
			}
			switch {
			case f.method != "":
				ia.gridsettle++
			case f.quality == "A":
				ia.actual++
			default:
				ia.estimated++
			}
			net := p.kWh
			if f.channel == "export" {
				net = net.Neg()
				ca.exp = ca.exp.Add(p.kWh)
			} else {
				ca.imp = ca.imp.Add(p.kWh)
			}
			mwh := net.Mul(scale)
			la.energy = la.energy.Add(mwh)
			ia.energy = ia.energy.Add(mwh)
			if f.method != "" {
				ca.est = ca.est.Add(net)
				la.estimated = la.estimated.Add(mwh)
				ia.estimatedEnergy = ia.estimatedEnergy.Add(mwh)
			}
			if price := priceAt(a.SettlementPoint, p.t); price != nil {
				amt := mwh.Mul(*price)
				la.amount = la.amount.Add(amt)
				ia.amount = ia.amount.Add(amt)
				ca.cost = ca.cost.Add(amt)
			} else {
				la.unpriced = la.unpriced.Add(mwh)
			}
		}
	}

	st := &Statement{OperatingDay: day, RunType: runType, Version: version,
		RunID: fmt.Sprintf("run-%s-%s-%d", day, runType, version), Estimates: estimates}
	prevLines := map[lineKey]Line{}
	prevCharges := map[chargeKey]Charge{}
	if prev != nil {
		for _, l := range prev.Lines {
			k := lineKey{l.ParticipantID, l.SettlementPoint}
			prevLines[k] = l
			if lines[k] == nil {
				lines[k] = &lineAcc{perT: map[int64]*intervalAcc{}}
			}
		}
		for _, c := range prev.Charges {
			k := chargeKey{c.AccountID, c.ParticipantID}
			prevCharges[k] = c
			if charges[k] == nil {
				charges[k] = &chargeAcc{}
			}
		}
	}
	currency := s.o.m.Currency
	for k, la := range lines {
		l := Line{
			StatementID:   fmt.Sprintf("%s/%s/%s/%d", k.point, k.participant, day, version),
			ParticipantID: k.participant, SettlementPoint: k.point, OperatingDay: day,
			RunType: runType, Version: version, Currency: currency,
			EnergyMWh:          fixed(la.energy, 6),
			UnpricedEnergyMWh:  fixed(la.unpriced, 6),
			Amount:             fixed(la.amount, 2),
			EstimatedEnergyMWh: fixed(la.estimated, 6),
			PreviousEnergyMWh:  "0.000000", PreviousAmount: "0.00",
			Intervals: len(ts), Reads: la.reads, RunID: st.RunID,
		}
		if prev != nil {
			pv := prev.Version
			l.PreviousVersion = &pv
			if p, ok := prevLines[k]; ok {
				l.PreviousEnergyMWh, l.PreviousAmount = p.EnergyMWh, p.Amount
			}
		}
		l.DeltaEnergyMWh = minus(l.EnergyMWh, l.PreviousEnergyMWh, 6)
		l.DeltaAmount = minus(l.Amount, l.PreviousAmount, 2)
		for _, t := range ts {
			price := priceAt(k.point, t)
			if price != nil {
				l.PricedIntervals++
			}
			f := IntervalFigure{ParticipantID: k.participant, SettlementPoint: k.point,
				Start: time.Unix(t, 0).UTC(), EnergyMWh: decimal.Zero, EstimatedEnergyMWh: decimal.Zero}
			ia := la.perT[t]
			if ia != nil {
				f.EnergyMWh, f.ActualReads, f.EstimatedReads = ia.energy, ia.actual, ia.estimated
				f.EstimatedEnergyMWh, f.GridsettleEstimatedReads = ia.estimatedEnergy, ia.gridsettle
			}
			if price != nil {
				amt := decimal.Zero
				if ia != nil {
					amt = ia.amount
				}
				f.Price, f.Amount = price, &amt
			}
			st.Intervals = append(st.Intervals, f)
		}
		st.Lines = append(st.Lines, l)
	}
	for k, ca := range charges {
		imp, exp := roundHalfEven(ca.imp, 6), roundHalfEven(ca.exp, 6)
		c := Charge{
			ChargeID:  fmt.Sprintf("%s/%s/%s/%d", k.account, k.participant, day, version),
			AccountID: k.account, ParticipantID: k.participant, OperatingDay: day,
			RunType: runType, Version: version,
			ImportKWh: imp.StringFixed(6), ExportKWh: exp.StringFixed(6),
			NetKWh:       imp.Sub(exp).StringFixed(6),
			EstimatedKWh: fixed(ca.est, 6),
			EnergyCost:   fixed(ca.cost, 2), PreviousEnergyCost: "0.00", Currency: currency,
		}
		if p, ok := prevCharges[k]; ok {
			c.PreviousEnergyCost = p.EnergyCost
		}
		c.DeltaEnergyCost = minus(c.EnergyCost, c.PreviousEnergyCost, 2)
		st.Charges = append(st.Charges, c)
	}
	slices.SortFunc(st.Lines, func(a, b Line) int { return strings.Compare(a.StatementID, b.StatementID) })
	slices.SortFunc(st.Charges, func(a, b Charge) int { return strings.Compare(a.ChargeID, b.ChargeID) })
	slices.SortFunc(st.Intervals, func(a, b IntervalFigure) int {
		return cmp.Or(cmp.Compare(a.ParticipantID, b.ParticipantID), cmp.Compare(a.SettlementPoint, b.SettlementPoint),
			a.Start.Compare(b.Start))
	})
	return st, nil
}

// minus is a − b of two fixed-scale decimal strings, at that scale.
func minus(a, b string, places int32) string {
	return decimal.RequireFromString(a).Sub(decimal.RequireFromString(b)).StringFixed(places)
}

package settlement

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"
)

// Explaining a restatement (settlement/README.md "Explain a statement line"):
// which reads and prices differ between two versions of a statement line, and
// what each difference cost. settlement/postgres rebuilds the two versions'
// inputs from the store; the attribution below is the contract's fixed rule,
// in one place, for every caller.

// Decimal places of the explanation's exact figures: a read's piece has at
// most 9 (kWh), a loss factor 6 and MWh is kWh / 1000, so an energy effect
// has at most 18; times a price of at most 6, an amount has at most 24.
// Written at these scales they are exact.
const (
	ExactEnergyScale = 18
	ExactAmountScale = 24
)

// Change kinds.
const (
	ChangeRead  = "read"
	ChangePrice = "price"
)

// ReadState is how one read (or one of gridsettle's estimates) contributed
// to a settlement interval of a line in one version: the whole read's value
// (kWh), not the piece split into the interval. For an estimate, Version,
// Quality and the source record are nil and Estimate is its method.
type ReadState struct {
	Value      decimal.Decimal
	Version    *int64
	Quality    *string
	LossFactor decimal.Decimal
	Estimate   *string
	Topic      *string
	Partition  *int32
	Offset     *int64
}

// Equal reports whether two states show the same thing.
func (s *ReadState) Equal(o *ReadState) bool {
	if s == nil || o == nil {
		return s == o
	}
	return s.Value.Equal(o.Value) && s.LossFactor.Equal(o.LossFactor) && eqPtr(s.Version, o.Version) &&
		eqPtr(s.Quality, o.Quality) && eqPtr(s.Estimate, o.Estimate) && eqPtr(s.Topic, o.Topic) &&
		eqPtr(s.Partition, o.Partition) && eqPtr(s.Offset, o.Offset)
}

func eqPtr[T comparable](a, b *T) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// MarshalJSON writes the value and loss factor at 6 places.
func (s *ReadState) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Value      string  `json:"value"`
		Version    *int64  `json:"version"`
		Quality    *string `json:"quality"`
		LossFactor string  `json:"loss_factor"`
		Estimate   *string `json:"estimate"`
		Topic      *string `json:"topic"`
		Partition  *int32  `json:"partition"`
		Offset     *int64  `json:"offset"`
	}{s.Value.StringFixedBank(6), s.Version, s.Quality, s.LossFactor.StringFixedBank(6), s.Estimate,
		s.Topic, s.Partition, s.Offset})
}

// ReadChange is one read key (meter, channel, read start) in one
// settlement interval of a line whose state differs between the versions,
// with its MWh contribution there in each (zero where it did not
// contribute, nil state).
type ReadChange struct {
	MeterID, Channel    string
	Start               time.Time
	Before, After       *ReadState
	BeforeMWh, AfterMWh decimal.Decimal
}

// ExplainInterval is one settlement interval of a line in the two
// versions: its exact energies, its settlement prices (invalid: unpriced,
// or no run) and the read changes in it.
type ExplainInterval struct {
	Start                     time.Time
	EnergyBefore, EnergyAfter decimal.Decimal
	PriceBefore, PriceAfter   decimal.NullDecimal
	Reads                     []ReadChange
}

// Change is one entry of an explanation: a read change (MeterID, Channel,
// Start, Before, After) or a price change (SettlementPoint, PriceBefore,
// PriceAfter).
type Change struct {
	Kind                    string
	SettlementInterval      time.Time
	MeterID, Channel        string
	Start                   time.Time
	Before, After           *ReadState
	SettlementPoint         string
	PriceBefore, PriceAfter decimal.NullDecimal
	EnergyMWhEffect         decimal.Decimal
	AmountEffect            decimal.Decimal
}

// MarshalJSON writes the change in the shape of settlement/README.md "Explain a
// statement line" for its kind.
func (c Change) MarshalJSON() ([]byte, error) {
	amount := c.AmountEffect.StringFixedBank(ExactAmountScale)
	if c.Kind == ChangePrice {
		return json.Marshal(struct {
			Kind               string    `json:"kind"`
			SettlementPoint    string    `json:"settlement_point"`
			SettlementInterval time.Time `json:"settlement_interval"`
			Before             priceSide `json:"before"`
			After              priceSide `json:"after"`
			EnergyMWhEffect    string    `json:"energy_mwh_effect"`
			AmountEffect       string    `json:"amount_effect"`
		}{c.Kind, c.SettlementPoint, c.SettlementInterval.UTC(), priceSide{c.PriceBefore}, priceSide{c.PriceAfter},
			"0", amount})
	}
	return json.Marshal(struct {
		Kind               string     `json:"kind"`
		MeterID            string     `json:"meter_id"`
		Channel            string     `json:"channel"`
		Start              time.Time  `json:"start"`
		SettlementInterval time.Time  `json:"settlement_interval"`
		Before             *ReadState `json:"before"`
		After              *ReadState `json:"after"`
		EnergyMWhEffect    string     `json:"energy_mwh_effect"`
		AmountEffect       string     `json:"amount_effect"`
	}{c.Kind, c.MeterID, c.Channel, c.Start.UTC(), c.SettlementInterval.UTC(), c.Before, c.After,
		c.EnergyMWhEffect.StringFixedBank(ExactEnergyScale), amount})
}

type priceSide struct{ p decimal.NullDecimal }

func (p priceSide) MarshalJSON() ([]byte, error) {
	if !p.p.Valid {
		return []byte(`{"price":null}`), nil
	}
	return []byte(`{"price":"` + p.p.Decimal.StringFixedBank(6) + `"}`), nil
}

// KindSummary adds up the changes of one kind.
type KindSummary struct {
	Changes         int
	EnergyMWhEffect decimal.Decimal
	AmountEffect    decimal.Decimal
}

// MarshalJSON writes the sums at the exact scales.
func (k KindSummary) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Changes         int    `json:"changes"`
		EnergyMWhEffect string `json:"energy_mwh_effect"`
		AmountEffect    string `json:"amount_effect"`
	}{k.Changes, k.EnergyMWhEffect.StringFixedBank(ExactEnergyScale), k.AmountEffect.StringFixedBank(ExactAmountScale)})
}

// Explanation is the answer (settlement/README.md "Explain a statement line")
// for a statement line against an earlier version of it. Summary covers every
// change, also when a page holds only some of them (NextCursor is the API's).
type Explanation struct {
	StatementID         string
	Against             string
	DeltaEnergyMWh      decimal.Decimal // rounded line figures: after − before
	DeltaAmount         decimal.Decimal
	ExactDeltaEnergyMWh decimal.Decimal
	ExactDeltaAmount    decimal.Decimal
	Rounding            decimal.Decimal // DeltaAmount − ExactDeltaAmount
	Changes             []Change
	Summary             map[string]KindSummary // by kind, both kinds always present
	NextCursor          string
}

// MarshalJSON writes the explanation at the contract's scales.
func (e *Explanation) MarshalJSON() ([]byte, error) {
	changes := e.Changes
	if changes == nil {
		changes = []Change{}
	}
	return json.Marshal(struct {
		StatementID         string                 `json:"statement_id"`
		Against             string                 `json:"against"`
		DeltaEnergyMWh      string                 `json:"delta_energy_mwh"`
		DeltaAmount         string                 `json:"delta_amount"`
		ExactDeltaEnergyMWh string                 `json:"exact_delta_energy_mwh"`
		ExactDeltaAmount    string                 `json:"exact_delta_amount"`
		Rounding            string                 `json:"rounding"`
		Changes             []Change               `json:"changes"`
		Summary             map[string]KindSummary `json:"summary"`
		NextCursor          string                 `json:"next_cursor,omitempty"`
	}{e.StatementID, e.Against, energy(e.DeltaEnergyMWh), money(e.DeltaAmount),
		e.ExactDeltaEnergyMWh.StringFixedBank(ExactEnergyScale), e.ExactDeltaAmount.StringFixedBank(ExactAmountScale),
		e.Rounding.StringFixedBank(ExactAmountScale), changes, e.Summary, e.NextCursor})
}

// Explain attributes the difference between two versions of a line to its
// changes by the contract's fixed rule, per settlement interval t: a read
// change's amount effect is its energy effect × P1, the price change's is
// E0 × (P1 − P0), an unpriced interval's price counting as 0. The read
// changes of each interval must account for its whole energy difference
// (E1 − E0): when they do not, the inputs given are not those the two runs
// settled, and Explain says so rather than answer a wrong sum. deltaEnergy
// and deltaAmount are the rounded line figures after − before; point is
// the line's settlement point. It keeps every change; an Explainer keeps
// only those asked for.
func Explain(statementID, against, point string, deltaEnergy, deltaAmount decimal.Decimal, intervals []ExplainInterval) (*Explanation, error) {
	x := NewExplainer(statementID, against, point, deltaEnergy, deltaAmount, intervals, nil)
	for i, in := range intervals {
		for _, r := range in.Reads {
			x.Read(i, r)
		}
	}
	return x.Finish()
}

// Explainer builds an explanation from read changes given one at a time,
// in any order, keeping only the changes its keep function selects (nil:
// all), while its totals, summary and checks cover every change: an
// explanation of millions of changes then costs the memory of the page
// asked for (settlement/postgres/explain.go).
type Explainer struct {
	e          *Explanation
	point      string
	intervals  []ExplainInterval // figures only; Reads is not used
	readEnergy []decimal.Decimal // per interval, Σ read energy effects
	readCount  []int             // per interval
	keep       func(interval int, c *Change) bool
}

// NewExplainer starts an explanation over intervals' figures (their Reads
// are ignored: give read changes to Read).
func NewExplainer(statementID, against, point string, deltaEnergy, deltaAmount decimal.Decimal, intervals []ExplainInterval,
	keep func(interval int, c *Change) bool) *Explainer {
	return &Explainer{
		e: &Explanation{StatementID: statementID, Against: against, DeltaEnergyMWh: deltaEnergy, DeltaAmount: deltaAmount,
			Summary: map[string]KindSummary{ChangeRead: {}, ChangePrice: {}}},
		point: point, intervals: intervals, keep: keep,
		readEnergy: make([]decimal.Decimal, len(intervals)), readCount: make([]int, len(intervals)),
	}
}

// Read attributes one read change of interval i.
func (x *Explainer) Read(i int, r ReadChange) {
	in := &x.intervals[i]
	effect := r.AfterMWh.Sub(r.BeforeMWh)
	x.readEnergy[i] = x.readEnergy[i].Add(effect)
	x.readCount[i]++
	x.add(i, Change{Kind: ChangeRead, SettlementInterval: in.Start, MeterID: r.MeterID, Channel: r.Channel,
		Start: r.Start, Before: r.Before, After: r.After, EnergyMWhEffect: effect, AmountEffect: effect.Mul(orZero(in.PriceAfter))})
}

// ReadChanges is the number of read changes of interval i given so far.
func (x *Explainer) ReadChanges(i int) int { return x.readCount[i] }

// PriceChanged reports whether interval i has a price change.
func (x *Explainer) PriceChanged(i int) bool {
	return priceDiffers(x.intervals[i].PriceBefore, x.intervals[i].PriceAfter)
}

// Finish adds the price changes, checks that every interval's read changes
// account for its energy difference and that the effects sum to the exact
// deltas, and orders the kept changes as the contract does.
func (x *Explainer) Finish() (*Explanation, error) {
	e := x.e
	for i, in := range x.intervals {
		p0, p1 := orZero(in.PriceBefore), orZero(in.PriceAfter)
		if x.PriceChanged(i) {
			x.add(i, Change{Kind: ChangePrice, SettlementInterval: in.Start, SettlementPoint: x.point, PriceBefore: in.PriceBefore,
				PriceAfter: in.PriceAfter, AmountEffect: in.EnergyBefore.Mul(p1.Sub(p0))})
		}
		diff := in.EnergyAfter.Sub(in.EnergyBefore)
		if !x.readEnergy[i].Equal(diff) {
			return nil, fmt.Errorf("explain %s against %s: interval %s: the read changes add up to %s MWh, the runs differ by %s: %w",
				e.StatementID, e.Against, in.Start.UTC().Format(time.RFC3339), x.readEnergy[i], diff, ErrUnexplained)
		}
		e.ExactDeltaEnergyMWh = e.ExactDeltaEnergyMWh.Add(diff)
		e.ExactDeltaAmount = e.ExactDeltaAmount.Add(in.EnergyAfter.Mul(p1).Sub(in.EnergyBefore.Mul(p0)))
	}
	sum := e.Summary[ChangeRead].AmountEffect.Add(e.Summary[ChangePrice].AmountEffect)
	if !sum.Equal(e.ExactDeltaAmount) {
		return nil, fmt.Errorf("explain %s against %s: the amount effects add up to %s, the exact delta is %s: %w",
			e.StatementID, e.Against, sum, e.ExactDeltaAmount, ErrUnexplained)
	}
	e.Rounding = e.DeltaAmount.Sub(e.ExactDeltaAmount)
	slices.SortFunc(e.Changes, compareChanges)
	return e, nil
}

// ErrUnexplained means the inputs rebuilt for two runs do not add up to
// what the runs stored: a defect, never an answer.
var ErrUnexplained = errors.New("changes do not add up to the runs' figures")

func (x *Explainer) add(i int, c Change) {
	e := x.e
	s := e.Summary[c.Kind]
	s.Changes++
	s.EnergyMWhEffect = s.EnergyMWhEffect.Add(c.EnergyMWhEffect)
	s.AmountEffect = s.AmountEffect.Add(c.AmountEffect)
	e.Summary[c.Kind] = s
	if x.keep == nil || x.keep(i, &c) {
		e.Changes = append(e.Changes, c)
	}
}

func orZero(p decimal.NullDecimal) decimal.Decimal {
	if p.Valid {
		return p.Decimal
	}
	return decimal.Zero
}

func priceDiffers(a, b decimal.NullDecimal) bool {
	return a.Valid != b.Valid || (a.Valid && !a.Decimal.Equal(b.Decimal))
}

// ChangeKey is a change's place in the contract's order: what a page of an
// explanation continues after.
type ChangeKey struct {
	SettlementInterval time.Time
	Kind               string
	MeterID, Channel   string
	Start              time.Time
}

// Key is c's place in the contract's order.
func (c *Change) Key() ChangeKey {
	return ChangeKey{SettlementInterval: c.SettlementInterval, Kind: c.Kind, MeterID: c.MeterID, Channel: c.Channel, Start: c.Start}
}

// Follows reports whether c comes after k in the contract's order.
func (c *Change) Follows(k ChangeKey) bool {
	return compareChanges(*c, Change{SettlementInterval: k.SettlementInterval, Kind: k.Kind, MeterID: k.MeterID,
		Channel: k.Channel, Start: k.Start}) > 0
}

// SortChanges orders changes as the contract does.
func SortChanges(cs []Change) { slices.SortFunc(cs, compareChanges) }

// compareChanges is the contract's order: settlement interval, then kind
// (price first), meter, channel, start.
func compareChanges(a, b Change) int {
	if c := a.SettlementInterval.Compare(b.SettlementInterval); c != 0 {
		return c
	}
	if a.Kind != b.Kind {
		if a.Kind == ChangePrice {
			return -1
		}
		return 1
	}
	return cmp.Or(cmp.Compare(a.MeterID, b.MeterID), cmp.Compare(a.Channel, b.Channel), a.Start.Compare(b.Start))
}

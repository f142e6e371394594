package oracle

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Market is the market configuration the contract's arithmetic depends on.
type Market struct {
	Location            *time.Location
	Currency            string
	IntervalSeconds     int64           // settlement interval L
	PriceSpikeThreshold decimal.Decimal // price_spike at or above it
	MissingDataAfter    time.Duration   // missing_data gap; zero means 6 hours

	// Now is "now" of start_out_of_range: the wall clock of the instance
	// that consumed the records. It is required, so that what the oracle
	// says does not depend on when it runs.
	Now time.Time
	// MaxFuture and MaxFuturePrices are --ingest-max-future and
	// --ingest-max-future-prices; zero means PT15M and P7D.
	MaxFuture       time.Duration
	MaxFuturePrices time.Duration
	// Estimation is --estimation and --estimation-max-linear; the zero
	// value is the default.
	Estimation Estimation
}

// Estimation is how runs estimate missing reads (settlement/README.md
// "Estimation of missing reads (VEE)"). The zero value is `--estimation
// standard` with `--estimation-max-linear PT1H`.
type Estimation struct {
	Off       bool          // --estimation none: no estimates
	MaxLinear time.Duration // longest gap interpolated linearly; zero means one hour
}

// Topics names the two input topics.
type Topics struct {
	Reads  string
	Prices string
}

// Oracle computes what the contract says gridsettle must output for a
// given registry, market and input log.
type Oracle struct {
	reg    *Registry
	m      Market
	topics Topics
	// assignments of each account, for the price alerts.
	byAccount map[string][]Assignment
}

// New checks the market and returns an oracle over reg.
func New(reg *Registry, m Market, topics Topics) (*Oracle, error) {
	switch {
	case m.Location == nil:
		return nil, errors.New("oracle: market time zone missing")
	case !oneOf(m.IntervalSeconds, readLengths):
		return nil, fmt.Errorf("oracle: settlement interval %d is not 300, 900, 1800 or 3600", m.IntervalSeconds)
	case m.Currency == "":
		return nil, errors.New("oracle: market currency missing")
	case m.Now.IsZero():
		return nil, errors.New("oracle: now (the consumer's clock of start_out_of_range) missing")
	case m.MaxFuture < 0 || m.MaxFuturePrices < 0:
		return nil, errors.New("oracle: negative future bound")
	case m.Estimation.MaxLinear < 0:
		return nil, errors.New("oracle: negative estimation max linear")
	case topics.Reads == "" || topics.Prices == "" || topics.Reads == topics.Prices:
		return nil, errors.New("oracle: two distinct input topics are required")
	}
	if m.MissingDataAfter == 0 {
		m.MissingDataAfter = 6 * time.Hour
	}
	if m.MaxFuture == 0 {
		m.MaxFuture = 15 * time.Minute
	}
	if m.MaxFuturePrices == 0 {
		m.MaxFuturePrices = 7 * 24 * time.Hour
	}
	if m.Estimation.MaxLinear == 0 {
		m.Estimation.MaxLinear = time.Hour
	}
	o := &Oracle{reg: reg, m: m, topics: topics, byAccount: map[string][]Assignment{}}
	for _, as := range reg.Meters {
		for _, a := range as {
			o.byAccount[a.AccountID] = append(o.byAccount[a.AccountID], a)
		}
	}
	return o, nil
}

func (o *Oracle) clock() clock {
	return clock{now: o.m.Now, maxFuture: o.m.MaxFuture, maxFutureP: o.m.MaxFuturePrices}
}

// Input is one record as a consumer of an input topic sees it.
type Input struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
}

// TopicPartition names one partition of one topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Position is where a record sits in the log.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Snapshot is what one run reads: per partition the first offset NOT
// included (the consumer's next offset); a partition missing from a non-nil
// snapshot contributes nothing. A nil Snapshot includes everything.
type Snapshot map[TopicPartition]int64

// ReadKey identifies a read.
type ReadKey struct {
	MeterID string
	Channel string
	Start   int64 // unix seconds
}

// Read is a current read.
type Read struct {
	MeterID         string
	Channel         string
	Start           time.Time
	IntervalSeconds int64
	Value           decimal.Decimal // kWh
	Quality         string
	Version         int64
	Source          string
	Position        Position // the record it came from
}

// PriceKey identifies a price.
type PriceKey struct {
	Market          string
	SettlementPoint string
	Start           int64 // unix seconds
}

// Price is a current price.
type Price struct {
	Market          string
	SettlementPoint string
	Start           time.Time
	IntervalSeconds int64
	Price           decimal.Decimal
	Version         int64
	Position        Position
}

// Counts are what versioning ignored or applied, read by read and price by
// price.
type Counts struct {
	ReadsApplied    int // became current (new or correcting)
	ReadsStale      int
	ReadsDuplicate  int
	PricesApplied   int
	PricesStale     int
	PricesDuplicate int
}

// State is the expected result of consuming a log: current reads and
// prices, the quarantine, and the alerts.
type State struct {
	o          *Oracle
	Quarantine map[Position]Quarantined
	Reads      map[ReadKey]*Read
	Prices     map[PriceKey]*Price
	Counts     Counts
	// Alerts are every alert identity that may fire (see Alert.Must).
	Alerts map[string]Alert

	channelLen map[[2]string]int64 // (meter, channel) → first length accepted
	priceLen   map[[2]string]int64 // (market, point) → first length accepted
	track      *tracker
	days       map[int64]string      // unix second → operating day, a cache
	explained  map[string]*Statement // day → the statement Explain uses, a cache
}

// Ingest consumes log as the contract says: each partition in offset order
// (partitions one after another: the contract's results do not depend on
// how partitions interleave, except the may-fire alerts, see Alert), only
// records below the snapshot's offsets.
func (o *Oracle) Ingest(log []Input, snap Snapshot) (*State, error) {
	s := &State{
		o:          o,
		Quarantine: map[Position]Quarantined{},
		Reads:      map[ReadKey]*Read{},
		Prices:     map[PriceKey]*Price{},
		channelLen: map[[2]string]int64{},
		priceLen:   map[[2]string]int64{},
		days:       map[int64]string{},
	}
	s.track = newTracker(s)
	parts := map[TopicPartition][]Input{}
	for _, in := range log {
		tp := TopicPartition{in.Topic, in.Partition}
		if snap != nil {
			if next, ok := snap[tp]; !ok || in.Offset >= next {
				continue
			}
		}
		if in.Topic != o.topics.Reads && in.Topic != o.topics.Prices {
			return nil, fmt.Errorf("oracle: record of topic %q at %d/%d is not an input", in.Topic, in.Partition, in.Offset)
		}
		parts[tp] = append(parts[tp], in)
	}
	tps := make([]TopicPartition, 0, len(parts))
	for tp := range parts {
		tps = append(tps, tp)
	}
	slices.SortFunc(tps, func(a, b TopicPartition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	for _, tp := range tps {
		ins := parts[tp]
		slices.SortStableFunc(ins, func(a, b Input) int { return cmp.Compare(a.Offset, b.Offset) })
		for i, in := range ins {
			if i > 0 && ins[i-1].Offset == in.Offset {
				return nil, fmt.Errorf("oracle: offset %d of %s/%d given twice", in.Offset, tp.Topic, tp.Partition)
			}
			pos := Position{tp.Topic, tp.Partition, in.Offset}
			if tp.Topic == o.topics.Reads {
				s.read(tp, pos, in.Value)
			} else {
				s.price(pos, in.Value)
			}
		}
	}
	s.Alerts = s.track.alerts()
	return s, nil
}

func (s *State) read(tp TopicPartition, pos Position, raw []byte) {
	r, q := decodeRead(raw, s.o.clock())
	if q != nil {
		s.Quarantine[pos] = *q
		return
	}
	if q := s.checkRead(r); q != nil {
		s.Quarantine[pos] = *q
		return
	}
	key := [2]string{r.meter, r.channel}
	if _, ok := s.channelLen[key]; !ok {
		s.channelLen[key] = r.length
	}
	start := r.start.Unix()
	for i, v := range r.values {
		k := ReadKey{r.meter, r.channel, start + int64(i)*r.length}
		cur := s.Reads[k]
		switch {
		case cur == nil || cur.Version < r.version:
			next := &Read{MeterID: r.meter, Channel: r.channel, Start: time.Unix(k.Start, 0).UTC(),
				IntervalSeconds: r.length, Value: v, Quality: r.quality[i], Version: r.version,
				Source: r.source, Position: pos}
			s.Reads[k] = next
			s.Counts.ReadsApplied++
			s.track.readChanged(tp, cur, next)
		case cur.Version > r.version:
			s.Counts.ReadsStale++
		default:
			s.Counts.ReadsDuplicate++
		}
	}
	s.track.readRecordDone(tp, r.meter, r.end())
}

// checkRead runs the checks of a reads record that need the registry or
// the state: unknown_meter, interval_length_mismatch, conflicting_duplicate;
// then unprocessable, for a record that passed them all but holds text the
// database cannot store.
func (s *State) checkRead(r *readRecord) *Quarantined {
	start := r.start.Unix()
	for i := range r.values {
		t := start + int64(i)*r.length
		if s.o.reg.assignment(r.meter, t) < 0 {
			return &Quarantined{UnknownMeter, fmt.Sprintf("no assignment of %s covers %s", r.meter,
				time.Unix(t, 0).UTC().Format(time.RFC3339))}
		}
	}
	if l, ok := s.channelLen[[2]string{r.meter, r.channel}]; ok && l != r.length {
		return &Quarantined{IntervalLengthMismatch, fmt.Sprintf("%s %s has %d-second reads, not %d", r.meter, r.channel, l, r.length)}
	}
	for i, v := range r.values {
		cur := s.Reads[ReadKey{r.meter, r.channel, start + int64(i)*r.length}]
		if cur != nil && cur.Version == r.version && (!cur.Value.Equal(v) || cur.Quality != r.quality[i]) {
			return &Quarantined{ConflictingDuplicate, fmt.Sprintf("values[%d]: version %d is %s %s, not %s %s",
				i, r.version, cur.Value, cur.Quality, r.texts[i], r.quality[i])}
		}
	}
	// PostgreSQL text cannot hold U+0000, and the source is the only free
	// text of a record.
	if strings.ContainsRune(r.source, 0) {
		return &Quarantined{Unprocessable, "source holds U+0000"}
	}
	return nil
}

func (s *State) price(pos Position, raw []byte) {
	p, q := decodePrice(raw, s.o.clock())
	if q == nil {
		q = s.checkPrice(p)
	}
	if q != nil {
		s.Quarantine[pos] = *q
		return
	}
	series := [2]string{p.market, p.point}
	if _, ok := s.priceLen[series]; !ok {
		s.priceLen[series] = p.length
	}
	k := PriceKey{p.market, p.point, p.start.Unix()}
	cur := s.Prices[k]
	switch {
	case cur == nil || cur.Version < p.version:
		s.Prices[k] = &Price{Market: p.market, SettlementPoint: p.point, Start: p.start.UTC(),
			IntervalSeconds: p.length, Price: p.price, Version: p.version, Position: pos}
		s.Counts.PricesApplied++
		if p.market == "RT" {
			s.track.priceChanged(p.point, k.Start, p.length)
		}
	case cur.Version > p.version:
		s.Counts.PricesStale++
	default:
		s.Counts.PricesDuplicate++
	}
}

func (s *State) checkPrice(p *priceRecord) *Quarantined {
	if !s.o.reg.Points[p.point] {
		return &Quarantined{UnknownSettlementPoint, p.point}
	}
	if p.currency != "" && p.currency != s.o.m.Currency {
		return &Quarantined{CurrencyMismatch, fmt.Sprintf("%s, not %s", p.currency, s.o.m.Currency)}
	}
	if l, ok := s.priceLen[[2]string{p.market, p.point}]; ok && l != p.length {
		return &Quarantined{IntervalLengthMismatch, fmt.Sprintf("%s %s has %d-second prices, not %d", p.market, p.point, l, p.length)}
	}
	cur := s.Prices[PriceKey{p.market, p.point, p.start.Unix()}]
	if cur != nil && cur.Version == p.version && !cur.Price.Equal(p.price) {
		return &Quarantined{ConflictingDuplicate, fmt.Sprintf("version %d is %s, not %s", p.version, cur.Price, p.text)}
	}
	return nil
}

// settlementPrice is the settlement price of point in the settlement
// interval starting at t, from current RT prices (settlement/README.md
// "Prices").
func (s *State) settlementPrice(point string, t int64) (decimal.Decimal, bool) {
	length, ok := s.priceLen[[2]string{"RT", point}]
	if !ok {
		return decimal.Decimal{}, false
	}
	L := s.o.m.IntervalSeconds
	switch {
	case length == L:
		return s.rt(point, t)
	case length > L:
		return s.rt(point, floorTo(t, length))
	}
	sum := decimal.Zero
	n := L / length
	for i := range n {
		p, ok := s.rt(point, t+i*length)
		if !ok {
			return decimal.Decimal{}, false
		}
		sum = sum.Add(p)
	}
	return divHalfEven(sum, n, 6), true
}

func (s *State) rt(point string, t int64) (decimal.Decimal, bool) {
	p := s.Prices[PriceKey{"RT", point, t}]
	if p == nil {
		return decimal.Decimal{}, false
	}
	return p.Price, true
}

// piece is the part of a read in one settlement interval.
type piece struct {
	t   int64 // settlement interval start
	kWh decimal.Decimal
}

// split maps a read onto settlement intervals (settlement/README.md step 2).
func (o *Oracle) split(start, length int64, value decimal.Decimal) []piece {
	L := o.m.IntervalSeconds
	if length <= L {
		return []piece{{floorTo(start, L), value}}
	}
	n := length / L
	each := divHalfEven(value, n, 9)
	out := make([]piece, n)
	rest := value
	for i := range n - 1 {
		out[i] = piece{start + i*L, each}
		rest = rest.Sub(each)
	}
	out[n-1] = piece{start + (n-1)*L, rest}
	return out
}

// day is the operating day (YYYY-MM-DD) holding unix second t.
func (s *State) day(t int64) string {
	d, ok := s.days[t]
	if !ok {
		d = time.Unix(t, 0).In(s.o.m.Location).Format(time.DateOnly)
		s.days[t] = d
	}
	return d
}

// ReadsOn are the current reads whose start lies in operating day day,
// ordered by meter, channel and start.
func (s *State) ReadsOn(day string) []Read {
	var out []Read
	for _, r := range s.Reads {
		if s.day(r.Start.Unix()) == day {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b Read) int {
		return cmp.Or(cmp.Compare(a.MeterID, b.MeterID), cmp.Compare(a.Channel, b.Channel), a.Start.Compare(b.Start))
	})
	return out
}

// Days are the operating days that hold a settlement interval of some
// current read, in order.
func (s *State) Days() []string {
	seen := map[string]bool{}
	for _, r := range s.Reads {
		for _, p := range s.o.split(r.Start.Unix(), r.IntervalSeconds, r.Value) {
			seen[s.day(p.t)] = true
		}
	}
	out := make([]string, 0, len(seen))
	for d := range seen {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

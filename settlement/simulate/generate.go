package simulate

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
)

const (
	hour   = int64(3600)
	window = 4 * hour // head-ends send a meter channel's reads in blocks of up to 4 hours
	slot   = int64(300)
	week   = 7 * 24 * hour
)

// Fixed roles of the first meters (indices into gen.meters).
const (
	roleSwitch   = 0  // retailer switch at noon of the first day
	roleDead     = 1  // falls silent at 06:00 of the last day: a missing_data alert
	roleOutage   = 2  // 12 hours missing, backfilled later
	roleMoveOut  = 3  // assignment closes at 14:00 of the last day
	roleNewConn  = 4  // assignment opens at 08:00 of the last day
	roleFiveMin  = 5  // prosumer, 5-minute reads, price alerts at the hub
	roleHourly   = 6  // 60-minute reads, price alerts at the windy zone
	roleHalfHour = 7  // prosumer, 30-minute reads
	roleRef      = 8  // reference meter of the bad records: no random features
	roleLate     = 9  // its last block arrives only in the late part
	roleLikeDay  = 10 // a week of reads before the first day, then a 5-hour outage and a gap across the DST change
	roleNewMeter = 11 // commissioned two days before the first day, silent from 10:00 of the last day
	lastRole     = roleNewMeter
)

// Percent of a meter's average power by local hour: night trough, morning
// and evening peaks.
var loadShape = [24]int64{55, 50, 48, 47, 48, 55, 75, 95, 100, 90, 85, 85, 85, 85, 90, 100, 115, 135, 150, 145, 130, 110, 85, 65}

// Percent of a rooftop array's peak output by local hour.
var solarShape = [24]int64{0, 0, 0, 0, 0, 0, 3, 12, 30, 50, 68, 82, 90, 88, 78, 62, 42, 22, 8, 1, 0, 0, 0, 0}

// Real-time price level in cents per MWh by local hour.
var priceShape = [24]int64{2100, 1950, 1880, 1850, 1900, 2200, 2800, 3600, 4100, 3900, 3500, 3300, 3200, 3300, 3600, 4200, 5800, 7400, 8200, 6900, 5200, 4000, 3100, 2500}

type meterSpec struct {
	idx      int
	id       string
	account  string
	point    string
	length   int   // read interval seconds
	prosumer bool  // has an export channel
	baseW    int64 // average consumption, watts
	solarW   int64 // peak rooftop output, watts
	from, to int64 // reads are sent for [from, to)
	places   int   // decimal places the head-end writes: 4 or 6
	numeric  bool  // values as JSON numbers instead of strings
	terse    bool  // defaults (channel, quality, version) left out
	source   string
	features bool  // resends, corrections, late blocks and short gaps may happen
	histFrom int64 // reads of [histFrom, first day) are sent first, in front of the stream
	gaps     []gap // reads held back from the main stream
	rng      *rand.Rand
}

// gap is a span of a meter's reads that the main stream lacks: the
// missing reads gridsettle estimates. Its bounds are aligned to the
// meter's interval length.
type gap struct {
	from, to int64
	late     bool // the reads arrive in the late part; otherwise never
}

// round makes v (micro-kWh) representable with the meter's decimal places.
func (m *meterSpec) round(v int64) int64 {
	if m.places == 6 {
		return v
	}
	return (v + 50) / 100 * 100
}

func (m *meterSpec) quality() byte {
	switch r := m.rng.IntN(1000); {
	case r < 30:
		return 'E'
	case r < 35:
		return 'S'
	}
	return 'A'
}

type pointSpec struct {
	id, name, kind string
	rtLen          int   // real-time price interval seconds
	factor         int64 // percent of the common price level
	places         int   // decimal places of its prices: 2 or 4
	numeric        bool  // prices as JSON numbers
	terse          bool  // currency and version 1 left out
}

var pointSpecs = []pointSpec{
	{id: "HB_NORTH", name: "North Hub", kind: "hub", rtLen: 300, factor: 100, places: 4},
	{id: "LZ_HOUSTON", name: "Houston Load Zone", kind: "zone", rtLen: 900, factor: 108, places: 2, numeric: true},
	{id: "LZ_WEST", name: "West Load Zone", kind: "zone", rtLen: 3600, factor: 85, places: 2, terse: true},
	{id: "ND_PECOS_SOLAR", name: "Pecos Solar Node", kind: "node", rtLen: 900, factor: 92, places: 2},
}

const (
	hub      = 0 // HB_NORTH: 5-minute prices, the spike, a missing 5-minute price
	houston  = 1 // LZ_HOUSTON: 15-minute prices, a missing interval, late prices
	west     = 2 // LZ_WEST: hourly prices, negative at night
	solarNod = 3 // ND_PECOS_SOLAR: negative around noon of the last day
)

type gen struct {
	cfg        Config
	rng        *rand.Rand
	loc        *time.Location
	days       []settlement.Day
	rangeStart int64 // unix seconds, a whole hour: start of the first day
	rangeEnd   int64 // a whole hour: end of the last day
	w0         int64 // start of window 0 (aligned to window, ≤ rangeStart)
	nW         int   // windows; out[nW] is the tail after the last window
	slotHour   []uint8

	meters      []*meterSpec
	points      []*pointSpec
	sc          Scenario
	out         [][]Record
	late        []Record
	outageFrom  int64
	outageTo    int64
	dstAt       int64 // the first DST change inside the days, or 0
	day2At      int64 // the start of the second day, or 0 when there is one day
	commission  int64 // the new meter's first read and assignment
	backfillW   int
	deadAt      int64
	switchAt    int64
	moveOutAt   int64
	newConnAt   int64
	spikeFrom   int64
	missingHub  int64 // a 5-minute hub price never sent
	missingHou  int64 // a 15-minute Houston price never sent
	latePricesW int   // window whose Houston prices arrive three windows late
	refStart    int64 // start of the reference window of the bad records
	refVals     []int64
	refQuality  []byte
	refPrice    int64 // Houston's real-time price at refStart
}

func newGen(cfg Config) *gen {
	g := &gen{
		cfg: cfg,
		rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x67726964736574)),
		loc: cfg.Market.Location,
	}
	for i := range cfg.Days {
		g.days = append(g.days, cfg.StartDay.AddDays(i))
	}
	first, _ := cfg.Market.Bounds(g.days[0])
	_, last := cfg.Market.Bounds(g.days[len(g.days)-1])
	g.rangeStart = meters.Floor(first.Unix(), hour)
	g.rangeEnd = meters.Ceil(last.Unix(), hour)
	g.w0 = meters.Floor(g.rangeStart, window)
	g.nW = int((g.rangeEnd - g.w0 + window - 1) / window)
	g.out = make([][]Record, g.nW+1)
	g.slotHour = make([]uint8, (g.rangeEnd-g.rangeStart)/slot)
	for i := range g.slotHour {
		g.slotHour[i] = uint8(time.Unix(g.rangeStart+int64(i)*slot, 0).In(g.loc).Hour())
	}

	firstDay, lastDay := g.days[0], g.days[len(g.days)-1]
	g.switchAt = g.localHour(firstDay, 12)
	g.spikeFrom = g.localHour(firstDay, 16)
	g.missingHub = meters.Floor(g.localHour(firstDay, 3)+5*60, slot)
	g.deadAt = g.localHour(lastDay, 6)
	g.newConnAt = g.localHour(lastDay, 8)
	g.moveOutAt = g.localHour(lastDay, 14)
	g.missingHou = meters.Floor(g.localHour(lastDay, 10)+15*60, 900)
	g.dstAt = g.dstChange()
	if len(g.days) > 1 {
		start, _ := cfg.Market.Bounds(g.days[1])
		g.day2At = start.Unix()
	}
	g.commission = g.localHour(firstDay.AddDays(-2), 0)
	g.outageFrom = g.w0 + window
	g.outageTo = g.outageFrom + 3*window
	g.backfillW = min(5, g.nW)
	g.latePricesW = min(4, g.nW-1)
	g.refStart = g.w0 + 2*window
	if g.missingHou == g.refStart { // the reference price must exist
		g.missingHou += 900
	}
	for i := range pointSpecs {
		g.points = append(g.points, &pointSpecs[i])
	}
	return g
}

// localHour is the whole UTC hour at or before h:00 local time on d.
func (g *gen) localHour(d settlement.Day, h int) int64 {
	return meters.Floor(time.Date(d.Year, d.Month, d.Day, h, 0, 0, 0, g.loc).Unix(), hour)
}

// dstChange is the first instant inside the days where the market's UTC
// offset changes, found to the 5-minute slot, or 0 without one.
func (g *gen) dstChange() int64 {
	for _, d := range g.days {
		start, end := g.cfg.Market.Bounds(d)
		if end.Sub(start) == 24*time.Hour {
			continue
		}
		_, off := start.In(g.loc).Zone()
		for t := start.Unix(); t < end.Unix(); t += slot {
			if _, o := time.Unix(t, 0).In(g.loc).Zone(); o != off {
				return t
			}
		}
	}
	return 0
}

// hourAt is the local hour of t; reads of the history before the first
// day are rare enough to convert one by one.
func (g *gen) hourAt(t int64) int64 {
	if t < g.rangeStart {
		return int64(time.Unix(t, 0).In(g.loc).Hour())
	}
	return int64(g.slotHour[(t-g.rangeStart)/slot])
}

func (g *gen) windowOf(t int64) int { return int((t - g.w0) / window) }

// emit queues r in window w's part of the stream (the tail past the end).
func (g *gen) emit(w int, r Record) {
	g.out[min(max(w, 0), g.nW)] = append(g.out[min(max(w, 0), g.nW)], r)
}

func (g *gen) scenario() *Scenario {
	sc := g.sc
	sc.Config = g.cfg
	n := 0
	for _, w := range g.out {
		n += len(w)
	}
	sc.Records = make([]Record, 0, n)
	for _, w := range g.out {
		sc.Records = append(sc.Records, w...)
	}
	sc.Late = g.late
	return &sc
}

// history sends the reads of meters that have some before the first day,
// in front of the stream: they are the first records of their partition,
// and they run up to the first day, so they open no 6-hour hole that a
// missing_data alert would see.
func (g *gen) history() {
	for _, m := range g.meters {
		for ws := meters.Floor(m.histFrom, window); ws < g.rangeStart; ws += window {
			g.meterReads(0, m, max(ws, m.histFrom), min(ws+window, g.rangeStart))
		}
	}
}

// stream generates the good part of the stream window by window: prices,
// then every meter's blocks in a shuffled order.
func (g *gen) stream() {
	order := make([]int, len(g.meters))
	for i := range order {
		order[i] = i
	}
	for w := range g.nW {
		ws := g.w0 + int64(w)*window
		we := ws + window
		g.windowPrices(w, max(ws, g.rangeStart), min(we, g.rangeEnd))
		g.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			g.meterWindow(w, g.meters[i], ws, we)
		}
	}
}

func (g *gen) meterWindow(w int, m *meterSpec, ws, we int64) {
	g.meterReads(w, m, max(ws, m.from, g.rangeStart), min(we, m.to, g.rangeEnd))
}

// meterReads generates m's reads of [from, to) and routes them as blocks
// of window w.
func (g *gen) meterReads(w int, m *meterSpec, from, to int64) {
	if from >= to {
		return
	}
	n := int((to - from) / int64(m.length))
	imp := make([]int64, n)
	exp := make([]int64, n)
	qi := make([]byte, n)
	qe := make([]byte, n)
	for i := range n {
		t := from + int64(i*m.length)
		h := g.hourAt(t)
		load := m.baseW * loadShape[h] / 100 * (88 + m.rng.Int64N(25)) / 100
		var solar int64
		if m.prosumer {
			solar = m.solarW * solarShape[h] / 100 * (80 + m.rng.Int64N(21)) / 100
		}
		net := load - solar
		imp[i] = m.round(microKWh(max(net, 0), m.length))
		exp[i] = m.round(microKWh(max(-net, 0), m.length))
		qi[i], qe[i] = m.quality(), m.quality()
	}
	if m.idx == roleRef && from == g.refStart {
		g.refVals, g.refQuality = imp, qi
	}
	g.block(w, m, meters.Import, from, imp, qi)
	if m.prosumer {
		g.block(w, m, meters.Export, from, exp, qe)
	}
}

// microKWh is the energy of w watts over secs seconds in millionths of a kWh.
func microKWh(w int64, secs int) int64 { return w * int64(secs) * 10 / 36 }

// block routes one generated block: held back (outage, late meter) or sent
// in its window, with the random head-end behaviour of featured meters.
func (g *gen) block(w int, m *meterSpec, ch meters.Channel, start int64, vals []int64, q []byte) {
	v1 := g.readRecord(m, ch, start, m.length, vals, q, 1)
	switch {
	case m.cuts(start, len(vals)):
		g.cut(w, m, ch, start, vals, q, m.gaps)
		return
	case m.idx == roleOutage && start >= g.outageFrom && start < g.outageTo:
		g.emit(g.backfillW, v1)
		return
	case m.idx == roleLate && w == g.nW-1:
		g.late = append(g.late, v1)
		return
	case !m.features:
		g.emit(w, v1)
		return
	}
	switch r := g.rng.IntN(1000); {
	case r < 20: // late: arrives a window later, after the next window's prices
		// (longer delays would open 6-hour gaps: missing_data alerts that
		// fire or not depending on how the consumer batches)
		g.emit(w+1, v1)
	case r < 40: // the head-end resends the block unchanged
		g.emit(w, v1)
		g.emit(w+g.rng.IntN(2), v1)
	case r < 60: // a correction, sometimes followed by a stale resend of version 1
		g.emit(w, v1)
		vals2, q2 := g.raise(m, vals, q)
		w2 := w + 1 + g.rng.IntN(2)
		g.emit(w2, g.readRecord(m, ch, start, m.length, vals2, q2, 2))
		if g.rng.IntN(3) == 0 {
			g.emit(w2+1, v1)
		}
		if g.rng.IntN(5) == 0 {
			vals3, q3 := g.raise(m, vals2, q2)
			g.late = append(g.late, g.readRecord(m, ch, start, m.length, vals3, q3, 3))
		}
	case r < 65: // the correction overtakes the original, which arrives stale
		vals2, q2 := g.raise(m, vals, q)
		g.emit(w, g.readRecord(m, ch, start, m.length, vals2, q2, 2))
		g.emit(w+2, v1)
	case r < 75: // restated after the first run
		g.emit(w, v1)
		vals2, q2 := g.raise(m, vals, q)
		g.late = append(g.late, g.readRecord(m, ch, start, m.length, vals2, q2, 2))
	case r < 100 && len(vals) >= 3: // a short gap inside the block, sometimes filled after the first run
		g.cut(w, m, ch, start, vals, q, []gap{g.shortGap(m, start, len(vals))})
	default:
		g.emit(w, v1)
	}
}

// cuts reports whether a block of n reads from start loses reads to m's
// gaps.
func (m *meterSpec) cuts(start int64, n int) bool {
	end := start + int64(n*m.length)
	for _, gp := range m.gaps {
		if gp.from < end && start < gp.to {
			return true
		}
	}
	return false
}

// shortGap is 1 to (at most an hour of) reads strictly inside a block of n
// reads from start: with reads on both sides, it is estimated by linear
// interpolation.
func (g *gen) shortGap(m *meterSpec, start int64, n int) gap {
	k := 1 + m.rng.IntN(min(int(hour)/m.length, n-2))
	i := 1 + m.rng.IntN(n-1-k)
	from := start + int64(i*m.length)
	return gap{from: from, to: from + int64(k*m.length), late: m.rng.IntN(3) == 0}
}

// cut sends a block without the reads that gaps hold back: the reads
// around them in window w, those of a late gap in the late part, each run
// of consecutive reads as a block of its own.
func (g *gen) cut(w int, m *meterSpec, ch meters.Channel, start int64, vals []int64, q []byte, gaps []gap) {
	fate := func(i int) int { // 0 sent, 1 late, 2 never
		t := start + int64(i*m.length)
		for _, gp := range gaps {
			if t >= gp.from && t < gp.to {
				if gp.late {
					return 1
				}
				return 2
			}
		}
		return 0
	}
	for i := 0; i < len(vals); {
		f, j := fate(i), i+1
		for j < len(vals) && fate(j) == f {
			j++
		}
		r := g.readRecord(m, ch, start+int64(i*m.length), m.length, vals[i:j], q[i:j], 1)
		switch f {
		case 0:
			g.emit(w, r)
		case 1:
			g.late = append(g.late, r)
		}
		i = j
	}
}

// raise is an upward correction of one to three values of a block; the
// corrected values become actual reads.
func (g *gen) raise(m *meterSpec, vals []int64, q []byte) ([]int64, []byte) {
	v := append([]int64(nil), vals...)
	qq := append([]byte(nil), q...)
	for range 1 + g.rng.IntN(3) {
		i := g.rng.IntN(len(v))
		v[i] += m.round(100_000 + g.rng.Int64N(400_000))
		qq[i] = 'A'
	}
	return v, qq
}

// windowPrices sends day-ahead and real-time prices of [from, to) at every
// point.
func (g *gen) windowPrices(w int, from, to int64) {
	for pi, p := range g.points {
		for t := meters.Ceil(from, hour); t < to; t += hour {
			da := priceShape[g.hourAt(t)]*p.factor/100*10_000 + g.rng.Int64N(200)*10_000
			g.emit(w, g.priceRecord(p, meters.DayAhead, t, 3600, da, 1))
		}
		for t := meters.Ceil(from, int64(p.rtLen)); t < to; t += int64(p.rtLen) {
			if (pi == hub && t == g.missingHub) || (pi == houston && t == g.missingHou) {
				continue
			}
			price := g.rtPrice(pi, p, t)
			if pi == houston && t == g.refStart {
				g.refPrice = price
			}
			target := w
			if pi == houston && w == g.latePricesW {
				target = w + 3
			}
			g.rtFeatures(target, p, t, price, pi == houston && t == g.refStart)
		}
	}
}

// rtPrice is the real-time price of point p at t in micro-units per MWh.
func (g *gen) rtPrice(pi int, p *pointSpec, t int64) int64 {
	h := g.hourAt(t)
	switch {
	case pi == hub && t >= g.spikeFrom && t < g.spikeFrom+hour:
		thr := g.cfg.Market.PriceSpikeThreshold.Shift(6).IntPart()
		return thr * (130 + g.rng.Int64N(110)) / 100 / 10_000 * 10_000
	case pi == west && h >= 1 && h <= 4:
		return -(200 + g.rng.Int64N(2300)) * 10_000
	case pi == solarNod && g.cfg.Market.DayOf(time.Unix(t, 0)) == g.days[len(g.days)-1] && h >= 11 && h <= 14:
		return -(50 + g.rng.Int64N(750)) * 10_000
	}
	price := (priceShape[h]*p.factor/100 - 300 + g.rng.Int64N(600)) * 10_000
	if p.places == 4 {
		price += g.rng.Int64N(100) * 100
	}
	return price
}

// correctable prices lie well inside ($10, $200): a correction of at most
// $3 never makes them negative or a spike.
func correctable(price int64) bool { return price >= 10_000_000 && price <= 200_000_000 }

// rtFeatures sends a real-time price with the random behaviour of a
// price feed: resends, corrections, stale versions, restatements.
func (g *gen) rtFeatures(w int, p *pointSpec, t, price int64, protected bool) {
	v1 := g.priceRecord(p, meters.RealTime, t, p.rtLen, price, 1)
	g.emit(w, v1)
	if protected {
		return
	}
	ok := correctable(price)
	switch r := g.rng.IntN(1000); {
	case r < 20:
		g.emit(w+g.rng.IntN(2), v1)
	case r < 45 && ok:
		w2 := w + 1 + g.rng.IntN(2)
		g.emit(w2, g.priceRecord(p, meters.RealTime, t, p.rtLen, g.nudge(p, price), 2))
		if g.rng.IntN(3) == 0 {
			g.emit(w2+1, v1)
		}
	case r < 55 && ok:
		g.late = append(g.late, g.priceRecord(p, meters.RealTime, t, p.rtLen, g.nudge(p, price), 2))
	}
}

// nudge moves a price by $0.50 to $3.00 either way, keeping p's decimals.
func (g *gen) nudge(p *pointSpec, price int64) int64 {
	d := (50 + g.rng.Int64N(250)) * 10_000
	if g.rng.IntN(2) == 0 {
		d = -d
	}
	return price + d
}

func meterID(i int) string   { return fmt.Sprintf("MTR-%06d", i+1) }
func accountID(i int) string { return fmt.Sprintf("ACC-%06d", i+1) }

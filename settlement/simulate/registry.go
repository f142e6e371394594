package simulate

import (
	"encoding/csv"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
)

var participants = []meters.Participant{
	{ParticipantID: "RETAILER-A", Name: "Lone Star Power"},
	{ParticipantID: "RETAILER-B", Name: "Prairie Energy"},
	{ParticipantID: "RETAILER-C", Name: "Gulf Coast Electric"},
	{ParticipantID: "VPP-SUNRISE", Name: "Sunrise Virtual Power Plant"},
}

var lossFactors = []string{"1.031200", "1.018500", "0.992500", "1.047000", "1.000000", "1.012500", "1.060000"}

var sources = []string{"headend-east", "headend-west", "mdm-central"}

// Alert settings: low thresholds and budgets are reached on an ordinary
// day, high ones never; nothing is set near the edge, so whether an alert
// fires does not depend on how the input is batched.
var (
	lowThresholds  = []string{"8", "12.5", "15"}
	highThresholds = []string{"250", "400"}
	lowBudget      = "0.05"
	highBudget     = "2500.00"
)

// registry builds participants, settlement points, meters with their roles,
// accounts and assignments.
func (g *gen) registry() {
	g.sc.Participants = participants
	for _, p := range g.points {
		g.sc.SettlementPoints = append(g.sc.SettlementPoints,
			meters.SettlementPoint{SettlementPoint: p.id, Name: p.name, Kind: p.kind})
	}
	for i := range g.cfg.Meters {
		g.meters = append(g.meters, g.meterSpec(i))
	}
	for i, m := range g.meters {
		if m.account == accountID(i) {
			g.sc.Accounts = append(g.sc.Accounts, g.account(i))
		}
	}
	since := g.localHour(g.cfg.StartDay.AddDays(-61), 0)
	for _, m := range g.meters {
		g.sc.Assignments = append(g.sc.Assignments, g.assignments(m, since)...)
	}
}

func (g *gen) meterSpec(i int) *meterSpec {
	m := &meterSpec{
		idx:      i,
		id:       meterID(i),
		account:  accountID(i),
		from:     g.rangeStart,
		to:       g.rangeEnd,
		histFrom: g.rangeStart,
		places:   4,
		features: i > lastRole,
		rng:      rand.New(rand.NewPCG(uint64(g.cfg.Seed), uint64(i))),
	}
	if i%10 == 9 { // every tenth meter is a second meter of the previous account
		m.account = accountID(i - 1)
	}
	r := m.rng
	m.length = []int{900, 900, 900, 900, 900, 900, 300, 300, 3600, 1800}[r.IntN(10)]
	m.prosumer = r.IntN(100) < 15
	m.baseW = 500 + r.Int64N(1800)
	if r.IntN(40) == 0 {
		m.baseW = 8000 + r.Int64N(20000) // a small business
	}
	m.solarW = 3000 + r.Int64N(5000)
	m.point = pickPoint(r.IntN(100), m.prosumer)
	if r.IntN(100) < 15 {
		m.places = 6
	}
	m.numeric = r.IntN(100) < 10
	m.terse = r.IntN(100) < 20
	m.source = sources[r.IntN(len(sources))]
	switch i {
	case roleSwitch, roleDead, roleOutage, roleMoveOut, roleNewConn, roleRef, roleLate, roleLikeDay, roleNewMeter:
		m.length, m.prosumer = 900, false
	case roleFiveMin:
		m.length, m.prosumer, m.point = 300, true, pointSpecs[hub].id
	case roleHourly:
		m.length, m.point = 3600, pointSpecs[west].id
	case roleHalfHour:
		m.length, m.prosumer, m.point = 1800, true, pointSpecs[solarNod].id
	}
	switch i {
	case roleSwitch:
		m.point = pointSpecs[houston].id
	case roleRef:
		m.point, m.numeric, m.terse = pointSpecs[hub].id, false, false
	case roleDead:
		m.to = g.deadAt
	case roleMoveOut:
		m.to = g.moveOutAt
	case roleNewConn:
		m.from = g.newConnAt
	case roleNewMeter:
		m.from, m.histFrom, m.to = g.commission, g.commission, g.localHour(g.days[len(g.days)-1], 10)
	}
	g.roleGaps(m)
	return m
}

// roleGaps gives the meters of fixed roles the gaps of the cases of
// settlement/README.md "Estimation of missing reads (VEE)": short ones for
// linear interpolation (one across a retailer switch, one across the DST
// change, one on a 60-minute channel, one across midnight), a 5-hour outage
// with like-day history, and a 2-hour gap across midnight without any, which is
// estimated as zero. The new meter's silence (roleNewMeter) is zero too: it has
// no week-old reads.
func (g *gen) roleGaps(m *meterSpec) {
	dst := g.dstAt
	if dst == 0 {
		dst = g.localHour(g.days[0], 15)
	}
	add := func(from, to int64, late bool) {
		l := int64(m.length)
		m.gaps = append(m.gaps, gap{from: meters.Floor(from, l), to: meters.Ceil(to, l), late: late})
	}
	switch m.idx {
	case roleSwitch:
		add(g.switchAt-hour/2, g.switchAt+hour/2, true)
	case roleFiveMin:
		add(dst-hour/4, dst+hour/4, false)
	case roleHourly:
		add(g.localHour(g.days[0], 15), g.localHour(g.days[0], 15)+hour, true)
		if g.day2At != 0 { // straddles midnight in a market with a half-hour offset
			add(meters.Floor(g.day2At, hour), meters.Floor(g.day2At, hour)+hour, false)
		}
	case roleHalfHour:
		if g.day2At != 0 {
			add(g.day2At-hour, g.day2At+hour, false)
		}
	case roleMoveOut:
		if g.day2At != 0 {
			add(g.day2At-hour/2, g.day2At+hour/2, false)
		}
	case roleLikeDay:
		outage := g.localHour(g.days[len(g.days)-1], 9)
		add(outage, outage+5*hour, true)
		if g.dstAt != 0 {
			add(g.dstAt-hour, g.dstAt+hour, false)
		}
		for _, gp := range m.gaps {
			m.histFrom = min(m.histFrom, gp.from-week)
		}
	}
}

func pickPoint(r int, prosumer bool) string {
	if prosumer && r < 40 {
		return pointSpecs[solarNod].id
	}
	switch {
	case r < 35:
		return pointSpecs[hub].id
	case r < 70:
		return pointSpecs[houston].id
	case r < 90:
		return pointSpecs[west].id
	}
	return pointSpecs[solarNod].id
}

// account i belongs to meter i (and to meter i+1 when that one is a second
// meter). Its alert settings come from the meter's own random stream.
func (g *gen) account(i int) meters.Account {
	m := g.meters[i]
	r := rand.New(rand.NewPCG(uint64(g.cfg.Seed), uint64(i)|1<<40))
	a := meters.Account{AccountID: m.account, Name: fmt.Sprintf("Customer %06d", i+1)}
	switch t := r.IntN(100); {
	case t < 20:
		a.DailyKWhThreshold = dec(lowThresholds[r.IntN(len(lowThresholds))])
	case t < 35:
		a.DailyKWhThreshold = dec(highThresholds[r.IntN(len(highThresholds))])
	}
	// Low budgets only where the month's cost is surely above them: not for
	// prosumers (net export), partial-day meters, or the windy zone.
	steady := !m.prosumer && m.point != pointSpecs[west].id && i > roleNewConn
	if i+1 < len(g.meters) && g.meters[i+1].account == m.account {
		steady = steady && !g.meters[i+1].prosumer && g.meters[i+1].point != pointSpecs[west].id
	}
	switch b := r.IntN(100); {
	case b < 15 && steady:
		a.MonthlyBudget = dec(lowBudget)
	case b < 25:
		a.MonthlyBudget = dec(highBudget)
	}
	a.PriceAlerts = r.IntN(100) < 25
	switch i {
	case roleSwitch:
		a.DailyKWhThreshold = dec("10")
	case roleDead:
		a.DailyKWhThreshold, a.MonthlyBudget = dec("400"), dec(highBudget)
	case roleFiveMin, roleHourly:
		a.PriceAlerts = true
	case roleRef:
		a.MonthlyBudget = dec(lowBudget)
	case roleLikeDay, roleNewMeter: // their reads before the first day are no alert's business
		a.DailyKWhThreshold, a.MonthlyBudget, a.PriceAlerts = nil, nil, false
	}
	return a
}

func dec(s string) *decimal.Decimal {
	d := decimal.RequireFromString(s)
	return &d
}

func (g *gen) assignments(m *meterSpec, since int64) []meters.Assignment {
	r := rand.New(rand.NewPCG(uint64(g.cfg.Seed), uint64(m.idx)|2<<40))
	a := meters.Assignment{
		MeterID:         m.id,
		AccountID:       m.account,
		ParticipantID:   pickParticipant(r, m.prosumer),
		SettlementPoint: m.point,
		LossFactor:      decimal.RequireFromString(lossFactors[r.IntN(len(lossFactors))]),
		EffectiveFrom:   time.Unix(since, 0).UTC(),
	}
	switch m.idx {
	case roleSwitch:
		a.ParticipantID = participants[0].ParticipantID
		b := a
		b.ParticipantID = participants[1].ParticipantID
		b.EffectiveFrom = time.Unix(g.switchAt, 0).UTC()
		a.EffectiveTo = &b.EffectiveFrom
		return []meters.Assignment{a, b}
	case roleMoveOut:
		to := time.Unix(g.moveOutAt, 0).UTC()
		a.EffectiveTo = &to
	case roleNewConn:
		a.EffectiveFrom = time.Unix(g.newConnAt, 0).UTC()
	case roleNewMeter:
		a.EffectiveFrom = time.Unix(g.commission, 0).UTC()
	}
	return []meters.Assignment{a}
}

func pickParticipant(r *rand.Rand, prosumer bool) string {
	if prosumer && r.IntN(100) < 60 {
		return participants[3].ParticipantID
	}
	switch n := r.IntN(100); {
	case n < 45:
		return participants[0].ParticipantID
	case n < 80:
		return participants[1].ParticipantID
	}
	return participants[2].ParticipantID
}

// Registry file names of settlement/README.md "Reference data".
const (
	ParticipantsFile     = "participants.csv"
	SettlementPointsFile = "settlement_points.csv"
	AccountsFile         = "accounts.csv"
	MetersFile           = "meters.csv"
)

// WriteRegistry writes the scenario's registry as the four CSV files of
// settlement/README.md into dir (created when missing), overwriting them.
func WriteRegistry(dir string, s *Scenario) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create registry dir: %w", err)
	}
	files := []struct {
		name string
		rows [][]string
	}{
		{ParticipantsFile, participantRows(s)},
		{SettlementPointsFile, pointRows(s)},
		{AccountsFile, accountRows(s)},
		{MetersFile, assignmentRows(s)},
	}
	for _, f := range files {
		if err := writeCSV(filepath.Join(dir, f.name), f.rows); err != nil {
			return err
		}
	}
	return nil
}

func participantRows(s *Scenario) [][]string {
	rows := [][]string{{"participant_id", "name"}}
	for _, p := range s.Participants {
		rows = append(rows, []string{p.ParticipantID, p.Name})
	}
	return rows
}

func pointRows(s *Scenario) [][]string {
	rows := [][]string{{"settlement_point", "name", "kind"}}
	for _, p := range s.SettlementPoints {
		rows = append(rows, []string{p.SettlementPoint, p.Name, p.Kind})
	}
	return rows
}

func accountRows(s *Scenario) [][]string {
	rows := [][]string{{"account_id", "name", "daily_kwh_threshold", "monthly_budget", "price_alerts"}}
	opt := func(d *decimal.Decimal) string {
		if d == nil {
			return ""
		}
		return d.String()
	}
	for _, a := range s.Accounts {
		rows = append(rows, []string{a.AccountID, a.Name, opt(a.DailyKWhThreshold), opt(a.MonthlyBudget),
			strconv.FormatBool(a.PriceAlerts)})
	}
	return rows
}

func assignmentRows(s *Scenario) [][]string {
	rows := [][]string{{"meter_id", "account_id", "participant_id", "settlement_point", "loss_factor", "effective_from", "effective_to"}}
	for _, a := range s.Assignments {
		to := ""
		if a.EffectiveTo != nil {
			to = a.EffectiveTo.UTC().Format(time.RFC3339)
		}
		rows = append(rows, []string{a.MeterID, a.AccountID, a.ParticipantID, a.SettlementPoint,
			a.LossFactor.StringFixed(6), a.EffectiveFrom.UTC().Format(time.RFC3339), to})
	}
	return rows
}

func writeCSV(path string, rows [][]string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	w := csv.NewWriter(f)
	if err := w.WriteAll(rows); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

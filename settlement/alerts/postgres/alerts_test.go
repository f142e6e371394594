package postgres_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/settlement/alerts"
)

// TestDailyUsage: the first record that brings an account's day to its
// threshold fires, once; corrections that move the figure below and above
// again do not fire again; estimated reads make the label "estimated";
// accounts without a threshold never fire.
func TestDailyUsage(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(baseRegistry + `
		INSERT INTO accounts (account_id, name, daily_kwh_threshold) VALUES ('ACC-1', 'one', 1), ('ACC-2', 'two', 1.2);
		INSERT INTO accounts (account_id, name) VALUES ('ACC-3', 'three');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from) VALUES
			('M1', 'ACC-1', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z'),
			('M1H', 'ACC-1', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z'),
			('M2', 'ACC-2', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z'),
			('M2B', 'ACC-2', 'RET-A', 'HB_SOUTH', 1.5, '2026-01-01T00:00:00Z'),
			('M3', 'ACC-3', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z')`)
	// 2026-11-10 (CST) runs from 06:00Z to 06:00Z the next day.
	c.produce(
		readRec(0, "M1", "import", "2026-11-10T06:00:00Z", 900, 1, "0.3", "0.3", "0.3"), // 0.9
		readRec(0, "M1", "export", "2026-11-10T06:00:00Z", 900, 1, "5"),                 // not usage
		readRec(0, "M1", "import", "2026-11-10T06:45:00Z", 900, 1, "0.2"),               // 1.1: fires
		readRec(0, "M1", "import", "2026-11-10T06:45:00Z", 900, 2, "0"),                 // 0.9
		readRec(0, "M1", "import", "2026-11-10T06:45:00Z", 900, 3, "0.5"),               // 1.4: fired already
		readRec(0, "M1", "import", "2026-11-11T05:45:00Z", 900, 1, "0.1"),               // 23:45 local, same day
		readRec(0, "M1H", "import", "2026-11-11T06:00:00Z", 3600, 1, "1.5"),             // next day, hourly meter
		readRec(0, "M2", "import", "2026-11-10T06:00:00Z", 900, 1, "0.6", "0.3E"),
		readRec(0, "M2B", "import", "2026-11-10T12:00:00Z", 900, 1, "0.3"), // another meter of ACC-2: 1.2
		readRec(0, "M3", "import", "2026-11-10T06:00:00Z", 900, 1, "100"),
	)
	c.consume(d, "g", 4096)
	c.caughtUp(d)

	// The next day's read moved the watermark a day on: the silent meters
	// are missing_data, tested on their own.
	got := ofType(d.published(), alerts.DailyUsage)
	equalIDs(t, got, "daily_usage/ACC-1/2026-11-10", "daily_usage/ACC-1/2026-11-11", "daily_usage/ACC-2/2026-11-10")
	want := alerts.Alert{AlertID: "daily_usage/ACC-1/2026-11-10", Type: alerts.DailyUsage, AccountID: "ACC-1",
		OperatingDay: "2026-11-10", Observed: "1.100000", Threshold: "1", Unit: "kWh", DataQuality: "actual",
		EventTime: utc("2026-11-10T07:00:00Z"),
		Message:   "Your electricity use on Tue 10 Nov 2026 reached 1.1 kWh, above your alert level of 1 kWh."}
	if a := got[want.AlertID]; !sameAlert(a, want) {
		t.Errorf("got  %+v\nwant %+v", a, want)
	}
	if a := got["daily_usage/ACC-1/2026-11-11"]; a.Observed != "1.500000" || !a.EventTime.Equal(utc("2026-11-11T07:00:00Z")) {
		t.Errorf("hourly read: %+v", a)
	}
	a := got["daily_usage/ACC-2/2026-11-10"]
	if a.Observed != "1.200000" || a.DataQuality != alerts.QualityEstimated || !strings.Contains(a.Message, "estimated") ||
		!a.EventTime.Equal(utc("2026-11-10T12:15:00Z")) || a.Threshold != "1.2" {
		t.Errorf("estimated: %+v", a)
	}
	// The aggregate is the figure of the current reads.
	var kwh string
	var est int
	if err := d.pool.QueryRow(t.Context(), `
		SELECT sum(import_kwh)::text, sum(estimated_reads) FROM alert_daily_usage
		WHERE account_id = 'ACC-1' AND operating_day = '2026-11-10'`).Scan(&kwh, &est); err != nil {
		t.Fatal(err)
	}
	if kwh != "1.5" || est != 0 {
		t.Errorf("ACC-1 2026-11-10: %s kWh, %d estimated; want 1.5, 0", kwh, est)
	}
}

// TestMonthlyBudget: the month-to-date cost (Σ energy × settlement price
// over priced intervals, net of export, with the loss factor) fires when a
// late price makes an interval priced, when a price arrives after the reads,
// and when reads arrive after the prices; months are local months.
func TestMonthlyBudget(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(baseRegistry + `
		INSERT INTO accounts (account_id, name, monthly_budget) VALUES ('ACC-B', 'b', 0.05), ('ACC-C', 'c', 0.01);
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from) VALUES
			('MB', 'ACC-B', 'RET-A', 'HB_NORTH', 1.5, '2026-01-01T00:00:00Z'),
			('MC', 'ACC-C', 'RET-A', 'HB_SOUTH', 1, '2026-01-01T00:00:00Z')`)
	c.consume(d, "g", 4096)
	c.produce(
		// 2026-11-01T04:30Z is 23:30 on 31 Oct in Chicago: October.
		readRec(0, "MB", "import", "2026-11-01T04:30:00Z", 900, 1, "100"),
		// November: 06:00 net 10 − 2 = 8 kWh → 0.012 MWh; 06:15 10 kWh → 0.015 MWh.
		readRec(0, "MB", "import", "2026-11-10T06:00:00Z", 900, 1, "10", "10E"),
		readRec(0, "MB", "export", "2026-11-10T06:00:00Z", 900, 1, "2"),
		// HB_SOUTH prices come first for MC.
		priceRec(1, "HB_SOUTH", "2026-11-10T06:00:00Z", 900, 1, "30"),
	)
	c.caughtUp(d)
	c.produce(
		priceRec(0, "HB_NORTH", "2026-11-01T04:30:00Z", 300, 1, "2"),
		priceRec(0, "HB_NORTH", "2026-11-01T04:35:00Z", 300, 1, "2"),
		priceRec(0, "HB_NORTH", "2026-11-01T04:40:00Z", 300, 1, "2"), // October: 0.15 × 2 = 0.30
		priceRec(0, "HB_NORTH", "2026-11-10T06:00:00Z", 300, 1, "2"),
		priceRec(0, "HB_NORTH", "2026-11-10T06:05:00Z", 300, 1, "2"), // 06:10 missing: 06:00 unpriced
		priceRec(0, "HB_NORTH", "2026-11-10T06:15:00Z", 300, 1, "2"),
		priceRec(0, "HB_NORTH", "2026-11-10T06:20:00Z", 300, 1, "2"),
		priceRec(0, "HB_NORTH", "2026-11-10T06:25:00Z", 300, 1, "2"),      // 06:15 priced: 0.03
		readRec(1, "MC", "import", "2026-11-10T06:00:00Z", 900, 1, "0.5"), // 0.0005 × 30 = 0.015 ≥ 0.01
	)
	c.caughtUp(d)
	equalIDs(t, d.published(), "monthly_budget/ACC-B/2026-10", "monthly_budget/ACC-C/2026-11")

	// The missing 5-minute price arrives: 06:00 is priced at (2+2+2.3)/3 = 2.1,
	// 0.03 + 0.012 × 2.1 = 0.0552 ≥ 0.05.
	c.produce(priceRec(0, "HB_NORTH", "2026-11-10T06:10:00Z", 300, 1, "2.3"))
	c.caughtUp(d)
	got := d.published()
	equalIDs(t, got, "monthly_budget/ACC-B/2026-10", "monthly_budget/ACC-C/2026-11", "monthly_budget/ACC-B/2026-11")
	want := alerts.Alert{AlertID: "monthly_budget/ACC-B/2026-11", Type: alerts.MonthlyBudget, AccountID: "ACC-B",
		Month: "2026-11", Observed: "0.06", Threshold: "0.05", Unit: "USD", DataQuality: "estimated",
		EventTime: utc("2026-11-10T06:30:00Z"),
		Message: "Your estimated electricity cost for November 2026 has reached $0.06, which meets or exceeds your monthly budget of $0.05." +
			" This figure includes estimated readings and may change when actual readings arrive."}
	if a := got[want.AlertID]; !sameAlert(a, want) {
		t.Errorf("got  %+v\nwant %+v", a, want)
	}
	if a := got["monthly_budget/ACC-B/2026-10"]; a.Observed != "0.30" || a.DataQuality != "actual" ||
		!a.EventTime.Equal(utc("2026-11-01T04:45:00Z")) {
		t.Errorf("October: %+v", a)
	}
	if a := got["monthly_budget/ACC-C/2026-11"]; a.Observed != "0.02" { // 0.015 rounds half-even to 0.02
		t.Errorf("reads after prices: %+v", a)
	}
}

// TestPriceAlerts: price_spike and negative_price fire for the accounts with
// price_alerts that have a meter assigned at the point during the day, on
// the settlement price (the mean of 5-minute prices, an hourly price for
// each of its intervals), once per account and day.
func TestPriceAlerts(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(baseRegistry + `
		INSERT INTO accounts (account_id, name, price_alerts) VALUES
			('PA', 'alerts, north', true), ('PB', 'no alerts, north', false), ('PC', 'alerts, south', true),
			('PD', 'alerts, north from the next day', true), ('PE', 'alerts, north until noon', true),
			('PF', 'alerts, west', true), ('PG', 'alerts, east', true);
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to) VALUES
			('MA', 'PA', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z', NULL),
			('MA2', 'PA', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z', NULL),
			('MB', 'PB', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z', NULL),
			('MC', 'PC', 'RET-A', 'HB_SOUTH', 1, '2026-01-01T00:00:00Z', NULL),
			('MD', 'PD', 'RET-A', 'HB_NORTH', 1, '2026-11-11T06:00:00Z', NULL),
			('ME', 'PE', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z', '2026-11-10T18:00:00Z'),
			('MF', 'PF', 'RET-A', 'HB_WEST', 1, '2026-01-01T00:00:00Z', NULL),
			('MG', 'PG', 'RET-A', 'HB_EAST', 1, '2026-01-01T00:00:00Z', NULL)`)
	c.produce(
		priceRec(0, "HB_NORTH", "2026-11-10T20:00:00Z", 900, 1, "1200"),
		priceRec(0, "HB_NORTH", "2026-11-10T20:15:00Z", 900, 1, "-5"),
		priceRec(0, "HB_NORTH", "2026-11-10T20:30:00Z", 900, 1, "1500"),
		priceRec(0, "HB_NORTH", "2026-11-10T20:00:00Z", 900, 2, "800"),
		priceRec(1, "HB_SOUTH", "2026-11-10T20:00:00Z", 900, 1, "999.999999"),
		priceRec(2, "HB_WEST", "2026-11-10T20:00:00Z", 300, 1, "2900"),
		priceRec(2, "HB_WEST", "2026-11-10T20:05:00Z", 300, 1, "50"),
		priceRec(2, "HB_WEST", "2026-11-10T20:10:00Z", 300, 1, "50"), // mean 1000: a spike
		priceRec(2, "HB_WEST", "2026-11-10T20:15:00Z", 300, 1, "3000"),
		priceRec(2, "HB_WEST", "2026-11-10T20:20:00Z", 300, 1, "-3000"),
		priceRec(2, "HB_WEST", "2026-11-10T20:25:00Z", 300, 1, "-0.000003"), // mean -0.000001: negative
		priceRec(3, "HB_EAST", "2026-11-10T21:00:00Z", 3600, 1, "-1"),
	)
	c.consume(d, "g", 4096)
	c.caughtUp(d)
	got := d.published()
	equalIDs(t, got,
		"price_spike/PA/2026-11-10", "negative_price/PA/2026-11-10",
		"price_spike/PE/2026-11-10", "negative_price/PE/2026-11-10",
		"price_spike/PF/2026-11-10", "negative_price/PF/2026-11-10",
		"negative_price/PG/2026-11-10")
	want := alerts.Alert{AlertID: "price_spike/PA/2026-11-10", Type: alerts.PriceSpike, AccountID: "PA",
		OperatingDay: "2026-11-10", SettlementPt: "HB_NORTH", Observed: "1200.000000", Threshold: "1000",
		Unit: "USD/MWh", DataQuality: "actual", EventTime: utc("2026-11-10T20:15:00Z"),
		Message: "Electricity prices in your area are very high on Tue 10 Nov 2026 at 2:00 PM: 120.00¢/kWh. " +
			"Using less electricity around then will lower your costs."}
	if a := got[want.AlertID]; !sameAlert(a, want) {
		t.Errorf("got  %+v\nwant %+v", a, want)
	}
	if a := got["negative_price/PA/2026-11-10"]; a.Observed != "-5.000000" || a.Threshold != "0" ||
		!strings.Contains(a.Message, "-0.50¢/kWh") || !strings.Contains(a.Message, "2:15 PM") {
		t.Errorf("negative: %+v", a)
	}
	if a := got["price_spike/PF/2026-11-10"]; a.Observed != "1000.000000" || !a.EventTime.Equal(utc("2026-11-10T20:15:00Z")) {
		t.Errorf("5-minute mean: %+v", a)
	}
	if a := got["negative_price/PF/2026-11-10"]; a.Observed != "-0.000001" {
		t.Errorf("5-minute mean, rounded half-even to 6 places: %+v", a)
	}
	if a := got["negative_price/PG/2026-11-10"]; !a.EventTime.Equal(utc("2026-11-10T21:15:00Z")) || a.Observed != "-1.000000" {
		t.Errorf("hourly price: %+v", a)
	}
}

// TestMissingData: each meter's silence is measured against its own
// partition's watermark, record by record; an assignment must cover the
// watermark; a read that leaves the meter silent is a new gap start.
func TestMissingData(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(baseRegistry + `
		INSERT INTO accounts (account_id, name) VALUES ('ACC-1', 'one'), ('ACC-2', 'two'), ('ACC-3', 'three'), ('ACC-4', 'four');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to) VALUES
			('M1', 'ACC-1', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z', NULL),
			('M2', 'ACC-2', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z', NULL),
			('M3', 'ACC-3', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z', '2026-11-10T09:00:00Z'),
			('M4', 'ACC-4', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z', NULL)`)
	recs := []*kgo.Record{
		readRec(2, "M2", "import", "2026-11-10T06:00:00Z", 900, 1, "1", "1", "1", "1"),
		readRec(2, "M3", "import", "2026-11-10T06:00:00Z", 900, 1, "1", "1", "1", "1"),
		readRec(3, "M4", "import", "2026-11-10T06:00:00Z", 900, 1, "1"),
	}
	for h := 6; h < 14; h++ { // M1 reports hourly: the watermark of partition 2 reaches 14:00
		start := time.Date(2026, 11, 10, h, 0, 0, 0, time.UTC).Format(time.RFC3339)
		recs = append(recs, readRec(2, "M1", "import", start, 900, 1, "1", "1", "1", "1"))
	}
	c.produce(recs...)
	c.consume(d, "g", 4096)
	c.caughtUp(d)
	got := d.published()
	equalIDs(t, got, "missing_data/M2/2026-11-10T07:00:00Z")
	gap := utc("2026-11-10T07:00:00Z")
	want := alerts.Alert{AlertID: "missing_data/M2/2026-11-10T07:00:00Z", Type: alerts.MissingData, AccountID: "ACC-2",
		MeterID: "M2", GapStart: &gap, Observed: "6.00", Threshold: "6.00", Unit: "hours", DataQuality: "actual",
		EventTime: utc("2026-11-10T13:00:00Z"), // the record that brought the watermark to 07:00 + 6h
		Message: "We have not received readings from your meter M2 since 1:00 AM on Tue 10 Nov 2026. " +
			"Your usage figures may be incomplete until the data arrives."}
	if a := got[want.AlertID]; !sameAlert(a, want) {
		t.Errorf("got  %+v\nwant %+v", a, want)
	}

	// A correction inside the gap changes nothing; a late read that still
	// leaves 6 hours of silence is a new gap start.
	c.produce(
		readRec(2, "M2", "import", "2026-11-10T06:00:00Z", 900, 2, "2"),
		readRec(2, "M2", "import", "2026-11-10T07:00:00Z", 900, 1, "1"),
	)
	c.caughtUp(d)
	got = d.published()
	equalIDs(t, got, "missing_data/M2/2026-11-10T07:00:00Z", "missing_data/M2/2026-11-10T07:15:00Z")
	if a := got["missing_data/M2/2026-11-10T07:15:00Z"]; a.Observed != "6.75" || !a.EventTime.Equal(utc("2026-11-10T14:00:00Z")) {
		t.Errorf("second gap: %+v", a)
	}
}

// TestMissingDataInsideABatch: a meter silent for the window in the middle
// of one batch fires at the record that takes the watermark there, although
// a later record of the same batch ends its silence (the hook reads only
// the touched meters that can fire, missing.go canFire).
func TestMissingDataInsideABatch(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(baseRegistry + `
		INSERT INTO accounts (account_id, name) VALUES ('ACC-1', 'one'), ('ACC-5', 'five');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from) VALUES
			('M1', 'ACC-1', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z'),
			('M5', 'ACC-5', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z')`)
	recs := []*kgo.Record{readRec(2, "M5", "import", "2026-11-10T06:00:00Z", 900, 1, "1")}
	for h := 6; h < 14; h++ {
		start := time.Date(2026, 11, 10, h, 0, 0, 0, time.UTC).Format(time.RFC3339)
		recs = append(recs, readRec(2, "M1", "import", start, 900, 1, "1", "1", "1", "1"))
	}
	recs = append(recs, readRec(2, "M5", "import", "2026-11-10T13:00:00Z", 900, 1, "1"))
	c.produce(recs...) // all before the consumer starts: one batch
	c.consume(d, "g", 4096)
	c.caughtUp(d)
	got := d.published()
	equalIDs(t, got, "missing_data/M5/2026-11-10T06:15:00Z")
	if a := got["missing_data/M5/2026-11-10T06:15:00Z"]; !a.EventTime.Equal(utc("2026-11-10T13:00:00Z")) || a.Observed != "6.75" {
		t.Errorf("M5: %+v", a)
	}
}

// TestLargestEnergyStillLands: 9,300 meters of one budgeted account each
// send the largest read (10^6 kWh) for one interval in one batch: the
// batch's sum for that account and interval leaves an int64 of nano-kWh, so
// the batch fails and is applied in parts (settlement/ingest), and every
// record lands, none set aside, with the energy exact.
func TestLargestEnergyStillLands(t *testing.T) {
	t.Parallel()
	const n = 9_300
	c := newCluster(t)
	d := c.newDB(baseRegistry + fmt.Sprintf(`
		INSERT INTO accounts (account_id, name, monthly_budget) VALUES ('ACC-BIG', 'big', 1000000000000);
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		SELECT 'MB-' || i, 'ACC-BIG', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z' FROM generate_series(1, %d) i`, n))
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = readRec(0, fmt.Sprintf("MB-%d", i+1), "import", "2026-11-10T06:00:00Z", 900, 1, "1000000")
	}
	c.produce(recs...) // all before the consumer starts: one batch
	c.consume(d, "g", 100_000)
	c.caughtUp(d)
	if q := d.count(`SELECT count(*) FROM quarantine`); q != 0 {
		t.Fatalf("%d records set aside", q)
	}
	got := d.strings(`SELECT trim_scale(sum(energy_mwh))::text FROM alert_energy WHERE account_id = 'ACC-BIG'`)
	if want := fmt.Sprint(n * 1000); len(got) != 1 || got[0] != want {
		t.Errorf("energy %v MWh, want %s", got, want)
	}
}

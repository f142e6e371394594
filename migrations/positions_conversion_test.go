package migrations_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/migrations"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
)

// The last migration with the positions table
// (migrations/00101_ingest_quarantine_positions.sql), before
// migrations/00805_position_days.sql.
const oldPositionsVersion = 804

// oldPosition is a row of the old positions table, its energy as text so
// that its scale is compared too.
type oldPosition struct {
	participant, point, start string
	slot                      int32
	energy                    string
}

// oldPositionsFixture: several slots and days, the first and last
// interval of a UTC day, gaps, zero, negative and long-scaled energies, a
// day before 1970, and 5-minute starts beside 15-minute ones.
func oldPositionsFixture() []oldPosition {
	return []oldPosition{
		{"RETAILER-A", "HB_NORTH", "2026-03-10T00:00:00Z", 0, "0.0015"},
		{"RETAILER-A", "HB_NORTH", "2026-03-10T00:00:00Z", 3, "-0.000750000"},
		{"RETAILER-A", "HB_NORTH", "2026-03-10T00:15:00Z", 0, "0"},
		{"RETAILER-A", "HB_NORTH", "2026-03-10T05:45:00Z", 0, "123456789.123456789012"},
		{"RETAILER-A", "HB_NORTH", "2026-03-10T23:45:00Z", -1, "-2.5"},
		{"RETAILER-A", "HB_NORTH", "2026-03-11T00:05:00Z", 0, "0.0010312"},
		{"RETAILER-A", "HB_NORTH", "2026-03-11T23:55:00Z", 0, "0.00000000"},
		{"RETAILER-A", "HB_SOUTH", "2026-03-10T12:00:00Z", 0, "7"},
		{"RETAILER-B", "HB_NORTH", "2026-03-10T12:00:00Z", 1, "-0.000000000001"},
		{"RETAILER-B", "HB_NORTH", "1969-12-31T23:00:00Z", 1, "1.25"},
		{"RETAILER-B", "HB_NORTH", "1970-01-01T00:00:00Z", 1, "3"},
	}
}

func insertOldPositions(ctx context.Context, t *testing.T, pool *pgxpool.Pool, rows []oldPosition) {
	t.Helper()
	for _, r := range rows {
		if _, err := pool.Exec(ctx, `INSERT INTO positions VALUES ($1, $2, $3::timestamptz, $4, $5::numeric)`,
			r.participant, r.point, r.start, r.slot, r.energy); err != nil {
			t.Fatalf("fill the old positions table: %v", err)
		}
	}
}

// positionRows reads positions (the table or the view) as the fixture
// writes them.
func positionRows(ctx context.Context, t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(ctx, `SELECT participant_id, settlement_point,
		to_char(interval_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), slot, energy_mwh::text FROM positions`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var r oldPosition
		err := row.Scan(&r.participant, &r.point, &r.start, &r.slot, &r.energy)
		return fmt.Sprint(r), err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func fixtureRows(rows []oldPosition) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprint(r)
	}
	slices.Sort(out)
	return out
}

// oldListing is what PositionEnergies returned over the old table (its
// query before migrations/00805_position_days.sql), as text.
func oldListing(ctx context.Context, t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(ctx, `
		SELECT participant_id, settlement_point, interval_start, sum(energy_mwh)
		FROM positions
		WHERE interval_start >= '1969-01-01' AND interval_start < '2027-01-01'
		GROUP BY participant_id, settlement_point, interval_start
		ORDER BY participant_id, settlement_point, interval_start`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var p readstore.PositionEnergy
		err := row.Scan(&p.ParticipantID, &p.SettlementPoint, &p.IntervalStart, &p.EnergyMWh)
		p.IntervalStart = p.IntervalStart.UTC()
		return listed(p), err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func newListing(ctx context.Context, t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	ps, err := readstore.PositionEnergies(ctx, pool, readstore.PositionFilter{From: utc("1969-01-01T00:00:00Z"), To: utc("2027-01-01T00:00:00Z")}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = listed(p)
	}
	return out
}

// listed is a listed position with its decimal's exponent, so that the
// scale the query gave is compared as well as the value.
func listed(p readstore.PositionEnergy) string {
	return fmt.Sprint(p.ParticipantID, p.SettlementPoint, p.IntervalStart, p.EnergyMWh.StringFixed(-min(p.EnergyMWh.Exponent(), 0)))
}

// The conversion keeps every old row exactly (value and scale), one row per
// participant, point, UTC day and slot, and PositionEnergies lists what the
// old query listed; Down gives the old table back; Up again converts again.
func TestPositionsConvertToDays(t *testing.T) {
	pool, _ := pgtest.Empty(t)
	ctx := t.Context()
	p := gooseAt(t, pool)
	if _, err := p.UpTo(ctx, oldPositionsVersion); err != nil {
		t.Fatal(err)
	}
	old := oldPositionsFixture()
	insertOldPositions(ctx, t, pool, old)
	listing := oldListing(ctx, t, pool)

	if err := migrations.Apply(ctx, pool, quiet); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		equal(t, when+": positions", positionRows(ctx, t, pool), fixtureRows(old))
		equal(t, when+": PositionEnergies", newListing(ctx, t, pool), listing)
		var rows, grids int
		var seconds int
		if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT interval_seconds), min(interval_seconds) FROM position_days`).
			Scan(&rows, &grids, &seconds); err != nil {
			t.Fatal(err)
		}
		// 5-minute starts (2026-03-11T00:05) put every row on 300 s.
		if rows != 8 || grids != 1 || seconds != 300 {
			t.Errorf("%s: %d rows on %d grids from %d s, want 8 rows on 300 s", when, rows, grids, seconds)
		}
	}
	check("converted")

	if _, err := p.DownTo(ctx, oldPositionsVersion); err != nil {
		t.Fatal(err)
	}
	if !tableExists(ctx, t, pool, "positions") || tableExists(ctx, t, pool, "position_days") {
		t.Error("after Down: want the positions table and no position_days")
	}
	var kind string
	if err := pool.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = 'positions'::regclass`).Scan(&kind); err != nil || kind != "r" {
		t.Errorf("after Down: positions is of kind %q (%v), want a table", kind, err)
	}
	equal(t, "after Down: positions", positionRows(ctx, t, pool), fixtureRows(old))
	equal(t, "after Down: the old listing", oldListing(ctx, t, pool), listing)

	if err := migrations.Apply(ctx, pool, quiet); err != nil {
		t.Fatal(err)
	}
	check("converted again")
}

func equal(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %v\n want %v", what, got, want)
	}
}

// Old rows that all start on the hour are converted onto hours; ingest at
// 15-minute settlement then moves such a day exactly, laying it on 15
// minutes.
func TestConvertedPositionsTakeAFinerInterval(t *testing.T) {
	pool, _ := pgtest.Empty(t)
	ctx := t.Context()
	p := gooseAt(t, pool)
	if _, err := p.UpTo(ctx, oldPositionsVersion); err != nil {
		t.Fatal(err)
	}
	old := []oldPosition{
		{"RETAILER-A", "HB_NORTH", "2026-11-01T05:00:00Z", 0, "0.5"},
		{"RETAILER-A", "HB_NORTH", "2026-11-01T07:00:00Z", 0, "0.25"},
		{"RETAILER-A", "HB_NORTH", "2026-11-02T00:00:00Z", 0, "1"},
	}
	insertOldPositions(ctx, t, pool, old)
	if err := migrations.Apply(ctx, pool, quiet); err != nil {
		t.Fatal(err)
	}
	var seconds int
	if err := pool.QueryRow(ctx, `SELECT DISTINCT interval_seconds FROM position_days`).Scan(&seconds); err != nil || seconds != 3600 {
		t.Fatalf("converted onto %d s (%v), want 3600", seconds, err)
	}

	_, err := pool.Exec(ctx, `
		INSERT INTO participants VALUES ('RETAILER-A', 'A');
		INSERT INTO settlement_points VALUES ('HB_NORTH', 'North', 'hub');
		INSERT INTO accounts (account_id, name) VALUES ('ACC-1', 'one');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from) VALUES
			('M1', 'ACC-1', 'RETAILER-A', 'HB_NORTH', 2, '2026-01-01T00:00:00Z')`)
	if err != nil {
		t.Fatal(err)
	}
	// 05:00 and 05:15, 15-minute reads of 1 kWh and 3 kWh: 0.002 and 0.006
	// MWh, of scale 9 (micro-kWh / 1000) as the old table had them.
	value := `{"meter_id":"M1","channel":"import","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["1","3"],"version":1}`
	in := []readstore.ReadRecord{{Source: readstore.Source{Origin: readstore.Origin{Topic: "ami.interval-reads"}, Key: []byte("M1"), Value: []byte(value)}}}
	in[0].Block, in[0].Rejection = meters.DecodeReadBlock([]byte(value))
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		_, err := readstore.ApplyReads(ctx, tx, readstore.ReadOptions{SettlementSeconds: 900}, in)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []oldPosition{
		{"RETAILER-A", "HB_NORTH", "2026-11-01T05:00:00Z", 0, "0.502000000"},
		{"RETAILER-A", "HB_NORTH", "2026-11-01T05:15:00Z", 0, "0.006000000"},
		{"RETAILER-A", "HB_NORTH", "2026-11-01T07:00:00Z", 0, "0.25"},
		{"RETAILER-A", "HB_NORTH", "2026-11-02T00:00:00Z", 0, "1"},
	}
	equal(t, "positions", positionRows(ctx, t, pool), fixtureRows(want))
	days := map[string]int{}
	rows, err := pool.Query(ctx, `SELECT day::text, interval_seconds FROM position_days`)
	if err != nil {
		t.Fatal(err)
	}
	var day string
	if _, err := pgx.ForEachRow(rows, []any{&day, &seconds}, func() error { days[day] = seconds; return nil }); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(days, map[string]int{"2026-11-01": 900, "2026-11-02": 3600}) {
		t.Errorf("interval lengths by day %v, want the moved day on 900 s, the other on 3600 s", days)
	}
}

// A start on no 5-minute boundary was not written by ingest: the
// conversion names it and converts nothing.
func TestPositionsConversionRefusesAStartOffTheGrid(t *testing.T) {
	pool, _ := pgtest.Empty(t)
	ctx := t.Context()
	p := gooseAt(t, pool)
	if _, err := p.UpTo(ctx, oldPositionsVersion); err != nil {
		t.Fatal(err)
	}
	old := append(oldPositionsFixture(), oldPosition{"RETAILER-C", "HB_WEST", "2026-03-10T00:01:00Z", 0, "1"})
	insertOldPositions(ctx, t, pool, old)
	err := migrations.Apply(ctx, pool, quiet)
	if err == nil || !strings.Contains(err.Error(), "cannot convert positions") || !strings.Contains(err.Error(), "RETAILER-C") {
		t.Fatalf("conversion of a start off the grid: %v", err)
	}
	if v, err := p.GetDBVersion(ctx); err != nil || v != oldPositionsVersion {
		t.Errorf("schema version %d (%v), want %d", v, err, oldPositionsVersion)
	}
	equal(t, "positions after the failed conversion", positionRows(ctx, t, pool), fixtureRows(old))
}

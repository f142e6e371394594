package migrations_test

import (
	"strings"
	"testing"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// The last migration with alert_energy as a table of cells, and the one
// that turns it into blocks (00804_alert_energy_blocks.sql).
const (
	alertCellsVersion  = 803
	alertBlocksVersion = 804
)

// TestAlertEnergyConvertsToBlocks: every alert_energy cell, whatever its
// energy's scale or sign, reads back exactly through the alert_energy view
// after the conversion, with its slot and estimated reads; the Down gives
// the same cells back as a table.
func TestAlertEnergyConvertsToBlocks(t *testing.T) {
	pool, _ := pgtest.Empty(t)
	ctx := t.Context()
	p := gooseAt(t, pool)
	if _, err := p.UpTo(ctx, alertCellsVersion); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO alert_energy (account_id, interval_start, settlement_point, slot, energy_mwh, estimated_reads) VALUES
			('ACC-1', '2026-11-10T06:00:00Z', 'HB_NORTH', 0, 0.0152250000000000, 0),
			('ACC-1', '2026-11-10T06:00:00Z', 'HB_NORTH', 3, -0.000000000000001, 2),
			('ACC-1', '2026-11-10T06:15:00Z', 'HB_NORTH', -1, 123456.789012345678, 0),
			('ACC-2', '2026-11-10T06:00:00Z', 'HB_SOUTH', 1, 0, 1)`); err != nil {
		t.Fatal(err)
	}
	const cells = `
		SELECT account_id || ' ' || interval_start::text || ' ' || settlement_point || ' ' || slot || ' ' ||
		       trim_scale(energy_mwh)::text || ' ' || estimated_reads
		FROM alert_energy ORDER BY 1`
	read := func() string {
		t.Helper()
		rows, err := pool.Query(ctx, cells)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, "\n")
	}
	before := read()
	if _, err := p.UpTo(ctx, alertBlocksVersion); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != before {
		t.Errorf("through the view after the conversion:\n%s\nwant\n%s", got, before)
	}
	if _, err := p.DownTo(ctx, alertCellsVersion); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != before {
		t.Errorf("after Down:\n%s\nwant\n%s", got, before)
	}
}

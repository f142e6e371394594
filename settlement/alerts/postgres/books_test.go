package postgres_test

import (
	"testing"
)

// TestMonthBookIsTheFigure: the month-to-date figures kept running in
// alert_month_books — moved record by record, one record per batch, on two
// partitions, by reads before and after their prices, an estimated read, an
// export, a read correction, a late price and a price correction — equal
// Σ energy × settlement price, the estimated reads and the latest priced
// interval recomputed from the stored energy and prices; and a book whose
// row is gone is built from the month again to the same figures.
func TestMonthBookIsTheFigure(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(baseRegistry + `
		INSERT INTO accounts (account_id, name, monthly_budget) VALUES ('ACC-M', 'm', 1000000);
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from) VALUES
			('M1', 'ACC-M', 'RET-A', 'HB_NORTH', 1.0125, '2026-01-01T00:00:00Z'),
			('M2', 'ACC-M', 'RET-A', 'HB_SOUTH', 0.9875, '2026-01-01T00:00:00Z')`)
	c.consume(d, "g", 1)
	c.produce(
		priceRec(0, "HB_NORTH", "2026-11-10T06:00:00Z", 900, 1, "41.5"),
		priceRec(0, "HB_NORTH", "2026-11-10T06:15:00Z", 900, 1, "-12.25"),
		readRec(0, "M1", "import", "2026-11-10T06:00:00Z", 900, 1, "1.5", "2.25E", "0.75", "3"),
		readRec(1, "M2", "import", "2026-11-10T06:00:00Z", 900, 1, "4.125E", "1"),
		readRec(0, "M1", "export", "2026-11-10T06:15:00Z", 900, 1, "0.5"),
		priceRec(1, "HB_SOUTH", "2026-11-10T06:00:00Z", 900, 1, "37"),
		readRec(0, "M1", "import", "2026-11-10T06:15:00Z", 900, 2, "2.5"),
		priceRec(0, "HB_NORTH", "2026-11-10T06:15:00Z", 900, 2, "13.75"),
		priceRec(0, "HB_NORTH", "2026-11-10T06:30:00Z", 900, 1, "1000.5"),
		readRec(1, "M2", "import", "2026-11-10T06:15:00Z", 900, 2, "0.5E"),
	)
	c.caughtUp(d)

	// The settlement interval is 15 minutes and every price is 15 minutes
	// long, so an interval's settlement price is its price.
	const recompute = `
		WITH f AS (
			SELECT coalesce(sum(e.energy_mwh * p.price), 0) AS cost, coalesce(sum(e.estimated_reads), 0) AS est,
			       max(e.interval_start) AS latest
			FROM alert_energy e
			JOIN prices p ON p.market = 'RT' AND p.settlement_point = e.settlement_point AND p.interval_start = e.interval_start
			WHERE e.account_id = 'ACC-M')
		SELECT f.cost::text, b.cost::text, f.est, b.estimated_reads, coalesce(f.latest::text, 'none'), coalesce(b.latest_priced::text, 'none'),
		       f.cost = b.cost AND f.est = b.estimated_reads AND f.latest IS NOT DISTINCT FROM b.latest_priced
		FROM f, alert_month_books b WHERE b.account_id = 'ACC-M' AND b.month = '2026-11'`
	check := func(what string) {
		t.Helper()
		var fCost, bCost, fLatest, bLatest string
		var fEst, bEst int
		var same bool
		if err := d.pool.QueryRow(t.Context(), recompute).Scan(&fCost, &bCost, &fEst, &bEst, &fLatest, &bLatest, &same); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !same {
			t.Errorf("%s: book %s, %d estimated, latest %s; recomputed %s, %d, %s", what, bCost, bEst, bLatest, fCost, fEst, fLatest)
		}
		if fCost == "0" || fEst == 0 {
			t.Fatalf("%s: the scenario should cost something on estimated reads, recomputed %s, %d", what, fCost, fEst)
		}
	}
	check("kept running")

	d.exec(`DELETE FROM alert_month_books`)
	c.produce(readRec(0, "M1", "import", "2026-11-10T09:00:00Z", 900, 1, "1")) // unpriced: moves nothing
	c.caughtUp(d)
	check("built again")
}

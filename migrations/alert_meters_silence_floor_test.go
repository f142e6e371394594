package migrations_test

import (
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// The migrations before and with the silence floor.
const (
	beforeSilenceFloorVersion = 807
	silenceFloorVersion       = 810
)

// TestAlertMetersSilenceFloor: 00810 keeps every alert_meters and
// alert_watermarks row as it was, with no meter uncovered and every floor
// unknown (NULL), so the next batch of each partition reads its meters not
// alerted, as before; the look-up it runs then finds exactly the meters
// the old index did. Its Down gives the same rows and the old index back.
func TestAlertMetersSilenceFloor(t *testing.T) {
	pool, _ := pgtest.Empty(t)
	ctx := t.Context()
	p := gooseAt(t, pool)
	if _, err := p.UpTo(ctx, beforeSilenceFloorVersion); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO alert_meters (meter_id, slot, last_end, alerted_end) VALUES
			('M-1', 0, '2026-11-10T06:15:00Z', NULL),                   -- never alerted
			('M-2', 0, '2026-11-10T07:15:00Z', '2026-11-10T07:00:00Z'), -- a read after its alert: a new gap
			('M-3', 0, '2026-11-10T07:00:00Z', '2026-11-10T07:00:00Z'), -- alerted for its gap
			('M-4', 0, '2026-11-10T09:00:00Z', NULL),                   -- not silent by the cutoff
			('M-5', 3, '2026-11-10T05:00:00Z', NULL),
			('M-6', -1, '2026-11-10T05:00:00Z', '2026-11-09T05:00:00Z');
		INSERT INTO alert_watermarks (topic, partition, watermark) VALUES
			('ami.interval-reads', 0, '2026-11-10T14:00:00Z'), ('ami.interval-reads', 3, '2026-11-10T11:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	before := alertMeterRows(t, pool, alertRowsAsStored)
	const oldSilent = `SELECT meter_id FROM alert_meters WHERE slot = 0 AND last_end <= '2026-11-10T08:00:00Z'
		AND (alerted_end IS NULL OR alerted_end < last_end)`
	silentBefore := alertMeterRows(t, pool, oldSilent)
	if want := []string{"M-1", "M-2"}; !slices.Equal(silentBefore, want) {
		t.Fatalf("silent before: %v, want %v", silentBefore, want)
	}
	oldIndexes := alertMeterRows(t, pool, `SELECT indexdef FROM pg_indexes WHERE tablename IN ('alert_meters', 'alert_watermarks')`)

	if _, err := p.UpTo(ctx, silenceFloorVersion); err != nil {
		t.Fatal(err)
	}
	if got := alertMeterRows(t, pool, alertRowsAsStored); !slices.Equal(got, before) {
		t.Errorf("rows after Up:\n%v\nwant\n%v", got, before)
	}
	if got := alertMeterRows(t, pool, `
		SELECT 'meter ' || meter_id || ' ' || uncovered FROM alert_meters
		UNION ALL SELECT 'floor ' || partition || ' ' || coalesce(silence_floor::text, 'NULL') FROM alert_watermarks`); !slices.Equal(got, []string{
		"floor 0 NULL", "floor 3 NULL",
		"meter M-1 false", "meter M-2 false", "meter M-3 false", "meter M-4 false", "meter M-5 false", "meter M-6 false",
	}) {
		t.Errorf("after Up: %v", got)
	}
	// The look-up of settlement/alerts/postgres/missing.go with the floor
	// unknown.
	if got := alertMeterRows(t, pool, `
		WITH f AS (SELECT silence_floor FROM alert_watermarks WHERE topic = 'ami.interval-reads' AND partition = 0),
		s AS MATERIALIZED (
			SELECT meter_id, last_end, alerted_end FROM alert_meters
			WHERE slot = 0 AND NOT uncovered AND (alerted_end IS NULL OR alerted_end < last_end)
			  AND NOT EXISTS (SELECT FROM f WHERE f.silence_floor > '2026-11-10T08:00:00Z')
		)
		SELECT meter_id FROM s WHERE last_end <= '2026-11-10T08:00:00Z'`); !slices.Equal(got, silentBefore) {
		t.Errorf("silent after Up: %v, want %v", got, silentBefore)
	}

	if _, err := p.DownTo(ctx, beforeSilenceFloorVersion); err != nil {
		t.Fatal(err)
	}
	if got := alertMeterRows(t, pool, alertRowsAsStored); !slices.Equal(got, before) {
		t.Errorf("rows after Down:\n%v\nwant\n%v", got, before)
	}
	if got := alertMeterRows(t, pool, `SELECT indexdef FROM pg_indexes WHERE tablename IN ('alert_meters', 'alert_watermarks')`); !slices.Equal(got, oldIndexes) {
		t.Errorf("indexes after Down:\n%v\nwant\n%v", got, oldIndexes)
	}
}

// alertRowsAsStored is alert_meters' and alert_watermarks' rows as they
// were before 00810, one line a row.
const alertRowsAsStored = `
	SELECT 'meter ' || meter_id || ' ' || slot || ' ' || extract(epoch FROM last_end) || ' ' ||
	       coalesce(extract(epoch FROM alerted_end)::text, 'NULL')
	FROM alert_meters
	UNION ALL
	SELECT 'watermark ' || topic || ' ' || partition || ' ' || extract(epoch FROM watermark) FROM alert_watermarks`

// alertMeterRows runs q and returns its one text column, sorted.
func alertMeterRows(t *testing.T, pool *pgxpool.Pool, q string) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

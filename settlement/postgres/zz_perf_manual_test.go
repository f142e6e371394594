package postgres

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/gridsettle/gridsettle/settlement"
)

func TestZZPerfManual(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PERF_METERS"))
	if n == 0 {
		t.Skip()
	}
	m := settlement.Market{Location: chicago(t), Currency: "USD", IntervalSeconds: 900}
	e := newEnv(t, m)
	t0 := time.Now()
	e.exec(`INSERT INTO participants SELECT 'P'||i, 'P' FROM generate_series(1,10) i`)
	e.exec(`INSERT INTO settlement_points SELECT 'S'||i, 'S', 'hub' FROM generate_series(1,20) i`)
	e.exec(`INSERT INTO accounts (account_id, name) SELECT 'A'||i, 'a' FROM generate_series(1,$1::int) i`, n)
	e.exec(`INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from)
		SELECT 'M'||i, 'A'||i, 'P'||(i%10+1), 'S'||(i%20+1), 1.0312, '2026-01-01Z' FROM generate_series(1,$1::int) i`, n)
	e.exec(`INSERT INTO reads (meter_id, channel, interval_start, interval_seconds, value, quality, version, topic, partition, "offset")
		SELECT 'M'||i, 'import', t, 900, round((random()*2)::numeric, 6), 'A', 1, 'r', 0, 0
		FROM generate_series(1,$1::int) i, generate_series(timestamptz '2026-06-15T05:00:00Z', '2026-06-16T04:45:00Z', interval '15 minutes') t`, n)
	e.exec(`INSERT INTO reads (meter_id, channel, interval_start, interval_seconds, value, quality, version, topic, partition, "offset")
		SELECT 'M'||i, 'export', t, 900, round((random()*2)::numeric, 6), 'A', 1, 'r', 0, 0
		FROM generate_series(1,$1::int, 10) i, generate_series(timestamptz '2026-06-15T05:00:00Z', '2026-06-16T04:45:00Z', interval '15 minutes') t`, n)
	e.exec(`INSERT INTO prices (market, settlement_point, interval_start, interval_seconds, price, currency, version, topic, partition, "offset")
		SELECT 'RT', 'S'||i, t, 300, round((random()*100)::numeric, 2), 'USD', 1, 'p', 0, 0
		FROM generate_series(1,20) i, generate_series(timestamptz '2026-06-15T05:00:00Z', '2026-06-16T04:55:00Z', interval '5 minutes') t`)
	e.exec(`ANALYZE`)
	t.Logf("load %s", time.Since(t0))
	day := settlement.Day{Year: 2026, Month: time.June, Day: 15}
	for i := 0; i < 2; i++ {
		t1 := time.Now()
		r := e.start(day, settlement.Initial)
		t.Logf("run %s %s in %s", r.RunID, r.Status, time.Since(t1))
		if r.Status != Completed {
			t.Fatal(r.Error)
		}
	}
}

package postgres

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/settlement"
)

// referenceStatements is the listing's contract as one plain query: every
// filter, the latest completed version of each day unless a version is
// given, the cursor, the order and the limit. Statements builds cheaper SQL
// and must return the same lines in the same order for every query.
const referenceStatements = `
	SELECT statement_id FROM statement_lines s
	WHERE ($1::date IS NULL OR s.operating_day = $1)
	  AND ($2 = '' OR s.participant_id = $2)
	  AND ($3 = '' OR s.settlement_point = $3)
	  AND CASE WHEN $4 > 0 THEN s.version = $4
	      ELSE s.version = (SELECT max(version) FROM runs WHERE operating_day = s.operating_day AND status = 'completed') END
	  AND ($5::date IS NULL OR (s.operating_day, s.participant_id, s.settlement_point, s.version) > ($5, $6, $7, $8))
	ORDER BY s.operating_day, s.participant_id, s.settlement_point, s.version
	LIMIT $9`

func TestStatementsMatchTheReferenceQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, settlement.Market{})
	d1 := settlement.Day{Year: 2026, Month: 11, Day: 1}
	d2, d3, d4 := d1.AddDays(1), d1.AddDays(2), d1.AddDays(3)
	// d1: versions 1 and 2 completed; d2: 1 completed, 2 failed; d3: 1
	// completed, 2 still running with lines (never the case for real, but
	// the explicit version must still find them); d4: no run.
	runs := []struct {
		day     settlement.Day
		version int
		status  string
		lines   bool
	}{
		{d1, 1, Completed, true}, {d1, 2, Completed, true},
		{d2, 1, Completed, true}, {d2, 2, Failed, false},
		{d3, 1, Completed, true}, {d3, 2, Running, true},
	}
	parts, points := []string{"P-A", "P-B", "P-C"}, []string{"HB_NORTH", "HB_SOUTH", "LZ_WEST"}
	for _, r := range runs {
		id := fmt.Sprintf("run-%s-%d", r.day, r.version)
		var runErr any
		if r.status == Failed {
			runErr = "boom"
		}
		e.exec(`INSERT INTO runs (run_id, operating_day, run_type, version, status, error, started_at)
			VALUES ($1, $2, 'initial', $3, $4, $5, now())`, id, dayTime(r.day), r.version, r.status, runErr)
		if !r.lines {
			continue
		}
		for i, p := range parts {
			for j, sp := range points {
				if (i+j+r.version)%4 == 0 {
					continue // not every participant at every point
				}
				e.exec(`INSERT INTO statement_lines (statement_id, run_id, participant_id, settlement_point, operating_day,
					run_type, version, currency, energy_mwh, unpriced_energy_mwh, amount, previous_energy_mwh, previous_amount,
					delta_energy_mwh, delta_amount, intervals, priced_intervals, reads_actual, reads_estimated,
					reads_substituted, computed_at)
					VALUES ($1, $2, $3, $4, $5, 'initial', $6, 'USD', 1, 0, 1, 0, 0, 1, 1, 96, 96, 96, 0, 0, now())`,
					fmt.Sprintf("%s/%s/%s/%d", sp, p, r.day, r.version), id, p, sp, dayTime(r.day), r.version)
			}
		}
	}
	var all []StatementKey
	rows, err := e.pool.Query(t.Context(), `SELECT operating_day, participant_id, settlement_point, version
		FROM statement_lines ORDER BY 1, 2, 3, 4`)
	if err != nil {
		t.Fatal(err)
	}
	all, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (StatementKey, error) {
		var k StatementKey
		var d time.Time
		err := row.Scan(&d, &k.ParticipantID, &k.SettlementPoint, &k.Version)
		k.OperatingDay = dayOf(d).String()
		return k, err
	})
	if err != nil {
		t.Fatal(err)
	}
	afters := []*StatementKey{nil, {OperatingDay: d1.AddDays(-1).String()}, {OperatingDay: d4.String()}}
	for i := range all {
		afters = append(afters, &all[i])
	}
	checked := 0
	for _, day := range []*settlement.Day{nil, &d1, &d2, &d3, &d4} {
		for _, part := range []string{"", "P-B"} {
			for _, point := range []string{"", "HB_SOUTH"} {
				for _, version := range []int{0, 1, 2, 3} {
					for _, after := range afters {
						for _, limit := range []int{0, 1, 4} {
							q := StatementQuery{Day: day, ParticipantID: part, SettlementPoint: point, Version: version,
								After: after, Limit: limit}
							got, err := e.runs.Statements(t.Context(), q)
							if err != nil {
								t.Fatalf("%+v: %v", q, err)
							}
							want := reference(t, e, q)
							ids := make([]string, len(got))
							for i, l := range got {
								ids[i] = l.StatementID
							}
							if !slices.Equal(ids, want) {
								t.Fatalf("%+v (day %v, after %+v):\n got %v\nwant %v", q, day, after, ids, want)
							}
							checked++
						}
					}
				}
			}
		}
	}
	t.Logf("%d queries agree with the reference", checked)
}

func reference(t *testing.T, e *env, q StatementQuery) []string {
	t.Helper()
	var day, afterDay any
	if q.Day != nil {
		day = dayTime(*q.Day)
	}
	var after StatementKey
	if q.After != nil {
		after = *q.After
		d, err := settlement.ParseDay(after.OperatingDay)
		if err != nil {
			t.Fatal(err)
		}
		afterDay = dayTime(d)
	}
	rows, err := e.pool.Query(t.Context(), referenceStatements, day, q.ParticipantID, q.SettlementPoint, q.Version,
		afterDay, after.ParticipantID, after.SettlementPoint, after.Version, limitArg(q.Limit))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if ids == nil {
		ids = []string{}
	}
	return ids
}

package api

import (
	"encoding/csv"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/alerts"
)

func init() {
	testAreas = append(testAreas, func(t *testing.T, pool *pgxpool.Pool) Routes {
		return AlertRoutes{Pool: pool, Market: alertMarket(t)}
	})
}

func alertMarket(t *testing.T) settlement.Market {
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	return settlement.Market{Location: loc, Currency: "USD", IntervalSeconds: 900, PriceSpikeThreshold: decimal.NewFromInt(1000)}
}

// seedAlerts stores alerts as the alert hook does.
func seedAlerts(t *testing.T, s *testServer, as ...alerts.Alert) {
	t.Helper()
	for _, a := range as {
		v, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.pool.Exec(t.Context(), `
			INSERT INTO alerts (alert_id, type, account_id, meter_id, operating_day, month, payload, event_time)
			VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5, '')::date, NULLIF($6, ''), $7::jsonb, $8)`,
			a.AlertID, string(a.Type), a.AccountID, a.MeterID, a.OperatingDay, a.Month, string(v), a.EventTime); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAlertsAPI(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	loc := alertMarket(t)
	gap := time.Date(2026, 11, 10, 7, 0, 0, 0, time.UTC)
	usage, _ := alerts.CheckDailyUsage(alerts.Usage{AccountID: "ACC-1", OperatingDay: "2026-11-10", KWh: decimal.RequireFromString("31.2"),
		AllActual: true, EventTime: time.Date(2026, 11, 11, 6, 0, 0, 0, time.UTC)}, decimal.NewFromInt(30), alerts.Locale{Location: loc.Location, Currency: "USD"})
	spike, _ := alerts.CheckPrice(alerts.PriceEvent{AccountID: "ACC-2", OperatingDay: "2026-11-10", SettlementPoint: "HB_NORTH",
		IntervalStart: time.Date(2026, 11, 10, 20, 0, 0, 0, time.UTC), IntervalEnd: time.Date(2026, 11, 10, 20, 15, 0, 0, time.UTC),
		Price: decimal.NewFromInt(1200)}, decimal.NewFromInt(1000), alerts.Locale{Location: loc.Location, Currency: "USD"})
	// 03:00Z on the 11th is still the 10th in Chicago.
	missing, _ := alerts.CheckMissingData(alerts.Silence{MeterID: "M-1", AccountID: "ACC-1", LastEnd: gap,
		Watermark: time.Date(2026, 11, 11, 3, 0, 0, 0, time.UTC)}, 6*time.Hour, alerts.Locale{Location: loc.Location, Currency: "USD"})
	budget, _ := alerts.CheckMonthlyBudget(alerts.Spend{AccountID: "ACC-1", Month: "2026-11", Amount: decimal.NewFromInt(60),
		AllActual: false, EventTime: time.Date(2026, 11, 12, 12, 0, 0, 0, time.UTC)}, decimal.NewFromInt(50), alerts.Locale{Location: loc.Location, Currency: "USD"})
	seedAlerts(t, s, usage, spike, missing, budget)
	tok := s.token(Analyst)

	list := func(query string) []alerts.Alert {
		t.Helper()
		var page Page[alerts.Alert]
		ok(t, s.do(req{method: "GET", path: "/api/v1/alerts?" + query, token: tok}), 200, &page)
		return page.Items
	}
	idsOf := func(as []alerts.Alert) string {
		var out []string
		for _, a := range as {
			out = append(out, a.AlertID)
		}
		return strings.Join(out, " ")
	}
	all := list("")
	want := spike.AlertID + " " + missing.AlertID + " " + usage.AlertID + " " + budget.AlertID // by event time
	if got := idsOf(all); got != want {
		t.Fatalf("list %s\nwant %s", got, want)
	}
	// Items are the published records.
	for i, a := range []alerts.Alert{spike, missing, usage, budget} {
		x, _ := json.Marshal(a)
		y, _ := json.Marshal(all[i])
		if string(x) != string(y) {
			t.Errorf("item %s\nwant %s", y, x)
		}
	}
	for _, c := range []struct{ query, want string }{
		{"account_id=ACC-1", missing.AlertID + " " + usage.AlertID + " " + budget.AlertID},
		{"type=price_spike", spike.AlertID},
		{"account_id=ACC-1&type=missing_data", missing.AlertID},
		{"from=2026-11-11T03:00:00Z&to=2026-11-11T06:00:01Z", missing.AlertID + " " + usage.AlertID},
		{"to=2026-11-11T03:00:00Z", spike.AlertID},
		// Dates are operating days: the usage alert is of the 10th though its
		// event time is on the 11th, the missing-data alert's event time is the
		// 10th in Chicago.
		{"from=2026-11-10&to=2026-11-10", spike.AlertID + " " + missing.AlertID + " " + usage.AlertID},
		{"from=2026-11-11", budget.AlertID},
		{"account_id=ACC-9", ""},
	} {
		if got := idsOf(list(c.query)); got != c.want {
			t.Errorf("%s: %s\nwant %s", c.query, got, c.want)
		}
	}

	// Keyset pages of one.
	var paged []string
	cursor := ""
	for range 10 {
		var page Page[alerts.Alert]
		ok(t, s.do(req{method: "GET", path: "/api/v1/alerts?limit=1&cursor=" + url.QueryEscape(cursor), token: tok}), 200, &page)
		for _, a := range page.Items {
			paged = append(paged, a.AlertID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if got := strings.Join(paged, " "); got != want {
		t.Errorf("pages %s\nwant %s", got, want)
	}

	w := s.do(req{method: "GET", path: "/api/v1/alerts?type=daily_usage", token: tok, accept: MIMETextCSV})
	mustStatus(t, w, 200)
	rows, err := csv.NewReader(w.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0][0] != "alert_id" || rows[1][0] != usage.AlertID {
		t.Errorf("csv %v", rows)
	}

	for _, c := range []struct{ query, param string }{
		{"type=spike", "type"},
		{"account_id=bad%20id", "account_id"},
		{"from=yesterday", "from"},
		{"from=2026-11-10T00:00:00Z&to=2026-11-09T00:00:00Z", "to"},
		{"from=2026-11-10&to=2026-11-09", "to"},
		{"cursor=bogus", "cursor"},
	} {
		p := problem(t, s.do(req{method: "GET", path: "/api/v1/alerts?" + c.query, token: tok}), 400)
		if p.Parameter != c.param {
			t.Errorf("%s: parameter %q, want %q", c.query, p.Parameter, c.param)
		}
	}
}

package api

import (
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"

	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/alerts"
	alertspg "github.com/gridsettle/gridsettle/settlement/alerts/postgres"
)

// AlertRoutes is the endpoint of the customer alerts fired so far, as
// published to alerts.customer.
type AlertRoutes struct {
	Pool   *pgxpool.Pool
	Market settlement.Market // its time zone turns date bounds into operating days
}

var alertTypes = []string{
	string(alerts.DailyUsage), string(alerts.MonthlyBudget), string(alerts.PriceSpike),
	string(alerts.NegativePrice), string(alerts.MissingData),
}

// Routes implements Routes.
func (g AlertRoutes) Routes() []Route {
	return []Route{{
		Method: http.MethodGet, Path: "/api/v1/alerts", Roles: Readers,
		Summary: "Customer alerts",
		Description: "Every alert fired so far, exactly as published to alerts.customer, ordered by event time then alert_id. " +
			"from/to take either RFC 3339 instants, bounding event_time half-open [from, to), or dates YYYY-MM-DD, " +
			"bounding the alert's operating day inclusively (for monthly_budget and missing_data, the operating day of " +
			"its event time).",
		Params: []Param{
			Query("account_id", "only alerts of this account"),
			EnumParam("type", "only alerts of this type", alertTypes...),
			Query("from", "RFC 3339 instant (event_time at or after it) or date YYYY-MM-DD (operating day on or after it)"),
			Query("to", "RFC 3339 instant (event_time before it) or date YYYY-MM-DD (operating day on or before it)"),
		},
		Response: ListBody(alerts.Alert{}), Handler: g.list,
	}}
}

func (g AlertRoutes) list(c echo.Context) error {
	var f alertspg.Filter
	var err error
	if f.AccountID, err = QueryID(c, "account_id"); err != nil {
		return err
	}
	t, err := QueryEnum(c, "type", alertTypes...)
	if err != nil {
		return err
	}
	f.Type = alerts.Type(t)
	if f.From, f.FromDay, err = instantOrDay(c, "from"); err != nil {
		return err
	}
	if f.To, f.ToDay, err = instantOrDay(c, "to"); err != nil {
		return err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		return BadParam("to", "must be after from")
	}
	if f.FromDay != nil && f.ToDay != nil && f.ToDay.Before(*f.FromDay) {
		return BadParam("to", "must not be before from")
	}
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	var after alertspg.Key
	if ok, err := Cursor(c, &after); err != nil {
		return err
	} else if ok {
		f.After = &after
	}
	items, err := alertspg.List(c.Request().Context(), g.Pool, g.Market.Location, f, limit+1)
	if err != nil {
		return err
	}
	return List(c, items, limit, func(a alerts.Alert) any { return alertspg.Key{EventTime: a.EventTime, AlertID: a.AlertID} })
}

// instantOrDay reads the query parameter name as an RFC 3339 instant or a
// date YYYY-MM-DD (an operating day); both zero when absent.
func instantOrDay(c echo.Context, name string) (time.Time, *settlement.Day, error) {
	s := c.QueryParam(name)
	switch {
	case s == "":
		return time.Time{}, nil, nil
	case len(s) == len(time.DateOnly):
		d, err := ParseDay(name, s)
		if err != nil {
			return time.Time{}, nil, err
		}
		return time.Time{}, &d, nil
	}
	at, err := ParseInstant(name, s)
	if err != nil {
		return time.Time{}, nil, BadParam(name, "%q is neither an RFC 3339 instant such as 2026-11-01T05:00:00Z nor a date YYYY-MM-DD", s)
	}
	return at, nil, nil
}

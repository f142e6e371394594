package api

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"

	"github.com/gridsettle/gridsettle/reporting/parquet"
	"github.com/gridsettle/gridsettle/reporting/postgres/intervalrows"
)

// IntervalRoutes serve a statement line's settled figures per settlement
// interval: the rows of intervals.parquet for that line, read by the same
// code the exports use (intervalrows).
type IntervalRoutes struct {
	Pool *pgxpool.Pool
}

// StatementInterval is one settlement interval of a statement line, with
// the exact (unrounded) figures at intervals.parquet's scales. Price and
// amount are null when the interval is unpriced. EstimatedEnergyMWh is the
// part of EnergyMWh that gridsettle's estimates contribute, and
// GridsettleEstimatedReads counts those estimates' pieces (settlement/README.md
// "Estimation of missing reads (VEE)").
type StatementInterval struct {
	SettlementInterval       time.Time `json:"settlement_interval"`
	EnergyMWh                string    `json:"energy_mwh"`
	EstimatedEnergyMWh       string    `json:"estimated_energy_mwh"`
	Price                    *string   `json:"price"`
	Amount                   *string   `json:"amount"`
	ActualReads              int32     `json:"actual_reads"`
	EstimatedReads           int32     `json:"estimated_reads"`
	GridsettleEstimatedReads int32     `json:"gridsettle_estimated_reads"`
}

// The scales of intervals.parquet's decimal columns.
const (
	intervalEnergyScale = 18
	intervalPriceScale  = 6
	intervalAmountScale = 24
)

// intervalKey is the keyset cursor of a line's intervals.
type intervalKey struct {
	After time.Time `json:"after"`
}

// Routes implements Routes.
func (g IntervalRoutes) Routes() []Route {
	return []Route{{
		Method: http.MethodGet, Path: "/api/v1/statements/{statement_id}/intervals", Roles: Readers,
		Summary: "A statement line's settled figures per settlement interval, as in intervals.parquet",
		Description: "statement_id percent-encoded ('/' as %2F; the unencoded form is accepted too). Ordered by " +
			"settlement interval; exact figures at intervals.parquet's scales; price and amount are null when the " +
			"interval is unpriced.",
		Params:   []Param{Path("statement_id", "e.g. HB_NORTH%2FP1%2F2026-11-01%2F1")},
		Response: ListBody(StatementInterval{}), ETag: true, Handler: g.intervals,
	}}
}

// statementSubresource is a path below one statement line, its id in any
// form: percent-encoded or with its '/' as they are.
var statementSubresource = regexp.MustCompile(`^/api/v1/statements/(.+)/(intervals|explain)$`)

// statementIDPath routes the unencoded form of a statement_id in a path
// (api/README.md: accepted too) as the encoded one: before routing, the id's
// '/' become %2F in the path the router reads.
func statementIDPath(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u := c.Request().URL
		if m := statementSubresource.FindStringSubmatch(u.EscapedPath()); m != nil && strings.Contains(m[1], "/") {
			u.RawPath = "/api/v1/statements/" + strings.ReplaceAll(m[1], "/", "%2F") + "/" + m[2]
		}
		return next(c)
	}
}

// errPageFull stops a line's stream once a page (and one more row) is read.
var errPageFull = errors.New("page full")

func (g IntervalRoutes) intervals(c echo.Context) error {
	// A statement_id holds '/' ({point}/{participant}/{day}/{version}):
	// routed percent-encoded, decoded here (checkParams has checked both
	// forms as plain text).
	id, err := url.PathUnescape(c.Param("statement_id"))
	if err != nil {
		return BadParam("statement_id", "is not percent-encoded correctly")
	}
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	var after intervalKey
	has, err := Cursor(c, &after)
	if err != nil {
		return err
	}
	var out []StatementInterval
	err = intervalrows.StreamLine(c.Request().Context(), g.Pool, id, func(i parquet.Interval) error {
		if has && !i.IntervalStart.After(after.After) {
			return nil
		}
		out = append(out, statementInterval(i))
		if len(out) > limit {
			return errPageFull
		}
		return nil
	})
	switch {
	case errors.Is(err, intervalrows.ErrNotFound):
		return NotFoundf("statement line %q not found", id)
	case err != nil && !errors.Is(err, errPageFull):
		return err
	}
	return List(c, out, limit, func(s StatementInterval) any { return intervalKey{After: s.SettlementInterval} })
}

func statementInterval(i parquet.Interval) StatementInterval {
	s := StatementInterval{
		SettlementInterval:       i.IntervalStart.UTC(),
		EnergyMWh:                i.EnergyMWh.StringFixed(intervalEnergyScale),
		EstimatedEnergyMWh:       i.EstimatedEnergyMWh.StringFixed(intervalEnergyScale),
		ActualReads:              i.ActualReads,
		EstimatedReads:           i.EstimatedReads,
		GridsettleEstimatedReads: i.GridsettleEstimatedReads,
	}
	if i.Price.Valid {
		p := i.Price.Decimal.StringFixed(intervalPriceScale)
		s.Price = &p
	}
	if i.Amount.Valid {
		a := i.Amount.Decimal.StringFixed(intervalAmountScale)
		s.Amount = &a
	}
	return s
}

package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"

	"github.com/gridsettle/gridsettle/settlement"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// RunRoutes are the settlement run endpoints: runs (list, one, start, their
// estimates), statement lines and account charges.
type RunRoutes struct {
	Runs *settlementpg.Runs // reads
	// Starter starts the runs of POST /api/v1/runs; nil: Runs. cmd gives
	// it the pipeline's pool, without the API's statement timeout: a run
	// is settlement work that may rightly take longer than any API query,
	// and runs of one day queue on the day's lock, so operators starting
	// runs cannot take more than a connection per day from the pipeline.
	Starter *settlementpg.Runs
}

// RunRequest is the body of POST /api/v1/runs.
type RunRequest struct {
	OperatingDay string `json:"operating_day"` // YYYY-MM-DD
	RunType      string `json:"run_type"`      // initial, final, true-up or resettlement
}

func runTypeNames() []string {
	out := make([]string, len(settlement.RunTypes))
	for i, t := range settlement.RunTypes {
		out[i] = string(t)
	}
	return out
}

// Routes implements Routes.
func (g RunRoutes) Routes() []Route {
	version := IntParam("version", "this version instead of the latest completed one of each day", 1, 1<<31-1)
	return []Route{
		{
			Method: http.MethodGet, Path: "/api/v1/runs", Roles: Readers,
			Summary:  "List settlement runs with status, version and lineage",
			Params:   []Param{DayParam("operating_day", "only runs of this operating day")},
			Response: ListBody(settlementpg.Run{}), ETag: true, Handler: g.list,
		},
		{
			Method: http.MethodGet, Path: "/api/v1/runs/{run_id}", Roles: Readers,
			Summary:  "One settlement run",
			Params:   []Param{Path("run_id", "e.g. run-2026-11-01-final-2")},
			Response: JSONBody(settlementpg.Run{}), ETag: true, Handler: g.get,
		},
		{
			Method: http.MethodGet, Path: "/api/v1/runs/{run_id}/estimates", Roles: Readers,
			Summary: "The estimates a run made for missing reads (settlement/README.md)",
			Description: "One item per estimated channel interval of the run's operating day: the whole interval's " +
				"value in kWh (6 places), the method (LIN, LDY or ZER) and the assignment covering its start, as in " +
				"estimates.parquet. Ordered by meter, channel and interval start. 404 for an unknown run; a run that " +
				"estimated nothing has an empty list.",
			Params: []Param{
				Path("run_id", "e.g. run-2026-11-01-final-2"),
				Query("meter_id", "only estimates of this meter"),
				EnumParam("method", "only estimates made by this method", settlement.EstimateMethods...),
			},
			Response: ListBody(Estimate{}), ETag: true, Handler: g.estimates,
		},
		{
			Method: http.MethodPost, Path: "/api/v1/runs", Roles: Operators,
			Summary: "Start a settlement run of an operating day",
			Description: "Any run type, or an ad-hoc resettlement. Answers when the run has committed, with the run: " +
				"status completed, or failed with its error.",
			Request: JSONBody(RunRequest{}), Status: http.StatusCreated, Response: JSONBody(settlementpg.Run{}),
			Handler: g.start,
		},
		{
			Method: http.MethodGet, Path: "/api/v1/statements", Roles: Readers,
			Summary: "Statement lines as published on settlement.statements",
			Description: "The latest completed version of each operating day unless version is given. " +
				"Ordered by operating day, participant and settlement point.",
			Params: []Param{
				DayParam("operating_day", "only lines of this operating day"),
				Query("participant_id", "only lines of this participant"),
				Query("settlement_point", "only lines of this settlement point"),
				version,
			},
			Response: ListBody(settlement.StatementMessage{}), ETag: true, Handler: g.cached(g.statements),
		},
		{
			Method: http.MethodGet, Path: "/api/v1/accounts/{account_id}/charges", Roles: Readers,
			Summary: "An account's charges as published on settlement.account-charges",
			Description: "The latest completed version of each operating day unless version is given; from and to " +
				"are inclusive operating days.",
			Params: []Param{
				Path("account_id", "the account"),
				DayParam("from", "first operating day, inclusive"),
				DayParam("to", "last operating day, inclusive"),
				version,
			},
			Response: ListBody(settlement.ChargeMessage{}), ETag: true, Handler: g.charges,
		},
	}
}

func (g RunRoutes) list(c echo.Context) error {
	day, err := QueryDay(c, "operating_day")
	if err != nil {
		return err
	}
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	var after settlementpg.RunKey
	has, err := Cursor(c, &after)
	if err != nil {
		return err
	}
	runs, err := g.Runs.List(c.Request().Context(), day, keyIf(has, &after), limit+1)
	if err != nil {
		return err
	}
	return List(c, runs, limit, func(r settlementpg.Run) any {
		return settlementpg.RunKey{OperatingDay: r.OperatingDay, Version: r.Version}
	})
}

func keyIf[T any](has bool, k *T) *T {
	if !has {
		return nil
	}
	return k
}

func (g RunRoutes) get(c echo.Context) error {
	id, err := PathID(c, "run_id")
	if err != nil {
		return err
	}
	run, err := g.Runs.Get(c.Request().Context(), id)
	if errors.Is(err, settlementpg.ErrNotFound) {
		return NotFoundf("run %q not found", id)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, run)
}

// Estimate is one estimate of a run as the API serves it: the columns of
// estimates.parquet, decimals as strings at that file's scale.
type Estimate struct {
	MeterID         string    `json:"meter_id"`
	Channel         string    `json:"channel"`
	IntervalStart   time.Time `json:"interval_start"`
	IntervalSeconds int       `json:"interval_seconds"`
	ValueKWh        string    `json:"value_kwh"`
	Method          string    `json:"method"`
	AccountID       string    `json:"account_id"`
	ParticipantID   string    `json:"participant_id"`
	SettlementPoint string    `json:"settlement_point"`
	LossFactor      string    `json:"loss_factor"`
}

// estimateScale is that of estimates.parquet's value_kwh and loss_factor.
const estimateScale = 6

func (g RunRoutes) estimates(c echo.Context) error {
	q := settlementpg.EstimateQuery{}
	var err error
	if q.RunID, err = PathID(c, "run_id"); err != nil {
		return err
	}
	if q.MeterID, err = QueryID(c, "meter_id"); err != nil {
		return err
	}
	if q.Method, err = QueryEnum(c, "method", settlement.EstimateMethods...); err != nil {
		return err
	}
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	var after settlementpg.EstimateKey
	has, err := Cursor(c, &after)
	if err != nil {
		return err
	}
	q.After, q.Limit = keyIf(has, &after), limit+1
	estimates, err := g.Runs.Estimates(c.Request().Context(), q)
	if errors.Is(err, settlementpg.ErrNotFound) {
		return NotFoundf("run %q not found", q.RunID)
	}
	if err != nil {
		return err
	}
	items := make([]Estimate, len(estimates))
	for i, e := range estimates {
		items[i] = Estimate{
			MeterID: e.MeterID, Channel: e.Channel, IntervalStart: e.IntervalStart, IntervalSeconds: e.IntervalSeconds,
			ValueKWh: e.ValueKWh.StringFixed(estimateScale), Method: e.Method, AccountID: e.AccountID,
			ParticipantID: e.ParticipantID, SettlementPoint: e.SettlementPoint, LossFactor: e.LossFactor.StringFixed(estimateScale),
		}
	}
	return List(c, items, limit, func(e Estimate) any {
		return settlementpg.EstimateKey{MeterID: e.MeterID, Channel: e.Channel, IntervalStart: e.IntervalStart}
	})
}

// dayAndRunType checks the operating_day and run_type fields of a request
// body, naming the first that is missing or bad.
func dayAndRunType(operatingDay, runType string) (settlement.Day, settlement.RunType, error) {
	if operatingDay == "" {
		return settlement.Day{}, "", BadParam("operating_day", "is required")
	}
	day, err := ParseDay("operating_day", operatingDay)
	if err != nil {
		return settlement.Day{}, "", err
	}
	if runType == "" {
		return settlement.Day{}, "", BadParam("run_type", "is required")
	}
	t, err := ParseEnum("run_type", runType, runTypeNames()...)
	if err != nil {
		return settlement.Day{}, "", err
	}
	return day, settlement.RunType(t), nil
}

func (g RunRoutes) start(c echo.Context) error {
	var req RunRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	day, t, err := dayAndRunType(req.OperatingDay, req.RunType)
	if err != nil {
		return err
	}
	// A started run completes even if the client goes away: it is one
	// transaction either way, and the operator can look it up afterwards.
	ctx := context.WithoutCancel(c.Request().Context())
	starter := g.Starter
	if starter == nil {
		starter = g.Runs
	}
	run, err := starter.StartWithHook(ctx, day, t, func(ctx context.Context, tx pgx.Tx, run settlementpg.Run) error {
		return Audit(ctx, tx, c, http.StatusCreated, fmt.Sprintf("started run %s (%s of %s, version %d): %s",
			run.RunID, run.RunType, run.OperatingDay, run.Version, run.Status))
	})
	if errors.Is(err, settlement.ErrDayOutOfRange) {
		return BadParam("operating_day", "%s", err)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, run)
}

func (g RunRoutes) statements(c echo.Context) error {
	q := settlementpg.StatementQuery{}
	var err error
	if q.Day, err = QueryDay(c, "operating_day"); err != nil {
		return err
	}
	if q.ParticipantID, err = QueryID(c, "participant_id"); err != nil {
		return err
	}
	if q.SettlementPoint, err = QueryID(c, "settlement_point"); err != nil {
		return err
	}
	if q.Version, err = queryVersion(c); err != nil {
		return err
	}
	if q.Limit, err = Limit(c); err != nil {
		return err
	}
	var after settlementpg.StatementKey
	has, err := Cursor(c, &after)
	if err != nil {
		return err
	}
	q.After = keyIf(has, &after)
	limit := q.Limit
	q.Limit++
	lines, err := g.Runs.Statements(c.Request().Context(), q)
	if err != nil {
		return err
	}
	msgs := make([]settlement.StatementMessage, len(lines))
	for i, l := range lines {
		msgs[i] = l.Message()
	}
	return List(c, msgs, limit, func(m settlement.StatementMessage) any {
		return settlementpg.StatementKey{OperatingDay: m.OperatingDay, ParticipantID: m.ParticipantID,
			SettlementPoint: m.SettlementPoint, Version: m.Version}
	})
}

func (g RunRoutes) charges(c echo.Context) error {
	q := settlementpg.ChargeQuery{}
	var err error
	if q.AccountID, err = PathID(c, "account_id"); err != nil {
		return err
	}
	if q.From, q.To, err = QueryDayRange(c); err != nil {
		return err
	}
	if q.Version, err = queryVersion(c); err != nil {
		return err
	}
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	var after settlementpg.ChargeKey
	has, err := Cursor(c, &after)
	if err != nil {
		return err
	}
	q.After, q.Limit = keyIf(has, &after), limit+1
	charges, err := g.Runs.Charges(c.Request().Context(), q)
	if err != nil {
		return err
	}
	msgs := make([]settlement.ChargeMessage, len(charges))
	for i, ch := range charges {
		msgs[i] = ch.Message()
	}
	return List(c, msgs, limit, func(m settlement.ChargeMessage) any {
		return settlementpg.ChargeKey{OperatingDay: m.OperatingDay, ParticipantID: m.ParticipantID, Version: m.Version}
	})
}

// queryVersion is the optional version parameter; 0 when absent (latest).
func queryVersion(c echo.Context) (int, error) {
	v, err := QueryInt(c, "version", 1, 1<<31-1)
	if err != nil || v == nil {
		return 0, err
	}
	return int(*v), nil
}

package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"

	"github.com/gridsettle/gridsettle/meters"
	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
)

// RegistryRoutes are the registry endpoints: GET (analysts) and POST
// (operators) on participants, settlement-points, accounts and meters.
type RegistryRoutes struct {
	Store *registrystore.Registry
	Pool  *pgxpool.Pool // where a POST's batch and its audit row are written, in one transaction
}

// MeterAssignment is a meter row of the registry as the API shows it.
type MeterAssignment struct {
	MeterID         string     `json:"meter_id"`
	AccountID       string     `json:"account_id"`
	ParticipantID   string     `json:"participant_id"`
	SettlementPoint string     `json:"settlement_point"`
	LossFactor      string     `json:"loss_factor"` // 6 decimals, e.g. 1.031200
	EffectiveFrom   time.Time  `json:"effective_from"`
	EffectiveTo     *time.Time `json:"effective_to"` // null: open-ended
}

// RegistryResult is the answer of a registry POST: what the batch did.
type RegistryResult struct {
	Table string `json:"table"`
	registrystore.Counts
}

// Routes implements Routes.
func (g RegistryRoutes) Routes() []Route {
	post := func(path string, t registrystore.Table, row any) Route {
		return Route{
			Method: http.MethodPost, Path: path, Roles: Operators,
			Summary: "Load " + string(t) + " rows (JSON array or text/csv with a header row)",
			Description: "The batch is applied whole or not at all. A bad row is a 400 naming its row " +
				"(1-based data row; line for CSV) and column. CSV columns: " + strings.Join(t.Columns(), ",") + ".",
			Request:  &Body{JSON: row, List: true},
			Response: JSONBody(RegistryResult{}),
			Errors:   []int{http.StatusConflict},
			Handler:  g.post(t),
		}
	}
	meterFilters := []Param{
		Query("meter_id", "only this meter"),
		Query("account_id", "only this account"),
		Query("participant_id", "only this participant"),
		Query("settlement_point", "only this settlement point"),
		InstantParam("at", "only assignments in force at this instant (RFC 3339)"),
	}
	return []Route{
		{Method: http.MethodGet, Path: "/api/v1/participants", Roles: Readers, Summary: "List participants",
			Response: ListBody(meters.Participant{}), Handler: g.participants},
		post("/api/v1/participants", registrystore.Participants, meters.Participant{}),
		{Method: http.MethodGet, Path: "/api/v1/settlement-points", Roles: Readers, Summary: "List settlement points",
			Response: ListBody(meters.SettlementPoint{}), Handler: g.points},
		post("/api/v1/settlement-points", registrystore.SettlementPoints, meters.SettlementPoint{}),
		{Method: http.MethodGet, Path: "/api/v1/accounts", Roles: Readers, Summary: "List accounts",
			Response: ListBody(meters.Account{}), Handler: g.accounts},
		post("/api/v1/accounts", registrystore.Accounts, meters.Account{}),
		{Method: http.MethodGet, Path: "/api/v1/meters", Roles: Readers,
			Summary: "List meter assignments (effective-dated meter rows)", Params: meterFilters,
			Response: ListBody(MeterAssignment{}), Handler: g.meters},
		post("/api/v1/meters", registrystore.Meters, MeterAssignment{}),
	}
}

func (g RegistryRoutes) post(t registrystore.Table) echo.HandlerFunc {
	return func(c echo.Context) error {
		var b registrystore.Batch
		var err error
		switch ct := mediaType(c.Request().Header.Get(echo.HeaderContentType)); ct {
		case MIMETextCSV:
			err = b.AddCSV(t, "", c.Request().Body)
		case echo.MIMEApplicationJSON, "":
			err = b.AddJSON(t, c.Request().Body)
		default:
			return E(UnsupportedMedia, "the body must be application/json or text/csv, not %s", ct)
		}
		if err != nil {
			return err
		}
		res, err := Audited(c, g.Pool, func(ctx context.Context, tx pgx.Tx) (registrystore.Counts, int, string, error) {
			res, err := g.Store.ApplyTx(ctx, tx, &b)
			n := res[t]
			return n, http.StatusOK, fmt.Sprintf("wrote %s: %d rows (%d inserted, %d updated, %d unchanged)",
				t, n.Rows, n.Inserted, n.Updated, n.Unchanged), err
		})
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, RegistryResult{Table: string(t), Counts: res})
	}
}

type idKey struct {
	ID string `json:"id"`
}

// listByID serves a registry list keyed by one id column.
func listByID[T any](c echo.Context, fetch func(after string, limit int) ([]T, error), id func(T) string) error {
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	var after idKey
	if _, err := Cursor(c, &after); err != nil {
		return err
	}
	items, err := fetch(after.ID, limit+1)
	if err != nil {
		return err
	}
	return List(c, items, limit, func(v T) any { return idKey{id(v)} })
}

func (g RegistryRoutes) participants(c echo.Context) error {
	return listByID(c, func(after string, n int) ([]meters.Participant, error) {
		return g.Store.Participants(c.Request().Context(), after, n)
	}, func(p meters.Participant) string { return p.ParticipantID })
}

func (g RegistryRoutes) points(c echo.Context) error {
	return listByID(c, func(after string, n int) ([]meters.SettlementPoint, error) {
		return g.Store.SettlementPoints(c.Request().Context(), after, n)
	}, func(p meters.SettlementPoint) string { return p.SettlementPoint })
}

func (g RegistryRoutes) accounts(c echo.Context) error {
	return listByID(c, func(after string, n int) ([]meters.Account, error) {
		return g.Store.Accounts(c.Request().Context(), after, n)
	}, func(a meters.Account) string { return a.AccountID })
}

type meterKey struct {
	MeterID string    `json:"m"`
	From    time.Time `json:"f"`
}

func (g RegistryRoutes) meters(c echo.Context) error {
	var f registrystore.AssignmentFilter
	var err error
	for _, q := range []struct {
		name string
		dst  *string
	}{{"meter_id", &f.MeterID}, {"account_id", &f.AccountID}, {"participant_id", &f.ParticipantID}, {"settlement_point", &f.SettlementPoint}} {
		if *q.dst, err = QueryID(c, q.name); err != nil {
			return err
		}
	}
	if f.At, err = QueryInstant(c, "at"); err != nil {
		return err
	}
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	var after meterKey
	if _, err := Cursor(c, &after); err != nil {
		return err
	}
	f.AfterMeterID, f.AfterFrom = after.MeterID, after.From
	rows, err := g.Store.Assignments(c.Request().Context(), f, limit+1)
	if err != nil {
		return err
	}
	items := make([]MeterAssignment, len(rows))
	for i, a := range rows {
		items[i] = MeterAssignment{
			MeterID: a.MeterID, AccountID: a.AccountID, ParticipantID: a.ParticipantID,
			SettlementPoint: a.SettlementPoint, LossFactor: a.LossFactor.StringFixedBank(6),
			EffectiveFrom: a.EffectiveFrom, EffectiveTo: a.EffectiveTo,
		}
	}
	return List(c, items, limit, func(m MeterAssignment) any { return meterKey{m.MeterID, m.EffectiveFrom} })
}

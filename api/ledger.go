package api

import (
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"

	"github.com/gridsettle/gridsettle/ledger"
	ledgerpg "github.com/gridsettle/gridsettle/ledger/postgres"
	exportpg "github.com/gridsettle/gridsettle/reporting/postgres"
)

// LedgerRoutes are the ledger endpoints: balances, entries and chain
// verification, anchored to the chain heads that exports recorded.
type LedgerRoutes struct {
	Pool *pgxpool.Pool
}

// LedgerBalance is the balance of one ledger account (api/README.md "A
// balance").
type LedgerBalance struct {
	Account  string `json:"account"`
	Currency string `json:"currency"`
	Balance  string `json:"balance"` // 2 decimals
}

// LedgerEntry is a journal entry with its lines and hashes.
type LedgerEntry struct {
	EntryID       int64        `json:"entry_id"`
	EntryKey      string       `json:"entry_key"` // the statement_id it posts
	RunID         string       `json:"run_id"`
	EffectiveDate string       `json:"effective_date"` // the operating day
	PostedAt      time.Time    `json:"posted_at"`
	Currency      string       `json:"currency"`
	PrevHash      string       `json:"prev_hash"`
	Hash          string       `json:"hash"`
	Lines         []LedgerLine `json:"lines"`
}

// LedgerLine is one signed line of a journal entry.
type LedgerLine struct {
	LineNo          int    `json:"line_no"`
	Account         string `json:"account"`
	Amount          string `json:"amount"` // 2 decimals, signed
	SettlementPoint string `json:"settlement_point"`
	OperatingDay    string `json:"operating_day"`
}

// Routes implements Routes.
func (g LedgerRoutes) Routes() []Route {
	return []Route{
		{
			Method: http.MethodGet, Path: "/api/v1/ledger/balances", Roles: Readers,
			Summary: "Ledger account balances",
			Description: "Every account with postings unless account is given; as_of counts only entries posted at " +
				"or before that instant, effective_on only entries effective on or before that operating day.",
			Params: []Param{
				Query("account", "one account, e.g. participant:RETAILER-A:energy_receivable"),
				InstantParam("as_of", "posting time, inclusive (RFC 3339)"),
				DayParam("effective_on", "effective date, inclusive (YYYY-MM-DD)"),
			},
			Response: ListBody(LedgerBalance{}), Handler: g.balances,
		},
		{
			Method: http.MethodGet, Path: "/api/v1/ledger/entries", Roles: Readers,
			Summary: "Journal entries with their lines and hashes, in chain order",
			Description: "from and to filter by effective date when given as dates (YYYY-MM-DD, inclusive) and by " +
				"posting time when given as instants (RFC 3339, half-open [from, to)).",
			Params: []Param{
				Query("account", "only entries with a line on this account"),
				Query("from", "first effective date (YYYY-MM-DD) or posting instant (RFC 3339)"),
				Query("to", "last effective date (inclusive) or posting instant (exclusive)"),
			},
			Response: ListBody(LedgerEntry{}), Handler: g.entries,
		},
		{
			Method: http.MethodGet, Path: "/api/v1/ledger/verify", Roles: Readers,
			Summary: "Recompute the hash chain and name the first entry that fails",
			Description: "Also checks every chain head recorded in an export manifest (lineage.ledger): an entry " +
				"removed or changed at the tail of the chain after an export fails, naming the export (export_id).",
			Response: JSONBody(ledgerpg.Report{}), Handler: g.verify,
		},
	}
}

func (g LedgerRoutes) balances(c echo.Context) error {
	q := ledgerpg.BalanceQuery{Account: c.QueryParam("account")}
	asOf, err := QueryInstant(c, "as_of")
	if err != nil {
		return err
	}
	if asOf != nil {
		q.AsOf = *asOf
	}
	day, err := QueryDay(c, "effective_on")
	if err != nil {
		return err
	}
	if day != nil {
		q.EffectiveOn = time.Date(day.Year, day.Month, day.Day, 0, 0, 0, 0, time.UTC)
	}
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	var after struct {
		Account string `json:"account"`
	}
	if _, err := Cursor(c, &after); err != nil {
		return err
	}
	q.After, q.Limit = after.Account, limit+1
	bs, err := ledgerpg.Balances(c.Request().Context(), g.Pool, q)
	if err != nil {
		return err
	}
	out := make([]LedgerBalance, len(bs))
	for i, b := range bs {
		out[i] = LedgerBalance{Account: b.Account, Currency: b.Currency, Balance: b.Balance.StringFixedBank(ledger.Scale)}
	}
	return List(c, out, limit, func(b LedgerBalance) any {
		return struct {
			Account string `json:"account"`
		}{b.Account}
	})
}

// entryBound reads from/to of the entry listing: a date bounds the
// effective date, an instant the posting time.
func entryBound(c echo.Context, name string) (day, instant time.Time, err error) {
	s := c.QueryParam(name)
	if s == "" {
		return time.Time{}, time.Time{}, nil
	}
	if len(s) == len(time.DateOnly) {
		d, err := ParseDay(name, s)
		if err != nil {
			return time.Time{}, time.Time{}, err
		}
		return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC), time.Time{}, nil
	}
	t, err := ParseInstant(name, s)
	return time.Time{}, t, err
}

func (g LedgerRoutes) entries(c echo.Context) error {
	q := ledgerpg.EntryQuery{Account: c.QueryParam("account")}
	var err error
	if q.FromDay, q.PostedFrom, err = entryBound(c, "from"); err != nil {
		return err
	}
	if q.ToDay, q.PostedTo, err = entryBound(c, "to"); err != nil {
		return err
	}
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	var after struct {
		EntryID int64 `json:"entry_id"`
	}
	if _, err := Cursor(c, &after); err != nil {
		return err
	}
	q.AfterID, q.Limit = after.EntryID, limit+1
	es, err := ledgerpg.Entries(c.Request().Context(), g.Pool, q)
	if err != nil {
		return err
	}
	out := make([]LedgerEntry, len(es))
	for i, e := range es {
		out[i] = ledgerEntry(e)
	}
	return List(c, out, limit, func(e LedgerEntry) any {
		return struct {
			EntryID int64 `json:"entry_id"`
		}{e.EntryID}
	})
}

func ledgerEntry(e ledger.Entry) LedgerEntry {
	out := LedgerEntry{
		EntryID: e.ID, EntryKey: e.Key, RunID: e.RunID, EffectiveDate: e.EffectiveDate.Format(time.DateOnly),
		PostedAt: e.PostedAt.UTC(), Currency: e.Currency, PrevHash: e.PrevHash, Hash: e.Hash,
		Lines: make([]LedgerLine, len(e.Lines)),
	}
	for i, l := range e.Lines {
		out.Lines[i] = LedgerLine{LineNo: l.LineNo, Account: l.Account, Amount: l.Amount.StringFixedBank(ledger.Scale),
			SettlementPoint: l.SettlementPoint}
		if !l.OperatingDay.IsZero() {
			out.Lines[i].OperatingDay = l.OperatingDay.Format(time.DateOnly)
		}
	}
	return out
}

func (g LedgerRoutes) verify(c echo.Context) error {
	rep, err := exportpg.VerifyLedger(c.Request().Context(), g.Pool)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rep)
}

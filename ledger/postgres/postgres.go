package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/ledger"
)

// journalLock is the advisory lock (two-key form) that serialises appends
// to the chain.
const journalLock = 2010

// ErrKeyConflict is returned when an entry key is already posted with other
// content.
var ErrKeyConflict = errors.New("journal entry key already posted with different content")

// Post appends entries to the journal inside tx, in their order, and
// returns those it posted (with ids, posting time and hashes). Lines are
// numbered 1..n; dates are taken as calendar dates. Entries whose key is
// already in the journal are skipped when identical (idempotent retries) and
// refused when not. The caller commits; the balance triggers fire then.
func Post(ctx context.Context, tx pgx.Tx, postedAt time.Time, entries ...ledger.Entry) ([]ledger.Entry, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	postedAt = postedAt.UTC().Truncate(time.Microsecond)
	keys := make([]string, len(entries))
	seen := map[string]bool{}
	for i := range entries {
		e := &entries[i]
		e.Lines = slices.Clone(e.Lines)
		e.Number()
		e.EffectiveDate = date(e.EffectiveDate)
		for j := range e.Lines {
			e.Lines[j].OperatingDay = date(e.Lines[j].OperatingDay)
		}
		e.PostedAt = postedAt
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("post journal entry: %w", err)
		}
		if seen[e.Key] {
			return nil, fmt.Errorf("post journal entries: key %s appears twice in one batch", e.Key)
		}
		seen[e.Key] = true
		keys[i] = e.Key
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, journalLock); err != nil {
		return nil, fmt.Errorf("lock journal: %w", err)
	}
	existing, err := loadEntries(ctx, tx, `WHERE e.entry_key = ANY($1)`, keys)
	if err != nil {
		return nil, fmt.Errorf("look up posted keys: %w", err)
	}
	posted := map[string]ledger.Entry{}
	for _, e := range existing {
		posted[e.Key] = e
	}
	var todo []ledger.Entry
	for _, e := range entries {
		if old, ok := posted[e.Key]; ok {
			if !sameContent(old, e) {
				return nil, fmt.Errorf("post journal entry %s: %w (entry %d)", e.Key, ErrKeyConflict, old.ID)
			}
			continue
		}
		todo = append(todo, e)
	}
	if len(todo) == 0 {
		return nil, nil
	}
	head := ledger.Genesis
	err = tx.QueryRow(ctx, `SELECT hash FROM journal_entries ORDER BY entry_id DESC LIMIT 1`).Scan(&head)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("read chain head: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT nextval(pg_get_serial_sequence('journal_entries', 'entry_id')) FROM generate_series(1, $1)`, len(todo))
	if err != nil {
		return nil, fmt.Errorf("draw entry ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("draw entry ids: %w", err)
	}
	slices.Sort(ids)
	var entryRows, lineRows [][]any
	for i := range todo {
		e := &todo[i]
		e.ID = ids[i]
		e.Seal(head)
		head = e.Hash
		entryRows = append(entryRows, []any{e.ID, e.Key, nullText(e.RunID), e.EffectiveDate, e.PostedAt, e.Currency, e.PrevHash, e.Hash})
		for _, l := range e.Lines {
			var day any
			if !l.OperatingDay.IsZero() {
				day = l.OperatingDay
			}
			lineRows = append(lineRows, []any{e.ID, l.LineNo, l.Account, l.Amount, nullText(l.SettlementPoint), day})
		}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"journal_entries"},
		[]string{"entry_id", "entry_key", "run_id", "effective_date", "posted_at", "currency", "prev_hash", "hash"},
		pgx.CopyFromRows(entryRows)); err != nil {
		return nil, fmt.Errorf("write %d journal entries: %w", len(entryRows), err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"journal_lines"},
		[]string{"entry_id", "line_no", "account", "amount", "settlement_point", "operating_day"},
		pgx.CopyFromRows(lineRows)); err != nil {
		return nil, fmt.Errorf("write %d journal lines: %w", len(lineRows), err)
	}
	return todo, nil
}

func date(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// sameContent compares what a poster decides (not id, time or hashes).
func sameContent(a, b ledger.Entry) bool {
	if a.Key != b.Key || a.RunID != b.RunID || !a.EffectiveDate.Equal(b.EffectiveDate) ||
		a.Currency != b.Currency || len(a.Lines) != len(b.Lines) {
		return false
	}
	for i := range a.Lines {
		x, y := a.Lines[i], b.Lines[i]
		if x.Account != y.Account || !x.Amount.Equal(y.Amount) || x.SettlementPoint != y.SettlementPoint ||
			!x.OperatingDay.Equal(y.OperatingDay) {
			return false
		}
	}
	return true
}

// querier is what reading needs: a pool, a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// eachEntry streams the entries chosen by a WHERE clause over
// journal_entries e, with their lines, in id order, calling fn for each; fn
// returning false stops early.
func eachEntry(ctx context.Context, q querier, where string, fn func(ledger.Entry) bool, args ...any) error {
	rows, err := q.Query(ctx, `
		SELECT e.entry_id, e.entry_key, coalesce(e.run_id, ''), e.effective_date, e.posted_at, e.currency,
		       e.prev_hash, e.hash, l.line_no, l.account, l.amount, coalesce(l.settlement_point, ''), l.operating_day
		FROM journal_entries e LEFT JOIN journal_lines l ON l.entry_id = e.entry_id
		`+where+`
		ORDER BY e.entry_id, l.line_no`, args...)
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	defer rows.Close()
	var cur ledger.Entry
	have := false
	for rows.Next() {
		var (
			e       ledger.Entry
			lineNo  *int
			account *string
			amount  decimal.NullDecimal
			point   string
			day     *time.Time
		)
		if err := rows.Scan(&e.ID, &e.Key, &e.RunID, &e.EffectiveDate, &e.PostedAt, &e.Currency,
			&e.PrevHash, &e.Hash, &lineNo, &account, &amount, &point, &day); err != nil {
			return fmt.Errorf("read journal row: %w", err)
		}
		if !have || e.ID != cur.ID {
			if have && !fn(cur) {
				return nil
			}
			cur, have = e, true
			cur.PostedAt = cur.PostedAt.UTC()
		}
		if lineNo != nil {
			l := ledger.Line{LineNo: *lineNo, Account: *account, Amount: amount.Decimal, SettlementPoint: point}
			if day != nil {
				l.OperatingDay = *day
			}
			cur.Lines = append(cur.Lines, l)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	if have {
		fn(cur)
	}
	return nil
}

func loadEntries(ctx context.Context, q querier, where string, args ...any) ([]ledger.Entry, error) {
	var out []ledger.Entry
	err := eachEntry(ctx, q, where, func(e ledger.Entry) bool { out = append(out, e); return true }, args...)
	return out, err
}

// Report is the outcome of verifying the whole chain: {"ok": true,
// "entries_checked": N, "exports_checked": M}, or ok false with the first
// entry that fails.
type Report struct {
	OK             bool            `json:"ok"`
	EntriesChecked int             `json:"entries_checked"`
	ExportsChecked int             `json:"exports_checked,omitempty"` // anchors: chain heads recorded by exports
	FirstBadEntry  *ledger.Failure `json:"first_bad_entry,omitempty"`
	Head           string          `json:"-"` // hash of the last entry that verified
}

// Verify recomputes the chain from the database, entry by entry in id
// order, and reports the first entry whose balance, link or hash does not
// match, or the first anchor (a chain head an export recorded) that the
// journal no longer holds. Read the anchors before calling: every entry
// they name was committed before them, so this read sees it.
func Verify(ctx context.Context, db *pgxpool.Pool, anchors ...ledger.Anchor) (Report, error) {
	v := ledger.NewVerifier(anchors...)
	var bad *ledger.Failure
	err := eachEntry(ctx, db, "", func(e ledger.Entry) bool {
		bad = v.Check(e)
		return bad == nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("verify journal: %w", err)
	}
	if bad == nil {
		bad = v.Finish()
	}
	return Report{OK: bad == nil, EntriesChecked: v.Checked(), ExportsChecked: v.Anchored(), FirstBadEntry: bad, Head: v.Head()}, nil
}

// Balance is the balance of one ledger account in one currency.
type Balance struct {
	Account  string          `json:"account"`
	Currency string          `json:"currency"`
	Balance  decimal.Decimal `json:"-"`
}

// BalanceQuery filters balances. Zero fields do not filter.
type BalanceQuery struct {
	Account     string    // one account; "" for every account
	AsOf        time.Time // only entries posted at or before this instant
	EffectiveOn time.Time // only entries effective on or before this date
	After       string    // paging: accounts after this one
	Limit       int       // at most this many balances; 0 for all
}

// Balances sums journal lines per account and currency, ordered by account.
func Balances(ctx context.Context, db querier, q BalanceQuery) ([]Balance, error) {
	var asOf, effective any
	if !q.AsOf.IsZero() {
		asOf = q.AsOf
	}
	if !q.EffectiveOn.IsZero() {
		effective = date(q.EffectiveOn)
	}
	rows, err := db.Query(ctx, `
		SELECT l.account, e.currency, sum(l.amount)
		FROM journal_lines l JOIN journal_entries e ON e.entry_id = l.entry_id
		WHERE ($1 = '' OR l.account = $1)
		  AND ($2::timestamptz IS NULL OR e.posted_at <= $2)
		  AND ($3::date IS NULL OR e.effective_date <= $3)
		  AND l.account > $4
		GROUP BY l.account, e.currency
		ORDER BY l.account, e.currency
		LIMIT $5`, q.Account, asOf, effective, q.After, limitArg(q.Limit))
	if err != nil {
		return nil, fmt.Errorf("read balances: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Balance, error) {
		var b Balance
		err := r.Scan(&b.Account, &b.Currency, &b.Balance)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("read balances: %w", err)
	}
	return out, nil
}

// EntryQuery filters and pages the entry listing. Zero fields do not filter.
type EntryQuery struct {
	Account    string    // entries with at least one line on this account
	PostedFrom time.Time // posted_at >= PostedFrom
	PostedTo   time.Time // posted_at < PostedTo
	FromDay    time.Time // effective_date >= FromDay
	ToDay      time.Time // effective_date <= ToDay
	RunID      string    // entries posted by this run
	AfterID    int64     // entries with a larger id (the page cursor)
	Limit      int       // at most this many; 0 for no limit
}

// Entries lists journal entries with all their lines, in id order.
func Entries(ctx context.Context, db querier, q EntryQuery) ([]ledger.Entry, error) {
	opt := func(t time.Time, asDate bool) any {
		if t.IsZero() {
			return nil
		}
		if asDate {
			return date(t)
		}
		return t
	}
	where := `
		WHERE e.entry_id IN (
			SELECT e.entry_id FROM journal_entries e
			WHERE e.entry_id > $1
			  AND ($2 = '' OR EXISTS (SELECT 1 FROM journal_lines a WHERE a.entry_id = e.entry_id AND a.account = $2))
			  AND ($3::timestamptz IS NULL OR e.posted_at >= $3)
			  AND ($4::timestamptz IS NULL OR e.posted_at < $4)
			  AND ($5::date IS NULL OR e.effective_date >= $5)
			  AND ($6::date IS NULL OR e.effective_date <= $6)
			  AND ($7 = '' OR e.run_id = $7)
			ORDER BY e.entry_id
			LIMIT $8)`
	return loadEntries(ctx, db, where, q.AfterID, q.Account, opt(q.PostedFrom, false), opt(q.PostedTo, false),
		opt(q.FromDay, true), opt(q.ToDay, true), q.RunID, limitArg(q.Limit))
}

// limitArg is a LIMIT argument: NULL (no limit) for n <= 0.
func limitArg(n int) any {
	if n <= 0 {
		return nil
	}
	return n
}

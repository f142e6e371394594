package postgres

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
)

// DefaultCacheEntries bounds each kind of entry of a Cache made with a
// limit of 0: 500,000 meters (about 145 MB of Go heap with one assignment a
// meter, ~290 bytes each) and 500,000 accounts (about 40 MB, ~80 bytes
// each). A utility's 5 M meters do not fit: when its meters report in
// turn, most look-ups miss and read their meters, as every batch did
// before there was a cache.
const DefaultCacheEntries = 500_000

// Cache keeps, across ingest batches, the registry rows every batch reads:
// the assignments of each meter, and which alert settings each account has.
// It is exactly as correct as reading them in the batch's transaction:
// migrations/00809_registry_version.sql gives the registry a version that
// every write of meter_assignments or accounts changes in the writing
// transaction, and every entry is tagged with the version it was read at.
// Each look-up reads the version in the statement that loads the missing
// entries (one snapshot for both); the entries it already had count only
// when that version is theirs, else the look-up reads all its keys again
// in one statement with the version, and the cache starts over at that
// version. So a batch uses the registry as it was at one instant inside its
// own transaction, the instant of its look-up statement, as a read of the
// tables in that statement would have.
//
// Memory: each kind of entry (meters, accounts) is capped at the limit
// given to NewCache; a look-up whose new entries would pass it drops all
// entries of that kind first (no LRU: a full drop costs one look-up of
// each meter again, and an LRU on every hit costs more than it keeps when
// the meters cycle, as a utility's do). A meter's entry holds all its
// assignments (a meter without any, or one the registry does not know,
// has an empty entry).
//
// A Cache is safe for concurrent use: one per process, shared by the
// consumers and the replays (readstore.ReadOptions.Registry) and the alert
// hook.
type Cache struct {
	limit int

	mu          sync.Mutex
	at          registryVersion                // the version every entry was read at
	assignments map[string][]meters.Assignment // by meter, by effective_from; shared, read-only
	settings    map[string]AlertSettings       // by account
}

// registryVersion is what tells two states of the registry apart: the
// counter migrations/00809_registry_version.sql moves on every write, and
// the files of the two tables, which TRUNCATE replaces (it has no trigger
// there). The zero value is no state: no look-up reads it.
type registryVersion struct {
	counter                  int64
	accountsFile, assignFile uint32
}

// versionFrom is the registry's version in the statement's snapshot, as a
// table of one row. pg_class is read in that snapshot too: a TRUNCATE
// committed before it shows as a new relfilenode. Scalar subqueries, so
// that the planner knows it is one row: joined, the table without
// statistics was taken for 2,200 rows, and the estimate for the look-up
// of a few thousand meters passed jit_above_cost (a second of JIT
// compilation a statement).
const versionFrom = `(SELECT (SELECT version FROM registry_version) AS version,
	(SELECT relfilenode FROM pg_class WHERE oid = 'accounts'::regclass) AS accounts_file,
	(SELECT relfilenode FROM pg_class WHERE oid = 'meter_assignments'::regclass) AS assign_file) AS ver`

// NewCache is an empty Cache holding at most limit meters and limit
// accounts (0: DefaultCacheEntries).
func NewCache(limit int) *Cache {
	if limit <= 0 {
		limit = DefaultCacheEntries
	}
	return &Cache{limit: limit}
}

// lookup is one look-up of keys among one kind of entry.
type lookup[V any] struct {
	c      *Cache
	kind   func(*Cache) *map[string]V
	keys   []string
	got    map[string]V    // the hits, then every key's entry
	hitsAt registryVersion // the version the hits were read at
	read   registryVersion // the version the look-up statement read
}

// begin takes the cached entries of keys and returns the keys it lacks.
func begin[V any](c *Cache, kind func(*Cache) *map[string]V, keys []string) (*lookup[V], []string) {
	l := &lookup[V]{c: c, kind: kind, keys: keys, got: make(map[string]V, len(keys))}
	var missing []string
	c.mu.Lock()
	defer c.mu.Unlock()
	l.hitsAt = c.at
	m := *kind(c)
	for _, k := range keys {
		if v, ok := m[k]; ok {
			l.got[k] = v
		} else {
			missing = append(missing, k)
		}
	}
	return l, missing
}

// finish keeps the entries loaded (at l.read) for the missing keys, or,
// when the registry changed since the hits were read, loads every key again
// with load, which returns the version it read at. Then the cache keeps
// what was loaded, starting over if its version is not the one read.
func (l *lookup[V]) finish(loaded map[string]V, load func(keys []string, into map[string]V) (registryVersion, error)) (map[string]V, error) {
	if len(l.got) > 0 && l.read != l.hitsAt {
		clear(l.got)
		clear(loaded)
		var err error
		if l.read, err = load(l.keys, loaded); err != nil {
			return nil, err
		}
	}
	maps.Copy(l.got, loaded)
	keep(l.c, l.read, l.kind, loaded)
	return l.got, nil
}

// keep stores entries read at version at: the cache starts over at it if
// its entries are of another version, and drops the entries of that kind
// if they would pass the limit.
func keep[V any](c *Cache, at registryVersion, kind func(*Cache) *map[string]V, entries map[string]V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at != at {
		c.at, c.assignments, c.settings = at, nil, nil
	}
	if len(entries) == 0 || len(entries) > c.limit {
		return
	}
	m := kind(c)
	if *m == nil || len(*m)+len(entries) > c.limit {
		*m = make(map[string]V, len(entries))
	}
	maps.Copy(*m, entries)
}

func assignmentsOf(c *Cache) *map[string][]meters.Assignment { return &c.assignments }
func settingsOf(c *Cache) *map[string]AlertSettings          { return &c.settings }

// assignmentsSQL reads the version and the assignments of the meters $1:
// one row with NULL assignment columns when they have none. The meters are
// matched with = ANY($1) in the order of meter_assignments_meter: a
// per-meter probe (a join with unnest, LATERAL or not) took the exclusion
// constraint's GiST index (migrations/00803), 25 - 75 µs a meter, 14 s of
// 10 M reads; with = ANY the generic plan walks the btree (2.4 µs a meter
// at 95,000 meters), and a custom plan for thousands of meters of a small
// registry reads the table once.
const assignmentsSQL = `
	SELECT ver.version, ver.accounts_file, ver.assign_file,
	       m.meter_id, m.account_id, m.participant_id, m.settlement_point, m.loss_factor, m.effective_from, m.effective_to
	FROM ` + versionFrom + `
	LEFT JOIN meter_assignments m ON m.meter_id = ANY($1::text[])
	ORDER BY m.meter_id, m.effective_from`

// AssignmentsLookup is the look-up of a batch's meters' assignments, whose
// statement rides in the caller's pgx.Batch (QueueAssignments).
type AssignmentsLookup struct {
	l      *lookup[[]meters.Assignment]
	loaded map[string][]meters.Assignment
	err    error
}

// QueueAssignments queues on b the statement that reads the registry's
// version and the assignments the cache lacks of meterIDs (distinct). Once
// b's results are read, Finish returns them all.
func (c *Cache) QueueAssignments(b *pgx.Batch, meterIDs []string) *AssignmentsLookup {
	l, missing := begin(c, assignmentsOf, meterIDs)
	q := &AssignmentsLookup{l: l, loaded: emptyEntries[[]meters.Assignment](missing)}
	b.Queue(assignmentsSQL, missing).Query(func(rows pgx.Rows) error {
		l.read, q.err = scanAssignments(rows, q.loaded)
		return q.err
	})
	return q
}

// Finish returns the assignments of every meter of the look-up, by meter
// and effective_from, as of the version its statement read (nil: the meter
// has none). When the registry changed since the cached ones were read, it
// reads them all again in tx. The slices are shared: read-only.
func (q *AssignmentsLookup) Finish(ctx context.Context, tx pgx.Tx) (map[string][]meters.Assignment, error) {
	if q.err != nil {
		return nil, q.err
	}
	return q.l.finish(q.loaded, func(keys []string, into map[string][]meters.Assignment) (registryVersion, error) {
		rows, err := tx.Query(ctx, assignmentsSQL, keys)
		if err != nil {
			return registryVersion{}, fmt.Errorf("read meter assignments: %w", err)
		}
		for _, k := range keys {
			into[k] = nil
		}
		return scanAssignments(rows, into)
	})
}

// emptyEntries is an entry of zero value for each key: what a key the
// statement returns no row for is.
func emptyEntries[V any](keys []string) map[string]V {
	m := make(map[string]V, len(keys))
	var zero V
	for _, k := range keys {
		m[k] = zero
	}
	return m
}

// scanAssignments reads the rows of assignmentsSQL into into, and returns
// the version they were read at.
func scanAssignments(rows pgx.Rows, into map[string][]meters.Assignment) (registryVersion, error) {
	var v registryVersion
	var meterID, accountID, participantID, point *string
	var lossFactor decimal.NullDecimal
	var from, to *time.Time
	_, err := pgx.ForEachRow(rows, []any{&v.counter, &v.accountsFile, &v.assignFile,
		&meterID, &accountID, &participantID, &point, &lossFactor, &from, &to}, func() error {
		if meterID == nil {
			return nil
		}
		a := meters.Assignment{MeterID: *meterID, AccountID: *accountID, ParticipantID: *participantID,
			SettlementPoint: *point, LossFactor: lossFactor.Decimal, EffectiveFrom: from.UTC()}
		if to != nil {
			t := to.UTC()
			a.EffectiveTo = &t
		}
		into[a.MeterID] = append(into[a.MeterID], a)
		return nil
	})
	if err != nil {
		return registryVersion{}, fmt.Errorf("read meter assignments: %w", err)
	}
	return v, nil
}

// settingsSQL reads the version and which alert settings the accounts $1
// have: one row with a NULL account when none of them exists.
const settingsSQL = `
	SELECT ver.version, ver.accounts_file, ver.assign_file,
	       a.account_id, coalesce(a.daily_kwh_threshold IS NOT NULL, false), coalesce(a.monthly_budget IS NOT NULL, false)
	FROM ` + versionFrom + ` LEFT JOIN accounts a ON a.account_id = ANY($1::text[])`

// AlertSettings returns which alert settings each of accountIDs (distinct)
// has, as of the version one statement of tx reads: an account that does
// not exist has none. Only whether a daily_kwh_threshold and a
// monthly_budget are set is kept, not their values: ingest reads those
// under the account's lock.
//
// The version is read by a statement of its own, so that a caller holding
// a lock that registry writers take (the alert scope lock) sees every
// write committed before it got the lock.
func (c *Cache) AlertSettings(ctx context.Context, tx pgx.Tx, accountIDs []string) (map[string]AlertSettings, error) {
	l, missing := begin(c, settingsOf, accountIDs)
	load := func(keys []string, into map[string]AlertSettings) (registryVersion, error) {
		rows, err := tx.Query(ctx, settingsSQL, keys)
		if err != nil {
			return registryVersion{}, fmt.Errorf("read accounts' alert settings: %w", err)
		}
		for _, k := range keys {
			into[k] = AlertSettings{AccountID: k}
		}
		return scanSettings(rows, into)
	}
	loaded := map[string]AlertSettings{}
	var err error
	if l.read, err = load(missing, loaded); err != nil {
		return nil, err
	}
	return l.finish(loaded, load)
}

func scanSettings(rows pgx.Rows, into map[string]AlertSettings) (registryVersion, error) {
	var v registryVersion
	var id *string
	var daily, budget bool
	_, err := pgx.ForEachRow(rows, []any{&v.counter, &v.accountsFile, &v.assignFile, &id, &daily, &budget}, func() error {
		if id != nil {
			into[*id] = AlertSettings{AccountID: *id, DailyThreshold: daily, MonthlyBudget: budget}
		}
		return nil
	})
	if err != nil {
		return registryVersion{}, fmt.Errorf("read accounts' alert settings: %w", err)
	}
	return v, nil
}

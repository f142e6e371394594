package postgres

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/outbox"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	statementsTopic = "settlement.statements"
	chargesTopic    = "settlement.account-charges"
)

func chicago(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// env is a fresh database with Runs over it. Inputs are inserted with plain
// SQL, as ingest would leave them.
type env struct {
	t    testing.TB
	pool *pgxpool.Pool
	runs *Runs
	now  time.Time
}

func newEnv(t testing.TB, m settlement.Market) *env {
	t.Helper()
	pool, _ := pgtest.New(t)
	e := &env{t: t, pool: pool, now: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)}
	e.runs = NewRuns(pool, Config{
		Market:          m,
		ReadsTopic:      "ami.interval-reads",
		StatementsTopic: statementsTopic,
		ChargesTopic:    chargesTopic,
		Outbox:          outbox.NewWriter(map[string]int32{statementsTopic: 4, chargesTopic: 4}),
		Now:             func() time.Time { return e.now },
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return e
}

func (e *env) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.pool.Exec(e.t.Context(), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// registry inserts participants, points and accounts by id.
func (e *env) registry(participants, points, accounts []string) {
	e.t.Helper()
	for _, p := range participants {
		e.exec(`INSERT INTO participants VALUES ($1::text, $1::text)`, p)
	}
	for _, s := range points {
		e.exec(`INSERT INTO settlement_points VALUES ($1::text, $1::text, 'hub')`, s)
	}
	for _, a := range accounts {
		e.exec(`INSERT INTO accounts (account_id, name) VALUES ($1::text, $1::text)`, a)
	}
}

// assign inserts a meter assignment over [from, to); a zero to is open.
func (e *env) assign(meter, account, participant, point, lossFactor string, from, to time.Time) {
	e.t.Helper()
	var end any
	if !to.IsZero() {
		end = to
	}
	e.exec(`INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, meter, account, participant, point, decimal.RequireFromString(lossFactor), from, end)
}

// read stores a read of (meter, channel, start) as ingest does: a block of
// one value appended to read_blocks (migrations/00800_read_blocks.sql); the
// highest version of a key is its current read.
func (e *env) read(meter, channel string, start time.Time, seconds int, value, quality string, version int) {
	e.t.Helper()
	micro := decimal.RequireFromString(value).Shift(6)
	if !micro.IsInteger() {
		e.t.Fatalf("read value %s has more than 6 decimal places", value)
	}
	if quality == "A" {
		quality = "" // a block whose reads are all actual
	}
	b := readstore.StoredBlock{MeterID: meter, Channel: meters.Channel(channel), Start: start.Unix(),
		IntervalSeconds: int64(seconds), Version: int64(version), Values: []int64{micro.IntPart()}, Quality: quality,
		Origin: readstore.Origin{Topic: "ami.interval-reads"}}
	if err := readstore.EnsurePartitions(e.t.Context(), e.pool, []int64{b.Start}); err != nil {
		e.t.Fatal(err)
	}
	if err := readstore.AppendBlocks(e.t.Context(), e.pool, []readstore.StoredBlock{b}); err != nil {
		e.t.Fatal(err)
	}
}

// block appends a read block as ingest stores a record's reads
// (migrations/00800_read_blocks.sql): values in micro-kWh, readstore.NoRead
// where the record did not change the read, all actual.
func (e *env) block(meter, channel string, start time.Time, seconds int, version int, micro ...int64) {
	e.t.Helper()
	b := readstore.StoredBlock{MeterID: meter, Channel: meters.Channel(channel), Start: start.Unix(),
		IntervalSeconds: int64(seconds), Version: int64(version), Values: micro, Origin: readstore.Origin{Topic: "ami.interval-reads"}}
	if err := readstore.EnsurePartitions(e.t.Context(), e.pool, []int64{b.Start}); err != nil {
		e.t.Fatal(err)
	}
	if err := readstore.AppendBlocks(e.t.Context(), e.pool, []readstore.StoredBlock{b}); err != nil {
		e.t.Fatal(err)
	}
}

// price upserts the current RT price of (point, start).
func (e *env) price(point string, start time.Time, seconds int, price string, version int) {
	e.t.Helper()
	e.exec(`INSERT INTO prices (market, settlement_point, interval_start, interval_seconds, price, currency, version, topic, partition, "offset")
		VALUES ('RT', $1, $2, $3, $4, 'USD', $5, 'market.prices', 0, 0)
		ON CONFLICT (market, settlement_point, interval_start) DO UPDATE SET price = excluded.price, version = excluded.version`,
		point, start, seconds, decimal.RequireFromString(price), version)
}

func (e *env) offsets(topic string, partition int, next int64) {
	e.t.Helper()
	e.exec(`INSERT INTO ingest_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)
		ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset`, topic, partition, next)
}

func (e *env) start(day settlement.Day, t settlement.RunType) Run {
	e.t.Helper()
	run, err := e.runs.Start(e.t.Context(), day, t)
	if err != nil {
		e.t.Fatal(err)
	}
	return run
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(e.t.Context(), sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

package pgtest

// The helpers in this file hold the SQL of cmd/gridsettle's tests of the
// schema's version, its roles and its connection settings, so that the
// command's package holds none.

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gridsettle/gridsettle/migrations/pgserver"
)

// Querier is what the checks need: a pool, a connection or a transaction.
type Querier = pgserver.Querier

// MarkSchemaNewer records a migration (999999) no gridsettle has, as a
// newer gridsettle would have left the database.
func MarkSchemaNewer(t testing.TB, db Querier) {
	t.Helper()
	if _, err := db.Exec(t.Context(), "INSERT INTO goose_db_version (version_id, is_applied) VALUES (999999, true)"); err != nil {
		t.Fatalf("pgtest: mark the schema newer: %v", err)
	}
}

// UnrecordLatestMigration forgets that the latest migration was applied,
// leaving it pending, and returns its version.
func UnrecordLatestMigration(t testing.TB, db Querier) int64 {
	t.Helper()
	var latest int64
	if err := db.QueryRow(t.Context(), `DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version)
		RETURNING version_id`).Scan(&latest); err != nil {
		t.Fatalf("pgtest: unrecord the latest migration: %v", err)
	}
	return latest
}

// Setting is the session's value of the setting name, as SHOW prints it.
func Setting(t testing.TB, db Querier, name string) string {
	t.Helper()
	var v string
	if err := db.QueryRow(t.Context(), `SELECT current_setting($1)`, name).Scan(&v); err != nil {
		t.Fatalf("pgtest: setting %s: %v", name, err)
	}
	return v
}

// Sleep runs a statement that takes seconds on the server and returns its
// error (a statement timeout cancels it).
func Sleep(ctx context.Context, db Querier, seconds float64) error {
	_, err := db.Exec(ctx, `SELECT pg_sleep($1)`, seconds)
	return err
}

// ScanNumeric scans the numeric value of text into dest, with the types the
// connection registered.
func ScanNumeric(ctx context.Context, db Querier, text string, dest any) error {
	return db.QueryRow(ctx, `SELECT $1::text::numeric`, text).Scan(dest)
}

// refused requires q to fail for lack of privilege (not on a trigger).
func refused(t testing.TB, db Querier, q string) {
	t.Helper()
	_, err := db.Exec(t.Context(), q)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Errorf("%s: %v, want insufficient_privilege", q, err)
	}
}

// CheckRuntimeWrites requires the role of db, a runtime role migrate
// granted, to write a participant, to create a month of the read store it
// does not own (ingest does, for a record of a month not yet created) and
// append to it, and to be refused, for lack of privilege, every rewrite of
// what is kept: the journal, the audit log, read store versions and price
// versions.
func CheckRuntimeWrites(t testing.TB, db Querier) {
	t.Helper()
	if _, err := db.Exec(t.Context(), `INSERT INTO participants VALUES ('P-1', 'One')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(t.Context(), `SELECT read_blocks_partition('2019-05-20T00:00:00Z')`); err != nil {
		t.Fatalf("runtime role creates a read store month: %v", err)
	}
	if _, err := db.Exec(t.Context(), `INSERT INTO read_blocks (meter_id, channel, start, interval_seconds, version, values_micro, topic, partition, "offset")
		VALUES ('M', 'import', '2019-05-20T00:00:00Z', 900, 1, '{1}', 't', 0, 0)`); err != nil {
		t.Fatalf("runtime role appends a read block: %v", err)
	}
	for _, q := range []string{
		`DELETE FROM journal_entries`,
		`TRUNCATE journal_entries, journal_lines`,
		`UPDATE journal_lines SET amount = 0`,
		`ALTER TABLE journal_entries DISABLE TRIGGER ALL`,
		`DELETE FROM api_audit`,
		`UPDATE read_blocks SET values_micro = '{2}'`,
		`DELETE FROM read_blocks`,
		`DELETE FROM read_blocks_2019m05`,
		`TRUNCATE read_blocks`,
		`DELETE FROM price_versions`,
	} {
		refused(t, db, q)
	}
}

// CheckJournalRefused requires the role of db to be refused, for lack of
// privilege, deleting journal entries and disabling the journal's triggers.
func CheckJournalRefused(t testing.TB, db Querier) {
	t.Helper()
	refused(t, db, `DELETE FROM journal_entries`)
	refused(t, db, `ALTER TABLE journal_lines DISABLE TRIGGER ALL`)
}

// TablesNotOwnedBy lists the schema's tables whose owner is not role.
func TablesNotOwnedBy(t testing.TB, db Querier, role string) []string {
	t.Helper()
	rows, err := db.Query(t.Context(), `
		SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
		  AND c.relowner <> $1::regrole`, role)
	if err != nil {
		t.Fatalf("pgtest: tables not owned by %s: %v", role, err)
	}
	foreign, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("pgtest: tables not owned by %s: %v", role, err)
	}
	return foreign
}

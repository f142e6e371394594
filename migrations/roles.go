package migrations

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pressly/goose/v3"
)

// AppendOnly are the tables whose rows are never updated or deleted: the
// ledger's journal and the API's audit log. Their triggers refuse UPDATE,
// DELETE and TRUNCATE whoever asks; GrantRuntime also withholds those
// privileges from the runtime role, which, not owning the tables, cannot
// disable the triggers either. A migration that adds an append-only table
// adds it here (a test holds the list to the tables with such triggers).
var AppendOnly = []string{"journal_entries", "journal_lines", "api_audit"}

// Versioned are the tables of kept input versions (the read store and the
// superseded prices, settlement/ingest/readstore/doc.go): components only
// ever append to them, so GrantRuntime withholds UPDATE and DELETE on them,
// and on the partitions of read_blocks, from the runtime role. Unlike
// AppendOnly they have no refusing triggers: the schema's owner may remove
// old versions (retention is an explicit operator's act, never automatic).
var Versioned = []string{"read_blocks", "price_versions"}

// versionTable is where goose records the applied migrations.
const versionTable = "goose_db_version"

// ErrPendingMigrations is returned by Prepare when the database lacks
// migrations this binary has and the connected role may not apply them.
var ErrPendingMigrations = errors.New("the database schema has migrations pending and this role does not own it")

// State is what the connected role finds in the database.
type State struct {
	Role    string  // current_user
	Applied int64   // the highest applied migration (0: none)
	Pending []int64 // embedded migrations not applied, in order
	// OwnsSchema: the role may migrate, having the privileges of the
	// schema objects' owner (or being a superuser).
	OwnsSchema bool
	// OwnsJournal: the role has the privileges of an append-only table's
	// owner (or is a superuser), so it could disable their triggers: the
	// append-only rule then rests on the triggers alone.
	OwnsJournal bool
}

// Inspect reads the migrations applied and what the connected role may do,
// without changing anything (a runtime role may not create goose's table).
func Inspect(ctx context.Context, pool *pgxpool.Pool) (State, error) {
	var st State
	var hasVersions bool
	err := pool.QueryRow(ctx, `
		SELECT current_user,
		       to_regclass($1) IS NOT NULL,
		       coalesce((SELECT pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c WHERE c.oid = to_regclass($1)),
		                has_schema_privilege(current_schema(), 'CREATE')),
		       coalesce((SELECT bool_or(pg_has_role(current_user, c.relowner, 'USAGE')) FROM pg_class c
		                 WHERE c.oid = ANY (SELECT to_regclass(t) FROM unnest($2::text[]) t)), false)`,
		versionTable, AppendOnly).Scan(&st.Role, &hasVersions, &st.OwnsSchema, &st.OwnsJournal)
	if err != nil {
		return st, fmt.Errorf("inspect database roles: %w", err)
	}
	applied := map[int64]bool{}
	if hasVersions {
		rows, err := pool.Query(ctx, `SELECT version_id FROM `+versionTable+` WHERE is_applied`)
		if err != nil {
			return st, fmt.Errorf("read schema version: %w", err)
		}
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return st, fmt.Errorf("read schema version: %w", err)
		}
		for _, v := range versions {
			applied[v] = true
			st.Applied = max(st.Applied, v)
		}
	}
	known, err := embeddedVersions()
	if err != nil {
		return st, err
	}
	for _, v := range known {
		if !applied[v] {
			st.Pending = append(st.Pending, v)
		}
	}
	if n := len(known); n > 0 && st.Applied > known[n-1] {
		return st, fmt.Errorf("%w: database is at version %d, this binary knows up to %d; upgrade gridsettle or use another data dir",
			ErrSchemaTooNew, st.Applied, known[n-1])
	}
	return st, nil
}

// embeddedVersions are the versions of the embedded migration files, in
// order.
func embeddedVersions() ([]int64, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	out := make([]int64, 0, len(names))
	for _, n := range names {
		v, err := goose.NumericComponent(n)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", n, err)
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil
}

// Prepare makes the database ready for the pool's role: it applies pending
// migrations when the role owns the schema, and refuses with
// ErrPendingMigrations when it does not (a runtime role). The State
// returned is the one after migrating.
func Prepare(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) (State, error) {
	st, err := Inspect(ctx, pool)
	if err != nil || len(st.Pending) == 0 {
		return st, err
	}
	if !st.OwnsSchema {
		return st, fmt.Errorf("%w: database is at version %d, this binary needs %d (role %s)",
			ErrPendingMigrations, st.Applied, st.Pending[len(st.Pending)-1], st.Role)
	}
	if err := Apply(ctx, pool, log); err != nil {
		return st, err
	}
	return Inspect(ctx, pool)
}

// GrantRuntime gives role, as the pool's role (the schema's owner), what the
// components need and no more: every table of the schema to read and
// write, except that the append-only tables take inserts only and the
// migration record is read-only; the sequences to draw from. Grants are
// recomputed from the catalog, in one transaction, so running it again after
// new migrations covers their tables. It refuses a role that could undo the
// append-only rule: a superuser, or one with the privileges of a table's
// owner.
func GrantRuntime(ctx context.Context, pool *pgxpool.Pool, role string) error {
	var super bool
	err := pool.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = $1`, role).Scan(&super)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("runtime role %q does not exist: create it first (CREATE ROLE %s LOGIN PASSWORD '…')", role, pgx.Identifier{role}.Sanitize())
	} else if err != nil {
		return fmt.Errorf("look up runtime role %q: %w", role, err)
	}
	if super {
		return fmt.Errorf("runtime role %q is a superuser, which no privilege binds: use a role without SUPERUSER", role)
	}
	// The schema's owner may drop any table in it; a table's owner may
	// disable its triggers.
	var owned string
	err = pool.QueryRow(ctx, `
		SELECT 'schema ' || n.nspname FROM pg_namespace n
		WHERE n.oid = current_schema()::regnamespace AND pg_has_role($1, n.nspowner, 'USAGE')
		UNION ALL
		(SELECT 'table ' || c.relname FROM pg_class c
		 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
		   AND pg_has_role($1, c.relowner, 'USAGE')
		 ORDER BY c.relname)
		LIMIT 1`, role).Scan(&owned)
	if err == nil {
		return fmt.Errorf("runtime role %q has the privileges of the owner of %s, so it could drop the journal or disable its triggers: "+
			"use a role that neither owns the schema nor is a member of its owner", role, owned)
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("check what runtime role %q owns: %w", role, err)
	}
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("read current schema: %w", err)
	}
	r, s := pgx.Identifier{role}.Sanitize(), pgx.Identifier{schema}.Sanitize()
	appendOnly := make([]string, len(AppendOnly))
	for i, t := range AppendOnly {
		appendOnly[i] = pgx.Identifier{schema, t}.Sanitize()
	}
	versioned := make([]string, len(Versioned))
	for i, t := range Versioned {
		versioned[i] = pgx.Identifier{schema, t}.Sanitize()
	}
	stmts := []string{
		`GRANT USAGE ON SCHEMA ` + s + ` TO ` + r,
		// From nothing, so a privilege granted by hand or by an older
		// gridsettle does not survive.
		`REVOKE ALL ON ALL TABLES IN SCHEMA ` + s + ` FROM ` + r,
		`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ` + s + ` FROM ` + r,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ` + s + ` TO ` + r,
		`REVOKE UPDATE, DELETE ON ` + strings.Join(appendOnly, ", ") + ` FROM ` + r,
		`REVOKE UPDATE, DELETE ON ` + strings.Join(versioned, ", ") + ` FROM ` + r,
		// Partitions created later by read_blocks_partition() are the
		// owner's and grant the runtime role nothing; reaching them through
		// read_blocks is governed by read_blocks' own privileges.
		`DO $$
		DECLARE p regclass;
		BEGIN
			FOR p IN SELECT relid FROM pg_partition_tree('read_blocks') WHERE isleaf LOOP
				EXECUTE format('REVOKE UPDATE, DELETE ON %s FROM %I', p, ` + quoteLiteral(role) + `);
			END LOOP;
		END $$`,
		`REVOKE INSERT, UPDATE, DELETE ON ` + pgx.Identifier{schema, versionTable}.Sanitize() + ` FROM ` + r,
		`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ` + s + ` TO ` + r,
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		for _, q := range stmts {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("grant runtime role %q: %w", role, err)
	}
	return nil
}

// CreateRoles creates, as a superuser on conn, the owner and runtime roles
// of a private cluster when they are missing (LOGIN without a password: the
// private cluster trusts local connections), lets owner create in the
// database (btree_gist is a trusted extension) and makes it the owner of the
// current schema and of every table, function and domain in it: a cluster
// migrated before the roles existed has them owned by the superuser.
// It is idempotent; GrantRuntime then runs as owner.
func CreateRoles(ctx context.Context, conn *pgx.Conn, owner, runtime string) error {
	for _, role := range []string{owner, runtime} {
		var exists bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
			return fmt.Errorf("look up role %q: %w", role, err)
		}
		if !exists {
			if _, err := conn.Exec(ctx, `CREATE ROLE `+pgx.Identifier{role}.Sanitize()+` LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE`); err != nil {
				return fmt.Errorf("create role %q: %w", role, err)
			}
		}
	}
	o := pgx.Identifier{owner}.Sanitize()
	var db, schema string
	if err := conn.QueryRow(ctx, `SELECT current_database(), current_schema()`).Scan(&db, &schema); err != nil {
		return fmt.Errorf("read current database: %w", err)
	}
	stmts := []string{
		`GRANT CREATE, CONNECT, TEMPORARY ON DATABASE ` + pgx.Identifier{db}.Sanitize() + ` TO ` + o,
		`ALTER SCHEMA ` + pgx.Identifier{schema}.Sanitize() + ` OWNER TO ` + o,
		// Identity and serial sequences follow their tables; views (read_versions,
		// current_reads) are transferred too, or the owner could not grant on them.
		`DO $$
		DECLARE obj record;
		BEGIN
			FOR obj IN SELECT format('ALTER TABLE %s OWNER TO %I', c.oid::regclass, ` + quoteLiteral(owner) + `) AS q
			           FROM pg_class c
			           WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'v')
			             AND c.relowner <> ` + quoteLiteral(owner) + `::regrole
			           UNION ALL
			           SELECT format('ALTER FUNCTION %s OWNER TO %I', p.oid::regprocedure, ` + quoteLiteral(owner) + `)
			           FROM pg_proc p LEFT JOIN pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
			           WHERE p.pronamespace = current_schema()::regnamespace AND d.objid IS NULL
			             AND p.proowner <> ` + quoteLiteral(owner) + `::regrole
			           UNION ALL
			           SELECT format('ALTER DOMAIN %s OWNER TO %I', t.oid::regtype, ` + quoteLiteral(owner) + `)
			           FROM pg_type t
			           WHERE t.typnamespace = current_schema()::regnamespace AND t.typtype = 'd'
			             AND t.typowner <> ` + quoteLiteral(owner) + `::regrole
			LOOP
				EXECUTE obj.q;
			END LOOP;
		END
		$$`,
	}
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("give the schema to role %q: %w", owner, err)
		}
	}
	return nil
}

// quoteLiteral is s as an SQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

-- +goose Up
-- A version of the registry rows ingest reads for every batch: the meter
-- assignments and the accounts. Ingest caches those rows across batches
-- (meters/postgres/cache.go) and checks, in each batch's own statements,
-- that the version it reads is the one its cached rows were read at.
--
-- Every statement that writes meter_assignments or accounts, whoever runs
-- it (the registry, imports, the API, a migration, a test, psql), sets the
-- version to a new value in its own transaction. The row stays locked by
-- that transaction until it ends, so registry writers commit in the order
-- they set it, and a snapshot that sees a version sees every registry
-- write committed before it and none after: one version, one state of the
-- two tables. The value comes from a sequence, never reused: a version set
-- by a transaction that rolled back (or by a savepoint rolled back) is
-- never seen again, so rows a transaction read after its own uncommitted
-- write can never pass for another state.
--
-- TRUNCATE is not counted here (a TRUNCATE trigger is what marks the
-- append-only tables, migrations.AppendOnly): it gives the table a new
-- relfilenode, which the cache reads with the version (cache.go).
CREATE SEQUENCE registry_version_seq;

CREATE TABLE registry_version (
    one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    version bigint  NOT NULL
);
-- Owned by the column, so that it follows the table's owner
-- (migrations.CreateRoles gives tables, not sequences, to the owner role)
-- and goes with the table.
ALTER SEQUENCE registry_version_seq OWNED BY registry_version.version;
INSERT INTO registry_version (version) VALUES (nextval('registry_version_seq'));

-- +goose StatementBegin
CREATE FUNCTION registry_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE registry_version SET version = nextval('registry_version_seq');
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER registry_version_bump AFTER INSERT OR UPDATE OR DELETE ON meter_assignments
    FOR EACH STATEMENT EXECUTE FUNCTION registry_version_bump();
CREATE TRIGGER registry_version_bump AFTER INSERT OR UPDATE OR DELETE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION registry_version_bump();
-- Also when rows are applied with session_replication_role = replica
-- (logical replication, some restore tools).
ALTER TABLE meter_assignments ENABLE ALWAYS TRIGGER registry_version_bump;
ALTER TABLE accounts ENABLE ALWAYS TRIGGER registry_version_bump;

-- +goose Down
DROP TRIGGER registry_version_bump ON accounts;
DROP TRIGGER registry_version_bump ON meter_assignments;
DROP FUNCTION registry_version_bump();
DROP TABLE registry_version; -- and its sequence

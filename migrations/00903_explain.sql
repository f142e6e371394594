-- +goose Up
-- What explain needs to rebuild the inputs of any past run
-- (settlement/postgres/explain.go): reads and prices keep every version with
-- its input offset already (00800, 00802), and a run's lineage holds the
-- offsets its snapshot included. Two things are not Kafka offsets, and a run
-- records them in its lineage as versions:
--
-- 1. Quarantine replays. A replay applies a record at an old offset after
--    runs that already passed that offset, so the offset alone cannot tell
--    whether a run saw it. Every replay transaction takes a number from
--    replay_version while holding its one row, so replays commit in the order
--    of their numbers, and marks the items it applied with it. A run records
--    the number its snapshot sees (lineage.replays_through): it included a
--    replayed record if and only if the record's number is at most that.
--    Items replayed before this migration count as replay 0.
CREATE SEQUENCE replay_version_seq;
CREATE TABLE replay_version (
    one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    version bigint  NOT NULL
);
ALTER SEQUENCE replay_version_seq OWNED BY replay_version.version;
INSERT INTO replay_version (version) VALUES (0);
ALTER TABLE quarantine ADD COLUMN replay_version bigint;
UPDATE quarantine SET replay_version = 0 WHERE replayed_at IS NOT NULL;

-- 2. The registry. Assignments are closed in place (effective_to) and may be
--    corrected by hand, so the rows a past run settled with are kept here:
--    every state of every meter_assignments row, valid for the registry
--    versions [valid_from, valid_to) (00809: a snapshot that sees version V
--    sees every registry write numbered at most V and none after). A run
--    records the version its snapshot read (lineage.registry_version); the
--    assignments it used are the rows with valid_from <= V < valid_to.
--    Written by triggers, whoever writes the table; the writes of one
--    statement share one new version, as 00809's trigger gave them.
CREATE TABLE meter_assignment_history (
    id               bigint      NOT NULL,  -- meter_assignments.id
    meter_id         text        NOT NULL,
    account_id       text        NOT NULL,
    participant_id   text        NOT NULL,
    settlement_point text        NOT NULL,
    loss_factor      numeric     NOT NULL,
    effective_from   timestamptz NOT NULL,
    effective_to     timestamptz,
    valid_from       bigint      NOT NULL,
    valid_to         bigint,                -- NULL: the row's current state
    PRIMARY KEY (id, valid_from),
    CHECK (valid_to > valid_from)
);
CREATE INDEX meter_assignment_history_meter ON meter_assignment_history (meter_id, effective_from);
CREATE INDEX meter_assignment_history_line ON meter_assignment_history (participant_id, settlement_point, effective_from);
INSERT INTO meter_assignment_history
SELECT id, meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to,
       (SELECT version FROM registry_version), NULL
FROM meter_assignments;

-- +goose StatementBegin
-- One function for the four triggers: every write moves the registry
-- version once per statement, closes the states of the rows it changed or
-- removed and opens those of the rows it wrote. (PL/pgSQL plans a statement
-- when it first runs, so the transition table a trigger does not declare is
-- never looked up.)
CREATE FUNCTION meter_assignment_history_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE v bigint;
BEGIN
    UPDATE registry_version SET version = nextval('registry_version_seq') RETURNING version INTO v;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE meter_assignment_history h SET valid_to = v
        FROM old_rows o WHERE h.id = o.id AND h.valid_to IS NULL;
    ELSIF TG_OP = 'TRUNCATE' THEN
        UPDATE meter_assignment_history SET valid_to = v WHERE valid_to IS NULL;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO meter_assignment_history
        SELECT id, meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from, effective_to, v, NULL
        FROM new_rows;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- These triggers move the registry version themselves, so 00809's plain
-- bump is dropped for this table (it stays for accounts).
DROP TRIGGER registry_version_bump ON meter_assignments;
CREATE TRIGGER meter_assignment_history_insert AFTER INSERT ON meter_assignments
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION meter_assignment_history_write();
CREATE TRIGGER meter_assignment_history_update AFTER UPDATE ON meter_assignments
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION meter_assignment_history_write();
CREATE TRIGGER meter_assignment_history_delete AFTER DELETE ON meter_assignments
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION meter_assignment_history_write();
CREATE TRIGGER meter_assignment_history_truncate AFTER TRUNCATE ON meter_assignments
    FOR EACH STATEMENT EXECUTE FUNCTION meter_assignment_history_write();
ALTER TABLE meter_assignments ENABLE ALWAYS TRIGGER meter_assignment_history_insert;
ALTER TABLE meter_assignments ENABLE ALWAYS TRIGGER meter_assignment_history_update;
ALTER TABLE meter_assignments ENABLE ALWAYS TRIGGER meter_assignment_history_delete;
ALTER TABLE meter_assignments ENABLE ALWAYS TRIGGER meter_assignment_history_truncate;

-- +goose Down
DROP TRIGGER meter_assignment_history_truncate ON meter_assignments;
DROP TRIGGER meter_assignment_history_delete ON meter_assignments;
DROP TRIGGER meter_assignment_history_update ON meter_assignments;
DROP TRIGGER meter_assignment_history_insert ON meter_assignments;
DROP FUNCTION meter_assignment_history_write();
CREATE TRIGGER registry_version_bump AFTER INSERT OR UPDATE OR DELETE ON meter_assignments
    FOR EACH STATEMENT EXECUTE FUNCTION registry_version_bump();
ALTER TABLE meter_assignments ENABLE ALWAYS TRIGGER registry_version_bump;
DROP TABLE meter_assignment_history;
ALTER TABLE quarantine DROP COLUMN replay_version;
DROP TABLE replay_version; -- and its sequence

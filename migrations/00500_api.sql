-- +goose Up
-- API tokens and the audit log (api/README.md "Authentication and roles").

-- A token's secret is never stored: only its SHA-256, which is what a
-- presented bearer token is looked up by. Revocation sets revoked_at and is
-- checked on every request.
CREATE TABLE api_tokens (
    id         text        PRIMARY KEY,
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role       text        NOT NULL CHECK (role IN ('analyst', 'operator', 'regulator', 'admin')),
    hash       bytea       NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- Every state-changing call, whoever made it and whatever it answered.
-- Append-only: the database itself rejects UPDATE, DELETE and TRUNCATE.
CREATE TABLE api_audit (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    request_id text        NOT NULL,
    token_id   text,                 -- NULL: no valid token was presented
    token_name text,
    role       text,
    method     text        NOT NULL,
    path       text        NOT NULL, -- as requested, with the query string
    route      text        NOT NULL, -- the matched route pattern, '' when none
    status     int         NOT NULL,
    detail     text        NOT NULL DEFAULT '' -- the problem detail of a refused call
);
CREATE INDEX api_audit_at ON api_audit (at);

-- +goose StatementBegin
CREATE FUNCTION api_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'api_audit is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER api_audit_no_update BEFORE UPDATE OR DELETE ON api_audit
    FOR EACH ROW EXECUTE FUNCTION api_audit_append_only();
CREATE TRIGGER api_audit_no_truncate BEFORE TRUNCATE ON api_audit
    FOR EACH STATEMENT EXECUTE FUNCTION api_audit_append_only();

-- +goose Down
DROP TABLE api_audit;
DROP FUNCTION api_audit_append_only();
DROP TABLE api_tokens;

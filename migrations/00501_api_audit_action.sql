-- +goose Up
-- The audit row says what a call changed, and keeps the server's own
-- request id apart from the one a client sent (api/README.md "Safe under
-- abuse"). Rows are only ever added, so the append-only triggers of 00500 stay
-- as they are; older rows get an empty action and no client request id.
ALTER TABLE api_audit
    ADD COLUMN action            text NOT NULL DEFAULT '', -- what changed: token created, run started, rows written, ...
    ADD COLUMN client_request_id text;                     -- the client's X-Request-Id, NULL when none was sent

-- +goose Down
ALTER TABLE api_audit DROP COLUMN client_request_id, DROP COLUMN action;

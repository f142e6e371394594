-- +goose Up
-- The scheduler's failed attempts at a scheduled run (settlement/README.md
-- "Runs, versions and restatements"): one row per (operating day, run type)
-- whose scheduled run has failed and not yet completed, written in the
-- transaction that records the failed run. The scheduler tries again after
-- next_attempt_at and gives up after a bounded number of attempts: then
-- next_attempt_at is NULL and scheduled_runs points at the last failed run, so
-- the run is never started on its own again and the runs of other days go on. A
-- later completed scheduled attempt deletes the row.
CREATE TABLE scheduled_attempts (
    operating_day   date        NOT NULL,
    run_type        text        NOT NULL CHECK (run_type IN ('initial', 'final', 'true-up')),
    attempts        int         NOT NULL CHECK (attempts >= 1),
    last_run_id     text        NOT NULL REFERENCES runs,
    last_error      text        NOT NULL,
    failed_at       timestamptz NOT NULL,
    next_attempt_at timestamptz, -- NULL: given up
    PRIMARY KEY (operating_day, run_type)
);

-- +goose Down
DROP TABLE scheduled_attempts;

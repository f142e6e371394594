-- +goose Up
-- Settlement runs and what each produces (settlement/README.md "Runs, versions
-- and restatements"). Rows are written once, by the run's single write
-- transaction; exports and the API read them.
CREATE TABLE runs (
    run_id           text        PRIMARY KEY,  -- run-{day}-{run_type}-{version}
    operating_day    date        NOT NULL,
    run_type         text        NOT NULL CHECK (run_type IN ('initial', 'final', 'true-up', 'resettlement')),
    version          int         NOT NULL CHECK (version >= 1),
    status           text        NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    error            text,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    computed_at      timestamptz,
    -- {"inputs":[{"topic","partition","offset_through"}]}: the input offsets the snapshot included
    lineage          jsonb       NOT NULL DEFAULT '{"inputs": []}',
    -- the earlier completed version the deltas are taken against (NULL for the first)
    previous_version int,
    currency         text,
    UNIQUE (operating_day, version),
    CHECK ((status = 'failed') = (error IS NOT NULL))
);

CREATE TABLE statement_lines (
    statement_id        text    PRIMARY KEY,  -- {point}/{participant}/{day}/{version}
    run_id              text    NOT NULL REFERENCES runs,
    participant_id      text    NOT NULL,
    settlement_point    text    NOT NULL,
    operating_day       date    NOT NULL,
    run_type            text    NOT NULL,
    version             int     NOT NULL,
    previous_version    int,
    currency            text    NOT NULL,
    energy_mwh          numeric NOT NULL,
    unpriced_energy_mwh numeric NOT NULL,
    amount              numeric NOT NULL,
    previous_energy_mwh numeric NOT NULL,
    previous_amount     numeric NOT NULL,
    delta_energy_mwh    numeric NOT NULL,
    delta_amount        numeric NOT NULL,
    intervals           int     NOT NULL,
    priced_intervals    int     NOT NULL,
    reads_actual        int     NOT NULL,
    reads_estimated     int     NOT NULL,
    reads_substituted   int     NOT NULL,
    computed_at         timestamptz NOT NULL,
    UNIQUE (operating_day, version, participant_id, settlement_point)
);
CREATE INDEX statement_lines_participant ON statement_lines (participant_id, operating_day);
CREATE INDEX statement_lines_run ON statement_lines (run_id);

CREATE TABLE account_charges (
    charge_id            text    PRIMARY KEY,  -- {account}/{participant}/{day}/{version}
    run_id               text    NOT NULL REFERENCES runs,
    account_id           text    NOT NULL,
    participant_id       text    NOT NULL,
    operating_day        date    NOT NULL,
    run_type             text    NOT NULL,
    version              int     NOT NULL,
    import_kwh           numeric NOT NULL,
    export_kwh           numeric NOT NULL,
    net_kwh              numeric NOT NULL,
    energy_cost          numeric NOT NULL,
    previous_energy_cost numeric NOT NULL,
    delta_energy_cost    numeric NOT NULL,
    currency             text    NOT NULL,
    UNIQUE (operating_day, version, account_id, participant_id)
);
CREATE INDEX account_charges_account ON account_charges (account_id, operating_day);
CREATE INDEX account_charges_run ON account_charges (run_id);

-- One row per participant x point x settlement interval of the day for every
-- statement line of the run; figures exact (unrounded).
CREATE TABLE run_intervals (
    run_id           text        NOT NULL REFERENCES runs,
    participant_id   text        NOT NULL,
    settlement_point text        NOT NULL,
    interval_start   timestamptz NOT NULL,
    energy_mwh       numeric     NOT NULL,
    price            numeric,              -- NULL: unpriced
    amount           numeric,              -- NULL: unpriced
    actual_reads     int         NOT NULL,
    estimated_reads  int         NOT NULL, -- quality E and S
    PRIMARY KEY (run_id, participant_id, settlement_point, interval_start)
);

-- The scheduler's record of scheduled runs it has started: written in the
-- same transaction that records the run (completed or failed), so a run
-- killed half-way is started again and a finished one never twice.
CREATE TABLE scheduled_runs (
    operating_day date NOT NULL,
    run_type      text NOT NULL CHECK (run_type IN ('initial', 'final', 'true-up')),
    run_id        text NOT NULL REFERENCES runs,
    PRIMARY KEY (operating_day, run_type)
);

-- +goose Down
DROP TABLE scheduled_runs, run_intervals, account_charges, statement_lines, runs;

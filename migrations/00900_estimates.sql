-- +goose Up
-- Estimation of missing reads (settlement/README.md "Estimation of missing
-- reads (VEE)"): a run's estimates belong to the run that made them and are
-- never written as reads, so the next run estimates again from its own snapshot
-- and an actual read that arrived meanwhile replaces the estimate.
--
-- One row per estimated channel interval, as estimates.parquet and
-- GET /api/v1/runs/{run_id}/estimates serve it. The assignment columns are
-- those of the assignment covering interval_start, as the run saw it, so
-- that an export regenerates the same rows after a registry correction.
CREATE TABLE run_estimates (
    run_id           text        NOT NULL REFERENCES runs,
    meter_id         text        NOT NULL,
    channel          text        NOT NULL CHECK (channel IN ('import', 'export')),
    interval_start   timestamptz NOT NULL,
    interval_seconds int         NOT NULL,
    value_kwh        numeric     NOT NULL, -- 6 decimal places, the whole channel interval's value
    method           text        NOT NULL CHECK (method IN ('LIN', 'LDY', 'ZER')),
    account_id       text        NOT NULL,
    participant_id   text        NOT NULL,
    settlement_point text        NOT NULL,
    loss_factor      numeric     NOT NULL,
    PRIMARY KEY (run_id, meter_id, channel, interval_start)
);

-- The estimate figures of statement lines, account charges and settlement
-- intervals (settlement/README.md "What a run records and publishes"). Rows of
-- runs made before estimation existed have none: 0 is what they had.
ALTER TABLE statement_lines
    ADD COLUMN estimated_energy_mwh numeric NOT NULL DEFAULT 0,
    ADD COLUMN reads_estimated_lin  int     NOT NULL DEFAULT 0,
    ADD COLUMN reads_estimated_ldy  int     NOT NULL DEFAULT 0,
    ADD COLUMN reads_estimated_zer  int     NOT NULL DEFAULT 0;
ALTER TABLE account_charges
    ADD COLUMN estimated_kwh numeric NOT NULL DEFAULT 0;
ALTER TABLE run_intervals
    ADD COLUMN estimated_energy_mwh       numeric NOT NULL DEFAULT 0, -- exact, unrounded
    ADD COLUMN gridsettle_estimated_reads int     NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE run_intervals DROP COLUMN gridsettle_estimated_reads, DROP COLUMN estimated_energy_mwh;
ALTER TABLE account_charges DROP COLUMN estimated_kwh;
ALTER TABLE statement_lines DROP COLUMN reads_estimated_zer, DROP COLUMN reads_estimated_ldy,
    DROP COLUMN reads_estimated_lin, DROP COLUMN estimated_energy_mwh;
DROP TABLE run_estimates;

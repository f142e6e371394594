-- +goose Up
-- Customer alerts (settlement/alerts/README.md), fired by
-- settlement/alerts/postgres inside the ingest transaction. An alert is fired
-- by inserting its identity: a row here exists once ever, and only the
-- transaction that inserted it writes its outbox row, so each identity is
-- published once whatever replays happen.
CREATE TABLE alerts (
    alert_id      text        PRIMARY KEY,
    type          text        NOT NULL CHECK (type IN ('daily_usage', 'monthly_budget', 'price_spike', 'negative_price', 'missing_data')),
    account_id    text        NOT NULL,
    meter_id      text,                       -- missing_data
    operating_day date,                       -- daily_usage, price_spike, negative_price
    month         text,                       -- monthly_budget: YYYY-MM, local calendar month
    payload       jsonb       NOT NULL,       -- the alerts.customer record, as published
    event_time    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_event_time ON alerts (event_time, alert_id);
CREATE INDEX alerts_account ON alerts (account_id, event_time, alert_id);

-- The aggregates below are partial sums per slot (the ami.interval-reads
-- partition whose consumer wrote them, -1 for quarantine replays), like
-- positions, so that consumers of different partitions never contend on one
-- row; a figure is the sum over slots. They move by the difference each
-- changed read makes, never by re-summing reads.

-- Import kWh per account and operating day (raw, no loss factor), with the
-- count of non-actual reads behind it and the latest interval end.
CREATE TABLE alert_daily_usage (
    account_id      text        NOT NULL,
    operating_day   date        NOT NULL,
    slot            int         NOT NULL,
    import_kwh      numeric     NOT NULL,
    estimated_reads int         NOT NULL,   -- quality E or S; a slot's count may be negative, the sum is not
    last_end        timestamptz NOT NULL,
    PRIMARY KEY (account_id, operating_day, slot)
);

-- Settlement energy per account, settlement interval and settlement point:
-- Σ (import − export) kWh × loss factor / 1000, exact, with the non-actual
-- reads behind it. Month-to-date cost is computed from it and the settlement
-- prices when an account with a budget is evaluated.
CREATE TABLE alert_energy (
    account_id       text        NOT NULL,
    interval_start   timestamptz NOT NULL,
    settlement_point text        NOT NULL,
    slot             int         NOT NULL,
    energy_mwh       numeric     NOT NULL,
    estimated_reads  int         NOT NULL,
    PRIMARY KEY (account_id, interval_start, settlement_point, slot)
);
CREATE INDEX alert_energy_point ON alert_energy (settlement_point, interval_start);

-- Per meter: the end of its latest current read, the input partition its
-- reads arrive on, and the gap start of its latest missing_data alert.
CREATE TABLE alert_meters (
    meter_id    text        PRIMARY KEY,
    slot        int         NOT NULL,
    last_end    timestamptz NOT NULL,
    alerted_end timestamptz
);
-- Meters silent since their last read and not yet alerted for that gap.
CREATE INDEX alert_meters_silent ON alert_meters (slot, last_end)
    WHERE alerted_end IS NULL OR alerted_end < last_end;

-- The event-time watermark of each reads partition as the alert hook has
-- followed it, record by record.
CREATE TABLE alert_watermarks (
    topic     text        NOT NULL,
    partition int         NOT NULL,
    watermark timestamptz NOT NULL,
    PRIMARY KEY (topic, partition)
);

-- +goose Down
DROP TABLE alert_watermarks, alert_meters, alert_energy, alert_daily_usage, alerts;

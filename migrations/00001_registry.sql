-- +goose Up
-- The registry (settlement/README.md "Reference data"). Effective-dated rows
-- never change in place: a change closes one assignment and opens another.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE DOMAIN identifier AS text CHECK (VALUE ~ '^[A-Za-z0-9._:-]{1,64}$');

CREATE TABLE participants (
    participant_id identifier PRIMARY KEY,
    name           text NOT NULL
);

CREATE TABLE settlement_points (
    settlement_point identifier PRIMARY KEY,
    name             text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('hub', 'zone', 'node'))
);

CREATE TABLE accounts (
    account_id          identifier PRIMARY KEY,
    name                text NOT NULL,
    daily_kwh_threshold numeric CHECK (daily_kwh_threshold > 0),
    monthly_budget      numeric CHECK (monthly_budget > 0),
    price_alerts        boolean NOT NULL DEFAULT false
);

CREATE TABLE meter_assignments (
    id               bigserial PRIMARY KEY,
    meter_id         identifier NOT NULL,
    account_id       identifier NOT NULL REFERENCES accounts,
    participant_id   identifier NOT NULL REFERENCES participants,
    settlement_point identifier NOT NULL REFERENCES settlement_points,
    loss_factor      numeric NOT NULL CHECK (loss_factor > 0 AND loss_factor <= 2 AND scale(loss_factor) <= 6),
    effective_from   timestamptz NOT NULL,
    effective_to     timestamptz CHECK (effective_to > effective_from),
    -- Overlapping assignments of one meter are rejected by the database itself.
    CONSTRAINT meter_assignments_no_overlap EXCLUDE USING gist (
        meter_id WITH =,
        tstzrange(effective_from, effective_to, '[)') WITH &&
    )
);
CREATE INDEX meter_assignments_account ON meter_assignments (account_id);
CREATE INDEX meter_assignments_point ON meter_assignments (settlement_point);

-- +goose Down
DROP TABLE meter_assignments, accounts, settlement_points, participants;
DROP DOMAIN identifier;

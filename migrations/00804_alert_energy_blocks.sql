-- +goose Up
-- The monthly_budget aggregates, redesigned for ingest at a utility's volume
-- (settlement/alerts/postgres/doc.go, "Evaluation"). alert_energy kept one
-- row per account, settlement interval, point and slot: about one row
-- written per read of a budgeted account, and every evaluation re-read the
-- account's month of them. Now:
--   - energy is appended in blocks: one row per batch, account, point, loss
--     factor and UTC day, one array element per settlement interval from
--     first_start (NULL: an interval the batch did not move) holding the net
--     import moved in exact integer nano-kWh (a read has at most 6 decimal
--     places, a read split over shorter settlement intervals 9: meters/
--     mapping.go), so an interval's energy is Σ over every block (slots
--     included) of nano_kwh × loss_factor × 10^-12 MWh;
--   - the month-to-date cost is kept running per account and month in
--     alert_month_books, moved by energy × price as reads arrive and by
--     energy × the price's change as prices arrive or are corrected. A book
--     absent is built from the month's energy and prices when its account is
--     next evaluated, so this migration need not price anything.
CREATE TABLE alert_energy_blocks (
    account_id       text        NOT NULL,
    settlement_point text        NOT NULL,
    slot             int         NOT NULL,
    first_start      timestamptz NOT NULL,
    last_start       timestamptz NOT NULL, -- the start of the last element
    interval_seconds int         NOT NULL, -- the settlement interval of the elements
    loss_factor      numeric     NOT NULL,
    nano_kwh         bigint[]    NOT NULL, -- (import − export) moved, per interval
    estimated_reads  int[],                -- the non-actual reads moved, per interval; NULL: none
    CHECK (interval_seconds > 0 AND cardinality(nano_kwh) >= 1 AND last_start >= first_start
           AND last_start < first_start + interval '1 day')
);
-- Repricing an interval t reads the blocks of its point that can hold it:
-- last_start in [t, t + 1 day), first_start at or before t. By last_start,
-- because prices are mostly published before the reads of their interval
-- arrive: then no block of the point ends at or after t and the look-up
-- visits nothing, where by first_start it would visit the day of blocks
-- before t.
CREATE INDEX alert_energy_blocks_point ON alert_energy_blocks (settlement_point, last_start);
-- building a book and rebuilding an account's aggregates read its blocks
CREATE INDEX alert_energy_blocks_account ON alert_energy_blocks (account_id, first_start);

-- Each converted cell is a block of one element (its interval length never
-- matters, since only element 1 exists: the settlement interval is the
-- configuration's, which SQL does not know). The cell kept its energy after
-- the loss factor, in MWh, not the kWh before it: it is stored, exactly, as
-- 1 MWh (10^12 nano-kWh) times a factor that is that energy.
INSERT INTO alert_energy_blocks (account_id, settlement_point, slot, first_start, last_start, interval_seconds, loss_factor,
                                 nano_kwh, estimated_reads)
SELECT account_id, settlement_point, slot, interval_start, interval_start, 300, energy_mwh, ARRAY[1000000000000::bigint],
       CASE WHEN estimated_reads <> 0 THEN ARRAY[estimated_reads] END
FROM alert_energy;
DROP TABLE alert_energy;

-- One row per interval and block, as alert_energy was: for people and tests.
CREATE VIEW alert_energy AS
SELECT b.account_id, b.first_start + (e.i - 1) * b.interval_seconds * interval '1 second' AS interval_start,
       b.settlement_point, b.slot, e.nano_kwh * b.loss_factor * 0.000000000001 AS energy_mwh,
       coalesce(b.estimated_reads[e.i], 0) AS estimated_reads
FROM alert_energy_blocks b, unnest(b.nano_kwh) WITH ORDINALITY AS e(nano_kwh, i)
WHERE e.nano_kwh IS NOT NULL;

-- The running month-to-date figures of an account's local calendar month
-- (YYYY-MM): Σ energy × settlement price over its priced intervals, the
-- non-actual reads behind them (0: the figure is actual) and the start of
-- the latest priced interval with energy. Only a transaction holding the
-- account's row lock moves a book (doc.go, "Concurrency"); a month whose
-- alert has fired is no longer kept.
CREATE TABLE alert_month_books (
    account_id      text        NOT NULL,
    month           text        NOT NULL,
    cost            numeric     NOT NULL,
    estimated_reads int         NOT NULL,
    latest_priced   timestamptz,
    PRIMARY KEY (account_id, month)
);

-- +goose Down
DROP TABLE alert_month_books;
CREATE TABLE alert_energy_cells (
    account_id       text        NOT NULL,
    interval_start   timestamptz NOT NULL,
    settlement_point text        NOT NULL,
    slot             int         NOT NULL,
    energy_mwh       numeric     NOT NULL,
    estimated_reads  int         NOT NULL,
    PRIMARY KEY (account_id, interval_start, settlement_point, slot)
);
INSERT INTO alert_energy_cells
SELECT account_id, interval_start, settlement_point, slot, sum(energy_mwh), sum(estimated_reads)
FROM alert_energy GROUP BY 1, 2, 3, 4;
DROP VIEW alert_energy;
DROP TABLE alert_energy_blocks;
ALTER TABLE alert_energy_cells RENAME TO alert_energy;
ALTER TABLE alert_energy RENAME CONSTRAINT alert_energy_cells_pkey TO alert_energy_pkey;
CREATE INDEX alert_energy_point ON alert_energy (settlement_point, interval_start);

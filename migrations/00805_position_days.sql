-- +goose Up
-- Live positions (migrations/00101_ingest_quarantine_positions.sql) kept one
-- row per participant, settlement point, settlement interval and slot: a
-- batch of day-long records upserted one row per interval it touched
-- (~2,400 rows for a batch of 96-read records, the same rows again in every
-- batch), the largest statement of ingest. Now a row holds a UTC day: one
-- array element per settlement interval of the day from 00:00 UTC, so a
-- batch upserts one row per participant, point, UTC day and slot it moves
-- (settlement/ingest/readstore/positions.go).
--
-- energy_mwh[i] is the position of the interval starting at
-- day + (i − 1) × interval_seconds (UTC); NULL: never moved (the old table
-- had no row), 0: moved and back to zero (the old table had a row of 0).
-- An array ends at its last moved element, never with NULLs: a live day
-- fills from its start, so today's row is as long as today is old, and the
-- trailing NULLs a full-length array would carry cost a bitmap bit each
-- anyway; ending early costs nothing in the merge (unnest pads the shorter
-- array with NULLs).
CREATE TABLE position_days (
    participant_id   text    NOT NULL,
    settlement_point text    NOT NULL,
    day              date    NOT NULL,  -- the UTC day of the intervals
    slot             int     NOT NULL,  -- as positions had it: the reads partition, -1 for replays
    interval_seconds int     NOT NULL,  -- the settlement interval of the elements
    energy_mwh       numeric[] NOT NULL, -- exact: Σ (import − export) kWh × loss factor / 1000
    PRIMARY KEY (participant_id, settlement_point, day, slot),
    CHECK (interval_seconds > 0 AND 86400 % interval_seconds = 0),
    CHECK (cardinality(energy_mwh) BETWEEN 1 AND 86400 / interval_seconds
           AND energy_mwh[cardinality(energy_mwh)] IS NOT NULL)
);
-- the live positions of a day across participants (api /positions)
CREATE INDEX position_days_day ON position_days (day);

-- a + b elementwise (NULL + x = x + NULL = x), for the ingest upsert. Rows
-- of one day normally share the market's settlement interval; when they do
-- not (a row converted below on a coarser grid than the market's, or the
-- market's interval configured anew) both are laid on the finer grid, which
-- keeps every interval start (the lengths, 300, 900, 1800 and 3600 s,
-- divide one another), so the sum is exact either way. The result ends at
-- its last element that is not NULL, as the table requires.
-- +goose StatementBegin
CREATE FUNCTION position_days_add(a_seconds int, a numeric[], b_seconds int, b numeric[]) RETURNS numeric[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN a_seconds = b_seconds THEN
    (SELECT array_agg(coalesce(x + y, x, y) ORDER BY i) FROM unnest(a, b) WITH ORDINALITY AS e(x, y, i))
ELSE
    (SELECT array_agg(s.e ORDER BY n)
     FROM generate_series(1, (SELECT max(i) FROM (
              SELECT (k - 1) * (a_seconds / least(a_seconds, b_seconds)) + 1 FROM generate_subscripts(a, 1) k
              UNION ALL
              SELECT (k - 1) * (b_seconds / least(a_seconds, b_seconds)) + 1 FROM generate_subscripts(b, 1) k) m(i))) n
     LEFT JOIN (SELECT i, sum(x) AS e FROM (
              SELECT (k - 1) * (a_seconds / least(a_seconds, b_seconds)) + 1, x FROM unnest(a) WITH ORDINALITY AS t(x, k)
              UNION ALL
              SELECT (k - 1) * (b_seconds / least(a_seconds, b_seconds)) + 1, x FROM unnest(b) WITH ORDINALITY AS t(x, k)) c(i, x)
              GROUP BY i) s ON s.i = n)
END
$$;
-- +goose StatementEnd

-- Conversion. Every old row's start was floored to the market's settlement
-- interval L (meters.Floor), which the database does not know: the rows
-- are laid on the coarsest of 3600, 1800, 900 and 300 s that every old
-- start fits. That is L itself unless every stored start happens to fit a
-- coarser grid (then the first write of a day regrids its row, exactly, in
-- position_days_add). A start fitting none was not written by ingest:
-- stop and say which, rather than guess.
-- +goose StatementBegin
DO $$
DECLARE
    bad record;
BEGIN
    SELECT participant_id, settlement_point, interval_start, slot, energy_mwh INTO bad
    FROM positions
    WHERE extract(epoch FROM interval_start) % 300 <> 0
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'cannot convert positions to position_days: the position of % at % at % UTC (slot %, % MWh) does not start on a 5-minute boundary',
            bad.participant_id, bad.settlement_point, bad.interval_start AT TIME ZONE 'UTC', bad.slot, bad.energy_mwh
            USING ERRCODE = 'data_exception',
                  HINT = 'Correct or remove the row in positions, then migrate again; nothing was converted.';
    END IF;
END
$$;
-- +goose StatementEnd

WITH cells AS (
    SELECT participant_id, settlement_point, slot, (interval_start AT TIME ZONE 'UTC')::date AS day,
           (extract(epoch FROM interval_start)::bigint % 86400 + 86400) % 86400 AS s, energy_mwh
    FROM positions
), grid AS (
    SELECT CASE WHEN bool_and(s % 3600 = 0) THEN 3600 WHEN bool_and(s % 1800 = 0) THEN 1800
                WHEN bool_and(s % 900 = 0) THEN 900 ELSE 300 END AS l
    FROM cells
), days AS (
    SELECT participant_id, settlement_point, day, slot, max(s) AS last FROM cells GROUP BY 1, 2, 3, 4
)
INSERT INTO position_days (participant_id, settlement_point, day, slot, interval_seconds, energy_mwh)
SELECT r.participant_id, r.settlement_point, r.day, r.slot, g.l, array_agg(c.energy_mwh ORDER BY n)
FROM days r CROSS JOIN grid g
CROSS JOIN LATERAL generate_series(0, r.last / g.l) AS n
LEFT JOIN cells c ON (c.participant_id, c.settlement_point, c.day, c.slot, c.s) = (r.participant_id, r.settlement_point, r.day, r.slot, n * g.l)
GROUP BY r.participant_id, r.settlement_point, r.day, r.slot, g.l;

DROP TABLE positions;

-- One row per interval and slot, as the positions table had them: for
-- people and tests. The code reads position_days (PositionEnergies).
CREATE VIEW positions AS
SELECT d.participant_id, d.settlement_point,
       (d.day + (e.i - 1) * d.interval_seconds * interval '1 second') AT TIME ZONE 'UTC' AS interval_start,
       d.slot, e.energy_mwh
FROM position_days d, unnest(d.energy_mwh) WITH ORDINALITY AS e(energy_mwh, i)
WHERE e.energy_mwh IS NOT NULL;

-- +goose Down
CREATE TABLE position_rows (
    participant_id   text        NOT NULL,
    settlement_point text        NOT NULL,
    interval_start   timestamptz NOT NULL,
    slot             int         NOT NULL,
    energy_mwh       numeric     NOT NULL,
    PRIMARY KEY (participant_id, settlement_point, interval_start, slot)
);
INSERT INTO position_rows SELECT participant_id, settlement_point, interval_start, slot, energy_mwh FROM positions;
DROP VIEW positions;
DROP TABLE position_days;
DROP FUNCTION position_days_add(int, numeric[], int, numeric[]);
ALTER TABLE position_rows RENAME TO positions;
ALTER TABLE positions RENAME CONSTRAINT position_rows_pkey TO positions_pkey;
CREATE INDEX positions_interval ON positions (interval_start);

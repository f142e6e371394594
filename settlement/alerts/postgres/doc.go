// Package postgres evaluates the customer alerts of settlement/alerts/README.md
// inside the ingest transaction (it implements ingest.Hook), stores each alert
// identity once in the alerts table, and lists stored alerts for the API.
//
// It owns the tables of migrations/00302_alerts.sql and
// 00804_alert_energy_blocks.sql: alerts, and the aggregates alerts are
// evaluated from (alert_daily_usage, alert_energy_blocks, alert_month_books,
// alert_meters, alert_watermarks). It does not own the rules and messages
// (package alerts), the settlement price function (settlement.Prices), the
// reads and prices (settlement/ingest/readstore) and registry (meters/postgres), or publishing (the outbox
// relay): it returns messages that the ingest Applier enqueues.
//
// # Evaluation
//
// Everything is evaluated from event time, never the wall clock, one input
// record at a time in offset order, whatever the batch boundaries:
//   - daily_usage: per (account, operating day of the read's start) the raw
//     import kWh of the current reads, the count of non-actual reads behind it
//     and the latest interval end;
//   - monthly_budget: per account and local month the running month-to-date
//     cost Σ energy × settlement price over its priced intervals, with the
//     non-actual reads behind them and the latest of them
//     (alert_month_books, books.go). A record moves it by its energy ×
//     the interval's settlement price (when the interval has one); a price
//     record by the account's energy there × the change of the settlement
//     price (a correction, or the missing 5-minute price arriving). The
//     energy itself, (import − export) before the loss factor in exact
//     integer nano-kWh, is appended per batch in blocks of one account,
//     point, loss factor and UTC day (alert_energy_blocks): a price record
//     reads the blocks of its intervals, never a month. A book without a
//     row (a month never evaluated, or dropped by a rebuild) is built from
//     its month of blocks and prices when its account is next evaluated;
//   - price_spike / negative_price: when a price record moves the RT
//     settlement price of an interval, for each account with price_alerts
//     that has a meter assigned at that point during that operating day (as
//     the registry is when the price is applied: an account that gains
//     price_alerts or an assignment later is not alerted for past prices);
//   - missing_data: each reads partition's watermark is followed record by
//     record (ingest.Applied.Ends: applied records only, so a quarantined
//     record, however late its intervals, moves nothing); after each record, every meter of that
//     partition whose last read ended at least the window before the
//     watermark, with an assignment covering the watermark, fires once for
//     that gap start. A late read that leaves the meter still silent for the
//     window is a new gap start and fires again, as the identity rule says.
//     Meters with no read yet have no gap start and never fire. Replays carry
//     no watermark: they move meters' last reads, evaluated on the next
//     record of the meter's partition.
//
// Aggregates are partial sums per slot (the reads partition, -1 for
// replays), moved by the difference each changed read makes (value −
// previous value; quality counters likewise), so consumers of different
// partitions never contend on an aggregate row. They are kept only for the
// accounts a setting needs them for (alert_daily_usage: a daily threshold;
// alert_energy_blocks: a monthly budget); the registry calls SettingsChanged when an
// account gains or loses one, which rebuilds them from the current reads
// under an exclusive advisory lock that every hook transaction holds shared
// (scope.go), so the set of accounts kept never changes under an ingest
// transaction. Only accounts that have a threshold or budget, and whose
// identity has not fired yet, are evaluated, and only their books are
// loaded.
//
// # Exactly once
//
// An alert fires by INSERT ... ON CONFLICT (alert_id) DO NOTHING RETURNING:
// only an identity inserted now becomes an outbox message, in the same
// transaction as the ingest batch, so each identity is published once ever,
// even when a correction moves the figure below and above again, and when the
// input is replayed (re-consumed from offset 0, or quarantine replays).
//
// # Concurrency
//
// A figure summed over slots can be moved by two transactions at once
// (meters of one account on two partitions, or a read and a price). So that
// the transaction committing second always sees the first, an account is
// evaluated only under a row lock on its accounts row (FOR NO KEY UPDATE,
// taken in account order; registry foreign-key checks are not blocked), and
// the price of a point is serialised with the energy of budgeted accounts
// there: a price batch locks its points' settlement_points rows FOR NO KEY
// UPDATE before looking for accounts with energy at the repriced intervals,
// and a reads batch that evaluates a budget locks the points it adds that
// energy at FOR SHARE. Locks are always taken points first, then accounts.
// Only accounts under evaluation are locked, so accounts without a threshold
// or budget, or already alerted, never wait.
//
// Invariants:
//   - an alert's payload is exactly the published record, its identity is
//     stored once, and a message exists only for the insert that stored it;
//   - the alerts a partition fires depend only on the records and their
//     order (and the registry), not on batch boundaries or the wall clock;
//   - for every account with a threshold (budget), the sum over slots of its
//     daily usage (energy) aggregates equals the figure recomputed from the
//     current reads; accounts without one have no such rows;
//   - the month book of a budgeted account's month whose alert has not fired
//     is absent, or equals Σ energy × settlement price, the estimated reads
//     and the latest interval over the month's priced intervals with energy
//     (TestMonthBookIsTheFigure); a fired month's book is no longer moved;
//   - at every commit, a meter is uncovered when it is silent for the window
//     by its partition's followed watermark and not alerted for its gap, or
//     a quarantine replay wrote it since its partition's last batch, and
//     every other meter of the partition not alerted for its gap has its
//     last end at or after the partition's silence floor (NULL: not known)
//     (TestMissingDataFloorAndUncovered, TestReplayedMeterBelowTheFloorFires).
//
// Cost: per batch, one energy block per budgeted account and day (COPY),
// one book row per budgeted account under evaluation, one daily-usage row
// per thresholded account and day, one alert_meters row per meter; prices
// are read for the batch's intervals only. No index holds a meter's last
// end, so rewriting it stays on the row's page (a heap-only update):
// missing_data finds silent meters through each partition's silence floor
// (alert_watermarks.silence_floor, migrations/00810_alert_meters_silence_floor.sql),
// before which no meter of the partition that is neither alerted for its
// gap nor uncovered has its last end. A batch whose window stays before the
// floor reads no meter for it; one whose window reaches the floor reads the
// partition's meters not alerted and sets the floor again; every batch
// lowers it to the last ends it writes. Uncovered meters (silent, not
// alerted: no assignment covered the watermark; or written by a replay,
// which keeps no floor) are flagged and read by every batch. Of the silent meters, those the batch touches before its
// watermark finds them silent are dropped, and assignments are read only
// for the rest and the touched meters that can fire (canFire).
package postgres

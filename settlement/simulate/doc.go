// Package simulate generates gridsettle's synthetic workload: a registry and
// an ordered stream of input records (ami.interval-reads and market.prices)
// in exactly the wire format of messages.md, deterministic for a seed, so a
// failure found with it can be reproduced byte for byte.
//
// What a scenario holds (Generate):
//   - a registry: participants, at least four settlement points (a hub with
//     5-minute, a zone with 15-minute, a zone with 60-minute and a node with
//     15-minute real-time prices), accounts of which some carry a
//     daily_kwh_threshold, a monthly_budget or price_alerts, meters with loss
//     factors other than 1, prosumers with an export channel, a retailer
//     switch in the middle of the first day (two assignments), a move-out
//     (a closed assignment) and a new connection (an assignment that opens on
//     the last day);
//   - a multi-day stream (crossing the DST change when the days do) of 5-,
//     15-, 30- and 60-minute read blocks, real-time and day-ahead prices,
//     with head-end resends, upward corrections, stale versions, late blocks,
//     an outage that is backfilled, a meter that falls silent, price
//     corrections, negative prices, a price spike, missing price intervals,
//     JSON numbers as well as strings for decimals, and bad records of every
//     quarantine reason of the contract;
//   - a late part (Scenario.Late): restatements and late reads meant to be
//     produced after a first settlement run, so that a second run has deltas.
//
// Produce sends records with a transactional franz-go producer in several
// transactions, as a real upstream does; WriteRegistry writes the registry
// CSV files of settlement.md; WriteRecords writes records for kcat.
//
// What it does not own: validating or settling anything. Each generated bad
// record says which quarantine reason it was built to trigger
// (Record.Reason); the independent check that it does is settlement/oracle.
//
// Invariants:
//   - the same Config yields byte-identical registry and records;
//   - no float is used: energies and prices are integers of micro-units until
//     they are written as decimal text;
//   - corrections only ever raise read values, so a customer's daily import
//     never falls while the stream is consumed (threshold alerts do not
//     depend on how the input is batched); spikes and negative prices are
//     never corrected away;
//   - instants the stream is built around (the switch, the move-out, the new
//     connection, the outage) are whole UTC hours, so every block stays
//     aligned to its interval length;
//   - bad records refer only to instants already seen on their partition, so
//     whether a quarantined record moves the event-time watermark or not
//     makes no difference to alerts; the exception is start_out_of_range
//     (a century ahead, year 9999, before 2000), which no check after it
//     ever looks at;
//   - no record depends on the wall clock: the start_out_of_range ones are
//     out of range for any "now" from the scenario's last day to 2126, the
//     others are in range for any "now" after the scenario's last day.
package simulate

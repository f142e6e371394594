// Package simulate generates gridsettle's synthetic workload: a registry and
// an ordered stream of input records (ami.interval-reads and market.prices)
// in exactly the wire format of meters/README.md, deterministic for a seed, so
// a failure found with it can be reproduced byte for byte.
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
//   - gaps of every kind settlement/README.md "Estimation of missing reads
//     (VEE)" tells apart (reads that never come, or come only in the late
//     part): short gaps with reads on both sides (linear interpolation), one of
//     them across a retailer switch, one across the DST change on a 5-minute
//     channel, one on a 60-minute channel, one across midnight, and random ones
//     in featured meters' blocks; a 5-hour outage of a meter whose reads go
//     back a week before the first day (like day); a 2-hour gap across midnight
//     without history and a meter commissioned two days before the first day
//     that falls silent (zero); in a market with a half-hour offset (Config's
//     Market.Location, e.g. Australia/Adelaide) a 60-minute gap straddles
//     local midnight, so the runs of both days estimate it;
//   - a late part (Scenario.Late): restatements, late reads and the reads of
//     some gaps, meant to be produced after a first settlement run, so that
//     a second run has deltas and replaces estimates by actual reads.
//
// Produce sends records with a transactional franz-go producer in several
// transactions, as a real upstream does; WriteRegistry writes the registry
// CSV files of settlement/README.md; WriteRecords writes records for kcat.
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
//     connection, the outages, the commissioning) are whole UTC hours, and
//     gaps are aligned to their meter's interval length, so every block
//     stays aligned to its interval length, in any market time zone;
//   - the history before the first day (like-day reads, a new meter's
//     first days) is sent first on its partition and runs up to the first
//     day without a hole, and its meters' accounts have no threshold,
//     budget or price alerts, so it fires no alert;
//   - a gap never holds back part of a block that is resent, corrected or
//     delayed, so late-filled gaps are new reads (version 1), never stale;
//   - the gaps add about 3% records to the stream (history included);
//   - bad records refer only to instants already seen on their partition, so
//     whether a quarantined record moves the event-time watermark or not
//     makes no difference to alerts; the exception is start_out_of_range
//     (a century ahead, year 9999, before 2000), which no check after it
//     ever looks at;
//   - no record depends on the wall clock: the start_out_of_range ones are
//     out of range for any "now" from the scenario's last day to 2126, the
//     others are in range for any "now" after the scenario's last day.
package simulate

// Package readstore is what ingest stores about its inputs, in PostgreSQL:
// the read store (interval reads in blocks, every version kept), current
// prices and their superseded versions, the quarantine, live positions and
// the consumed offsets. The registry it checks reads against lives in
// meters/postgres; the rules of decoding in package meters; the consumer and
// the transaction around each batch in settlement/ingest.
//
// # The read store
//
// Reads are stored in blocks (migrations/00800_read_blocks.sql), never one
// row per read: each applied input record appends one row per UTC day it
// covers, holding, in micro-kWh, the reads it made current (NoRead where its
// read was stale or a duplicate). A block is the unit because a row per read
// costs ~180 bytes and caps COPY near 200,000 reads/s on the machines we
// measure on, and a row per record ~20 bytes and over 1.5 M reads/s
// (cmd/gridsettle/PERFORMANCE.md). Blocks are cut at UTC days so that the
// blocks which can hold a read starting at t all start in [UTC day of t, t]:
// every look-up by key, for ingest, runs, the API and estimation, is one
// bounded index range (meter_id, channel, start), whatever the length of the
// records producers send. The table is partitioned by month of block start;
// Partitions creates months before a batch needs them, outside the batch's
// transaction.
//
// Invariants:
//   - a stored block is never updated or deleted: a correction appends a
//     block of a higher version, so every version that was ever current is
//     kept with its lineage (topic, partition, offset), and the inputs of
//     any run can be rebuilt;
//   - the current read of (meter, channel, interval start) is the stored
//     read of the highest version (Current); two stored reads of one key
//     never share a version (a duplicate is not stored, a conflict is
//     quarantined);
//   - every stored block of a channel has the channel's first interval
//     length (channel_lengths), and lies within one UTC day;
//   - a batch locks the channel_lengths rows of its channels before it
//     reads their blocks, so two writers of a channel take turns and each
//     computes positions and alert deltas from what the other committed; a
//     channel created by another writer meanwhile is ErrConcurrentWrite;
//   - every channel with a stored block has a channel_lengths row, and its
//     last_end is, at every commit, the greatest end (start + values ×
//     interval_seconds) of the channel's stored blocks, NULL while it has
//     none (migrations/00806_channel_last_end.sql). The writers of
//     read_blocks, ApplyReads (the consumer and quarantine replays) and
//     AppendBlocks (loading, tests, `gridsettle bench` seeding), keep both
//     under the row's lock: they create the row of a new channel with its
//     last_end, and raise the last_end of the rows they locked. So a batch
//     looks up the blocks of a channel only when its range of the channel
//     starts before last_end: a new channel, or a channel's day sent in
//     several records, in order, costs no look-up. The locking statement
//     reads last_end, and after waiting for another writer it returns that
//     writer's committed row (EvalPlanQual). Ingest may miss rows inserted
//     into read_blocks by other means (by hand, some tests);
//   - values are exact integers of micro-kWh end to end (the contract allows
//     6 decimal places by value); decimals never pass through a float;
//   - ApplyReads and ApplyPrices quarantine each record with the first
//     reason that fails, in the contract's order, ending with unprocessable
//     for a source holding U+0000, the one input text Postgres cannot store.
package readstore

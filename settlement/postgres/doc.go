// Package postgres runs settlement against PostgreSQL: a run of an
// operating day reads one consistent snapshot of the current reads, real-time
// prices, registry assignments and ingest offsets, settles every statement
// line and account charge with the pure rules of package settlement, and
// records the result, its ledger postings and its outbox messages in one
// transaction. It also holds the scheduler that starts initial, final and
// true-up runs when they fall due, and the queries the API serves runs,
// statements and charges from.
//
// It does not consume Kafka (settlement/ingest fills reads and prices), does
// not publish (settlement/publish relays the outbox) and does not write
// exports (the Completed hook lets the exports area react to a run, and
// must not block: runs never wait for exports).
//
// Invariants:
//   - runs of one operating day are serialised by a transaction-scoped
//     advisory lock taken before the snapshot, so version n+1 always sees
//     version n as its previous version and a later run never settles older
//     data than an earlier one;
//   - a run commits everything or nothing: runs row, statement lines, account
//     charges, run intervals, journal entries, scheduled marker and outbox
//     rows; a failure leaves only a failed runs row with its error, written
//     on a fresh connection under the day's lock (the run's own session may
//     be what failed);
//   - a scheduled run is recorded in scheduled_runs once, by its completed
//     run or by the failed attempt after which the scheduler gives up
//     (SchedulerConfig.MaxAttempts); until then scheduled_attempts counts
//     its failed attempts and holds the next one back by a doubling backoff,
//     in the transaction that records each failure, and a failing run never
//     holds up the other due runs;
//   - each run emits the full statement of its day: every (participant,
//     point) and (account, participant) with a current read or an estimate
//     in the day or a line in an earlier version;
//   - estimates (settlement/README.md "Estimation of missing reads (VEE)")
//     belong to the run that made them: made from its snapshot's current reads
//     only, stored in run_estimates, never as reads, so the next run estimates
//     again and an actual read that arrived meanwhile replaces the estimate;
//     they enter the sums like reads but never count as reads (actual,
//     estimated, substituted); deltas are against the latest earlier completed
//     version, so the deltas of a line sum to its latest figure;
//   - amounts are summed exactly (128-bit integers and decimals) and rounded
//     once, half-even, by settlement.LineFiguresOf / ChargeFiguresOf.
//
// The per-read work (assignment lookup, mapping onto settlement intervals,
// exact sums) streams the day's read blocks once, resolves each channel's
// current reads (settlement/ingest/readstore/blocks.go) and sums them in Go
// with exact integer arithmetic (energy.go): a day of 100,000 meters is ten
// million reads in about 800,000 blocks, and one plain scan of them is what
// the run's time is bounded by, where hash-aggregating the reads twice in
// SQL cost ten times more.
// The mapping's uneven split is the rule of meters.ToSettlementIntervals,
// and a test holds the two to the same figures.
//
// Estimation rides on that one scan (estimate_day.go): the streamed window
// grows by --estimation-max-linear and an hour on both sides, so that every
// gap reaching into the day is seen with its neighbours; the gap rules are
// pure Go (estimate.go); like days are looked up by key afterwards, one
// query per week back for only the intervals still unanswered
// (readstore.CurrentValues), so a run's extra cost is that of the day's
// blocks and its gaps, never of the weeks between.
package postgres

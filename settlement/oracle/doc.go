// Package oracle is an independent, deliberately plain implementation of
// the product contract (meters/README.md, settlement/README.md,
// settlement/alerts/README.md)
// used to check gridsettle from outside: given the registry CSV files and
// the input records as a consumer sees them (topic, partition, offset,
// bytes), it says what the quarantine, the current reads and prices, the
// statement lines, account charges, interval figures and estimates of any
// sequence of runs, and the alert identities must be.
//
// It shares no code with the streaming path: it imports only the standard
// library and shopspring/decimal (a test enforces it), parses the registry
// CSVs and the JSON records itself, and does its own half-even division and
// rounding on big integers (cross-checked against shopspring's RoundBank by
// a fuzz test). It favours being obviously right over being fast: each run
// re-reads the log from the start. Only its tests meet the streaming path,
// to compare with it: the decoder's verdicts (a differential fuzz test),
// and the quarantine and alerts of a simulated scenario consumed by ingest.
//
// API: ReadRegistry, New (Market.Now required), Oracle.Ingest (log +
// snapshot → State: Quarantine, Reads, Prices, Counts, Alerts),
// State.Statement (one run, with the estimates it settles on in
// Statement.Estimates), Oracle.Runs (a sequence of runs with previous
// figures and deltas), Explain (an explanation of one statement line
// between two runs). Market.Estimation is --estimation and
// --estimation-max-linear.
//
// # Readings of the contract
//
// Where the contract leaves room, the oracle takes the most literal reading
// and says so here, so the implementation can align or the contract can be
// made precise.
//
// Input records:
//   - Member names are case-sensitive ("Meter_ID" is not meter_id, so the
//     record lacks meter_id: schema_violation). A member given as JSON null
//     counts as absent: default for an optional one, missing (schema_violation)
//     for a required one. Duplicate member names: the last wins (encoding/json).
//   - A JSON value other than an object (array, string, null, empty input) is
//     malformed_json, as are NaN, Infinity and trailing garbage.
//   - `market` is required (the table gives no default).
//   - `interval_seconds` and `version` must be JSON integers: "900" (a
//     string), 900.0 and 9e2 are schema_violation. An integer that is not an
//     allowed length, negative ones included, is unsupported_interval.
//   - Decimals may be strings or JSON numbers, in plain notation only; a
//     value count outside 1–10,000 is schema_violation; so is a `source` over
//     128 characters (counted as Unicode characters, not bytes) and a
//     `currency` that is not three capital letters (a well-formed other code
//     is currency_mismatch).
//   - "At most 6 decimal places" is by value, as meters/README.md says: zeros
//     that end the fraction do not count ("1.0000000" is accepted).
//   - Bytes that are not UTF-8 anywhere in the record are malformed_json,
//     even in an unknown member; an escaped lone surrogate ("\ud800") is
//     valid UTF-8 text and is not.
//   - start_out_of_range compares with Market.Now, the consumer's clock,
//     which the caller must give: a read's last interval must end at or
//     before Now + MaxFuture, a price start before Now + MaxFuturePrices,
//     both start at or after 2000-01-01T00:00:00Z (an offset counts: a start
//     of 2000-01-01T00:30:00+01:00 is in 1999).
//   - `start` is RFC 3339 (T and Z in either case, any offset, fractional
//     seconds allowed); a non-zero fraction is misaligned_start.
//   - unknown_meter: the start of every read of the record must be covered by
//     an assignment of the meter.
//   - "The first interval length seen" is that of the first record accepted
//     for the (meter, channel) or (market, point); a quarantined record never
//     sets it.
//   - A `source` is free text, U+0000 included (JSON "\u0000"; a raw NUL
//     byte is not JSON). PostgreSQL text cannot store U+0000 ("text it
//     cannot store" of meters/README.md), so such a record is unprocessable,
//     and only once it has passed every other check (conflicting_duplicate
//     included), even when versioning would ignore all its reads. No other
//     field of a read or a price can hold it: identifiers are ASCII, the
//     rest are fixed words, numbers and timestamps.
//   - Equality for duplicates is by value (0.1 = 0.100) and, for reads, by
//     quality (an omitted quality is A).
//   - Counts: a read or price is applied, stale or a duplicate one by one; a
//     record mixing new and duplicate reads is accepted.
//   - Every record of one meter (or settlement point) is assumed to be in
//     one partition, as keying by meter_id (settlement_point) does; partitions
//     are then processed one after another.
//
// Settlement:
//   - A read belongs wholly to the assignment covering its start, even when
//     a longer read spans an assignment change; its pieces go to the
//     settlement intervals (and so operating days) that contain them.
//   - A line exists for every (participant, point) with a piece of a current
//     read or of an estimate (either channel, zero values included) in the
//     day, or a line in the previous version; likewise a charge. `reads` counts each current read once per line it
//     has a piece in; per interval, a read counts in every interval it has a
//     piece in (5-minute reads: three per 15-minute interval), E and S both
//     as estimated.
//   - A line or charge that first appears in version n > 1 has
//     previous_version n−1 (the previous run of the day) and zero previous
//     figures; previous_version is null only in version 1.
//   - net_kwh = the rounded import_kwh − the rounded export_kwh, as written.
//   - A price interval longer than L applies to every settlement interval it
//     contains (its start is the settlement interval's start rounded down to
//     the price length); shorter ones are averaged only when all L/len are
//     present.
//
// Estimation (settlement/README.md "Estimation of missing reads (VEE)"):
//   - The channels estimated are those whose length is known in the run's
//     snapshot: that of the first record of the channel the snapshot
//     accepts. A channel without any accepted record is never estimated,
//     however long its meter has been assigned.
//   - A channel interval [t, t+len), t a multiple of len in unix seconds, is
//     of day D when one of its pieces (settlement/README.md step 2, as a read)
//     is in a settlement interval of D. It is missing when the snapshot has no
//     read of the channel at t and an assignment of the meter covers t. An
//     interval that no assignment covers is neither a read nor missing: it
//     ends a gap, and is no neighbour of it.
//   - A gap is followed beyond D and across assignments as far as it goes
//     (only as far as needed to know that it is longer than MaxLinear). It is
//     linear when n × len ≤ MaxLinear and the intervals just before and just
//     after it both hold a current read covered by an assignment (any); k
//     counts from the gap's first interval, even when that lies in another
//     day, and the value is rounded once:
//     round_half_even((v_before × (n+1) + (v_after − v_before) × k) / (n+1), 6).
//   - Otherwise, per interval, like day: the value of the current read at
//     exactly t − 1, 2, 3 or 4 × 604,800 s, the first found, of any quality
//     and assignment; otherwise ZER, 0. Only current reads (reads after D
//     included) are bases, never estimates.
//   - An estimate flows as a read of its channel: the assignment covering t,
//     split into pieces as a read, only pieces in D. The line counts it once
//     in reads.gridsettle_estimated, an interval once per piece in
//     GridsettleEstimatedReads; neither counts it as a read.
//     estimated_energy_mwh is round_half_even(Σ piece MWh, 6), net (export
//     negative) after the loss factor like energy_mwh; estimated_kwh is
//     round_half_even(Σ import pieces − Σ export pieces, 6) kWh before the
//     loss factor: one rounding of the difference, whereas net_kwh is the
//     difference of the rounded import_kwh and export_kwh.
//   - Statement.Estimates holds one row per estimated channel interval of D
//     with its whole value: a 60-minute interval across midnight is in the
//     run of each day. Values have 6 decimal places.
//   - Estimation.Off: no estimates, every estimate figure zero, the other
//     figures those of reads alone.
//
// Alerts (see Alert for what "may" and "must" mean):
//   - Event-time rules are evaluated after every accepted record; a figure
//     "reaches" its level when it is ≥ it; thresholds and budgets compare the
//     exact, unrounded figure.
//   - daily_usage: the import kWh (after mapping, no loss factor) of the
//     account's current reads whose pieces fall in the day, over the meters
//     assigned to the account at each read's start.
//   - monthly_budget: Σ amount(m,t) (net energy × loss factor × settlement
//     price) over priced intervals of the local calendar month, all meters
//     assigned to the account; identity month YYYY-MM of the interval.
//   - price_spike / negative_price: an RT settlement price of an interval of
//     the day ≥ threshold / < 0 at a point where an assignment of the account
//     is in force at some instant of the day (reads are not needed).
//   - missing_data: the watermark of a reads partition is the latest end of
//     an accepted record on it (meters/README.md: only applied records move it;
//     a quarantined record, whatever its reason, never does). A record whose
//     reads are all stale or duplicates is accepted, not quarantined, so it
//     counts: the contract calls such reads "ignored (counted, not
//     quarantined)" without saying whether their record is "applied"; the
//     streaming ingest counts every record it does not quarantine, and so
//     does the oracle. A meter fires when an assignment covers the
//     watermark instant and watermark − end of its last read ≥ 6 hours
//     ("no read for the last 6 hours" read as inclusive); gap_start is that
//     end, written RFC 3339 UTC with Z. A meter without any read on its
//     partition never fires (its gap has no start). A late read that moves
//     the last end while still ≥ 6 hours behind opens a new identity.
//
// Explain (settlement/README.md "Explain a statement line"):
//   - A version's side of a read key in a settlement interval is the current
//     read (or the run's estimate) whose covering assignment, in the
//     registry that run used, has the line's participant and point, and
//     which has a piece in that interval of the day. A change is listed
//     exactly when the two sides shown differ: value and loss factor by
//     decimal equality (1 = 1.000), version, quality, estimate method and
//     source position exactly, or one side nil. So a correction that only
//     bumps the version or quality is listed with effect 0, while an
//     assignment change that keeps participant, point and loss factor
//     (another account) shows nothing different and is not listed.
//   - The price of an interval is the settlement price of the line's point
//     in that run (null when unpriced); with no run (version 0) every price
//     is null. A price change is listed for every interval of the day whose
//     price differs, even where the line has no energy (its amount effect
//     E0 × ΔP is then 0).
//   - Against version 0, or a version with no line, E0 is 0 in every
//     interval; intervals outside the operating day never count, even for
//     a read that has other pieces in the day.
//   - The two runs must have the same settlement interval and time zone;
//     each estimates with its own market's estimation settings.
//
// Invariants: no float anywhere; output decimals have the fixed scale of
// their field; results do not depend on map iteration order.
package oracle

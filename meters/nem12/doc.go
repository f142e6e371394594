// Package nem12 reads AEMO Meter Data File Format NEM12 files (a CSV file,
// or a .zip archive of them) into ami.interval-reads blocks, as
// meters/README.md "Importing real meter-data formats" specifies.
//
// It owns the NEM12 grammar (records 100, 200, 300, 400, 500, 900), the
// mapping of NMI suffixes to meter channels, units and quality methods, and
// the summary of what a file yields. It does not produce to Kafka
// (meters/kafka does) and does not know the registry: a meter unknown to
// the registry is the ingest's business.
//
// Mapping:
//   - meter_id is {NMI}:{digit of the suffix}; suffix E… is import, B… is
//     export; any other suffix (Q, K, V, …) is skipped (unsupported_suffix);
//   - interval length from the 200 record: 5, 15 or 30 minutes; another
//     length of an energy channel is skipped (unsupported_interval_length);
//   - NEM time is UTC+10:00 all year: the first value of a 300 record covers
//     [00:00, 00:00 + length) of its IntervalDate at +10:00;
//   - UOM KWH, WH or MWH in any case, converted to kWh exactly by a decimal
//     shift; another unit of an energy channel is skipped (unsupported_unit);
//   - QualityMethod A → A, E → E, S and F → S, N → no read (null_quality),
//     V → per interval from the 400 records that follow;
//   - a later 300 record for the same NMI, suffix and IntervalDate replaces
//     the earlier one (replaced_by_later_record). The scope is one import:
//     a CSV file, or every CSV of a .zip in archive order;
//   - one meter channel has one interval length per file: the first in file
//     order; days of another length are skipped (interval_length_mismatch),
//     as the ingest would quarantine them.
//
// Decisions on values that cannot travel exactly: a NEM12 interval value is
// unsigned, so a negative or non-numeric value makes the file malformed; a
// value that after conversion to kWh exceeds 1,000,000 or has more than 6
// decimal places (e.g. 0.0001 Wh) also rejects the whole file, naming the
// line and field. Rounding or dropping it would change the energy of a
// file that must be imported whole or not at all.
//
// Invariants:
//   - a file is either rejected with an *Error naming the first problem
//     (zip member, line) and yields nothing, or yields every read it holds;
//   - no value passes through a float;
//   - output is deterministic: blocks ordered by meter_id, channel and start,
//     each at most meters.MaxBlockValues values of consecutive intervals.
package nem12

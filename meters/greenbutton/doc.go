// Package greenbutton reads Green Button (NAESB REQ.21 ESPI) XML, an Atom
// feed of entries or a single entry, into ami.interval-reads blocks, as
// meters/README.md "Importing real meter-data formats" specifies.
//
// It owns the ESPI link resolution, unit scaling, flow-direction and quality
// mapping, and the summary of what a file yields. It does not produce to
// Kafka (meters/kafka does) and does not know the registry.
//
// The document is read as a stream with encoding/xml, one entry at a time;
// only the parsed IntervalReadings are kept until the links are resolved at
// the end, because ESPI does not order a feed's entries.
//
// Mapping:
//   - an IntervalBlock belongs to the MeterReading that lists the block's
//     rel="up" href among its rel="related" links (or, for feeds without
//     related links, whose rel="self" href is the parent of that up href);
//     a MeterReading belongs to a UsagePoint the same way, and takes its
//     ReadingType from the rel="related" href equal to a ReadingType's
//     rel="self". Blocks that cannot be resolved are skipped with
//     no_meter_reading, no_usage_point or no_reading_type;
//   - meter_id is Options.MeterPrefix + the last path segment of the
//     UsagePoint's self href, or Options.MeterID when the document has
//     exactly one UsagePoint;
//   - ReadingType flowDirection 1 → import, 19 → export, anything else is
//     skipped (unsupported_flow_direction); uom other than 72 (Wh) is skipped
//     (unsupported_uom); kWh = value × 10^(powerOfTenMultiplier − 3), exact;
//   - each IntervalReading's timePeriod is one read; durations other than
//     300, 900, 1800, 3600 are skipped (unsupported_duration), as are starts
//     not aligned to the duration (misaligned_start);
//   - ReadingQuality 7, 8, 9, 10 → E; every other code, and none, → A. The
//     contract names 19 and 20 as A; codes it does not name (0 valid,
//     11–18, e.g. PG&E's 17 validated) are not estimates either, so they are
//     A as well;
//   - a meter channel has one interval length per document, the first seen;
//     readings of another length are skipped (interval_length_mismatch);
//   - overlapping blocks: a reading equal to one already seen for the same
//     meter, channel and start (value and quality) is a duplicate and
//     dropped (duplicate_reading); a different one is reported
//     (conflicting_reading) and dropped, and the first in document order
//     stands, as the ingest would keep it.
//
// Decisions on values that cannot travel exactly: a negative value, or one
// that in kWh exceeds 1,000,000 or has more than 6 decimal places, rejects
// the whole document with the element path of the reading; rounding or
// dropping it would change the energy of a file imported whole or not at all.
//
// Invariants:
//   - a document is either rejected with an *Error naming the element path
//     of the first problem and yields nothing, or yields every read it holds;
//   - no value passes through a float;
//   - output is deterministic: blocks ordered by meter_id, channel and start,
//     each at most meters.MaxBlockValues values of consecutive intervals.
package greenbutton

// Package meters owns what comes into gridsettle: the registry (participants,
// settlement points, accounts and effective-dated meter assignments), interval
// reads and market prices as they arrive on Kafka, their exact decoding and
// validation into the stable quarantine reasons of the contract, and the
// mapping of reads onto settlement intervals.
//
// It is a leaf: standard library and shopspring/decimal only. Postgres code
// of the registry lives in meters/postgres (reads and prices are stored by
// settlement/ingest/readstore), file importers in meters/nem12 and
// meters/greenbutton.
//
// Invariants:
//   - no amount or energy ever passes through a float;
//   - a decoded record is either wholly valid or carries exactly one Reason,
//     the first that fails in the contract's order;
//   - identifiers match [A-Za-z0-9._:-]{1,64};
//   - a Rejection's detail is valid UTF-8 of at most MaxDetailChars
//     characters with no raw control character, whatever bytes the record
//     held (SafeDetail), so it can always be stored and shown;
//   - a record that is not valid UTF-8 is malformed_json;
//   - a source is free text of at most MaxSourceChars characters, U+0000
//     included: a store that cannot hold a character says unprocessable
//     after its own checks (settlement/ingest/readstore), the decoder never does;
//   - start_out_of_range is checked against Decoder.Bounds: the wall clock
//     unless Bounds.Now is set, so a decoder's verdict on a record near the
//     future bound depends on when it decodes it.
package meters

// Package meters owns what comes into gridsettle: the registry (participants,
// settlement points, accounts and effective-dated meter assignments), interval
// reads and market prices as they arrive on Kafka, their exact decoding and
// validation into the stable quarantine reasons of the contract, and the
// mapping of reads onto settlement intervals.
//
// It is a leaf: standard library and shopspring/decimal only. Postgres code
// lives in meters/postgres, file importers in meters/nem12 and
// meters/greenbutton.
//
// Invariants:
//   - no amount or energy ever passes through a float;
//   - a decoded record is either wholly valid or carries exactly one Reason,
//     the first that fails in the contract's order;
//   - identifiers match [A-Za-z0-9._:-]{1,64}.
package meters

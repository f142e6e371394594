// Package alerts owns the customer-facing alert rules of the contract
// (settlement/alerts/README.md): when each alert type fires, its exactly-once
// identity, and the plain-language message a customer reads.
//
// Rules here are pure: they take figures already computed from current reads
// and prices (in event time, never the wall clock) and answer whether an alert
// is due. Storing alerts and deciding "first time" lives with the ingest
// transaction that evaluates them (settlement/alerts/postgres), where an
// alert's identity is inserted once and never again.
//
// Invariants:
//   - an alert's identity depends only on its type and its subject (account
//     and day or month, or meter and gap start), so replays cannot fire twice;
//   - data_quality is "actual" only when every read behind the figure is
//     actual;
//   - amounts are exact decimals; only the message rounds, for display.
package alerts

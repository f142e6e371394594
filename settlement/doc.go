// Package settlement owns the settlement arithmetic of the contract
// (settlement/README.md): the market calendar (operating days in the market
// time zone, with 23- and 25-hour days), settlement prices from real-time
// prices, amounts, statement lines and account charges, runs and their
// versions, and customer alerts. It builds on meters (inputs) and ledger
// (postings).
//
// Pure rules live here; Postgres and Kafka code live in sub-packages:
// settlement/postgres (runs, statements, positions), settlement/ingest (the
// exactly-once consumer), settlement/outbox and settlement/publish (the
// transactional outbox and its Kafka-transactions relay), settlement/kafka
// (shared client configuration and topics).
//
// Invariants: amounts and energies are exact decimals; rounding happens only
// where the contract says, half-even, once per line.
package settlement

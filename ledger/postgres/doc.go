// Package postgres stores the ledger's journal in PostgreSQL
// (journal_entries, journal_lines; migrations/00201_ledger.sql): posting
// inside a caller's transaction, chain verification, balances and entry
// listings.
//
// It owns the chain's order, not what is posted: callers (settlement runs)
// build the entries.
//
// Invariants:
//   - the database rejects an unbalanced entry at commit and any UPDATE,
//     DELETE or TRUNCATE of journal rows (triggers), whatever the client; the
//     runtime role (migrations.GrantRuntime) also lacks those privileges and,
//     not owning the tables, cannot disable the triggers;
//   - posting takes one transaction-scoped advisory lock for the whole
//     journal before reading the chain head, so concurrent posters append
//     one after another and never fork the chain; entry ids are drawn under
//     that lock, so id order is chain order;
//   - an entry key is posted at most once: posting an existing key again is a
//     no-op when the entry is the same and an error when it differs.
package postgres

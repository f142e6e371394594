// Package postgres is the PostgreSQL storage for meters' data: the registry
// (participants, settlement points, accounts and effective-dated meter
// assignments) and what ingest persists about interval reads and prices.
//
// It owns SQL only; the rules live in package meters. Every function takes
// a context and works on a pool or a transaction handed in by the caller.
//
// The registry does not know about customer alerts, but alert aggregates are
// kept only for accounts with a threshold or budget: a Registry is given the
// alert hook's SettingsHook, called in the registry transaction when an
// account gains or loses one.
//
// ApplyReads and ApplyPrices quarantine each record with the first reason
// that fails, in the contract's order; ApplyReads ends with unprocessable for
// a source holding U+0000, the one input text Postgres cannot store (every
// other text field of a read or a price is ASCII or a fixed set), so a batch
// or a quarantine replay is never refused for it.
//
// Invariants: registry batches are applied whole or not at all, meter
// assignments never change in place (a change closes one and opens another)
// and never overlap (enforced by the database's exclusion constraint), and
// decimals travel as exact text or shopspring decimals, never floats.
package postgres

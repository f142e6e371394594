// Package postgres is the PostgreSQL storage of the meter registry:
// participants, settlement points, accounts and effective-dated meter
// assignments. What ingest stores about interval reads and prices lives in
// settlement/ingest/readstore.
//
// It owns SQL only; the rules live in package meters. Every function takes
// a context and works on a pool or a transaction handed in by the caller.
//
// The registry does not know about customer alerts, but alert aggregates are
// kept only for accounts with a threshold or budget: a Registry is given the
// alert hook's SettingsHook, called in the registry transaction when an
// account gains or loses one.
//
// Invariants: registry batches are applied whole or not at all, meter
// assignments never change in place (a change closes one and opens another)
// and never overlap (enforced by the database's exclusion constraint), and
// decimals travel as exact text or shopspring decimals, never floats.
package postgres

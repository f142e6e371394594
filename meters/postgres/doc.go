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
// Ingest reads the assignments of every batch's meters and the alert
// settings of their accounts through a Cache (cache.go), one per process,
// which keeps them across batches for as long as the registry's version
// (migrations/00809_registry_version.sql) stays the one they were read at.
//
// Invariants: registry batches are applied whole or not at all, meter
// assignments never change in place (a change closes one and opens another)
// and never overlap (enforced by the database's exclusion constraint), and
// decimals travel as exact text or shopspring decimals, never floats; every
// statement that writes meter_assignments or accounts, by any role or
// means but TRUNCATE, sets a new registry version in its transaction
// (its triggers), and TRUNCATE gives the table a new file: two snapshots
// that read the same version and files see the same rows of both tables.
package postgres

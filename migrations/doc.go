// Package migrations owns the PostgreSQL schema and the database's lifecycle:
// the ordered SQL files embedded in the binary (applied with goose under a
// session advisory lock, so concurrent starters never race), the connection
// pool with shopspring decimals registered on every connection, and, in
// migrations/pgcluster, a private cluster for dev, demo and tests.
//
// It also owns the two database roles (roles.go): the owner applies the
// migrations and owns every table; the runtime role, which the components
// connect as, is granted by GrantRuntime what they need and no more.
//
// Invariants: files are applied in numeric order and never edited once
// released; a database whose schema is newer than this binary is refused
// rather than run against; only a role owning the schema applies
// migrations (Prepare refuses a runtime role facing pending ones); the
// runtime role may insert into the AppendOnly tables (journal, audit log)
// but never update, delete or truncate them, owns nothing, and is never a
// superuser, so it cannot disable their triggers; grants are recomputed from
// the catalog on every GrantRuntime, so they cover new migrations' tables.
//
// File numbering is by owning area, so parallel work never collides:
// 000xx platform and registry, 001xx ingest, 002xx settlement runs and
// ledger, 003xx outbox and alerts, 004xx exports, 005xx API (tokens, audit).
package migrations

// Package migrations owns the PostgreSQL schema and the database's lifecycle:
// the ordered SQL files embedded in the binary (applied with goose under a
// session advisory lock, so concurrent starters never race), the connection
// pool with shopspring decimals registered on every connection, and, in
// migrations/pgcluster, a private cluster for dev, demo and tests.
//
// Invariants: files are applied in numeric order and never edited once
// released; a database whose schema is newer than this binary is refused
// rather than run against.
//
// File numbering is by owning area, so parallel work never collides:
// 000xx platform and registry, 001xx ingest, 002xx settlement runs and
// ledger, 003xx outbox and alerts, 004xx exports, 005xx API (tokens, audit).
package migrations

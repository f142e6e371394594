// Package ledger owns the double-entry journal: entries of signed decimal
// lines in currency minor units, their balance rule, their canonical bytes
// and the SHA-256 hash chain that makes the journal tamper-evident.
//
// It is a leaf (standard library and shopspring/decimal only). It does not
// know what is posted or why: settlement decides the accounts and amounts;
// ledger/postgres stores entries append-only and serialises the chain.
//
// Invariants:
//   - an entry has at least two lines, one currency, amounts with at most
//     two decimal places, and its amounts sum to exactly zero;
//   - entries form one chain ordered by entry id: each entry's PrevHash is
//     the Hash of the entry before it (Genesis for the first), and its Hash
//     is the SHA-256 of its canonical bytes, which include PrevHash; changing
//     any stored field of any entry or line breaks the chain at that entry;
//   - a chain head recorded outside the journal (an Anchor: an export's
//     manifest records the id and hash of its run's last entry) must still be
//     in the chain with that hash, so a tail removed or rewritten after an
//     export fails verification although the shorter chain is consistent.
package ledger

// Package failpoint lets a test crash a gridsettle process at a named point
// of its exactly-once paths, so that the chaos suite can prove that nothing
// is lost or duplicated whatever instant a worker dies at
// (settlement/README.md "Exactly-once", "What proves it").
//
// A failpoint is a call Hit(name) at a place where dying is interesting:
//
//   - ingest-before-begin: a batch of one partition is decoded, its
//     transaction has not begun (a consumer frozen here wakes up with a
//     position another owner may have moved past);
//   - ingest-before-commit: a batch's effects are written, its hooks and
//     outbox rows are not, the transaction is open;
//   - ingest-after-outbox: the batch's outbox rows are written, COMMIT is
//     not sent;
//   - ingest-after-commit: the batch committed, the consumer has not moved
//     on;
//   - publish-before-produce: a Kafka transaction has begun, nothing is
//     produced;
//   - publish-after-flush: every record is acknowledged inside the open
//     Kafka transaction, EndTransaction is not sent;
//   - publish-after-commit: EndTransaction committed, the outbox rows are
//     not deleted;
//   - run-mid: a settlement run is computed and written inside its write
//     transaction, COMMIT is not sent;
//   - bridge-before-produce: the MQTT bridge has begun a batch's Kafka
//     transaction, nothing is produced, no message is acknowledged;
//   - bridge-after-commit: the batch's transaction committed, no PUBACK is
//     sent (the broker delivers the batch again).
//
// The command line arms them from GRIDSETTLE_FAILPOINTS, parsed once in
// cmd/gridsettle and handed to Enable (this package never reads the
// environment). The list is comma-separated; each item is
//
//	name          fire at the first hit
//	name@N        fire at the N-th hit (N ≥ 1) of that point
//	name%P        fire at each hit with probability P (0 < P ≤ 1, at most 6
//	              decimal places), drawn from a source seeded per point, so
//	              the same list and seed give the same sequence of draws
//	seed=S        the seed of the %P sources (default 1)
//
// and any name item may end in ":stop" to stop the process (SIGSTOP, a
// zombie that the chaos suite later continues with SIGCONT) instead of
// killing it (SIGKILL). Right before it signals itself, a firing point
// logs one line, "failpoint fired", with the point, the hit number and the
// signal, so a harness can tell a failpoint death from any other.
//
// It does not own where the points are: each is one line in the package
// whose path it interrupts (settlement/ingest, settlement/postgres) or a
// step hook wired in cmd (settlement/publish's and settlement/ingest/bridge's
// WithStepHook).
//
// Invariants:
//   - unarmed (no list, or an empty one), Hit is one atomic load and
//     returns: no lock, no allocation;
//   - a name outside Names is refused by Enable, so a typo in a test's
//     list fails loudly instead of never firing;
//   - firing uses only the process's own signals: SIGKILL cannot be
//     caught, so no deferred cleanup, COMMIT or flush runs after it.
package failpoint

package exact

// PGEpoch is 2000-01-01T00:00:00Z, Postgres's timestamp epoch, in unix
// seconds: a binary timestamp or timestamptz is microseconds since it.
const PGEpoch = 946_684_800

// PGEpochMicros is PGEpoch in unix microseconds.
const PGEpochMicros = PGEpoch * 1_000_000

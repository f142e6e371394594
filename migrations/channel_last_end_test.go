package migrations_test

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gridsettle/gridsettle/migrations"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

// The migrations before and with channel_lengths.last_end.
const (
	beforeLastEndVersion = 804
	lastEndVersion       = 806
)

// channelLastEnds is channel_lengths with its last_end, one line a row.
func channelLastEnds(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(t.Context(), `
		SELECT meter_id || ' ' || channel || ' ' || interval_seconds || ' ' ||
		       coalesce(to_char(last_end AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), 'NULL')
		FROM channel_lengths ORDER BY meter_id, channel`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// 00806 backfills each channel's last_end exactly from its stored blocks:
// the greatest end over every block and version, wherever the block
// starts (a long block starting earlier can end last), counting the
// intervals a block holds no read for (NULL elements); NULL for a channel
// without blocks. A channel with blocks but no row gets one. Its Down drops
// the column, and Up again computes the same.
func TestChannelLastEndBackfill(t *testing.T) {
	pool, _ := pgtest.Empty(t)
	ctx := t.Context()
	p := gooseAt(t, pool)
	if _, err := p.UpTo(ctx, beforeLastEndVersion); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
		SELECT read_blocks_partition(m) FROM unnest('{2026-03-01Z,2026-04-01Z}'::timestamptz[]) AS m;
		INSERT INTO channel_lengths (meter_id, channel, interval_seconds) VALUES
			('M-1', 'import', 900), ('M-1', 'export', 900), ('M-2', 'import', 3600), ('M-4', 'import', 300);
		INSERT INTO read_blocks (meter_id, channel, start, interval_seconds, version, values_micro, topic, partition, "offset") VALUES
			-- M-1 import: a day from midnight, then a later-starting short
			-- block and a correction inside the day: the day ends last.
			('M-1', 'import', '2026-03-10T00:00:00Z', 900, 1, array_fill(1::bigint, ARRAY[96]), 't', 0, 1),
			('M-1', 'import', '2026-03-10T23:00:00Z', 900, 2, '{5}', 't', 0, 2),
			('M-1', 'import', '2026-03-09T12:00:00Z', 900, 1, '{1,2}', 't', 0, 3),
			-- M-1 export: its latest block ends with intervals it holds
			-- no read for, in the next month's partition.
			('M-1', 'export', '2026-03-31T22:00:00Z', 900, 1, '{1,2}', 't', 0, 4),
			('M-1', 'export', '2026-04-01T05:00:00Z', 900, 3, '{7,NULL,NULL}', 't', 0, 5),
			('M-1', 'export', '2026-04-01T05:00:00Z', 900, 2, '{6}', 't', 0, 6),
			-- M-3: blocks but no channel row (loaded by hand): one is
			-- made, with the earliest block's length.
			('M-3', 'import', '2026-03-10T02:00:00Z', 1800, 1, '{1}', 't', 0, 7),
			('M-3', 'import', '2026-03-10T00:00:00Z', 3600, 1, '{1,1,1}', 't', 0, 7),
			-- M-4: another channel's length and its own end.
			('M-4', 'import', '2026-03-10T10:00:00Z', 300, 1, '{1,1,1,1}', 't', 0, 8)`); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"M-1 export 900 2026-04-01T05:45:00Z",
		"M-1 import 900 2026-03-11T00:00:00Z",
		"M-2 import 3600 NULL",
		"M-3 import 3600 2026-03-10T03:00:00Z",
		"M-4 import 300 2026-03-10T10:20:00Z",
	}
	if _, err := p.UpTo(ctx, lastEndVersion); err != nil {
		t.Fatal(err)
	}
	if got := channelLastEnds(t, pool); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("backfilled:\n got  %v\n want %v", got, want)
	}

	if _, err := p.DownTo(ctx, beforeLastEndVersion); err != nil {
		t.Fatal(err)
	}
	var has bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM information_schema.columns
		WHERE table_name = 'channel_lengths' AND column_name = 'last_end')`).Scan(&has); err != nil || has {
		t.Fatalf("after Down: last_end still there (%v, %v)", has, err)
	}
	if err := migrations.Apply(ctx, pool, quiet); err != nil {
		t.Fatal(err)
	}
	if got := channelLastEnds(t, pool); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("backfilled again:\n got  %v\n want %v", got, want)
	}
}

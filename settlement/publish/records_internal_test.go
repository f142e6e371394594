package publish

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// outboxRows are n outbox rows as the pending query returns them (seq,
// record_id, schema, key, value, headers, created_at), statement-sized,
// written by transactions of 100 rows each.
type outboxRows struct {
	n, i  int
	ids   [][]byte
	value []byte
	at    time.Time
}

func newOutboxRows(n int) *outboxRows {
	r := &outboxRows{n: n, value: make([]byte, 500), at: time.Date(2026, 12, 27, 6, 0, 0, 123456000, time.UTC)}
	for i := range n {
		r.ids = append(r.ids, fmt.Appendf(nil, "HB_NORTH/RETAILER-%d/2026-11-01/2", i))
	}
	return r
}

var benchSchema, benchKey = []byte("settlement.statement/v1"), []byte("RETAILER-A")

func (r *outboxRows) Next() bool { r.i++; return r.i <= r.n }

func (r *outboxRows) Scan(dest ...any) error {
	i := r.i - 1
	*dest[0].(*int64) = int64(r.i)
	*dest[1].(*pgtype.DriverBytes) = r.ids[i]
	*dest[2].(*pgtype.DriverBytes) = benchSchema
	*dest[3].(*pgtype.DriverBytes) = benchKey
	*dest[4].(*pgtype.DriverBytes) = r.value
	*dest[5].(*pgtype.DriverBytes) = nil
	if len(dest) > 6 {
		*dest[6].(*time.Time) = r.at.Add(time.Duration(i/100) * time.Millisecond)
	}
	return nil
}

func (r *outboxRows) Close()                                       {}
func (r *outboxRows) Err() error                                   { return nil }
func (r *outboxRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (r *outboxRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (r *outboxRows) Values() ([]any, error)                       { return nil, nil }
func (r *outboxRows) RawValues() [][]byte                          { return nil }
func (r *outboxRows) Conn() *pgx.Conn                              { return nil }
func (r *outboxRows) TypeMap() *pgtype.Map                         { return nil }

// BenchmarkRecords is the relay's CPU cost of turning one outbox row into
// a Kafka record with its headers (the rest of a record's cost is the
// round trips BenchmarkRelay measures).
func BenchmarkRecords(b *testing.B) {
	const n = 1000
	w := &worker{r: &Relay{cfg: Config{Env: "prod"}}, s: Stream{Topic: "settlement.statements"}}
	rows := newOutboxRows(n)
	b.ReportAllocs()
	for b.Loop() {
		rows.i = 0
		var out batch
		if err := w.records(rows, n, &out); err != nil || len(out.recs) != n {
			b.Fatal(err, len(out.recs))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

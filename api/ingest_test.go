package api

import (
	"encoding/base64"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/kafka/kafkatest"
	"github.com/gridsettle/gridsettle/settlement/outbox"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

func init() {
	testAreas = append(testAreas, func(t *testing.T, pool *pgxpool.Pool) Routes {
		return ingestRoutes(t, pool)
	})
}

func ingestRoutes(t *testing.T, pool *pgxpool.Pool) IngestRoutes {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkatest.New(t)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	market := settlement.Market{Location: loc, Currency: "USD", IntervalSeconds: 900, PriceSpikeThreshold: decimal.NewFromInt(1000)}
	topics := kafka.DefaultTopics()
	parts := map[string]int32{}
	for _, tp := range topics.Outputs() {
		parts[tp] = kafkatest.Partitions
	}
	return IngestRoutes{
		Pool: pool, Market: market, Topics: topics, Kafka: kadm.NewClient(cl),
		Applier: ingest.NewApplier(market, topics, outbox.NewWriter(parts)),
		Runs:    settlementpg.NewRuns(pool, settlementpg.Config{Market: market}, slog.New(slog.NewTextHandler(io.Discard, nil))),
	}
}

// ingestData applies reads and prices as the consumer would, partition 0.
func ingestData(t *testing.T, pool *pgxpool.Pool, reads, prices []string) {
	t.Helper()
	var rr []readstore.ReadRecord
	for i, v := range reads {
		r := readstore.ReadRecord{Source: readstore.Source{Origin: readstore.Origin{Topic: "ami.interval-reads", Offset: int64(i)}, Value: []byte(v)}}
		r.Block, r.Rejection = meters.DecodeReadBlock([]byte(v))
		rr = append(rr, r)
	}
	var pr []readstore.PriceRecord
	for i, v := range prices {
		p := readstore.PriceRecord{Source: readstore.Source{Origin: readstore.Origin{Topic: "market.prices", Offset: int64(i)}, Key: []byte("HB_NORTH"), Value: []byte(v)}}
		p.Price, p.Rejection = meters.DecodePrice([]byte(v), "USD")
		pr = append(pr, p)
	}
	err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		if _, err := readstore.ApplyReads(t.Context(), tx, readstore.ReadOptions{SettlementSeconds: 900}, rr); err != nil {
			return err
		}
		_, err := readstore.ApplyPrices(t.Context(), tx, "USD", pr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestIngestEndpoints(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	tok := s.token(Analyst)
	op := s.token(Operator)
	ok(t, s.do(req{method: http.MethodPost, path: "/api/v1/participants", token: op, body: `[{"participant_id":"RETAILER-A","name":"A"}]`}), 200, nil)
	ok(t, s.do(req{method: http.MethodPost, path: "/api/v1/settlement-points", token: op, body: `[{"settlement_point":"HB_NORTH","name":"N","kind":"hub"}]`}), 200, nil)
	ok(t, s.do(req{method: http.MethodPost, path: "/api/v1/accounts", token: op, body: `[{"account_id":"ACC-1","name":"one","price_alerts":false}]`}), 200, nil)
	ok(t, s.do(req{method: http.MethodPost, path: "/api/v1/meters", token: op, body: `[{"meter_id":"M1","account_id":"ACC-1","participant_id":"RETAILER-A","settlement_point":"HB_NORTH","loss_factor":"1.5","effective_from":"2026-01-01T00:00:00Z"}]`}), 200, nil)
	ingestData(t, s.pool,
		[]string{
			`{"meter_id":"M1","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["1","2.5"],"quality":["A","E"],"source":"he"}`,
			`{"meter_id":"M1","start":"2026-11-01T05:15:00Z","interval_seconds":900,"values":["3"],"version":2}`,
			`{"meter_id":"M2","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["4"]}`,
			"\xff\xfe not utf-8",
		},
		[]string{
			`{"market":"RT","settlement_point":"HB_NORTH","start":"2026-11-01T05:00:00Z","interval_seconds":900,"price":"-12.5"}`,
			`{"market":"DA","settlement_point":"HB_NORTH","start":"2026-11-01T05:00:00Z","interval_seconds":3600,"price":"30"}`,
		})

	var reads Page[Read]
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads?limit=1", token: tok}), 200, &reads)
	if len(reads.Items) != 1 || reads.NextCursor == "" {
		t.Fatalf("first page %+v", reads)
	}
	if r := reads.Items[0]; r != (Read{MeterID: "M1", Channel: "import", Start: time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC),
		IntervalSeconds: 900, Value: "1.000000", Quality: "A", Version: 1, Source: "he", Topic: "ami.interval-reads"}) {
		t.Errorf("read %+v", r)
	}
	cursor := reads.NextCursor
	reads = Page[Read]{}
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads?cursor=" + cursor, token: tok}), 200, &reads)
	if len(reads.Items) != 1 || reads.Items[0].Value != "3.000000" || reads.Items[0].Version != 2 || reads.Items[0].Offset != 1 || reads.NextCursor != "" {
		t.Errorf("second page %+v", reads)
	}
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads?channel=export", token: tok}), 200, &reads)
	if len(reads.Items) != 0 {
		t.Errorf("export reads %+v", reads)
	}
	w := s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads?from=yesterday", token: tok})
	if p := problem(t, w, http.StatusBadRequest); p.Parameter != "from" {
		t.Errorf("bad from: %+v", p)
	}

	var prices Page[Price]
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/prices?settlement_point=HB_NORTH&market=RT", token: tok}), 200, &prices)
	if len(prices.Items) != 1 || prices.Items[0].Price != "-12.500000" || prices.Items[0].Currency != "USD" {
		t.Errorf("prices %+v", prices)
	}

	var pos Page[Position]
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/positions?operating_day=2026-11-01&settlement_point=HB_NORTH", token: tok}), 200, &pos)
	got := []string{}
	for _, p := range pos.Items {
		price, amount := "null", "null"
		if p.Price != nil {
			price, amount = *p.Price, *p.Amount
		}
		got = append(got, fmt.Sprintf("%s %s %s %s", p.IntervalStart.Format("15:04"), p.EnergyMWh, price, amount))
	}
	if want := []string{"05:00 0.0015 -12.500000 -0.01875", "05:15 0.0045 null null"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("positions %v, want %v", got, want)
	}
	if p := problem(t, s.do(req{method: http.MethodGet, path: "/api/v1/positions", token: tok}), http.StatusBadRequest); p.Parameter != "operating_day" {
		t.Errorf("positions without a day: %+v", p)
	}

	var q Page[QuarantineItem]
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/quarantine", token: tok}), 200, &q)
	if len(q.Items) != 2 || q.Items[0].Reason != "unknown_meter" || q.Items[0].Value != `{"meter_id":"M2","start":"2026-11-01T05:00:00Z","interval_seconds":900,"values":["4"]}` ||
		q.Items[0].ValueEncoding != "" || q.Items[0].Offset != 2 || q.Items[0].Key != nil || q.Items[0].ReplayedAt != nil {
		t.Fatalf("quarantine %+v", q.Items)
	}
	if it := q.Items[1]; it.Reason != "malformed_json" || it.ValueEncoding != "base64" || it.Value != "//4gbm90IHV0Zi04" {
		t.Errorf("non-UTF-8 item %+v", it)
	}
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/quarantine?reason=malformed_json&topic=ami.interval-reads", token: tok}), 200, &q)
	if len(q.Items) != 1 {
		t.Errorf("filtered quarantine %+v", q.Items)
	}

	// Replay: refused for analysts and for other reasons; after the registry
	// knows M2 it applies once.
	problem(t, s.do(req{method: http.MethodPost, path: "/api/v1/quarantine/replay", token: tok, body: `{"reason":"unknown_meter"}`}), http.StatusForbidden)
	if p := problem(t, s.do(req{method: http.MethodPost, path: "/api/v1/quarantine/replay", token: op, body: `{"reason":"malformed_json"}`}), http.StatusBadRequest); p.Parameter != "reason" {
		t.Errorf("replay of malformed_json: %+v", p)
	}
	var res ingest.ReplayResult
	ok(t, s.do(req{method: http.MethodPost, path: "/api/v1/quarantine/replay", token: op, body: `{"reason":"unknown_meter"}`}), 200, &res)
	if res != (ingest.ReplayResult{StillQuarantined: 1}) {
		t.Errorf("replay before the fix: %+v", res)
	}
	ok(t, s.do(req{method: http.MethodPost, path: "/api/v1/meters", token: op, body: `[{"meter_id":"M2","account_id":"ACC-1","participant_id":"RETAILER-A","settlement_point":"HB_NORTH","loss_factor":"1","effective_from":"2026-01-01T00:00:00Z"}]`}), 200, nil)
	for i, want := range []int{1, 0} {
		ok(t, s.do(req{method: http.MethodPost, path: "/api/v1/quarantine/replay", token: op, body: `{"reason":"unknown_meter"}`}), 200, &res)
		if res.Replayed != want || res.StillQuarantined != 0 {
			t.Errorf("replay %d after the fix: %+v", i+1, res)
		}
	}
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/quarantine?reason=unknown_meter", token: tok}), 200, &q)
	if len(q.Items) != 1 || q.Items[0].ReplayedAt == nil {
		t.Errorf("replayed item %+v", q.Items)
	}

	// CSV agrees with JSON.
	w = s.do(req{method: http.MethodGet, path: "/api/v1/meters/M1/reads", token: tok, accept: "text/csv"})
	mustStatus(t, w, 200)
	if lines := strings.Split(strings.TrimSpace(w.Body.String()), "\n"); len(lines) != 3 ||
		lines[0] != "meter_id,channel,start,interval_seconds,value,quality,version,source,topic,partition,offset" ||
		!strings.HasPrefix(lines[2], "M1,import,2026-11-01T05:15:00Z,900,3.000000,A,2,") {
		t.Errorf("csv %q", lines)
	}
}

func TestIngestStatus(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	tok := s.token(Analyst)
	if _, err := s.pool.Exec(t.Context(), `
		INSERT INTO ingest_offsets (topic, partition, next_offset, watermark) VALUES ('ami.interval-reads', 1, 0, '2026-11-01T06:00:00Z');
		INSERT INTO ingest_offsets (topic, partition, next_offset, refused_at, refused_log_end)
			VALUES ('ami.interval-reads', 2, 7, '2026-12-06T08:00:00Z', 3);
		INSERT INTO outbox_streams VALUES ('gridsettle.dead-letter', 0, 2);
		INSERT INTO outbox_relay (topic, partition, parked_reason, parked_at)
			VALUES ('gridsettle.dead-letter', 0, 'partition_missing', '2026-12-06T09:00:00Z');
		INSERT INTO outbox (topic, partition, seq, record_id, schema, value) VALUES ('gridsettle.dead-letter', 0, 1, 'x', 'y', '');
		INSERT INTO outbox_quarantine (topic, partition, seq, record_id, schema, value, headers, created_at, reason, detail)
			VALUES ('settlement.statements', 1, 4, 'r', 's', 'v', '[]', now(), 'record_too_large', 'MESSAGE_TOO_LARGE');
		INSERT INTO runs (run_id, operating_day, run_type, version, status, error, started_at, finished_at)
		VALUES ('run-2026-11-01-initial-3', '2026-11-01', 'initial', 3, 'failed', 'boom', '2026-11-10T00:03:00Z', '2026-11-10T00:03:01Z');
		INSERT INTO scheduled_attempts (operating_day, run_type, attempts, last_run_id, last_error, failed_at)
		VALUES ('2026-11-01', 'initial', 3, 'run-2026-11-01-initial-3', 'boom', '2026-11-10T00:03:01Z')`); err != nil {
		t.Fatal(err)
	}
	var st struct {
		Inputs   []map[string]any `json:"inputs"`
		Outbox   map[string]any   `json:"outbox"`
		Runs     []map[string]any `json:"runs"`
		Failures []map[string]any `json:"scheduled_run_failures"`
	}
	w := s.do(req{method: http.MethodGet, path: "/api/v1/status", token: tok})
	ok(t, w, 200, &st)
	if len(st.Inputs) != 2*kafkatest.Partitions || st.Outbox["pending"] != 1.0 || len(st.Runs) != 1 || st.Runs[0]["status"] != "failed" {
		t.Fatalf("status %s", w.Body)
	}
	// The output side's held states: a refused record, a parked stream
	// with the rows it holds back.
	if st.Outbox["quarantined"] != 1.0 || fmt.Sprint(st.Outbox["parked"]) !=
		"[map[partition:0 pending:1 reason:partition_missing since:2026-12-06T09:00:00Z topic:gridsettle.dead-letter]]" {
		t.Fatalf("outbox status %v", st.Outbox)
	}
	// A scheduled run the scheduler gave up on, with its last error.
	if len(st.Failures) != 1 || st.Failures[0]["status"] != "gave_up" || st.Failures[0]["attempts"] != 3.0 ||
		st.Failures[0]["error"] != "boom" || st.Failures[0]["last_run_id"] != "run-2026-11-01-initial-3" ||
		st.Failures[0]["operating_day"] != "2026-11-01" || st.Failures[0]["next_attempt_at"] != nil {
		t.Fatalf("scheduled run failures in %s", w.Body)
	}
	var wm any
	refused := 0
	for _, in := range st.Inputs {
		for _, k := range []string{"topic", "partition", "next_offset", "end_offset", "lag", "watermark", "refused"} {
			if _, ok := in[k]; !ok {
				t.Errorf("input %v lacks %s", in, k)
			}
		}
		if in["topic"] == "ami.interval-reads" && in["partition"] == 1.0 {
			wm = in["watermark"]
		}
		if r := in["refused"]; r != nil {
			refused++
			if in["partition"] != 2.0 || fmt.Sprint(r) != "map[log_end:3 since:2026-12-06T08:00:00Z]" {
				t.Errorf("refused: %v", in)
			}
		}
	}
	if wm != "2026-11-01T06:00:00Z" || refused != 1 {
		t.Errorf("watermark %v, %d refused", wm, refused)
	}
	// Declared parameters only.
	if p := problem(t, s.do(req{method: http.MethodGet, path: "/api/v1/status?" + url.Values{"x": {"1"}}.Encode(), token: tok}), http.StatusBadRequest); p.Parameter != "x" {
		t.Errorf("%+v", p)
	}
}

// TestQuarantineValuesAreSafe: a quarantined value is shown as text only
// when it is UTF-8 without U+0000, and never as a live formula in CSV.
func TestQuarantineValuesAreSafe(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	tok := s.token(Analyst)
	formula := `=HYPERLINK("http://evil.example","click")`
	withNUL := "{\"meter_id\":\"M\x00\"}"
	ingestData(t, s.pool, []string{formula, withNUL, "plain text"}, nil)

	var q Page[QuarantineItem]
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/quarantine", token: tok}), 200, &q)
	if len(q.Items) != 3 {
		t.Fatalf("quarantine %+v", q.Items)
	}
	byOffset := map[int64]QuarantineItem{}
	for _, it := range q.Items {
		byOffset[it.Offset] = it
	}
	if it := byOffset[0]; it.Value != formula || it.ValueEncoding != "" {
		t.Errorf("formula item %+v", it)
	}
	if it := byOffset[1]; it.ValueEncoding != "base64" || it.Value != base64.StdEncoding.EncodeToString([]byte(withNUL)) {
		t.Errorf("item with U+0000 %+v", it)
	}
	if it := byOffset[2]; it.Value != "plain text" || it.ValueEncoding != "" {
		t.Errorf("text item %+v", it)
	}

	w := s.do(req{method: http.MethodGet, path: "/api/v1/quarantine", token: tok, accept: "text/csv"})
	mustStatus(t, w, 200)
	rows, err := csv.NewReader(strings.NewReader(w.Body.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := slices.Index(rows[0], "value")
	found := false
	for _, r := range rows[1:] {
		if strings.HasPrefix(r[col], "=") {
			t.Errorf("live formula in CSV: %q", r[col])
		}
		found = found || r[col] == "'"+formula
	}
	if !found {
		t.Errorf("neutralised formula not in CSV:\n%s", w.Body)
	}
}

// The output quarantine lists refused output records whole (bytes that are
// not text as base64), filtered by output topic, in pages.
func TestOutputQuarantine(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, nil)
	tok := s.token(Analyst)
	if _, err := s.pool.Exec(t.Context(), `
		INSERT INTO outbox_quarantine (topic, partition, seq, record_id, schema, key, value, headers, created_at, reason, detail)
		VALUES ('settlement.statements', 1, 4, 'line-1', 'gridsettle.statement/v1', 'P1', '{"a":1}', '[]', '2026-12-06T09:00:00Z', 'record_too_large', 'MESSAGE_TOO_LARGE'),
		       ('gridsettle.dead-letter', 0, 9, 'dl-1', 'gridsettle.dead-letter/v1', NULL, '\xff00', '[]', '2026-12-06T09:00:01Z', 'record_invalid', 'INVALID_RECORD'),
		       ('settlement.statements', 0, 2, 'line-2', 'gridsettle.statement/v1', 'P2', '{"b":2}', '[]', '2026-12-06T09:00:02Z', 'record_too_large', 'MESSAGE_TOO_LARGE')`); err != nil {
		t.Fatal(err)
	}
	var page struct {
		Items []map[string]any `json:"items"`
		Next  *string          `json:"next_cursor"`
	}
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/outbox/quarantine", token: tok}), 200, &page)
	if len(page.Items) != 3 || page.Items[1]["value"] != base64.StdEncoding.EncodeToString([]byte{0xff, 0}) ||
		page.Items[1]["value_encoding"] != "base64" || page.Items[1]["key"] != nil ||
		page.Items[0]["value"] != `{"a":1}` || page.Items[0]["key"] != "P1" || page.Items[0]["seq"] != 4.0 ||
		page.Items[0]["record_id"] != "line-1" || page.Items[0]["reason"] != "record_too_large" {
		t.Fatalf("output quarantine %v", page.Items)
	}
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/outbox/quarantine?topic=settlement.statements&limit=1", token: tok}), 200, &page)
	if len(page.Items) != 1 || page.Items[0]["record_id"] != "line-1" || page.Next == nil {
		t.Fatalf("first page %v", page)
	}
	ok(t, s.do(req{method: http.MethodGet, path: "/api/v1/outbox/quarantine?topic=settlement.statements&limit=1&cursor=" + *page.Next, token: tok}), 200, &page)
	if len(page.Items) != 1 || page.Items[0]["record_id"] != "line-2" {
		t.Fatalf("second page %v", page)
	}
	// An input topic is not an output topic; bytes that are no cursor or no
	// topic name are a 400, never a 500.
	for _, q := range []string{"topic=ami.interval-reads", "topic=settlement.statements%00", "topic=%ff", "cursor=%ff",
		"cursor=e30%00", "cursor=" + strings.Repeat("A", 5000), "limit=99999999999999999999"} {
		mustStatus(t, s.do(req{method: http.MethodGet, path: "/api/v1/outbox/quarantine?" + q, token: tok}), 400)
	}
	mustStatus(t, s.do(req{method: http.MethodGet, path: "/api/v1/outbox/quarantine"}), 401)
}

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement/ingest/ingesttest"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	"github.com/gridsettle/gridsettle/settlement/kafka/schemas"
)

// The wire shapes of api/README.md this test reads, decoded as a client would,
// without the server's own types.
type (
	hostileStatus struct {
		Inputs []struct {
			Topic      string     `json:"topic"`
			Partition  int32      `json:"partition"`
			NextOffset int64      `json:"next_offset"`
			EndOffset  int64      `json:"end_offset"`
			Lag        int64      `json:"lag"`
			Watermark  *time.Time `json:"watermark"`
		} `json:"inputs"`
		Outbox struct {
			Pending int64 `json:"pending"`
		} `json:"outbox"`
	}
	quarantineItem struct {
		Reason        string `json:"reason"`
		Detail        string `json:"detail"`
		Topic         string `json:"topic"`
		Partition     int32  `json:"partition"`
		Offset        int64  `json:"offset"`
		Value         string `json:"value"`
		ValueEncoding string `json:"value_encoding"`
	}
	auditRow struct {
		TokenID *string `json:"token_id"`
		Method  string  `json:"method"`
		Path    string  `json:"path"`
		Route   string  `json:"route"`
		Status  int     `json:"status"`
	}
)

// TestHostileDev is the hostile-input suite as a third party checks it
// against a running `gridsettle dev`: the hostile-input suite's records
// produced to the input topics in one transaction are each quarantined with
// the contract's reason (GET /api/v1/quarantine, also as CSV with formulas
// neutralised) and dead-lettered (read back from Kafka), every partition
// reaches lag 0 and the outbox drains within 30 s with watermarks from
// applied records only (GET /api/v1/status), /readyz stays 200 throughout,
// made-up HTTP methods do not grow /metrics, unauthenticated or unmatched
// calls leave no audit row and no stored path exceeds 2,048 bytes, and bad
// bytes in query parameters are 400s naming the parameter.
func TestHostileDev(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gridsettle")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_, dbURL := pgtest.New(t)
	kafkaAddr, httpAddr := freeAddr(t), freeAddr(t)
	base := "http://" + httpAddr
	// No scheduler: runs falling due would only add load.
	d := start(t, bin, "dev", "--data-dir", t.TempDir(), "--database-url", dbURL, "--kafka-addr", kafkaAddr,
		"--http-addr", httpAddr, "--admin-token", devAdminToken, "--components", "ingest,publish,api")
	waitHTTP(t, base+"/readyz", d.done, d.out)
	ready := watchReady(t, base+"/readyz")
	for _, r := range ingesttest.Registry {
		call(t, http.MethodPost, base+"/api/v1/"+r.Path, "text/csv", r.CSV, http.StatusOK)
	}

	topics := kafka.DefaultTopics()
	suite := ingesttest.New(topics, time.Now(), 15)
	// As a head-end would: one transaction, explicit partitions, and a batch
	// limit that lets records over 1 MB through (compressed for the broker).
	prod := client(t, kafkaAddr, kgo.TransactionalID("hostile-headend"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchMaxBytes(8<<20))
	t.Logf("%s", ingesttest.Summary(suite.Cases))
	produceTxn(t, prod, ingesttest.Records(suite.Cases))
	st, ok := waitDrained(t, base)
	if ok {
		produceTxn(t, prod, ingesttest.Records(suite.Tail()))
		st, _ = waitDrained(t, base)
	}

	next := map[ingesttest.TopicPartition]int64{}
	for _, in := range st.Inputs {
		next[ingesttest.TopicPartition{Topic: in.Topic, Partition: in.Partition}] = in.NextOffset
	}
	cases := ingesttest.Reached(suite.Cases, next)
	checkDevQuarantine(t, base, cases)
	checkDevDeadLetters(t, kafkaAddr, topics.DeadLetter, cases)
	checkCSVNeutralised(t, base, cases)
	want := ingesttest.Watermarks(topics, cases)
	for _, in := range st.Inputs {
		if err := ingesttest.CheckWatermark(ingesttest.TopicPartition{Topic: in.Topic, Partition: in.Partition}, in.Watermark, want); err != nil {
			t.Errorf("status %v", err)
		}
	}

	checkMetricsBounded(t, base)
	checkAudit(t, base)
	checkBadParameters(t, base)

	if failures := ready(); len(failures) > 0 {
		t.Errorf("/readyz was not 200 %d times during the test, first: %s", len(failures), failures[0])
	}
	d.terminate(t)
}

// watchReady polls url until the test ends; the function it returns stops
// the polling and says every time the answer was not 200.
func watchReady(t *testing.T, url string) func() []string {
	ctx, cancel := context.WithCancel(t.Context())
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	wg.Go(func() {
		cl := &http.Client{Timeout: 5 * time.Second}
		for ctx.Err() == nil {
			resp, err := cl.Get(url)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if ctx.Err() == nil && (err != nil || resp.StatusCode != http.StatusOK) {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s: %v %v", time.Now().Format(time.TimeOnly), statusOf(resp, err), err))
				mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	stop := func() []string {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return failures
	}
	t.Cleanup(func() { stop() })
	return stop
}

func statusOf(resp *http.Response, err error) string {
	if err != nil {
		return "no answer"
	}
	return resp.Status
}

func produceTxn(t *testing.T, cl *kgo.Client, recs []*kgo.Record) {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	if err := cl.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// waitDrained waits up to 30 s for every input partition's lag and the
// outbox backlog to reach 0, and returns the status then; a partition
// still behind fails the test, which goes on to say what else is wrong.
func waitDrained(t *testing.T, base string) (hostileStatus, bool) {
	t.Helper()
	const bound = 30 * time.Second
	deadline := time.Now().Add(bound)
	for {
		var st hostileStatus
		if err := json.Unmarshal([]byte(call(t, http.MethodGet, base+"/api/v1/status", "", "", http.StatusOK)), &st); err != nil {
			t.Fatalf("status: %v", err)
		}
		var behind []string
		for _, in := range st.Inputs {
			if in.Lag != 0 {
				behind = append(behind, fmt.Sprintf("%s/%d at %d of %d", in.Topic, in.Partition, in.NextOffset, in.EndOffset))
			}
		}
		if len(st.Inputs) > 0 && len(behind) == 0 && st.Outbox.Pending == 0 {
			return st, true
		}
		if time.Now().After(deadline) {
			t.Errorf("after %v: partitions behind %v, %d outbox rows pending", bound, behind, st.Outbox.Pending)
			return st, false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// listAll follows a list endpoint's cursor and returns every item.
func listAll[T any](t *testing.T, base, path string) []T {
	t.Helper()
	var all []T
	cursor := ""
	for {
		u := base + path + "?limit=1000"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		var page struct {
			Items      []T    `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		if err := json.Unmarshal([]byte(call(t, http.MethodGet, u, "", "", http.StatusOK)), &page); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		all = append(all, page.Items...)
		if cursor = page.NextCursor; cursor == "" {
			return all
		}
	}
}

func checkDevQuarantine(t *testing.T, base string, cases []ingesttest.Case) {
	t.Helper()
	items := map[ingesttest.TopicPartition]map[int64]quarantineItem{}
	all := listAll[quarantineItem](t, base, "/api/v1/quarantine")
	for _, it := range all {
		tp := ingesttest.TopicPartition{Topic: it.Topic, Partition: it.Partition}
		if items[tp] == nil {
			items[tp] = map[int64]quarantineItem{}
		}
		items[tp][it.Offset] = it
		if err := ingesttest.CheckDetail(it.Detail); err != nil {
			t.Errorf("quarantine %s/%d@%d: %v", it.Topic, it.Partition, it.Offset, err)
		}
	}
	want := 0
	for _, c := range cases {
		it, ok := items[ingesttest.TopicPartition{Topic: c.Record.Topic, Partition: c.Record.Partition}][c.Record.Offset]
		switch {
		case c.Quarantined() && !ok:
			t.Errorf("%s: not in the quarantine, want %v", c, c.Reasons)
			continue
		case !c.Quarantined():
			if ok {
				t.Errorf("%s: quarantined as %s (%s), want it applied", c, it.Reason, it.Detail)
			}
			continue
		}
		want++
		value := []byte(it.Value)
		text := utf8.Valid(c.Record.Value) && !bytes.ContainsRune(c.Record.Value, 0)
		switch {
		case it.ValueEncoding == "base64":
			var err error
			if value, err = base64.StdEncoding.DecodeString(it.Value); err != nil {
				t.Errorf("%s: value is not base64: %v", c, err)
			}
			if text {
				t.Errorf("%s: value of UTF-8 text without U+0000 answered as base64", c)
			}
		case !text:
			t.Errorf("%s: value that is not UTF-8 or holds U+0000 answered as text, want base64", c)
		}
		if err := c.CheckQuarantined(it.Reason, it.Detail, value); err != nil {
			t.Error(err)
		}
	}
	if len(all) != want {
		t.Errorf("%d quarantine items, want %d", len(all), want)
	}
}

// checkCSVNeutralised reads the quarantine as CSV, as a spreadsheet user
// would download it, and checks the value cells of the cases that say what
// theirs must be.
func checkCSVNeutralised(t *testing.T, base string, cases []ingesttest.Case) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/api/v1/quarantine?reason=malformed_json&limit=1000", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+devAdminToken)
	req.Header.Set("Accept", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rows, err := csv.NewReader(resp.Body).ReadAll()
	if err != nil || resp.StatusCode != http.StatusOK || len(rows) == 0 {
		t.Fatalf("quarantine as CSV: %s, %d rows, %v", resp.Status, len(rows), err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, name := range []string{"topic", "partition", "offset", "value"} {
		if _, ok := col[name]; !ok {
			t.Fatalf("quarantine CSV has no %s column: %q", name, rows[0])
		}
	}
	cells := map[string]string{}
	for _, r := range rows[1:] {
		cells[r[col["topic"]]+"/"+r[col["partition"]]+"/"+r[col["offset"]]] = r[col["value"]]
	}
	for _, c := range cases {
		if c.CSV == "" {
			continue
		}
		id := fmt.Sprintf("%s/%d/%d", c.Record.Topic, c.Record.Partition, c.Record.Offset)
		if got, ok := cells[id]; !ok || got != c.CSV {
			t.Errorf("%s: CSV value cell %q (present %v), want %q", c, got, ok, c.CSV)
		}
	}
}

// checkDevDeadLetters reads gridsettle.dead-letter as a read_committed
// consumer and checks the dead letter of every quarantined case, its
// headers against the dead letter's schema.
func checkDevDeadLetters(t *testing.T, addr, topic string, cases []ingesttest.Case) {
	t.Helper()
	v, err := schemas.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ingesttest.Case{}
	for _, c := range cases {
		if c.Quarantined() {
			want[fmt.Sprintf("%s/%d/%d", c.Record.Topic, c.Record.Partition, c.Record.Offset)] = c
		}
	}
	cl := client(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxBytes(64<<20))
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	seen := map[string]bool{}
	for len(seen) < len(want) && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var id string
			for _, h := range r.Headers {
				if h.Key == "gridsettle-id" {
					id = string(h.Value)
				}
			}
			c, ok := want[id]
			switch {
			case !ok:
				t.Errorf("dead letter %q of no quarantined record of the suite", id)
			case seen[id]:
				t.Errorf("dead letter %s read twice", id)
			default:
				var reason string
				for _, h := range r.Headers {
					if h.Key == ingesttest.HeaderReason {
						reason = string(h.Value)
					}
				}
				if err := c.CheckDeadLetter(reason, r.Key, r.Value, r.Headers); err != nil {
					t.Error(err)
				}
				if err := v.Record(r); err != nil {
					t.Error(err)
				}
			}
			seen[id] = true
		})
	}
	for id, c := range want {
		if !seen[id] {
			t.Errorf("%s: no dead letter on %s", c, topic)
		}
	}
}

// checkMetricsBounded sends 40 requests with distinct 20 kB made-up methods
// to matched and unmatched routes: metric labels come from fixed sets, so
// /metrics must grow by less than 100 kB.
func checkMetricsBounded(t *testing.T, base string) {
	t.Helper()
	before := len(get(t, base+"/metrics"))
	rnd := rand.New(rand.NewPCG(15, 15))
	for i := range 40 {
		method := make([]byte, 20_000)
		for j := range method {
			method[j] = byte('A' + rnd.IntN(26))
		}
		path := []string{"/api/v1/status", "/healthz", "/no-such-route", "/api/v1/no-such-route"}[i%4]
		req, err := http.NewRequestWithContext(t.Context(), string(method), base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			req.Header.Set("Authorization", "Bearer "+devAdminToken)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("made-up method %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Errorf("made-up method to %s: %s", path, resp.Status)
		}
	}
	after := len(get(t, base+"/metrics"))
	if grew := after - before; grew >= 100_000 {
		t.Errorf("/metrics grew by %d bytes (%d → %d) after 40 made-up methods, want < 100 kB", grew, before, after)
	}
}

// checkAudit makes state-changing calls without a token, with a bad token,
// to routes that do not exist, and with URIs of 100 kB: none may leave an
// audit row, and no row may hold a path over 2,048 bytes. The registry
// loaded at the start (authenticated calls of matched routes) must have
// left its rows.
func checkAudit(t *testing.T, base string) {
	t.Helper()
	long := strings.Repeat("x", 100_000)
	longID := strings.Repeat("t", 3000)
	for _, c := range []struct {
		method, path, token string
	}{
		{http.MethodPost, "/api/v1/runs", ""},
		{http.MethodPost, "/api/v1/participants?x=" + long, ""},
		{http.MethodDelete, "/api/v1/tokens/" + long, ""},
		{http.MethodPost, "/api/v1/runs", "not-a-token"},
		{http.MethodPost, "/api/v1/no-such-route/" + long, devAdminToken},
		{http.MethodDelete, "/api/v1/no-such-route?" + long, devAdminToken},
		// Authenticated and matched, but refused: whether it leaves a row
		// is the server's choice; a row must hold at most 2,048 bytes of it.
		{http.MethodDelete, "/api/v1/tokens/" + longID, devAdminToken},
	} {
		req, err := http.NewRequestWithContext(t.Context(), c.method, base+c.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Errorf("%s %.60s: %s", c.method, c.path, resp.Status)
		}
	}
	rows := listAll[auditRow](t, base, "/api/v1/audit")
	registry := map[string]bool{}
	for _, r := range rows {
		if r.TokenID == nil || r.Route == "" || r.Route == "unmatched" {
			t.Errorf("audit row of an unauthenticated or unmatched call: %s %.80s → %d (token %v, route %q)",
				shorten(r.Method), r.Path, r.Status, r.TokenID, r.Route)
		}
		if len(r.Path) > 2048 {
			t.Errorf("audit row with a path of %d bytes: %s %.80s…", len(r.Path), shorten(r.Method), r.Path)
		}
		if r.Method == http.MethodPost && r.Status == http.StatusOK && r.TokenID != nil {
			registry[r.Route] = true
		}
	}
	for _, r := range ingesttest.Registry {
		if !registry["/api/v1/"+r.Path] {
			t.Errorf("no audit row of the authenticated POST /api/v1/%s that loaded the registry among %d rows", r.Path, len(rows))
		}
	}
}

func shorten(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

// checkBadParameters: NUL, invalid UTF-8 or 1 MB of text in a query
// parameter is a 400 that names the parameter, never a 500.
func checkBadParameters(t *testing.T, base string) {
	t.Helper()
	mb := strings.Repeat("a", 1_000_000)
	for _, c := range []struct{ path, param, value string }{
		// positions need their operating day; the bad parameter is the other one
		{"/api/v1/positions?operating_day=2026-11-01&", "participant_id", "\x00"},
		{"/api/v1/quarantine", "reason", "\x00"},
		{"/api/v1/quarantine", "topic", "\xff\xfe"},
		{"/api/v1/quarantine", "reason", mb},
		{"/api/v1/quarantine", "limit", strings.Repeat("9", 1_000_000)},
		{"/api/v1/quarantine", "cursor", "\xff"},
		{"/api/v1/statements", "participant_id", "\x00"},
		{"/api/v1/statements", "settlement_point", "\xc3\x28"},
		{"/api/v1/statements", "operating_day", mb},
		{"/api/v1/meters/M1/reads", "channel", "\x00"},
		{"/api/v1/meters/M1/reads", "from", "\xff"},
		{"/api/v1/prices", "settlement_point", "HB\x00NORTH"},
		{"/api/v1/meters/M1/reads", "versions", "\x00"},
		{"/api/v1/meters/M1/reads", "versions", "al\xe2\x82"}, // cut mid-character
		{"/api/v1/meters/M1/reads?versions=all&", "cursor", "\xff"},
		{"/api/v1/prices", "versions", mb},
		{"/api/v1/prices", "versions", "ALL"},
		{"/api/v1/alerts", "account_id", "\xff"},
		{"/api/v1/audit", "actor", "\x00"},
		{"/api/v1/audit", "actor", "\xed\xa0\x80"},
		{"/api/v1/runs", "operating_day", "\x00"},
		{"/api/v1/ledger/balances", "account", "\xff"},
		{"/api/v1/meters", "cursor", mb},
	} {
		sep := "?"
		if strings.HasSuffix(c.path, "&") {
			sep = ""
		}
		u := base + c.path + sep + c.param + "=" + url.QueryEscape(c.value)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+devAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s?%s=%.20q: %v", c.path, c.param, c.value, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte(c.param)) {
			t.Errorf("GET %s?%s=%.20q (%d bytes): %s, want 400 naming %s\n%.300s", c.path, c.param, c.value, len(c.value), resp.Status, c.param, body)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/gridsettle/gridsettle/migrations"
	"github.com/gridsettle/gridsettle/migrations/pgcluster"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/settlement/kafka"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// startTimeout is how long a process may take to answer; the issue's
// promise for dev is 60 s.
const startTimeout = 60 * time.Second

const devAdminToken = "test-admin-token-of-32-characters" // serve takes only tokens of 32 or more

// TestBinary builds gridsettle once and runs its commands as separate
// processes, the way an operator (and dev itself) does.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gridsettle")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("broker", func(t *testing.T) { testBroker(t, bin) })
	t.Run("dev", func(t *testing.T) { testDev(t, bin) })
	t.Run("dev-bridge", func(t *testing.T) { testDevBridge(t, bin) })
}

// testBroker: committed transactions survive a SIGTERM restart and stay
// visible to read_committed readers, also after the same transactional id
// commits again (what a hard kill of kfake would break).
func testBroker(t *testing.T, bin string) {
	dir, addr := t.TempDir(), freeAddr(t)
	args := []string{"broker", "--data-dir", dir, "--kafka-addr", addr, "--partitions", "2"}
	b := start(t, bin, args...)
	waitKafkaUp(t, addr)

	topics, err := kadm.NewClient(client(t, addr)).ListTopics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range kafka.DefaultTopics().All() {
		if d, ok := topics[name]; !ok || len(d.Partitions) != 2 {
			t.Errorf("topic %s: %+v, want 2 partitions", name, d)
		}
	}

	out, err := exec.CommandContext(t.Context(), bin, "broker", "--data-dir", dir, "--kafka-addr", freeAddr(t)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "gridsettle: --data-dir: another gridsettle broker is already using") {
		t.Errorf("a second broker on the same data dir: %v\n%s", err, out)
	}

	produceCommitted(t, addr, "before-restart")
	b.terminate(t)

	b = start(t, bin, args...)
	waitKafkaUp(t, addr)
	produceCommitted(t, addr, "after-restart")
	got := consumeCommitted(t, addr, 2)
	if !slices.Equal(got, []string{"before-restart", "after-restart"}) {
		t.Errorf("read_committed after restart saw %q", got)
	}
	b.terminate(t)
}

// testDev: dev answers /healthz and /readyz, creates the topics, serves the
// registry with --admin-token, exits 0 on SIGTERM with its broker child
// stopped, and starts again on the same data dir with the registry kept.
func testDev(t *testing.T, bin string) {
	_, dbURL := pgtest.New(t)
	dir, kafkaAddr, httpAddr := t.TempDir(), freeAddr(t), freeAddr(t)
	args := []string{"dev", "--data-dir", dir, "--database-url", dbURL,
		"--kafka-addr", kafkaAddr, "--http-addr", httpAddr, "--admin-token", devAdminToken}
	for round := 1; round <= 2; round++ {
		d := start(t, bin, args...)
		waitHTTP(t, "http://"+httpAddr+"/readyz", d.done, d.out)
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			body := get(t, "http://"+httpAddr+path)
			if path == "/metrics" && !strings.Contains(body, "gridsettle_component_up") {
				t.Errorf("round %d: /metrics has no gridsettle_ metrics:\n%s", round, body)
			}
		}
		topics, err := kadm.NewClient(client(t, kafkaAddr)).ListTopics(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range kafka.DefaultTopics().All() {
			if d, ok := topics[name]; !ok || len(d.Partitions) != 8 {
				t.Errorf("round %d: topic %s: %+v, want 8 partitions", round, name, d)
			}
		}
		participants := "http://" + httpAddr + "/api/v1/participants"
		if round == 1 {
			call(t, http.MethodPost, participants, "text/csv", "participant_id,name\nP-DEV,Dev Retailer\n", http.StatusOK)
		}
		if body := call(t, http.MethodGet, participants, "", "", http.StatusOK); !strings.Contains(body, `"P-DEV"`) {
			t.Errorf("round %d: registry lost: %s", round, body)
		}
		d.terminate(t)
		if !strings.Contains(d.out.String(), `msg="broker child stopped" status="exit 0"`) {
			t.Errorf("round %d: broker child did not exit 0:\n%s", round, d.out)
		}
		ln, err := net.Listen("tcp", kafkaAddr)
		if err != nil {
			t.Fatalf("round %d: broker child still holds %s after dev exited: %v", round, kafkaAddr, err)
		}
		ln.Close()
	}
}

// serve runs against an external cluster that needs SASL, creates the
// missing topics with --partitions, answers /readyz and returns nil when its
// context ends, as on SIGTERM.
func TestServe(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("PLAIN", "gs", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	_, dbURL := pgtest.New(t)
	httpAddr := freeAddr(t)
	env := map[string]string{"GRIDSETTLE_KAFKA_SASL_PASSWORD": "secret", "GRIDSETTLE_DATABASE_URL": dbURL}
	var out syncBuffer
	m := &Main{
		Args: []string{"serve", "--kafka-brokers", cluster.ListenAddrs()[0], "--kafka-sasl-mechanism", "PLAIN",
			"--kafka-sasl-user", "gs", "--partitions", "3", "--http-addr", httpAddr, "--components", "api",
			"--data-dir", t.TempDir()},
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Stdout:    &out, Stderr: &out,
	}
	ctx, cancel := context.WithCancel(t.Context())
	var runErr error
	done := make(chan struct{})
	go func() { runErr = m.Run(ctx); close(done) }()
	waitHTTP(t, "http://"+httpAddr+"/readyz", done, &out)
	// Production serves the committed OpenAPI document, without a token.
	if file, err := os.ReadFile("../../api/openapi.json"); err != nil || get(t, "http://"+httpAddr+"/api/v1/openapi.json") != string(file) {
		t.Errorf("serve's /api/v1/openapi.json is not api/openapi.json (%v)", err)
	}

	adm := kadm.NewClient(client(t, cluster.ListenAddrs()[0], kgo.SASL(plain.Auth{User: "gs", Pass: "secret"}.AsMechanism())))
	topics, err := adm.ListTopics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range kafka.DefaultTopics().All() {
		if d, ok := topics[name]; !ok || len(d.Partitions) != 3 {
			t.Errorf("topic %s: %+v, want 3 partitions", name, d)
		}
	}
	cancel()
	<-done
	if runErr != nil {
		t.Fatalf("serve after cancel: %v\n%s", runErr, out.String())
	}
	// serve never makes up a secret, so it never prints or logs one.
	if strings.Contains(out.String(), "admin token (generated") || strings.Contains(out.String(), "gs_") {
		t.Errorf("serve printed a generated token:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "stored tokens only") {
		t.Errorf("serve without --admin-token did not say how admins get in:\n%s", out.String())
	}
	// serve logs JSON, one object a line.
	for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] == nil || rec["level"] == nil {
			t.Errorf("serve log line is not a JSON record: %q", line)
			break
		}
	}

	// A short admin token is refused before anything starts.
	short := &Main{Args: append(slices.Clone(m.Args), "--admin-token", "too-short"), LookupEnv: m.LookupEnv, Stdout: &out, Stderr: &out}
	if err := short.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "at least 32 characters") ||
		strings.Contains(err.Error(), "too-short") {
		t.Errorf("serve with a short admin token: %v", err)
	}
}

// TestServeAPIPoolHasStatementTimeout: the API's pool is its own, on the
// same database, with --api-statement-timeout on every connection; the
// pipeline's pool has none.
func TestServeAPIPoolHasStatementTimeout(t *testing.T) {
	pipeline, _ := pgtest.New(t)
	apiPool, err := newAPIPool(t.Context(), pipeline, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer apiPool.Close()
	apiTimeout, pipelineTimeout := pgtest.Setting(t, apiPool, "statement_timeout"), pgtest.Setting(t, pipeline, "statement_timeout")
	if apiTimeout != "1500ms" || pipelineTimeout != "0" {
		t.Errorf("statement_timeout: api %q, pipeline %q", apiTimeout, pipelineTimeout)
	}
	if err := pgtest.Sleep(t.Context(), apiPool, 3); err == nil || !strings.Contains(err.Error(), "57014") {
		t.Errorf("a 3 s statement on the api pool: %v, want canceled by the statement timeout", err)
	}
	// Decimals are registered as on the pipeline's connections.
	var d decimal.Decimal
	if err := pgtest.ScanNumeric(t.Context(), apiPool, "1.25", &d); err != nil || d.String() != "1.25" {
		t.Errorf("numeric on the api pool: %v %v", d, err)
	}
	if apiPool == pipeline || apiPool.Config().MaxConns < 1 {
		t.Errorf("the api pool is not its own")
	}
}

// TestPipelinePoolBoundsWaits: the components' pool bounds every statement
// and lock wait (pipelineWaits), and a value the database URL sets wins.
func TestPipelinePoolBoundsWaits(t *testing.T) {
	_, dbURL := pgtest.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	show := func(url string) (statement, lock string) {
		t.Helper()
		pool, closeDB, err := openDatabase(t.Context(), Config{DatabaseURL: url}, log)
		if err != nil {
			t.Fatal(err)
		}
		defer closeDB()
		return pgtest.Setting(t, pool, "statement_timeout"), pgtest.Setting(t, pool, "lock_timeout")
	}
	if s, l := show(dbURL); s != "5min" || l != "2min" {
		t.Errorf("statement_timeout %q, lock_timeout %q; want 5min, 2min", s, l)
	}
	sep := "?"
	if strings.Contains(dbURL, "?") {
		sep = "&"
	}
	if s, l := show(dbURL + sep + "lock_timeout=1500"); s != "5min" || l != "1500ms" {
		t.Errorf("with lock_timeout in the URL: statement_timeout %q, lock_timeout %q", s, l)
	}
}

// A private cluster is created on first use, stopped on exit and reused.
func TestMigratePrivateCluster(t *testing.T) {
	// Not t.TempDir: as root the server runs as "postgres", which must be
	// able to enter every parent directory.
	dir, err := os.MkdirTemp("", "gridsettle-cmd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		if err := run(t, "migrate", "--data-dir", dir); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "postgres", "PG_VERSION")); err != nil {
			t.Fatalf("round %d: no cluster: %v", round, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "postgres", "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("round %d: private cluster still running after migrate: %v", round, err)
		}
	}
}

func TestSchemaTooNewIsOneFriendlyLine(t *testing.T) {
	pool, dbURL := pgtest.New(t)
	pgtest.MarkSchemaNewer(t, pool)
	err := run(t, "migrate", "--database-url", dbURL)
	if !errors.Is(err, migrations.ErrSchemaTooNew) {
		t.Fatalf("got %v, want ErrSchemaTooNew", err)
	}
	if msg := describe(err); strings.Contains(msg, "\n") || !strings.Contains(msg, "999999") || !strings.Contains(msg, "upgrade gridsettle") {
		t.Errorf("message %q", msg)
	}
}

func TestNoBinariesIsOneFriendlyLine(t *testing.T) {
	err := fmt.Errorf("start database: %w", pgcluster.ErrNoBinaries)
	if got := describe(err); got != pgcluster.ErrNoBinaries.Error() || !strings.Contains(got, "apt-get install postgresql") {
		t.Errorf("got %q", got)
	}
}

func TestBusyPortNamesTheFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	err = run(t, "dev", "--data-dir", t.TempDir(), "--kafka-addr", busy, "--http-addr", freeAddr(t))
	if want := "--kafka-addr: " + busy + " is already in use"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want %q…", err, want)
	}
	_, err = listen("http-addr", busy)
	if want := "--http-addr: " + busy + " is already in use"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want %q…", err, want)
	}
}

func TestUnknownFlagAndArgs(t *testing.T) {
	if err := run(t, "migrate", "--no-such-flag"); err == nil || !strings.Contains(err.Error(), "unknown flag: --no-such-flag") {
		t.Errorf("unknown flag: %v", err)
	}
	if err := run(t, "broker", "extra"); err == nil || !strings.Contains(err.Error(), `unknown command "extra"`) {
		t.Errorf("positional argument: %v", err)
	}
}

// run executes gridsettle in-process with an empty environment.
func run(t *testing.T, args ...string) error {
	t.Helper()
	var out bytes.Buffer
	m := &Main{Args: args, LookupEnv: func(string) (string, bool) { return "", false }, Stdout: &out, Stderr: &out}
	err := m.Run(t.Context())
	if err != nil {
		t.Logf("gridsettle %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return err
}

// proc is a gridsettle process started by a test.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Logf("killed %s; its output:\n%s", strings.Join(args, " "), p.out)
		}
	})
	return p
}

// terminate sends SIGTERM and requires exit status 0.
func (p *proc) terminate(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(startTimeout):
		t.Fatalf("%v did not exit after SIGTERM:\n%s", p.cmd.Args, p.out)
	}
	if p.err != nil {
		t.Fatalf("%v exited with %v after SIGTERM, want 0:\n%s", p.cmd.Args, p.err, p.out)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func client(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func waitKafkaUp(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	cl := client(t, addr)
	if err := waitKafka(ctx, cl, []string{addr}); err != nil {
		t.Fatal(err)
	}
	cl.Close()
}

// waitHTTP polls url until it answers 200; done closes if the server exits.
func waitHTTP(t *testing.T, url string, done <-chan struct{}, out *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-done:
			t.Fatalf("exited before %s answered:\n%s", url, out)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer 200 within %v (last: %v):\n%s", url, startTimeout, err, out)
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return string(body)
}

// call makes an API request with the admin token and requires status want.
func call(t *testing.T, method, url, contentType, body string, want int) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+devAdminToken)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Errorf("%s %s: %s, want %d\n%s", method, url, resp.Status, want, b)
	}
	return string(b)
}

// produceCommitted writes value to the reads topic in a committed
// transaction of one fixed transactional id.
func produceCommitted(t *testing.T, addr, value string) {
	t.Helper()
	cl := client(t, addr, kgo.TransactionalID("gridsettle-cmd-test"), kgo.DefaultProduceTopic(kafka.DefaultTopics().Reads))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Key: []byte("meter-1"), Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	cl.Close()
}

// consumeCommitted reads n values of the reads topic from the start with
// read_committed isolation.
func consumeCommitted(t *testing.T, addr string, n int) []string {
	t.Helper()
	cl := client(t, addr,
		kgo.ConsumeTopics(kafka.DefaultTopics().Reads),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	var got []string
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %q, want %d values: %v", got, n, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/gridsettle/gridsettle/api"
	"github.com/gridsettle/gridsettle/api/console"
	"github.com/gridsettle/gridsettle/ledger/ledgertest"
	ledgerpg "github.com/gridsettle/gridsettle/ledger/postgres"
	"github.com/gridsettle/gridsettle/migrations"
	"github.com/gridsettle/gridsettle/migrations/pgcluster"
	"github.com/gridsettle/gridsettle/migrations/pgtest"
	"github.com/gridsettle/gridsettle/reporting"
	exportpg "github.com/gridsettle/gridsettle/reporting/postgres"
	"github.com/gridsettle/gridsettle/settlement"
)

// runOut is run that also returns what the command printed and logged.
func runOut(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out syncBuffer
	m := &Main{Args: args, LookupEnv: func(string) (string, bool) { return "", false }, Stdout: &out, Stderr: &out}
	err := m.Run(t.Context())
	return out.String(), err
}

// migrate --runtime-role grants, idempotently; the runtime role then
// writes but cannot rewrite the journal, and cannot migrate or grant.
func TestMigrateGrantsRuntimeRole(t *testing.T) {
	_, ownerURL := pgtest.New(t)
	role, rtURL := pgtest.Role(t, ownerURL)
	for round := 1; round <= 2; round++ {
		if out, err := runOut(t, "migrate", "--database-url", ownerURL, "--runtime-role", role); err != nil ||
			!strings.Contains(out, "runtime role granted") {
			t.Fatalf("round %d: %v\n%s", round, err, out)
		}
	}
	pgtest.CheckRuntimeWrites(t, pgtest.Connect(t, rtURL))
	if out, err := runOut(t, "migrate", "--database-url", rtURL, "--runtime-role", role); err == nil ||
		!strings.Contains(err.Error(), "does not own the database schema") {
		t.Errorf("migrate as the runtime role: %v\n%s", err, out)
	}
	if _, err := runOut(t, "migrate", "--database-url", ownerURL, "--runtime-role", "x; DROP TABLE runs"); err == nil ||
		!strings.HasPrefix(err.Error(), "--runtime-role: ") {
		t.Errorf("bad role name: %v", err)
	}
}

// serve: as the owner it starts and warns that append-only rests on the
// triggers; as the runtime role it starts quietly, and refuses pending
// migrations with an error naming gridsettle migrate.
func TestServeLeastPrivilege(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	owner, ownerURL := pgtest.New(t)
	rtURL := pgtest.RuntimeRole(t, ownerURL)
	serve := func(dbURL string) (string, error) {
		httpAddr := freeAddr(t)
		var out syncBuffer
		m := &Main{
			Args: []string{"serve", "--kafka-brokers", cluster.ListenAddrs()[0], "--database-url", dbURL,
				"--http-addr", httpAddr, "--components", "api", "--data-dir", t.TempDir(), "--admin-token", devAdminToken},
			LookupEnv: func(string) (string, bool) { return "", false },
			Stdout:    &out, Stderr: &out,
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var runErr error
		done := make(chan struct{})
		go func() { runErr = m.Run(ctx); close(done) }()
		for deadline := time.Now().Add(startTimeout); ; {
			if time.Now().After(deadline) {
				t.Fatalf("the api neither became ready nor refused to start within %s:\n%s", startTimeout, out.String())
			}
			select {
			case <-done: // it refused to start
				return out.String(), runErr
			case <-time.After(100 * time.Millisecond):
			}
			if resp, err := http.Get("http://" + httpAddr + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					cancel()
					<-done
					return out.String(), runErr
				}
			}
		}
	}
	const warning = "append-only rule rests on triggers alone"
	if out, err := serve(ownerURL); err != nil || !strings.Contains(out, warning) {
		t.Errorf("serve as owner: %v, want a warning\n%s", err, out)
	}
	if out, err := serve(rtURL); err != nil || strings.Contains(out, warning) {
		t.Errorf("serve as runtime: %v\n%s", err, out)
	}
	latest := pgtest.UnrecordLatestMigration(t, owner)
	out, err := serve(rtURL)
	if !errors.Is(err, migrations.ErrPendingMigrations) || !strings.Contains(err.Error(), "gridsettle migrate --database-url OWNER_URL --runtime-role gs_rt_") {
		t.Errorf("serve as runtime with migration %d pending: %v\n%s", latest, err, out)
	}
}

// The private cluster has an owner and a runtime role, also when it was
// created before them (its schema owned by the superuser): migrate gives
// the schema to the owner, and the commands connect as the runtime role.
func TestPrivateClusterRoles(t *testing.T) {
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
	ctx := t.Context()
	startCluster := func() *pgcluster.Cluster {
		c, err := pgcluster.Start(ctx, filepath.Join(dir, "postgres"), quietLog)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// A cluster as an earlier gridsettle left it: migrated by the superuser.
	c := startCluster()
	su := pgtest.Connect(t, c.URL())
	if err := migrations.Apply(ctx, su, quietLog); err != nil {
		t.Fatal(err)
	}
	su.Close()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	if out, err := runOut(t, "migrate", "--data-dir", dir); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	if out, err := runOut(t, "ledger", "verify", "--data-dir", dir); err != nil || strings.Contains(out, "triggers alone") ||
		!strings.Contains(out, `"ok":true`) {
		t.Fatalf("ledger verify as the runtime role: %v\n%s", err, out)
	}

	c = startCluster()
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	if foreign := pgtest.TablesNotOwnedBy(t, pgtest.Connect(t, c.URL()), privateOwner); len(foreign) != 0 {
		t.Fatalf("tables not owned by %s: %v", privateOwner, foreign)
	}
	rt := pgtest.Connect(t, c.URLAs(privateRuntime))
	st, err := migrations.Inspect(ctx, rt)
	if err != nil || st.OwnsSchema || st.OwnsJournal || st.Role != privateRuntime {
		t.Fatalf("runtime role: %+v, %v", st, err)
	}
	pgtest.CheckJournalRefused(t, rt)
	if st, err := migrations.Inspect(ctx, pgtest.Connect(t, c.URLAs(privateOwner))); err != nil || !st.OwnsSchema || len(st.Pending) != 0 {
		t.Fatalf("owner role: %+v, %v", st, err)
	}
}

// TestPipelineAsRuntimeRole: the whole platform runs as the runtime role
// that migrate granted (demo: ingest, runs with their ledger postings,
// exports, alerts, the API and its audit log). A regulator downloads an
// export through the API, the names in its files but the convenience key,
// and verifies the folder with --public-key. Then the owner cuts the
// journal's tail: the chain left is consistent, and ledger verify (API and
// CLI) fails naming the export whose chain head is gone.
func TestPipelineAsRuntimeRole(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gridsettle")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	owner, ownerURL := pgtest.New(t)
	role, rtURL := pgtest.Role(t, ownerURL)
	if out, err := runOut(t, "migrate", "--database-url", ownerURL, "--runtime-role", role); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), bin, "demo", "--exit", "--data-dir", dir, "--database-url", rtURL,
		"--kafka-addr", freeAddr(t), "--http-addr", freeAddr(t), "--meters", "50")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || !strings.Contains(stdout.String(), "demo ok:") {
		t.Fatalf("demo as the runtime role: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if strings.Contains(stderr.String(), "level=ERROR") || strings.Contains(stderr.String(), "triggers alone") {
		t.Errorf("demo as the runtime role logged:\n%s", stderr.String())
	}

	// The API, as the runtime role, on the demo's exports and key.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	httpAddr := freeAddr(t)
	var out syncBuffer
	m := &Main{
		Args: []string{"serve", "--kafka-brokers", cluster.ListenAddrs()[0], "--database-url", rtURL,
			"--http-addr", httpAddr, "--components", "api", "--data-dir", dir, "--admin-token", devAdminToken},
		LookupEnv: func(string) (string, bool) { return "", false },
		Stdout:    &out, Stderr: &out,
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + httpAddr
	waitHTTP(t, base+"/readyz", done, &out)

	var list struct {
		Items []exportpg.Export `json:"items"`
	}
	if err := json.Unmarshal([]byte(call(t, http.MethodGet, base+"/api/v1/exports", "", "", http.StatusOK)), &list); err != nil || len(list.Items) == 0 {
		t.Fatalf("exports: %+v, %v", list, err)
	}
	x := list.Items[len(list.Items)-1]
	download := t.TempDir()
	for _, f := range x.Files {
		if f.Name == reporting.PublicKeyFile {
			continue // trust comes from the key obtained separately
		}
		body := call(t, http.MethodGet, base+"/api/v1/exports/"+x.ExportID+"/files/"+f.Name, "", "", http.StatusOK)
		if err := os.WriteFile(filepath.Join(download, f.Name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keyFile := filepath.Join(t.TempDir(), "operator-key.pem")
	if err := os.WriteFile(keyFile, []byte(call(t, http.MethodGet, base+"/api/v1/exports/public-key", "", "", http.StatusOK)), 0o644); err != nil {
		t.Fatal(err)
	}
	if vout, err := runOut(t, "export", "verify", download, "--public-key", keyFile); err != nil || !strings.Contains(vout, "signed by the trusted key") {
		t.Fatalf("export verify of the download: %v\n%s", err, vout)
	}
	if vout, err := runOut(t, "export", "verify", download); err == nil || !strings.Contains(err.Error(), "signing-key.pub.pem is missing") {
		t.Fatalf("export verify of the download without a key: %v\n%s", err, vout)
	}

	// A line's settled intervals, read as the runtime role, and the
	// console that shows them (no token for the page).
	var lines struct {
		Items []settlement.StatementMessage `json:"items"`
	}
	if err := json.Unmarshal([]byte(call(t, http.MethodGet, base+"/api/v1/statements?operating_day=2026-11-01&limit=1", "", "", http.StatusOK)), &lines); err != nil || len(lines.Items) != 1 {
		t.Fatalf("statements: %+v, %v", lines, err)
	}
	var intervals struct {
		Items []api.StatementInterval `json:"items"`
	}
	if err := json.Unmarshal([]byte(call(t, http.MethodGet, base+"/api/v1/statements/"+url.PathEscape(lines.Items[0].StatementID)+"/intervals?limit=1000", "", "", http.StatusOK)), &intervals); err != nil || len(intervals.Items) != 100 {
		t.Fatalf("intervals of %s: %d, %v; want the fall-back day's 100", lines.Items[0].StatementID, len(intervals.Items), err)
	}
	if res, err := http.Get(base + "/console/day/2026-11-01"); err != nil || res.StatusCode != http.StatusOK || res.Header.Get("Content-Security-Policy") != console.CSP {
		t.Fatalf("serve's console: %v, %v", res, err)
	} else {
		res.Body.Close()
	}

	var rep ledgerpg.Report
	if err := json.Unmarshal([]byte(call(t, http.MethodGet, base+"/api/v1/ledger/verify", "", "", http.StatusOK)), &rep); err != nil ||
		!rep.OK || rep.EntriesChecked == 0 || rep.ExportsChecked == 0 {
		t.Fatalf("ledger verify: %+v, %v", rep, err)
	}
	cut := ledgertest.CutTail(t, owner)
	var anchored string // the export whose chain head was the entry cut
	for _, e := range list.Items {
		if l := e.Manifest.Lineage.Ledger.LastEntryID; l != nil && *l == cut {
			anchored = e.ExportID
		}
	}
	if anchored == "" {
		t.Fatalf("no export recorded entry %d as its chain head: %+v", cut, list.Items)
	}
	var bad ledgerpg.Report
	if err := json.Unmarshal([]byte(call(t, http.MethodGet, base+"/api/v1/ledger/verify", "", "", http.StatusOK)), &bad); err != nil ||
		bad.OK || bad.FirstBadEntry == nil || bad.FirstBadEntry.ExportID != anchored || bad.FirstBadEntry.EntryID != cut {
		t.Fatalf("ledger verify after the cut: %+v (%+v), %v", bad, bad.FirstBadEntry, err)
	}
	if vout, err := runOut(t, "ledger", "verify", "--database-url", rtURL); err == nil || !strings.Contains(err.Error(), anchored) {
		t.Fatalf("ledger verify CLI after the cut: %v\n%s", err, vout)
	}
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

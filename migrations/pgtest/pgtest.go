// Package pgtest gives each test its own fresh, migrated database on a real
// PostgreSQL server: the one named by DATABASE_URL, or else a private cluster
// started once per test binary (see Main). Databases are dropped when the
// test ends. There is no mock: tests talk to a real server.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gridsettle/gridsettle/migrations"
	"github.com/gridsettle/gridsettle/migrations/pgcluster"
)

var (
	once        sync.Once
	serverURL   string
	template    string // a migrated database each test's database is copied from
	serverErr   error  // written once, inside once
	templateErr error  // written once, inside templateOnce
	cluster     *pgcluster.Cluster
	clusterDir  string
)

// Main runs the package's tests and stops the private cluster, if one was
// started. Use it from TestMain in every package that calls New:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if template != "" {
		if c, err := pgx.Connect(ctx, serverURL); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+template+" WITH (FORCE)")
			c.Close(ctx)
		}
	}
	if cluster != nil {
		if err := cluster.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
		os.RemoveAll(clusterDir)
	}
	os.Exit(code)
}

func server(ctx context.Context) (string, error) {
	once.Do(func() {
		if u := os.Getenv("DATABASE_URL"); u != "" {
			serverURL = u
			return
		}
		// Not t.TempDir: when we are root the server runs as "postgres",
		// which must be able to enter every parent directory.
		dir, err := os.MkdirTemp("", "gridsettle-pgtest-")
		if err != nil {
			serverErr = fmt.Errorf("create cluster dir: %w", err)
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			serverErr = fmt.Errorf("chmod cluster dir: %w", err)
			return
		}
		clusterDir = dir
		cluster, serverErr = pgcluster.Start(ctx, filepath.Join(dir, "pg"), quiet, pgcluster.Throwaway...)
		if serverErr == nil {
			serverURL = cluster.URL()
		}
	})
	if serverErr != nil {
		return "", serverErr
	}
	// A separate error: tests calling in parallel read serverErr while the
	// first one makes the template.
	templateOnce.Do(func() { template, templateErr = makeTemplate(ctx, serverURL) })
	return serverURL, templateErr
}

var (
	templateOnce sync.Once
	quiet        = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// makeTemplate migrates one database per test binary; each test's database is
// a copy of it, which is much cheaper than migrating every time.
func makeTemplate(ctx context.Context, base string) (string, error) {
	name := "gstmpl_" + randomSuffix()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", base, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create template database: %w", err)
	}
	u, err := withDatabase(base, name)
	if err != nil {
		return "", err
	}
	pool, err := migrations.Connect(ctx, u)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	if err := migrations.Apply(ctx, pool, quiet); err != nil {
		return "", err
	}
	return name, nil
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// New creates a fresh database for t with every migration applied, and returns a
// pool on it and its URL. The database is dropped when t ends.
func New(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	return newDatabase(t, true)
}

// Empty creates a fresh database for t with no migration applied, for tests
// of the migrations themselves (one that converts old rows migrates part of
// the way, writes the old schema and goes on). Like New, it returns a pool
// and the URL, and the database is dropped when t ends.
func Empty(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	return newDatabase(t, false)
}

// newDatabase creates a database, a copy of the migrated template when
// migrated, that is dropped when t ends.
func newDatabase(t testing.TB, migrated bool) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base, err := server(ctx)
	if err != nil {
		t.Fatalf("pgtest: no PostgreSQL server (set DATABASE_URL or install the server binaries): %v", err)
	}
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", base, err)
	}
	defer admin.Close(ctx)
	name := "gstest_" + randomSuffix()
	create := "CREATE DATABASE " + name
	if migrated {
		create += " TEMPLATE " + template
	}
	if _, err := admin.Exec(ctx, create); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	dbURL, err := withDatabase(base, name)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := migrations.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	return pool, dbURL
}

// Connect opens a pool on dbURL (as another role, say) that closes when t
// ends.
func Connect(t testing.TB, dbURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := migrations.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// RuntimeRole creates a login role of its own (see Role) and grants it on
// the database at dbURL what migrations.GrantRuntime grants, as the role of
// dbURL (its owner). It returns dbURL connecting as that role.
func RuntimeRole(t testing.TB, dbURL string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	role, roleURL := Role(t, dbURL)
	owner, err := migrations.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer owner.Close()
	if err := migrations.GrantRuntime(ctx, owner, role); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return roleURL
}

// Role creates a login role without privileges, named uniquely (roles are
// cluster-wide), and returns its name and dbURL connecting as it. The role
// is dropped with its privileges on that database when t ends, before the
// database is (call New first).
func Role(t testing.TB, dbURL string) (role, roleURL string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	role = "gs_rt_" + randomSuffix()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", dbURL, err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatalf("pgtest: create role: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Errorf("pgtest: drop role %s: %v", role, err)
			return
		}
		defer c.Close(ctx)
		for _, q := range []string{
			"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" + role + "'",
			"DROP OWNED BY " + role,
			"DROP ROLE " + role,
		} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Errorf("pgtest: %s: %v", q, err)
			}
		}
	})
	roleURL, err = withUser(dbURL, role)
	if err != nil {
		t.Fatal(err)
	}
	return role, roleURL
}

// withUser swaps the user in a postgres URL or key=value DSN.
func withUser(base, user string) (string, error) {
	if !strings.Contains(base, "://") {
		return base + " user=" + user, nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("pgtest: parse %s: %w", base, err)
	}
	u.User = url.User(user)
	return u.String(), nil
}

// withDatabase swaps the database name in a postgres URL or key=value DSN.
func withDatabase(base, name string) (string, error) {
	if !strings.Contains(base, "://") {
		return base + " dbname=" + name, nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("pgtest: parse %s: %w", base, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

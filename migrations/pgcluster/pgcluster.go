// Package pgcluster runs a private PostgreSQL cluster in a directory of ours
// with the machine's own initdb and pg_ctl, for dev, demo and tests when no
// --database-url is given. The cluster listens on a Unix socket inside its
// directory (or, when that path is too long for a socket, on a free loopback
// port), is reused on the next start, and is stopped with a fast shutdown.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoBinaries is returned when initdb and pg_ctl cannot be found.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under /usr/lib/postgresql/*/bin; " +
	"install them (Debian/Ubuntu: apt-get install postgresql) or pass --database-url")

// Cluster is a running private cluster.
type Cluster struct {
	dir    string // the cluster's data directory
	binDir string
	url    string
	asUser string // non-empty when commands run as another user (we are root)
	log    *slog.Logger
}

// superuser is the role initdb creates, which URL connects as.
const superuser = "postgres"

// maxSocketPath leaves room for the ".s.PGSQL.NNNNN" suffix within the
// 107-byte sun_path limit.
const maxSocketPath = 90

// Throwaway are server settings for clusters whose data may be lost on a
// crash (tests): no fsync, no full-page writes, asynchronous commit.
var Throwaway = []string{"fsync=off", "full_page_writes=off", "synchronous_commit=off"}

// Start initialises dir (when it holds no cluster yet) and starts the server
// with the given extra settings (name=value). When running as root the server
// runs as the "postgres" user, since initdb refuses root; dir is then handed
// to that user.
func Start(ctx context.Context, dir string, log *slog.Logger, settings ...string) (*Cluster, error) {
	binDir, err := findBinaries()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve postgres dir: %w", err)
	}
	c := &Cluster{dir: dir, binDir: binDir, log: log}
	if os.Geteuid() == 0 {
		c.asUser = "postgres"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create postgres dir %s: %w", dir, err)
	}
	if err := c.handOver(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		log.Info("initialising private PostgreSQL cluster", "dir", dir)
		if out, err := c.run(ctx, "initdb", "-D", dir, "--auth=trust", "--username="+superuser,
			"--encoding=UTF8", "--locale=C", "--no-instructions"); err != nil {
			return nil, fmt.Errorf("initdb %s: %w: %s", dir, err, out)
		}
	}
	opts, err := c.listenOptions()
	if err != nil {
		return nil, err
	}
	for _, kv := range settings {
		opts += " -c " + kv
	}
	logFile := filepath.Join(dir, "server.log")
	if out, err := c.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", dir, "-l", logFile, "-o", opts); err != nil {
		return nil, fmt.Errorf("start private postgres in %s (log: %s): %w: %s", dir, logFile, err, out)
	}
	log.Info("private PostgreSQL started", "dir", dir, "url", c.url)
	return c, nil
}

// URL is a connection string for the cluster's "postgres" database.
func (c *Cluster) URL() string { return c.url }

// URLAs is URL connecting as the role user instead of the superuser.
func (c *Cluster) URLAs(user string) string {
	return strings.Replace(c.url, "postgres://"+superuser+"@", "postgres://"+url.User(user).String()+"@", 1)
}

// Stop shuts the server down (fast mode: open sessions are rolled back).
func (c *Cluster) Stop(ctx context.Context) error {
	if out, err := c.run(ctx, "pg_ctl", "stop", "-w", "-m", "fast", "-D", c.dir); err != nil {
		return fmt.Errorf("stop private postgres: %w: %s", err, out)
	}
	c.log.Info("private PostgreSQL stopped", "dir", c.dir)
	return nil
}

func (c *Cluster) listenOptions() (string, error) {
	sock := filepath.Join(c.dir, "run")
	if len(sock) <= maxSocketPath {
		if err := os.MkdirAll(sock, 0o700); err != nil {
			return "", fmt.Errorf("create socket dir: %w", err)
		}
		if err := c.chown(sock); err != nil {
			return "", err
		}
		c.url = "postgres://" + superuser + "@/postgres?host=" + sock + "&sslmode=disable"
		return "-c listen_addresses='' -k " + sock, nil
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	c.url = fmt.Sprintf("postgres://%s@127.0.0.1:%d/postgres?sslmode=disable", superuser, port)
	return fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k ''", port), nil
}

// handOver gives dir to the server's user and checks that user can reach it.
func (c *Cluster) handOver() error {
	if c.asUser == "" {
		return nil
	}
	if err := c.chown(c.dir); err != nil {
		return err
	}
	for p := filepath.Dir(c.dir); p != "/"; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("the private cluster runs as user %q, which cannot enter %s (mode %v): "+
				"choose a --data-dir outside it or pass --database-url", c.asUser, p, st.Mode().Perm())
		}
	}
	return nil
}

func (c *Cluster) chown(path string) error {
	if c.asUser == "" {
		return nil
	}
	u, err := user.Lookup(c.asUser)
	if err != nil {
		return fmt.Errorf("look up user %q to run postgres as (initdb refuses root): %w", c.asUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func (c *Cluster) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	bin := filepath.Join(c.binDir, tool)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.asUser, "--", bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	// The server must outlive a Ctrl-C aimed at our foreground group: we stop
	// it ourselves, in order, after everything that uses it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return bytes.TrimSpace(out.Bytes()), err
}

func findBinaries() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		d := filepath.Dir(p)
		if isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port for postgres: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

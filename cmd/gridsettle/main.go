package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	_ "time/tzdata" // --market-timezone must work on machines without a zoneinfo database

	"github.com/spf13/cobra"

	"github.com/gridsettle/gridsettle/api"
	"github.com/gridsettle/gridsettle/migrations/pgcluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	m := &Main{Args: os.Args[1:], LookupEnv: os.LookupEnv, Stdout: os.Stdout, Stderr: os.Stderr}
	err := m.Run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gridsettle: "+describe(err))
		os.Exit(1)
	}
}

// Main is the gridsettle program with its inputs made explicit, so that
// tests run it in-process exactly as main does.
type Main struct {
	Args      []string // the command line without the program name
	LookupEnv func(string) (string, bool)
	Stdout    io.Writer
	Stderr    io.Writer
	// Executable is the gridsettle binary that dev starts as its broker
	// child; empty means this process's own executable.
	Executable string
}

// Run executes the command named by m.Args until it finishes or ctx is
// cancelled; a graceful shutdown after cancellation returns nil.
func (m *Main) Run(ctx context.Context) error {
	if err := enableFailpoints(m.LookupEnv, m.Stderr); err != nil {
		return err
	}
	root := m.root()
	root.SetArgs(m.Args)
	root.SetOut(m.Stdout)
	root.SetErr(m.Stderr)
	return root.ExecuteContext(ctx)
}

// root is the command tree: every subcommand is added here.
func (m *Main) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "gridsettle",
		Short: "Exactly-once settlement of smart-meter reads against market prices",
		Long: "gridsettle consumes interval reads and market prices from Kafka, settles each operating day\n" +
			"into versioned statements, account charges and a double-entry ledger in PostgreSQL, and\n" +
			"publishes the results with Kafka transactions. Shared flags also read GRIDSETTLE_<NAME>, a command's own\n" +
			"flags GRIDSETTLE_<COMMAND>_<NAME> (e.g. GRIDSETTLE_IMPORT_VERSION).",
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(
		m.command(&cobra.Command{
			Use:   "broker",
			Short: "Run the embedded Kafka-protocol broker alone, persisted under <data-dir>/kafka",
		}, groupLog|groupDataDir|groupEmbedded|groupTopics, m.runBroker),
		m.command(&cobra.Command{
			Use:   "dev",
			Short: "Run the whole platform on embedded defaults: broker child, private PostgreSQL, all components",
		}, platformGroups|groupEmbedded, m.runDev),
		serveDefaults(m.command(&cobra.Command{
			Use:   "serve",
			Short: "Run the selected components against an external Kafka cluster and PostgreSQL",
		}, platformGroups|groupKafka, m.runServe)),
		m.command(&cobra.Command{
			Use:   "migrate",
			Short: "Apply the database migrations as the schema's owner, grant --runtime-role what the components need, and exit",
		}, groupLog|groupDataDir|groupDatabase|groupRoles, m.runMigrate),
		newRegistryCmd(m),
		newTokenCmd(m),
		newLedgerCmd(m),
		newExportCmd(m),
		newExplainCmd(m),
		newImportCmd(m),
		newSimulateCmd(m),
		newDemoCmd(m),
		newBenchCmd(m),
		newChaosCmd(m),
		newBridgeCmd(m),
		newVersionCmd(),
	)
	return root
}

// serveDefaults gives serve its own defaults: JSON logs, for the log
// collectors of production.
func serveDefaults(c *cobra.Command) *cobra.Command {
	f := c.Flags().Lookup("log-format")
	f.DefValue = "json"
	_ = f.Value.Set("json") // a default, not a change: the environment still wins
	return c
}

// platformGroups are the flags shared by the commands that run components.
const platformGroups = groupLog | groupDataDir | groupDatabase | groupTopics | groupHTTP | groupListen |
	groupExports | groupSigning | groupMarket | groupSettlement | groupIngest | groupComponents | groupMQTT | groupEstimation

// command binds the flags of groups to c and makes it run fn with the
// validated Config and a logger at its level.
func (m *Main) command(c *cobra.Command, groups flagGroup,
	fn func(ctx context.Context, cfg Config, log *slog.Logger) error) *cobra.Command {
	bindFlags(c.Flags(), groups)
	if c.Args == nil {
		c.Args = cobra.NoArgs
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := loadConfig(cmd.Flags(), m.LookupEnv)
		if err != nil {
			return err
		}
		log := newLogger(m.Stderr, cfg)
		return fn(cmd.Context(), cfg, log)
	}
	return c
}

// newLogger is a command's logger: --log-format and --log-level, every
// record logged with a request's context carrying its request_id.
func newLogger(w io.Writer, cfg Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(api.ContextHandler(h))
}

// executable is the binary dev runs as its broker child.
func (m *Main) executable() (string, error) {
	if m.Executable != "" {
		return m.Executable, nil
	}
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the gridsettle executable to start the broker child: %w", err)
	}
	return p, nil
}

// describe turns err into the one line a user reads: the known failures of
// a fresh machine get their fix, never a dump of wrapped internals.
func describe(err error) string {
	if errors.Is(err, pgcluster.ErrNoBinaries) {
		return pgcluster.ErrNoBinaries.Error()
	}
	return strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")
}

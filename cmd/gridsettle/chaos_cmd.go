//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gridsettle/gridsettle/migrations/pgcluster"
)

// chaosFlags are the flags of `gridsettle chaos` besides --log-level; each
// also reads GRIDSETTLE_CHAOS_<NAME>.
var chaosFlags = []string{"duration", "seed", "meters", "days", "dir"}

// newChaosCmd is `gridsettle chaos`: the long mode of the chaos suite
// (settlement/README.md "Exactly-once", "What proves it"), on a private
// PostgreSQL cluster under its scratch dir.
func newChaosCmd(m *Main) *cobra.Command {
	c := &cobra.Command{
		Use:   "chaos",
		Short: "Prove exactly-once under faults: kill, freeze and disconnect workers for --duration, then check everything against an independent oracle",
		Long: "chaos starts one broker, three `serve --components ingest,publish` workers in one consumer group and an API\n" +
			"instance as separate processes, produces a seeded simulated stream and runs settlements while it kills\n" +
			"workers (also at failpoints around every commit), freezes them past the session timeout (also one holding\n" +
			"outbox leases, which the others must take over while it stays frozen), terminates their\n" +
			"database sessions (also right after the input's last commit) and restarts the broker. After every fault,\n" +
			"every input partition must reach lag 0 and the outbox must empty within 30s of the fault's cause going\n" +
			"away. At the end it checks the quarantine, alerts, statements, charges, ledger and every output topic\n" +
			"against settlement/oracle. It fails unless the faults really fired.\n" +
			"It needs the PostgreSQL server binaries (initdb, pg_ctl) and Linux.",
		Args: cobra.NoArgs,
	}
	fs := c.Flags()
	// The market flags set the market the stream is generated for and the
	// workers settle (a half-hour zone such as Australia/Adelaide, say).
	bindFlags(fs, groupLog|groupMarket)
	fs.Duration("duration", 30*time.Minute, "how long to inject faults (env GRIDSETTLE_CHAOS_DURATION)")
	fs.Int64("seed", 1, "`seed` of the workload and of the faults (env GRIDSETTLE_CHAOS_SEED)")
	fs.Int("meters", 200, "`number` of simulated meters (env GRIDSETTLE_CHAOS_METERS)")
	fs.Int("days", 3, "`number` of simulated operating days (env GRIDSETTLE_CHAOS_DAYS)")
	fs.String("dir", "", "scratch `dir` for the broker, PostgreSQL, logs and exports (default: a new temporary dir, removed after a pass) (env GRIDSETTLE_CHAOS_DIR)")
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := applyEnv(cmd, m.LookupEnv, chaosFlags...); err != nil {
			return err
		}
		cfg, err := loadConfig(fs, m.LookupEnv)
		if err != nil {
			return err
		}
		log := newLogger(m.Stderr, cfg)
		duration, _ := fs.GetDuration("duration")
		seed, _ := fs.GetInt64("seed")
		meters, _ := fs.GetInt("meters")
		days, _ := fs.GetInt("days")
		dir, _ := fs.GetString("dir")
		if duration <= 0 {
			return flagError("duration", "", fmt.Errorf("%v is not positive", duration))
		}
		exe, err := m.executable()
		if err != nil {
			return err
		}
		temp := dir == ""
		if temp {
			if dir, err = os.MkdirTemp("", "gridsettle-chaos-"); err != nil {
				return fmt.Errorf("create a scratch dir: %w", err)
			}
		}
		// Run as root, the private cluster runs as postgres, which must
		// be able to enter the dir.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create the scratch dir: %w", err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			return fmt.Errorf("open the scratch dir to the cluster's user: %w", err)
		}
		ctx := cmd.Context()
		cluster, err := pgcluster.Start(ctx, filepath.Join(dir, "postgres"), log)
		if err != nil {
			return err
		}
		defer func() {
			if err := cluster.Stop(ctx); err != nil {
				log.Error("stop private postgres", "err", err)
			}
		}()
		st, err := runChaos(ctx, chaosConfig{Binary: exe, DatabaseURL: cluster.URL(), Dir: dir, Seed: seed,
			Meters: meters, Days: days, Duration: duration, Out: m.Stdout, Market: cfg.Market})
		fmt.Fprint(m.Stdout, st.summary())
		if err != nil {
			fmt.Fprintf(m.Stdout, "chaos FAILED; processes' logs are in %s\n", filepath.Join(dir, "logs"))
			return err
		}
		fmt.Fprintf(m.Stdout, "chaos ok: seed %d, %d faults in %v, every check against the oracle passed\n",
			seed, st.Faults, st.Total.Round(time.Second))
		if temp {
			return os.RemoveAll(dir)
		}
		return nil
	}
	return c
}

// summary is the report of a run: faults that fired and what was measured.
func (st *chaosStats) summary() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("faults: %d episodes; %d SIGKILLs by the harness; failpoint kills %v; failpoint stops %v",
		st.Faults, st.Kills, st.FailpointKills, st.FailpointStops)
	w("        %d zombies frozen past the session timeout (%d seen blocking a new owner on their transaction, %d holding outbox leases); %d database sessions terminated; %d broker restarts; %d runs killed at run-mid",
		st.Zombies, st.LockWaits, st.LeaseHolderStops, st.PGTerminations, st.BrokerRestarts, st.RunMidRetries)
	w("        %d end-of-input cuts, %d of them failing an ingest batch or offset reload", st.EndCuts, st.EndCutHits)
	w("liveness (bound %v): worst time from a fault's cause going away to lag 0 and an empty outbox, per fault kind (episodes): %s",
		livenessBound, st.livenessSummary())
	w("seen:   %d ingest compare-and-set misses; %d ingest batches rolled back; %d offset reloads failed and retried; %d relay sessions ended by an error, %d of them fenced or on a lost lease; %d output records in aborted transactions",
		st.CASMisses, st.BatchFailures, st.ReloadFailures, st.RelayRestarts, st.Fenced, st.AbortedRecords)
	w("load:   %d records produced, %d resent, %d not JSON; runs %s", st.Produced, st.Resent, st.Poison, strings.Join(st.Runs, " "))
	ck := st.Checked
	w("checked against the oracle: %d input records; %d quarantined = dead letters; %d alerts published (%d must, %d may); %d runs: %d statement lines, %d account charges, %d run intervals, %d estimates; %d completeness partitions; %d journal entries; %d output records each once",
		ck.InputRecords, ck.Quarantined, ck.AlertsPublished, ck.AlertsMust, ck.AlertsMay, ck.Runs, ck.StatementLines, ck.Charges,
		ck.Intervals, ck.Estimates, ck.CompletenessInputs, ck.JournalEntries, ck.OutputRecords)
	w("        explanations: %d lines, %d changes compared with the oracle (%v, %v of it in the engine)", ck.ExplainLines,
		ck.ExplainChanges, ck.ExplainTime.Round(time.Millisecond), ck.ExplainEngineTime.Round(time.Millisecond))
	w("time:   setup %v, faults %v, settling %v, quiescence %v, checks %v, total %v",
		st.Setup.Round(time.Millisecond), st.Faulting.Round(time.Millisecond), st.Settling.Round(time.Millisecond),
		st.Quiescence.Round(time.Millisecond), st.Checking.Round(time.Millisecond), st.Total.Round(time.Millisecond))
	return b.String()
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gridsettle/gridsettle/api"
	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
	"github.com/gridsettle/gridsettle/reporting"
	exportpg "github.com/gridsettle/gridsettle/reporting/postgres"
)

// The operator commands that work on the database alone (registry import,
// token create, ledger verify) or on an export folder alone (export verify,
// export public-key). The database ones take --database-url, or else use the
// private cluster under --data-dir as dev does.

const dbGroups = groupLog | groupDataDir | groupDatabase

// dbCommand makes c run fn on a migrated database, with c's positional
// arguments and its own flags (each also read from GRIDSETTLE_<COMMAND>_<NAME>), and
// the flags of groups besides dbGroups.
func (m *Main) dbCommand(c *cobra.Command, groups flagGroup, own []string,
	fn func(ctx context.Context, cfg Config, db *pgxpool.Pool, fs *pflag.FlagSet, args []string) error) *cobra.Command {
	return m.commandArgs(c, dbGroups|groups, own, func(ctx context.Context, cfg Config, log *slog.Logger, args []string) error {
		db, closeDB, err := openDatabase(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer closeDB()
		return fn(ctx, cfg, db, c.Flags(), args)
	})
}

// commandArgs is command for commands with positional arguments and flags
// of their own besides the shared groups.
func (m *Main) commandArgs(c *cobra.Command, groups flagGroup, own []string,
	fn func(ctx context.Context, cfg Config, log *slog.Logger, args []string) error) *cobra.Command {
	bindFlags(c.Flags(), groups)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := applyEnv(cmd, m.LookupEnv, own...); err != nil {
			return err
		}
		cfg, err := loadConfig(cmd.Flags(), m.LookupEnv)
		if err != nil {
			return err
		}
		log := newLogger(m.Stderr, cfg)
		return fn(cmd.Context(), cfg, log, args)
	}
	return c
}

func newRegistryCmd(m *Main) *cobra.Command {
	c := &cobra.Command{Use: "registry", Short: "Manage the registry (participants, settlement points, accounts, meters)"}
	imp := &cobra.Command{
		Use:   "import FILE...",
		Short: "Load registry CSV files (participants.csv, settlement_points.csv, accounts.csv, meters.csv) in one transaction",
		Args:  cobra.MinimumNArgs(1),
	}
	// The market's flags: accounts gaining a threshold or budget get their
	// alert aggregates rebuilt in operating days and settlement intervals.
	c.AddCommand(m.dbCommand(imp, groupMarket, nil, func(ctx context.Context, cfg Config, db *pgxpool.Pool, _ *pflag.FlagSet, files []string) error {
		hook, err := newAlertHook(cfg.Market, nil, nil)
		if err != nil {
			return err
		}
		res, err := registrystore.ImportFiles(ctx, db, hook.SettingsChanged, files...)
		if err != nil {
			var re *registrystore.RowError
			if errors.As(err, &re) {
				return fmt.Errorf("nothing imported: %w", err)
			}
			return err
		}
		for _, t := range registrystore.Tables {
			if n, ok := res[t]; ok && n.Rows > 0 {
				fmt.Fprintf(m.Stdout, "%-18s %d rows: %d inserted, %d updated, %d unchanged\n", t, n.Rows, n.Inserted, n.Updated, n.Unchanged)
			}
		}
		return nil
	}))
	return c
}

func newTokenCmd(m *Main) *cobra.Command {
	c := &cobra.Command{Use: "token", Short: "Manage API tokens"}
	create := &cobra.Command{
		Use:   "create --role ROLE --name NAME",
		Short: "Create an API token; the token is printed once and stored only as a hash",
		Args:  cobra.NoArgs,
	}
	create.Flags().String("role", "", "`role`: analyst, operator, regulator or admin (env GRIDSETTLE_TOKEN_ROLE)")
	create.Flags().String("name", "", "`name` of the token's holder (env GRIDSETTLE_TOKEN_NAME)")
	c.AddCommand(m.dbCommand(create, 0, []string{"role", "name"}, func(ctx context.Context, _ Config, db *pgxpool.Pool, fs *pflag.FlagSet, _ []string) error {
		role, _ := fs.GetString("role")
		name, _ := fs.GetString("name")
		if !slices.Contains(api.AllRoles, api.Role(role)) {
			return flagError("role", "", fmt.Errorf("%q is not analyst, operator, regulator or admin", role))
		}
		if name == "" {
			return flagError("name", "", errors.New("required"))
		}
		tok, err := api.CreateToken(ctx, db, api.Role(role), name)
		if err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		fmt.Fprintf(m.Stdout, "id:    %s\nname:  %s\nrole:  %s\ntoken: %s\n(the token is shown only now)\n", tok.ID, tok.Name, tok.Role, tok.Token)
		return nil
	}))
	return c
}

func newLedgerCmd(m *Main) *cobra.Command {
	c := &cobra.Command{Use: "ledger", Short: "Inspect the double-entry ledger"}
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Recompute the hash chain and balances of every journal entry and check the chain heads exports recorded; exit 1 naming the first bad entry",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(m.dbCommand(verify, 0, nil, func(ctx context.Context, _ Config, db *pgxpool.Pool, _ *pflag.FlagSet, _ []string) error {
		r, err := exportpg.VerifyLedger(ctx, db)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(r)
		fmt.Fprintln(m.Stdout, string(b))
		if !r.OK {
			return fmt.Errorf("ledger does not verify: %w", r.FirstBadEntry)
		}
		return nil
	}))
	return c
}

func newExportCmd(m *Main) *cobra.Command {
	c := &cobra.Command{Use: "export", Short: "Regulatory exports"}
	verify := &cobra.Command{
		Use:   "verify DIR [--public-key FILE]",
		Short: "Verify an export folder offline: signature, hashes, sizes, row counts and control totals",
		Args:  cobra.ExactArgs(1),
	}
	verify.Flags().String("public-key", "", "PEM `file` of the trusted signing key (default: the folder's own key, unauthenticated) (env GRIDSETTLE_EXPORT_PUBLIC_KEY)")
	c.AddCommand(m.commandArgs(verify, groupLog, []string{"public-key"}, func(ctx context.Context, _ Config, _ *slog.Logger, args []string) error {
		key, _ := verify.Flags().GetString("public-key")
		return reporting.VerifyCommand(ctx, m.Stdout, args[0], key)
	}))
	pub := &cobra.Command{
		Use:   "public-key",
		Short: "Print the public key (PEM) that signs export manifests, for regulators to verify with",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(m.commandArgs(pub, groupLog|groupDataDir|groupSigning, nil, func(ctx context.Context, cfg Config, _ *slog.Logger, _ []string) error {
		key, err := reporting.LoadSigningKey(ctx, cfg.SigningKey)
		if err != nil {
			return fmt.Errorf("--signing-key: %w", err)
		}
		_, err = m.Stdout.Write(reporting.PublicKeyPEM(reporting.Config{Key: key}.PublicKey()))
		return err
	}))
	return c
}

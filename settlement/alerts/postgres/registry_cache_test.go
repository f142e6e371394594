package postgres_test

import (
	"context"
	"strings"
	"testing"

	registrystore "github.com/gridsettle/gridsettle/meters/postgres"
)

// applyRegistry applies CSV rows to the registry, with the hook's settings
// changes.
func applyRegistry(t *testing.T, d *db, tables map[registrystore.Table]string) {
	t.Helper()
	var b registrystore.Batch
	for tab, csv := range tables {
		if err := b.AddCSV(tab, string(tab)+".csv", strings.NewReader(csv)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := registrystore.NewRegistry(d.pool, d.hook.SettingsChanged).Apply(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
}

const accountsHeader = "account_id,name,daily_kwh_threshold,monthly_budget,price_alerts\n"

// TestRegistryChangesReachTheNextBatch: the consumer's batches keep the
// registry rows they read (the Applier's and the hook's registry cache);
// a registry change between two batches is seen by the second: a meter
// moved to another account, an account that gains a threshold and a
// budget.
func TestRegistryChangesReachTheNextBatch(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(baseRegistry + `
		INSERT INTO participants VALUES ('RET-B', 'Retailer B');
		INSERT INTO accounts (account_id, name, daily_kwh_threshold) VALUES ('ACC-1', 'one', 100), ('ACC-2', 'two', NULL);
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from) VALUES
			('M1', 'ACC-1', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z'),
			('M2', 'ACC-2', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z')`)
	c.consume(d, "g", 4096)
	c.produce(readRec(0, "M1", "import", "2026-11-10T06:00:00Z", 900, 1, "1"),
		readRec(0, "M2", "import", "2026-11-10T06:00:00Z", 900, 1, "4"))
	c.caughtUp(d)

	// M1 moves to ACC-2 from 12:00 (RET-B); ACC-2 gains a threshold and a
	// budget (its aggregates rebuilt with M2's read).
	applyRegistry(t, d, map[registrystore.Table]string{
		registrystore.Accounts: accountsHeader + "ACC-2,two,100,1000,false\n",
		registrystore.Meters: "meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from,effective_to\n" +
			"M1,ACC-1,RET-A,HB_NORTH,1,2026-01-01T00:00:00Z,2026-11-10T12:00:00Z\n" +
			"M1,ACC-2,RET-B,HB_NORTH,1,2026-11-10T12:00:00Z,\n",
	})
	c.produce(readRec(0, "M1", "import", "2026-11-10T13:00:00Z", 900, 1, "2"),
		readRec(0, "M2", "import", "2026-11-10T13:00:00Z", 900, 1, "8"))
	c.caughtUp(d)

	usage := d.strings(`SELECT account_id || ' ' || sum(import_kwh)::text FROM alert_daily_usage GROUP BY account_id ORDER BY account_id`)
	if got, want := strings.Join(usage, ", "), "ACC-1 1, ACC-2 14"; got != want {
		t.Errorf("daily usage %s, want %s", got, want)
	}
	energy := d.strings(`SELECT DISTINCT account_id FROM alert_energy_blocks ORDER BY 1`)
	if got := strings.Join(energy, ", "); got != "ACC-2" {
		t.Errorf("energy kept for %q, want ACC-2", got)
	}
	positions := d.strings(`SELECT p.participant_id || ' ' || sum(e)::text FROM position_days p, unnest(p.energy_mwh) e GROUP BY p.participant_id ORDER BY 1`)
	if got, want := strings.Join(positions, ", "), "RET-A 0.013000000, RET-B 0.002000000"; got != want {
		t.Errorf("positions %s, want %s", got, want)
	}
}

// TestBatchWaitingForASettingsChangeSeesIt: a batch whose hook waits for a
// registry transaction giving an account a threshold (it holds the scope
// lock exclusively) evaluates that account as the registry left it, though
// the hook read the account without one before: its read joins the rebuilt
// aggregate.
func TestBatchWaitingForASettingsChangeSeesIt(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	d := c.newDB(baseRegistry + `
		INSERT INTO accounts (account_id, name) VALUES ('ACC-Z', 'z');
		INSERT INTO meter_assignments (meter_id, account_id, participant_id, settlement_point, loss_factor, effective_from) VALUES
			('Z1', 'ACC-Z', 'RET-A', 'HB_NORTH', 1, '2026-01-01T00:00:00Z')`)
	warm := begin(t, d.pool)
	warm.reads(t.Context(), d, 0, 0, `{"meter_id":"Z1","start":"2026-11-10T06:15:00Z","interval_seconds":900,"values":["0.7"]}`)
	if ids := warm.fired(t); len(ids) != 0 {
		t.Fatalf("fired %v", ids)
	}
	if err := warm.tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}

	registry := begin(t, d.pool)
	var b registrystore.Batch
	if err := b.AddCSV(registrystore.Accounts, "accounts.csv", strings.NewReader(accountsHeader+"ACC-Z,z,1,,false\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := registrystore.NewRegistry(d.pool, d.hook.SettingsChanged).ApplyTx(t.Context(), registry.tx, &b); err != nil {
		t.Fatal(err)
	}
	got := race(t, d, registry, func(ctx context.Context, b *batchTx) {
		b.reads(ctx, d, 0, 1, `{"meter_id":"Z1","start":"2026-11-10T06:30:00Z","interval_seconds":900,"values":["0.4"]}`)
	})
	equal(t, "after the settings change", got, []string{"daily_usage/ACC-Z/2026-11-10"})
	if got := d.strings(`SELECT sum(import_kwh)::text FROM alert_daily_usage WHERE account_id = 'ACC-Z'`); len(got) != 1 || got[0] != "1.1" {
		t.Errorf("ACC-Z daily usage %v, want [1.1]", got)
	}
}

package postgres

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

func writeFiles(t *testing.T, files map[string]string) []string {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	// Reverse dependency order on purpose: ImportFiles must sort it out.
	for _, name := range []string{"meters.csv", "accounts.csv", "settlement_points.csv", "participants.csv"} {
		body, ok := files[name]
		if !ok {
			continue
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

func TestImportFiles(t *testing.T) {
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	files := map[string]string{
		"participants.csv":      "participant_id,name\nQSE-A,Alpha\nQSE-B,Beta\n",
		"settlement_points.csv": "settlement_point,name,kind\nHB_NORTH,North,hub\n",
		"accounts.csv":          "account_id,name,daily_kwh_threshold,monthly_budget,price_alerts\nACC-1,Ann,30,,true\n",
		"meters.csv": "meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from,effective_to\n" +
			"M-1,ACC-1,QSE-A,HB_NORTH,1.031200,2026-10-01T05:00:00Z,2026-11-01T05:00:00Z\n" +
			"M-1,ACC-1,QSE-B,HB_NORTH,1.031200,2026-11-01T05:00:00Z,\n",
	}
	res, err := ImportFiles(ctx, pool, nil, writeFiles(t, files)...)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Participants: {2, 2, 0, 0}, SettlementPoints: {1, 1, 0, 0}, Accounts: {1, 1, 0, 0}, Meters: {2, 2, 0, 0}}
	for tab, c := range want {
		if res[tab] != c {
			t.Errorf("%s: %+v, want %+v", tab, res[tab], c)
		}
	}
	// Importing the same files again is a no-op.
	if res, err = ImportFiles(ctx, pool, nil, writeFiles(t, files)...); err != nil {
		t.Fatal(err)
	}
	for _, tab := range Tables {
		if res[tab].Unchanged != res[tab].Rows {
			t.Errorf("re-import %s: %+v", tab, res[tab])
		}
	}

	// A bad meters file refuses the whole import, new participants included.
	bad := map[string]string{
		"participants.csv": "participant_id,name\nQSE-C,Gamma\n",
		"meters.csv": "meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from\n" +
			"M-2,ACC-1,QSE-C,HB_NORTH,1,2026-10-01T05:00:00Z\nM-3,ACC-9,QSE-C,HB_NORTH,1,2026-10-01T05:00:00Z\n",
	}
	paths := writeFiles(t, bad)
	_, err = ImportFiles(ctx, pool, nil, paths...)
	var re *RowError
	if !errors.As(err, &re) || re.File != paths[0] || re.Row != 2 || re.Line != 3 || re.Column != "account_id" {
		t.Fatalf("bad import: %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM participants) + (SELECT count(*) FROM meter_assignments)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("%d participants + assignments after a refused import, want 4", n)
	}

	r := NewRegistry(pool, nil)
	as, err := r.Assignments(ctx, AssignmentFilter{MeterID: "M-1"}, 10)
	if err != nil || len(as) != 2 || as[0].ParticipantID != "QSE-A" || as[1].EffectiveTo != nil {
		t.Fatalf("assignments %+v %v", as, err)
	}
	accs, err := r.Accounts(ctx, "", 10)
	if err != nil || len(accs) != 1 || accs[0].DailyKWhThreshold == nil || accs[0].DailyKWhThreshold.String() != "30" || accs[0].MonthlyBudget != nil {
		t.Fatalf("accounts %+v %v", accs, err)
	}
	if _, err := ImportFiles(ctx, pool, nil, filepath.Join(t.TempDir(), "registry.csv")); err == nil {
		t.Error("a file with an unknown name was accepted")
	}
}

// The settings hook hears of exactly the stored accounts whose threshold or
// budget appears or disappears (not of a changed value, a new account or a
// renamed one), and its error rolls the batch back.
func TestSettingsHook(t *testing.T) {
	pool, _ := pgtest.New(t)
	ctx := t.Context()
	header := "account_id,name,daily_kwh_threshold,monthly_budget,price_alerts\n"
	files := map[string]string{"accounts.csv": header +
		"ACC-1,Ann,30,,false\nACC-2,Bob,,,false\nACC-3,Cy,,12.50,false\nACC-4,Di,,,false\n"}
	var heard [][]AlertSettings
	hook := func(_ context.Context, _ pgx.Tx, changes []AlertSettings) error {
		heard = append(heard, changes)
		return nil
	}
	if _, err := ImportFiles(ctx, pool, hook, writeFiles(t, files)...); err != nil {
		t.Fatal(err)
	}
	if len(heard) != 0 {
		t.Fatalf("new accounts reported as toggled: %v", heard)
	}
	// ACC-1 loses its threshold, ACC-2 gains a budget, ACC-3's budget only
	// changes value, ACC-4 is renamed, ACC-5 is new with a threshold.
	files["accounts.csv"] = header + "ACC-1,Ann,,,false\nACC-2,Bob,,99,false\nACC-3,Cy,,20,false\nACC-4,Dee,,,false\nACC-5,Ed,10,,false\n"
	if _, err := ImportFiles(ctx, pool, hook, writeFiles(t, files)...); err != nil {
		t.Fatal(err)
	}
	want := []AlertSettings{{AccountID: "ACC-1"}, {AccountID: "ACC-2", MonthlyBudget: true}}
	if len(heard) != 1 || !slices.Equal(heard[0], want) {
		t.Fatalf("hook heard %v, want [%v]", heard, want)
	}
	refuse := func(context.Context, pgx.Tx, []AlertSettings) error { return errors.New("refused") }
	files["accounts.csv"] = header + "ACC-4,Dee,5,,false\n"
	if _, err := ImportFiles(ctx, pool, refuse, writeFiles(t, files)...); err == nil {
		t.Fatal("a batch whose settings hook failed was applied")
	}
	var thr *string
	if err := pool.QueryRow(ctx, `SELECT daily_kwh_threshold::text FROM accounts WHERE account_id = 'ACC-4'`).Scan(&thr); err != nil || thr != nil {
		t.Fatalf("ACC-4 threshold %v after a rolled-back batch (%v)", thr, err)
	}
}

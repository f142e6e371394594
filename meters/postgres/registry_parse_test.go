package postgres

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
)

func TestAddCSVParsesEveryTable(t *testing.T) {
	var b Batch
	files := map[Table]string{
		Participants:     "\ufeffparticipant_id,name\r\nQSE-A,\"Alpha, Inc.\"\r\n",
		SettlementPoints: "settlement_point,name,kind\nHB_NORTH,North,hub\n\nLZ_WEST,West,zone\n",
		Accounts:         "account_id,name,price_alerts,daily_kwh_threshold\nACC-1,Ann,TRUE,30.5\nACC-2,Bob,,\n",
		Meters: "meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from,effective_to\n" +
			"M-1,ACC-1,QSE-A,HB_NORTH,1.031200,2026-11-01T00:00:00-05:00,\n" +
			"M-2,ACC-2,QSE-A,LZ_WEST, 0.5 ,2026-11-01T05:00:00Z,2026-12-01T06:00:00Z\n",
	}
	for _, tab := range Tables {
		if err := b.AddCSV(tab, tab.File(), strings.NewReader(files[tab])); err != nil {
			t.Fatalf("%s: %v", tab, err)
		}
	}
	if b.Len() != 7 || b.Participants[0].Name != "Alpha, Inc." || b.SettlementPoints[1].Kind != "zone" {
		t.Fatalf("batch %+v", b)
	}
	if !b.Accounts[0].PriceAlerts || b.Accounts[0].DailyKWhThreshold.String() != "30.5" ||
		b.Accounts[1].PriceAlerts || b.Accounts[1].DailyKWhThreshold != nil || b.Accounts[0].MonthlyBudget != nil {
		t.Errorf("accounts %+v %+v", b.Accounts[0], b.Accounts[1])
	}
	m := b.Assignments[0]
	if !m.LossFactor.Equal(decimal.RequireFromString("1.0312")) || m.LossFactor.Exponent() != -6 ||
		!m.EffectiveFrom.Equal(time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC)) || m.EffectiveTo != nil {
		t.Errorf("assignment %+v", m)
	}
	if got := b.at(SettlementPoints, 1); got.Row != 2 || got.Line != 4 {
		t.Errorf("position after a blank line: %+v", got)
	}
	if b.Assignments[1].EffectiveTo == nil || b.Assignments[1].LossFactor.String() != "0.5" {
		t.Errorf("second assignment %+v", b.Assignments[1])
	}
}

// TestDecimalPlacesByValue: a loss factor or threshold has at most 6
// decimal places by value (meters.ParseDecimal): trailing zeros beyond
// them do not count and are dropped, as a read's or a price's are.
func TestDecimalPlacesByValue(t *testing.T) {
	var b Batch
	if err := b.AddCSV(Meters, "", strings.NewReader("meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from\n"+
		"M,A,P,S,1.031200000,2026-11-01T00:00:00Z\n")); err != nil {
		t.Fatal(err)
	}
	if lf := b.Assignments[0].LossFactor; lf.String() != "1.0312" || lf.Exponent() != -6 {
		t.Errorf("loss factor %s (exponent %d), want 1.031200", lf, lf.Exponent())
	}
	if err := b.AddCSV(Accounts, "", strings.NewReader("account_id,name,daily_kwh_threshold\nA,N,30.50000000\n")); err != nil {
		t.Fatal(err)
	}
	if th := b.Accounts[0].DailyKWhThreshold; th.String() != "30.5" || th.Exponent() != -6 {
		t.Errorf("threshold %s (exponent %d), want 30.500000", th, th.Exponent())
	}
}

func TestAddJSONReadsNumbersAsText(t *testing.T) {
	var b Batch
	err := b.AddJSON(Accounts, strings.NewReader(`[
		{"account_id":"A","name":"N","daily_kwh_threshold":0.1000000000000000055511151231257827,"monthly_budget":"99.99","price_alerts":true},
		{"account_id":"B","name":"M","daily_kwh_threshold":null}]`))
	var re *RowError
	if !errors.As(err, &re) || re.Row != 1 || re.Column != "daily_kwh_threshold" {
		t.Fatalf("a number with more than 6 decimals: %v", err)
	}
	b = Batch{}
	if err := b.AddJSON(Accounts, strings.NewReader(`[{"account_id":"A","name":"N","daily_kwh_threshold":0.1,"monthly_budget":"99.99","price_alerts":true}]`)); err != nil {
		t.Fatal(err)
	}
	if b.Accounts[0].DailyKWhThreshold.String() != "0.1" || b.Accounts[0].MonthlyBudget.String() != "99.99" {
		t.Errorf("%+v", b.Accounts[0])
	}
}

func TestRowErrors(t *testing.T) {
	const mh = "meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from\n"
	cases := []struct {
		table         Table
		body          string
		row, line     int
		column, words string
	}{
		{Meters, mh + "M,A,P,S,0,2026-11-01T00:00:00Z\n", 1, 2, "loss_factor", "outside (0, 2]"},
		{Meters, mh + "M,A,P,S,2.000001,2026-11-01T00:00:00Z\n", 1, 2, "loss_factor", "outside (0, 2]"},
		{Meters, mh + "M,A,P,S,-1,2026-11-01T00:00:00Z\n", 1, 2, "loss_factor", "not a decimal"},
		{Meters, mh + "M,A,P,S,1e0,2026-11-01T00:00:00Z\n", 1, 2, "loss_factor", "not a decimal"},
		{Meters, mh + "M,A,P,S,NaN,2026-11-01T00:00:00Z\n", 1, 2, "loss_factor", "not a decimal"},
		{Meters, mh + "M,A,P,S,1.1234567,2026-11-01T00:00:00Z\n", 1, 2, "loss_factor", "more than 6 decimals"},
		{Meters, mh + "M,A,P,S,1.12345670,2026-11-01T00:00:00Z\n", 1, 2, "loss_factor", "more than 6 decimals"},
		{Meters, mh + "M,A,P,S,1,\n", 1, 2, "effective_from", "required"},
		{Meters, mh + "M,A,P,,1,2026-11-01T00:00:00Z\n", 1, 2, "settlement_point", "required"},
		{Meters, "meter_id\nM\n", 0, 1, "account_id", "required column missing"},
		{Accounts, "account_id,name,monthly_budget\nA,N,0\n", 1, 2, "monthly_budget", "greater than 0"},
		{Participants, "participant_id,name,name\nP,N,N\n", 0, 1, "name", "twice"},
		{Participants, "participant_id,name\nP,\"unterminated\n", 1, 2, "", "quote"},
		{Participants, "", 0, 1, "", "header"},
		{Participants, "participant_id,name\nP," + strings.Repeat("x", 201) + "\n", 1, 2, "name", "longer"},
		{Participants, "participant_id,name\nP,\xff\n", 1, 2, "name", "UTF-8"},
	}
	for _, c := range cases {
		var b Batch
		err := b.AddCSV(c.table, "f.csv", strings.NewReader(c.body))
		var re *RowError
		if !errors.As(err, &re) {
			t.Errorf("%q: %v, want a RowError", c.body, err)
			continue
		}
		if re.Row != c.row || re.Line != c.line || re.Column != c.column || !strings.Contains(re.Error(), c.words) {
			t.Errorf("%q: %+v (%v), want row %d line %d column %q mentioning %q", c.body, re, re, c.row, c.line, c.column, c.words)
		}
		if !strings.HasPrefix(re.Error(), "f.csv ") {
			t.Errorf("error does not name the file: %v", re)
		}
	}
}

func TestBatchCheck(t *testing.T) {
	const mh = "meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from,effective_to\n"
	cases := []struct {
		body     string
		row      int
		conflict bool
	}{
		{mh + "M,A,P,S,1,2026-11-01T00:00:00Z,2026-11-02T00:00:00Z\nM,A,P,S,1,2026-11-02T00:00:00Z,\n", 0, false}, // touching is fine
		{mh + "M,A,P,S,1,2026-11-03T00:00:00Z,\nM,A,P,S,1,2026-11-01T00:00:00Z,2026-11-04T00:00:00Z\n", 2, true},
		{mh + "M,A,P,S,1,2026-11-01T00:00:00Z,\nN,A,P,S,1,2026-11-01T00:00:00Z,\nM,A,P,S,1,2026-11-01T00:00:00Z,\n", 3, true},
	}
	for _, c := range cases {
		var b Batch
		if err := b.AddCSV(Meters, "", strings.NewReader(c.body)); err != nil {
			t.Fatal(err)
		}
		err := b.check()
		var re *RowError
		switch {
		case c.row == 0 && err != nil:
			t.Errorf("%q: %v", c.body, err)
		case c.row != 0 && (!errors.As(err, &re) || re.Row != c.row || re.Conflict != c.conflict):
			t.Errorf("%q: %v, want row %d conflict %v", c.body, err, c.row, c.conflict)
		}
	}
}

func TestTableOfFile(t *testing.T) {
	for path, want := range map[string]Table{
		"/data/participants.csv": Participants, "settlement_points.csv": SettlementPoints,
		"x/accounts.csv": Accounts, "meters.csv": Meters,
	} {
		if got, err := TableOfFile(path); err != nil || got != want {
			t.Errorf("%s: %v %v", path, got, err)
		}
	}
	if _, err := TableOfFile("meters.txt"); err == nil {
		t.Error("meters.txt accepted")
	}
}

// FuzzAddCSV: parsing never panics, and every accepted assignment satisfies
// the registry's rules exactly.
func FuzzAddCSV(f *testing.F) {
	f.Add("meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from,effective_to\nM,A,P,S,1.5,2026-11-01T00:00:00Z,\n")
	f.Add("meter_id,account_id,participant_id,settlement_point,loss_factor,effective_from\nM,A,P,S,2.0000000,2026-11-01T00:00:00+14:00\n")
	f.Add("loss_factor\n\"\n")
	f.Fuzz(func(t *testing.T, body string) {
		var b Batch
		if err := b.AddCSV(Meters, "", strings.NewReader(body)); err != nil {
			var re *RowError
			if !errors.As(err, &re) {
				t.Fatalf("non-row error %v", err)
			}
			return
		}
		for _, a := range b.Assignments {
			if !a.LossFactor.IsPositive() || a.LossFactor.GreaterThan(decimal.NewFromInt(2)) || a.LossFactor.Exponent() < -6 {
				t.Fatalf("accepted loss factor %s", a.LossFactor)
			}
			for _, id := range []string{a.MeterID, a.AccountID, a.ParticipantID, a.SettlementPoint} {
				if !meters.ValidIdentifier(id) {
					t.Fatalf("accepted identifier %q", id)
				}
			}
			if a.EffectiveTo != nil && !a.EffectiveTo.After(a.EffectiveFrom) {
				t.Fatalf("accepted empty span %v", a)
			}
		}
		_ = b.check()
	})
}

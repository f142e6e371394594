package oracle

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Registry is the reference data the oracle reads, parsed from the CSV
// files of settlement/README.md "Reference data".
type Registry struct {
	Participants map[string]bool
	Points       map[string]bool
	Accounts     map[string]Account
	Meters       map[string][]Assignment // per meter, ordered by From
}

// Account is one row of accounts.csv.
type Account struct {
	ID                string
	DailyKWhThreshold *decimal.Decimal // nil: none
	MonthlyBudget     *decimal.Decimal // nil: none
	PriceAlerts       bool
}

// Assignment is one row of meters.csv: over [From, To) the meter serves
// AccountID and is settled with ParticipantID at SettlementPoint.
type Assignment struct {
	MeterID         string
	AccountID       string
	ParticipantID   string
	SettlementPoint string
	LossFactor      decimal.Decimal
	From            time.Time
	To              time.Time // zero: open-ended
}

// covers reports whether a is in force at unix second t (half-open).
func (a Assignment) covers(t int64) bool {
	return a.From.Unix() <= t && (a.To.IsZero() || t < a.To.Unix())
}

// overlaps reports whether a is in force at some instant of [from, to).
func (a Assignment) overlaps(from, to int64) bool {
	return a.From.Unix() < to && (a.To.IsZero() || a.To.Unix() > from)
}

// assignment is the index in r.Meters[meter] of the assignment covering t,
// or -1.
func (r *Registry) assignment(meter string, t int64) int {
	for i, a := range r.Meters[meter] {
		if a.covers(t) {
			return i
		}
	}
	return -1
}

// ReadRegistry parses participants.csv, settlement_points.csv, accounts.csv
// and meters.csv from fsys (os.DirFS of a registry folder). Columns are
// found by their header names.
func ReadRegistry(fsys fs.FS) (*Registry, error) {
	r := &Registry{
		Participants: map[string]bool{},
		Points:       map[string]bool{},
		Accounts:     map[string]Account{},
		Meters:       map[string][]Assignment{},
	}
	err := eachRow(fsys, "participants.csv", []string{"participant_id"}, func(row map[string]string) error {
		r.Participants[row["participant_id"]] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachRow(fsys, "settlement_points.csv", []string{"settlement_point"}, func(row map[string]string) error {
		r.Points[row["settlement_point"]] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachRow(fsys, "accounts.csv", []string{"account_id", "daily_kwh_threshold", "monthly_budget", "price_alerts"},
		func(row map[string]string) error {
			a := Account{ID: row["account_id"]}
			var err error
			if a.DailyKWhThreshold, err = optionalDecimal(row["daily_kwh_threshold"]); err != nil {
				return fmt.Errorf("daily_kwh_threshold: %w", err)
			}
			if a.MonthlyBudget, err = optionalDecimal(row["monthly_budget"]); err != nil {
				return fmt.Errorf("monthly_budget: %w", err)
			}
			if a.PriceAlerts, err = strconv.ParseBool(row["price_alerts"]); err != nil {
				return fmt.Errorf("price_alerts: %q is not true or false", row["price_alerts"])
			}
			r.Accounts[a.ID] = a
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = eachRow(fsys, "meters.csv",
		[]string{"meter_id", "account_id", "participant_id", "settlement_point", "loss_factor", "effective_from", "effective_to"},
		func(row map[string]string) error {
			a := Assignment{MeterID: row["meter_id"], AccountID: row["account_id"],
				ParticipantID: row["participant_id"], SettlementPoint: row["settlement_point"]}
			var err error
			if a.LossFactor, err = decimal.NewFromString(row["loss_factor"]); err != nil {
				return fmt.Errorf("loss_factor: %w", err)
			}
			if a.From, err = time.Parse(time.RFC3339, row["effective_from"]); err != nil {
				return fmt.Errorf("effective_from: %w", err)
			}
			if to := row["effective_to"]; to != "" {
				if a.To, err = time.Parse(time.RFC3339, to); err != nil {
					return fmt.Errorf("effective_to: %w", err)
				}
			}
			r.Meters[a.MeterID] = append(r.Meters[a.MeterID], a)
			return nil
		})
	if err != nil {
		return nil, err
	}
	for _, as := range r.Meters {
		slices.SortFunc(as, func(a, b Assignment) int { return a.From.Compare(b.From) })
	}
	return r, nil
}

func optionalDecimal(s string) (*decimal.Decimal, error) {
	if s == "" {
		return nil, nil
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// eachRow calls fn with every data row of the CSV file name, keyed by
// header; required columns must be in the header.
func eachRow(fsys fs.FS, name string, required []string, fn func(map[string]string) error) error {
	f, err := fsys.Open(name)
	if err != nil {
		return fmt.Errorf("oracle registry: %w", err)
	}
	defer f.Close()
	cr := csv.NewReader(f)
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("oracle registry %s: header: %w", name, err)
	}
	for _, c := range required {
		if !slices.Contains(header, c) {
			return fmt.Errorf("oracle registry %s: no column %s", name, c)
		}
	}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("oracle registry %s: %w", name, err)
		}
		row := map[string]string{}
		for i, c := range header {
			row[c] = strings.TrimSpace(rec[i])
		}
		if err := fn(row); err != nil {
			return fmt.Errorf("oracle registry %s line %d: %w", name, line, err)
		}
	}
}

package postgres

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
)

// Table is a registry table, named as in its CSV file (settlement/README.md
// "Reference data").
type Table string

// The registry tables, in dependency order.
const (
	Participants     Table = "participants"
	SettlementPoints Table = "settlement_points"
	Accounts         Table = "accounts"
	Meters           Table = "meters"
)

// Tables lists the registry tables in the order they are applied.
var Tables = []Table{Participants, SettlementPoints, Accounts, Meters}

// columns of each table's CSV file; required ones first, in contract order.
var columns = map[Table]struct{ required, optional []string }{
	Participants:     {[]string{"participant_id", "name"}, nil},
	SettlementPoints: {[]string{"settlement_point", "name", "kind"}, nil},
	Accounts:         {[]string{"account_id", "name"}, []string{"daily_kwh_threshold", "monthly_budget", "price_alerts"}},
	Meters: {[]string{"meter_id", "account_id", "participant_id", "settlement_point", "loss_factor", "effective_from"},
		[]string{"effective_to"}},
}

// Columns are the table's CSV columns in contract order.
func (t Table) Columns() []string {
	c := columns[t]
	return append(slices.Clone(c.required), c.optional...)
}

// File is the table's CSV file name, e.g. settlement_points.csv.
func (t Table) File() string { return string(t) + ".csv" }

// TableOfFile says which table a registry CSV file loads, from its base
// name (participants.csv, settlement_points.csv, accounts.csv, meters.csv).
func TableOfFile(path string) (Table, error) {
	base := filepath.Base(path)
	for _, t := range Tables {
		if base == t.File() {
			return t, nil
		}
	}
	return "", fmt.Errorf("registry file %s: the name must be one of participants.csv, settlement_points.csv, accounts.csv, meters.csv", path)
}

// RowError is a registry row that cannot be applied: malformed, or (with
// Conflict) colliding with other rows or the stored registry.
type RowError struct {
	File     string // file name; "" for a request body
	Row      int    // 1-based data row; 0 for the header
	Line     int    // CSV line; 0 for JSON
	Column   string
	Conflict bool
	Msg      string
}

func (e *RowError) Error() string {
	var where []string
	if e.File != "" {
		where = append(where, e.File)
	}
	switch {
	case e.Row > 0 && e.Line > 0:
		where = append(where, fmt.Sprintf("row %d (line %d)", e.Row, e.Line))
	case e.Row > 0:
		where = append(where, fmt.Sprintf("row %d", e.Row))
	case e.Line > 0:
		where = append(where, fmt.Sprintf("header (line %d)", e.Line))
	}
	loc := strings.Join(where, " ")
	if e.Column != "" {
		loc += ", column " + e.Column
	}
	if loc == "" {
		return e.Msg
	}
	return strings.TrimPrefix(loc, ", ") + ": " + e.Msg
}

// Pos is where a row came from, for errors found later (e.g. an overlap).
type Pos struct {
	File string
	Row  int
	Line int
}

func (p Pos) errorf(column string, conflict bool, format string, args ...any) *RowError {
	return &RowError{File: p.File, Row: p.Row, Line: p.Line, Column: column, Conflict: conflict, Msg: fmt.Sprintf(format, args...)}
}

// Batch is a set of registry rows applied together (Registry.Apply): all of
// them or none.
type Batch struct {
	Participants     []meters.Participant
	SettlementPoints []meters.SettlementPoint
	Accounts         []meters.Account
	Assignments      []meters.Assignment
	pos              map[Table][]Pos
}

// Len is the number of rows in the batch.
func (b *Batch) Len() int {
	return len(b.Participants) + len(b.SettlementPoints) + len(b.Accounts) + len(b.Assignments)
}

func (b *Batch) at(t Table, i int) Pos { return b.pos[t][i] }

// record is one raw row: column -> text ("" for blank or null).
type record struct {
	pos    Pos
	values map[string]string
}

// AddCSV parses a registry CSV (header row, UTF-8, comma) of table t and
// adds its rows. file names the source in errors ("" for a request body).
func (b *Batch) AddCSV(t Table, file string, r io.Reader) error {
	if _, ok := columns[t]; !ok {
		return fmt.Errorf("unknown registry table %q", t)
	}
	cr := csv.NewReader(r)
	cr.ReuseRecord = false
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return &RowError{File: file, Line: 1, Msg: "empty file: expected a header row " + strings.Join(t.Columns(), ",")}
	}
	if err != nil {
		return csvError(file, 0, err)
	}
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	for i := range header {
		header[i] = strings.TrimSpace(header[i])
	}
	if err := checkHeader(t, header, func(col string) *RowError {
		return &RowError{File: file, Line: 1, Column: col}
	}); err != nil {
		return err
	}
	var recs []record
	for row := 1; ; row++ {
		fields, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return csvError(file, row, err)
		}
		line, _ := cr.FieldPos(0)
		rec := record{pos: Pos{File: file, Row: row, Line: line}, values: map[string]string{}}
		for i, v := range fields {
			rec.values[header[i]] = strings.TrimSpace(v)
		}
		recs = append(recs, rec)
	}
	return b.add(t, recs)
}

func checkHeader(t Table, header []string, at func(col string) *RowError) error {
	cols := columns[t]
	seen := map[string]bool{}
	for _, h := range header {
		if !slices.Contains(cols.required, h) && !slices.Contains(cols.optional, h) {
			e := at(h)
			e.Msg = fmt.Sprintf("unknown column; %s has %s", t.File(), strings.Join(t.Columns(), ","))
			return e
		}
		if seen[h] {
			e := at(h)
			e.Msg = "column given twice"
			return e
		}
		seen[h] = true
	}
	for _, c := range cols.required {
		if !seen[c] {
			e := at(c)
			e.Msg = "required column missing"
			return e
		}
	}
	return nil
}

func csvError(file string, row int, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		msg := pe.Err.Error()
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			msg = "wrong number of fields (every row must have one per header column)"
		}
		return &RowError{File: file, Row: row, Line: pe.Line, Msg: msg}
	}
	return fmt.Errorf("read %s: %w", file, err)
}

// AddJSON parses a JSON array of objects whose fields are table t's columns
// (numbers may be JSON numbers or strings; they are read as text, never as
// floats) and adds its rows. Rows are numbered from 1.
func (b *Batch) AddJSON(t Table, r io.Reader) error {
	if _, ok := columns[t]; !ok {
		return fmt.Errorf("unknown registry table %q", t)
	}
	dec := json.NewDecoder(r)
	dec.UseNumber()
	var raw []map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return &RowError{Msg: fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, err)}
		case errors.As(err, &typ), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return &RowError{Msg: "the body must be a JSON array of objects with the columns " + strings.Join(t.Columns(), ", ")}
		}
		return fmt.Errorf("read registry JSON: %w", err)
	}
	if dec.More() {
		return &RowError{Msg: "the body must hold one JSON array"}
	}
	cols := columns[t]
	recs := make([]record, len(raw))
	for i, obj := range raw {
		rec := record{pos: Pos{Row: i + 1}, values: map[string]string{}}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if !slices.Contains(cols.required, k) && !slices.Contains(cols.optional, k) {
				return rec.pos.errorf(k, false, "unknown field; %s rows have %s", t, strings.Join(t.Columns(), ", "))
			}
			v, err := jsonText(obj[k])
			if err != nil {
				return rec.pos.errorf(k, false, "%v", err)
			}
			rec.values[k] = strings.TrimSpace(v)
		}
		recs[i] = rec
	}
	return b.add(t, recs)
}

// jsonText is a scalar JSON value as text: strings unquoted, numbers as
// written, true/false, null as "".
func jsonText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("malformed string")
		}
		return s, nil
	case raw[0] == '{' || raw[0] == '[':
		return "", fmt.Errorf("must be a string, number or boolean")
	}
	return string(raw), nil
}

var (
	unsignedDec = regexp.MustCompile(`^[0-9]{1,15}(\.[0-9]+)?$`)
)

const maxNameLen = 200

// add validates every record and appends the typed rows; the first bad value
// is reported with its row and column.
func (b *Batch) add(t Table, recs []record) error {
	if b.pos == nil {
		b.pos = map[Table][]Pos{}
	}
	for _, rec := range recs {
		p := rowParser{rec: rec}
		switch t {
		case Participants:
			v := meters.Participant{ParticipantID: p.id("participant_id"), Name: p.name("name")}
			if p.err != nil {
				return p.err
			}
			b.Participants = append(b.Participants, v)
		case SettlementPoints:
			v := meters.SettlementPoint{SettlementPoint: p.id("settlement_point"), Name: p.name("name"),
				Kind: p.enum("kind", "hub", "zone", "node")}
			if p.err != nil {
				return p.err
			}
			b.SettlementPoints = append(b.SettlementPoints, v)
		case Accounts:
			v := meters.Account{AccountID: p.id("account_id"), Name: p.name("name"),
				DailyKWhThreshold: p.positive("daily_kwh_threshold", 6), MonthlyBudget: p.positive("monthly_budget", 6),
				PriceAlerts: p.boolean("price_alerts")}
			if p.err != nil {
				return p.err
			}
			b.Accounts = append(b.Accounts, v)
		case Meters:
			v := meters.Assignment{MeterID: p.id("meter_id"), AccountID: p.id("account_id"),
				ParticipantID: p.id("participant_id"), SettlementPoint: p.id("settlement_point"),
				LossFactor: p.lossFactor("loss_factor"), EffectiveFrom: p.instant("effective_from"),
				EffectiveTo: p.optInstant("effective_to")}
			if p.err == nil && v.EffectiveTo != nil && !v.EffectiveTo.After(v.EffectiveFrom) {
				p.fail("effective_to", "must be after effective_from")
			}
			if p.err != nil {
				return p.err
			}
			b.Assignments = append(b.Assignments, v)
		}
		b.pos[t] = append(b.pos[t], rec.pos)
	}
	return nil
}

// rowParser reads typed values from a record, keeping the first error.
type rowParser struct {
	rec record
	err *RowError
}

func (p *rowParser) fail(col, format string, args ...any) {
	if p.err == nil {
		p.err = p.rec.pos.errorf(col, false, format, args...)
	}
}

func (p *rowParser) text(col string, required bool) string {
	v := p.rec.values[col]
	if v == "" && required {
		p.fail(col, "required")
	}
	if !utf8.ValidString(v) {
		p.fail(col, "not valid UTF-8")
	}
	return v
}

func (p *rowParser) id(col string) string {
	v := p.text(col, true)
	if v != "" && !meters.ValidIdentifier(v) {
		p.fail(col, "%q is not an identifier ([A-Za-z0-9._:-], 1 to 64 characters)", v)
	}
	return v
}

func (p *rowParser) name(col string) string {
	v := p.text(col, true)
	if utf8.RuneCountInString(v) > maxNameLen {
		p.fail(col, "longer than %d characters", maxNameLen)
	}
	return v
}

func (p *rowParser) enum(col string, allowed ...string) string {
	v := p.text(col, true)
	if v != "" && !slices.Contains(allowed, v) {
		p.fail(col, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	return v
}

func (p *rowParser) boolean(col string) bool {
	switch v := p.text(col, false); strings.ToLower(v) {
	case "", "false":
		return false
	case "true":
		return true
	default:
		p.fail(col, "%q is not true or false", v)
		return false
	}
}

// decimal parses an exact unsigned decimal with at most places decimals by
// value (meters.ParseDecimal: trailing zeros do not count); unsignedDec
// narrows the syntax to no sign and at most 15 integer digits.
func (p *rowParser) decimal(col, v string, places int) decimal.Decimal {
	if !unsignedDec.MatchString(v) {
		p.fail(col, "%q is not a decimal number such as 12.5", v)
		return decimal.Decimal{}
	}
	d, err := meters.ParseDecimal(v, places)
	if err != nil {
		// unsignedDec admits only plain notation: the places are the fault.
		p.fail(col, "%q has more than %d decimals", v, places)
	}
	return d
}

func (p *rowParser) positive(col string, places int) *decimal.Decimal {
	v := p.text(col, false)
	if v == "" {
		return nil
	}
	d := p.decimal(col, v, places)
	if p.err == nil && !d.IsPositive() {
		p.fail(col, "must be greater than 0 (leave it blank for none)")
	}
	return &d
}

var two = decimal.NewFromInt(2)

func (p *rowParser) lossFactor(col string) decimal.Decimal {
	v := p.text(col, true)
	if v == "" {
		return decimal.Decimal{}
	}
	d := p.decimal(col, v, 6)
	if p.err == nil && (!d.IsPositive() || d.GreaterThan(two)) {
		p.fail(col, "%s is outside (0, 2]", v)
	}
	return d
}

func (p *rowParser) instant(col string) time.Time {
	v := p.text(col, true)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		p.fail(col, "%q is not an RFC 3339 instant such as 2026-11-01T00:00:00-05:00", v)
	}
	return t.UTC()
}

func (p *rowParser) optInstant(col string) *time.Time {
	if p.rec.values[col] == "" {
		return nil
	}
	t := p.instant(col)
	return &t
}

// check finds conflicts inside the batch: an id given twice, or two
// assignments of one meter that overlap.
func (b *Batch) check() error {
	dup := func(t Table, ids []string, col string) error {
		first := map[string]int{}
		for i, id := range ids {
			if j, ok := first[id]; ok {
				return b.at(t, i).errorf(col, false, "%s %q is also in row %d", col, id, b.at(t, j).Row)
			}
			first[id] = i
		}
		return nil
	}
	ids := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	if err := dup(Participants, ids(len(b.Participants), func(i int) string { return b.Participants[i].ParticipantID }), "participant_id"); err != nil {
		return err
	}
	if err := dup(SettlementPoints, ids(len(b.SettlementPoints), func(i int) string { return b.SettlementPoints[i].SettlementPoint }), "settlement_point"); err != nil {
		return err
	}
	if err := dup(Accounts, ids(len(b.Accounts), func(i int) string { return b.Accounts[i].AccountID }), "account_id"); err != nil {
		return err
	}
	order := make([]int, len(b.Assignments))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(x, y int) int {
		a, c := b.Assignments[x], b.Assignments[y]
		if n := strings.Compare(a.MeterID, c.MeterID); n != 0 {
			return n
		}
		return a.EffectiveFrom.Compare(c.EffectiveFrom)
	})
	for k := 1; k < len(order); k++ {
		prev, cur := b.Assignments[order[k-1]], b.Assignments[order[k]]
		if prev.MeterID == cur.MeterID && (prev.EffectiveTo == nil || prev.EffectiveTo.After(cur.EffectiveFrom)) {
			i, j := order[k], order[k-1]
			if b.at(Meters, j).Row > b.at(Meters, i).Row {
				i, j = j, i
			}
			return b.at(Meters, i).errorf("effective_from", true,
				"assignment of meter %s overlaps the one in row %d (assignments of a meter must not overlap)",
				cur.MeterID, b.at(Meters, j).Row)
		}
	}
	return nil
}

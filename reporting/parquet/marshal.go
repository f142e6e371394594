package parquet

import (
	"fmt"

	"github.com/xitongsys/parquet-go/common"
	"github.com/xitongsys/parquet-go/layout"
	"github.com/xitongsys/parquet-go/schema"
)

// columnar is a record that appends its values to the column tables of its
// flat schema, in field order.
type columnar interface {
	appendTo(cols []*layout.Table)
}

// marshalColumns replaces the library's reflective Marshal (which walks
// every value as a tree node and grows each column from empty) for our
// flat records: it sizes each column once and appends the records' values
// directly. It yields the same tables, so the same bytes (the golden files
// hold this).
func marshalColumns(src []any, sh *schema.SchemaHandler) (*map[string]*layout.Table, error) {
	tables := map[string]*layout.Table{}
	var cols []*layout.Table
	for i, e := range sh.SchemaElements {
		if e.GetNumChildren() > 0 {
			continue
		}
		path := sh.IndexMap[int32(i)]
		t := layout.NewEmptyTable()
		t.Path = common.StrToPath(path)
		t.MaxDefinitionLevel, _ = sh.MaxDefinitionLevel(t.Path)
		t.RepetitionType = e.GetRepetitionType()
		t.Schema = e
		t.Info = sh.Infos[i]
		t.Values = make([]any, 0, len(src))
		t.DefinitionLevels = make([]int32, 0, len(src))
		t.RepetitionLevels = make([]int32, len(src)) // flat: always 0
		tables[path] = t
		cols = append(cols, t)
	}
	for _, r := range src {
		c, ok := r.(columnar)
		if !ok {
			return nil, fmt.Errorf("marshal %T: not a flat export record", r)
		}
		c.appendTo(cols)
	}
	return &tables, nil
}

// required appends a value of a REQUIRED column.
func required(t *layout.Table, v any) {
	t.Values = append(t.Values, v)
	t.DefinitionLevels = append(t.DefinitionLevels, 0)
}

// requiredText appends a value of a REQUIRED text column, reusing the previous
// row's interface value when the text is the same: rows in natural-key
// order repeat their keys (participant and point over an interval row's
// 96 or so intervals), and boxing a string allocates.
func requiredText(t *layout.Table, v string) {
	if n := len(t.Values); n > 0 {
		if prev, ok := t.Values[n-1].(string); ok && prev == v {
			required(t, t.Values[n-1])
			return
		}
	}
	required(t, v)
}

// optional appends a value of an OPTIONAL column: nil is a null.
func optional[T any](t *layout.Table, v *T) {
	if v == nil {
		t.Values = append(t.Values, nil)
		t.DefinitionLevels = append(t.DefinitionLevels, 0)
		return
	}
	t.Values = append(t.Values, *v)
	t.DefinitionLevels = append(t.DefinitionLevels, 1)
}

func (r statementRecord) appendTo(c []*layout.Table) {
	r.v1().appendTo(c)
	required(c[14], r.EstimatedEnergyMWh)
}

func (r statementRecordV1) appendTo(c []*layout.Table) {
	requiredText(c[0], r.StatementID)
	requiredText(c[1], r.ParticipantID)
	requiredText(c[2], r.SettlementPoint)
	required(c[3], r.OperatingDay)
	requiredText(c[4], r.RunType)
	required(c[5], r.Version)
	requiredText(c[6], r.Currency)
	required(c[7], r.EnergyMWh)
	required(c[8], r.UnpricedEnergyMWh)
	required(c[9], r.Amount)
	required(c[10], r.PreviousAmount)
	required(c[11], r.DeltaAmount)
	required(c[12], r.Intervals)
	required(c[13], r.PricedIntervals)
}

func (r intervalRecord) appendTo(c []*layout.Table) {
	r.v1().appendTo(c)
	required(c[8], r.GridsettleEstimatedReads)
	required(c[9], r.EstimatedEnergyMWh)
}

func (r intervalRecordV1) appendTo(c []*layout.Table) {
	requiredText(c[0], r.ParticipantID)
	requiredText(c[1], r.SettlementPoint)
	required(c[2], r.IntervalStart)
	required(c[3], r.EnergyMWh)
	optional(c[4], r.Price)
	optional(c[5], r.Amount)
	required(c[6], r.ActualReads)
	required(c[7], r.EstimatedReads)
}

func (r ledgerRecord) appendTo(c []*layout.Table) {
	required(c[0], r.EntryID)
	requiredText(c[1], r.EntryKey)
	requiredText(c[2], r.Account)
	required(c[3], r.Amount)
	requiredText(c[4], r.Currency)
	required(c[5], r.EffectiveDate)
	required(c[6], r.PostedAt)
	requiredText(c[7], r.EntryHash)
}

func (r estimateRecord) appendTo(c []*layout.Table) {
	requiredText(c[0], r.MeterID)
	requiredText(c[1], r.Channel)
	required(c[2], r.IntervalStart)
	required(c[3], r.IntervalSeconds)
	required(c[4], r.ValueKWh)
	requiredText(c[5], r.Method)
	requiredText(c[6], r.AccountID)
	requiredText(c[7], r.ParticipantID)
	requiredText(c[8], r.SettlementPoint)
	required(c[9], r.LossFactor)
}

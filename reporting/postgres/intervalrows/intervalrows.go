package intervalrows

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/reporting/parquet"
)

// Querier is what reading rows needs: a pool, a connection or a
// transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Line narrows Stream to one statement line of the run.
type Line struct {
	ParticipantID   string
	SettlementPoint string
}

// Stream calls fn with each interval row of run runID (of line only, when
// line is not nil) in natural-key order, as it is read.
func Stream(ctx context.Context, q Querier, runID string, line *Line, fn func(parquet.Interval) error) error {
	query := `
		SELECT participant_id, settlement_point, interval_start, energy_mwh, price, amount, actual_reads, estimated_reads,
		       gridsettle_estimated_reads, estimated_energy_mwh
		FROM run_intervals WHERE run_id = $1`
	args := []any{runID}
	if line != nil {
		query += ` AND participant_id = $2 AND settlement_point = $3`
		args = append(args, line.ParticipantID, line.SettlementPoint)
	}
	query += ` ORDER BY participant_id COLLATE "C", settlement_point COLLATE "C", interval_start`
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("read run intervals: %w", err)
	}
	defer rows.Close()
	var prev parquet.Interval
	for rows.Next() {
		i, err := scan(rows, prev)
		if err != nil {
			return fmt.Errorf("read run intervals: %w", err)
		}
		if err := fn(i); err != nil {
			return err
		}
		prev = i
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read run intervals: %w", err)
	}
	return nil
}

// scan decodes the current row; prev is the row before it, whose texts a
// line's consecutive rows share.
func scan(rows pgx.Rows, prev parquet.Interval) (i parquet.Interval, err error) {
	col := func(n int) column { return column{rows: rows, i: n} }
	if i.ParticipantID, err = col(0).text(prev.ParticipantID); err != nil {
		return i, err
	}
	if i.SettlementPoint, err = col(1).text(prev.SettlementPoint); err != nil {
		return i, err
	}
	if i.IntervalStart, err = col(2).instant(); err != nil {
		return i, err
	}
	if i.EnergyMWh, err = col(3).decimal(); err != nil {
		return i, err
	}
	if i.Price, err = col(4).nullDecimal(); err != nil {
		return i, err
	}
	if i.Amount, err = col(5).nullDecimal(); err != nil {
		return i, err
	}
	if i.ActualReads, err = col(6).int32(); err != nil {
		return i, err
	}
	if i.EstimatedReads, err = col(7).int32(); err != nil {
		return i, err
	}
	if i.GridsettleEstimatedReads, err = col(8).int32(); err != nil {
		return i, err
	}
	i.EstimatedEnergyMWh, err = col(9).decimal()
	return i, err
}

// ErrNotFound: no statement line has the statement_id given to StreamLine.
var ErrNotFound = errors.New("statement line not found")

// LineQuerier is what StreamLine needs.
type LineQuerier interface {
	Querier
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// StreamLine streams the interval rows of statement line statementID: the
// rows of intervals.parquet for that line's participant and settlement
// point in the line's run. ErrNotFound when there is no such line.
func StreamLine(ctx context.Context, q LineQuerier, statementID string, fn func(parquet.Interval) error) error {
	var runID string
	var line Line
	err := q.QueryRow(ctx, `SELECT run_id, participant_id, settlement_point FROM statement_lines WHERE statement_id = $1`,
		statementID).Scan(&runID, &line.ParticipantID, &line.SettlementPoint)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("statement line %q: %w", statementID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("read statement line %q: %w", statementID, err)
	}
	return Stream(ctx, q, runID, &line, fn)
}

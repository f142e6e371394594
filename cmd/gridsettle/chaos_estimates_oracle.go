//go:build linux

package main

import "github.com/gridsettle/gridsettle/settlement/oracle"

// This file is the one place the chaos suite names the oracle's estimate
// fields (estimation.md).

// oracleEstimates are the estimate figures of the oracle's run st.
func oracleEstimates(st *oracle.Statement) *runEstimates {
	e := newRunEstimates()
	for _, l := range st.Lines {
		n := l.Reads.GridsettleEstimated
		e.lines[l.StatementID] = lineEstimates{EnergyMWh: l.EstimatedEnergyMWh, LIN: n.LIN, LDY: n.LDY, ZER: n.ZER}
	}
	for _, ch := range st.Charges {
		e.charges[ch.ChargeID] = ch.EstimatedKWh
	}
	for _, f := range st.Intervals {
		e.intervals[intervalKey{f.ParticipantID, f.SettlementPoint, f.Start.Unix()}] =
			intervalEstimates{EnergyMWh: f.EstimatedEnergyMWh, Reads: f.GridsettleEstimatedReads}
	}
	for _, x := range st.Estimates {
		e.estimates[estimateKey{x.MeterID, string(x.Channel), x.Start.Unix()}] = estimateRow{
			IntervalSeconds: int64(x.IntervalSeconds),
			ValueKWh:        fixed(x.ValueKWh, 6),
			Method:          string(x.Method),
			AccountID:       x.AccountID,
			ParticipantID:   x.ParticipantID,
			SettlementPoint: x.SettlementPoint,
			LossFactor:      fixed(x.LossFactor, 6),
		}
	}
	return e
}

// lineWithoutEstimates is l with its estimate figures zeroed, as
// statementRows reads a stored line.
func lineWithoutEstimates(l oracle.Line) oracle.Line {
	l.EstimatedEnergyMWh = ""
	l.Reads.GridsettleEstimated.LIN, l.Reads.GridsettleEstimated.LDY, l.Reads.GridsettleEstimated.ZER = 0, 0, 0
	return l
}

// chargeWithoutEstimates is ch with its estimate figure zeroed, as
// chargeRows reads a stored charge.
func chargeWithoutEstimates(ch oracle.Charge) oracle.Charge {
	ch.EstimatedKWh = ""
	return ch
}

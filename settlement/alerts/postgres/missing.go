package postgres

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement/alerts"
	"github.com/gridsettle/gridsettle/settlement/ingest"
)

// meterState is what missing_data knows of a meter: the end of its latest
// current read, the partition its reads arrive on, the gap start of its
// latest alert, and its assignments over the batch's watermarks.
type meterState struct {
	id      string
	slot    int32
	lastEnd time.Time
	alerted time.Time // zero: never alerted
	assign  []meters.Assignment
	dirty   bool
}

// silence is a meter waiting, in its last-end order, for the watermark to
// reach lastEnd + window. An entry is stale once the meter's last end moved.
type silence struct {
	m       *meterState
	lastEnd time.Time
}

type silences []silence

func (s silences) Len() int { return len(s) }
func (s silences) Less(i, j int) bool {
	return cmp.Or(s[i].lastEnd.Compare(s[j].lastEnd), cmp.Compare(s[i].m.id, s[j].m.id)) < 0
}
func (s silences) Swap(i, j int) { s[i], s[j] = s[j], s[i] }
func (s *silences) Push(x any)   { *s = append(*s, x.(silence)) }
func (s *silences) Pop() any {
	old := *s
	x := old[len(old)-1]
	*s = old[:len(old)-1]
	return x
}

// missing follows one reads partition's watermark record by record and
// fires missing_data for the partition's meters silent for the window.
type missing struct {
	h         *Hook
	topic     string
	slot      int32
	w         time.Time // the partition's watermark as followed so far
	advanced  bool
	lo, hi    time.Time // bounds of every watermark this batch can reach
	touched   []string
	meters    map[string]*meterState
	queue     silences
	uncovered []silence // silent long enough, but no assignment covered the watermark
}

// loadMissing reads what missing_data needs to follow a's records: the
// partition's followed watermark, the touched meters that can fire in this
// batch (canFire), and the meters that are silent by the batch's last
// watermark and not yet alerted for their gap, with their assignments.
func (h *Hook) loadMissing(ctx context.Context, tx pgx.Tx, a ingest.Applied, steps []step) (*missing, error) {
	m := &missing{h: h, topic: a.Topic, slot: a.Partition, meters: map[string]*meterState{}, hi: a.Watermark}
	for i, e := range a.Ends {
		if i == 0 || e.End.Before(m.lo) {
			m.lo = e.End
		}
		if e.End.After(m.hi) {
			m.hi = e.End
		}
	}
	err := tx.QueryRow(ctx, `SELECT watermark FROM alert_watermarks WHERE topic = $1 AND partition = $2`, m.topic, m.slot).Scan(&m.w)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("alerts: read alert watermark: %w", err)
	}
	m.w = m.w.UTC()
	m.touched = m.canFire(steps)
	b := &pgx.Batch{}
	m.queueLoad(b)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("alerts: load meters: %w", err)
	}
	return m, nil
}

// canFire are the touched meters, in id order, that may fire in this batch:
// those whose last end, as far as the batch's own records move it, the
// watermark passes by the window before the meter's next records (or by
// the batch's end). Only those are read, with their assignments; the others
// are written blind (queueMeters only moves last ends and alerted gaps
// forward), which in a catch-up is nearly all of them. A meter's stored
// last end can only be later, and a meter silent before its first touch is
// read as a silent meter anyway (queueLoad).
func (m *missing) canFire(steps []step) []string {
	marks := make([]time.Time, len(steps)) // the watermark after each step
	w := m.w
	for i, st := range steps {
		if st.hasEnd && st.end.After(w) {
			w = st.end
		}
		marks[i] = w
	}
	silentBy := func(lastEnd time.Time, mark time.Time) bool { return !lastEnd.Add(m.h.window).After(mark) }
	last := map[string]time.Time{} // each meter's latest end so far
	can := map[string]bool{}
	for i, st := range steps {
		eachMeterRun(st.meters, func(id string, t meterTouch) {
			prev, seen := last[id]
			if seen && i > 0 && silentBy(prev, marks[i-1]) {
				can[id] = true
			}
			if !seen || t.end.After(prev) {
				last[id] = t.end
			}
		})
	}
	for id, end := range last {
		if len(marks) > 0 && silentBy(end, marks[len(marks)-1]) {
			can[id] = true
		}
	}
	return sortedKeys(can, cmp.Compare[string])
}

// queueLoad queues the reads of the meters loadMissing needs.
func (m *missing) queueLoad(b *pgx.Batch) {
	b.Queue(`
		WITH m AS (
			SELECT t.meter_id, am.slot, am.last_end, am.alerted_end
			FROM unnest($1::text[]) AS t(meter_id) LEFT JOIN alert_meters am USING (meter_id)
			UNION
			SELECT meter_id, slot, last_end, alerted_end FROM alert_meters
			WHERE slot = $2 AND last_end <= $3 AND (alerted_end IS NULL OR alerted_end < last_end)
		)
		SELECT m.meter_id, m.slot, m.last_end, m.alerted_end, a.account_id, a.effective_from, a.effective_to
		FROM m LEFT JOIN meter_assignments a
		  ON a.meter_id = m.meter_id AND a.effective_from <= $5 AND (a.effective_to IS NULL OR a.effective_to > $4)
		ORDER BY m.meter_id, a.effective_from`,
		m.touched, m.slot, m.hi.Add(-m.h.window), m.lo, m.hi,
	).Query(func(rows pgx.Rows) error {
		var id string
		var slot *int32
		var lastEnd, alerted, from, to *time.Time
		var account *string
		_, err := pgx.ForEachRow(rows, []any{&id, &slot, &lastEnd, &alerted, &account, &from, &to}, func() error {
			s := m.meters[id]
			if s == nil {
				s = &meterState{id: id, slot: m.slot}
				if slot != nil {
					s.slot, s.lastEnd = *slot, lastEnd.UTC()
				}
				if alerted != nil {
					s.alerted = alerted.UTC()
				}
				m.meters[id] = s
				m.wait(s)
			}
			if account != nil {
				s.assign = append(s.assign, meters.Assignment{MeterID: id, AccountID: *account, EffectiveFrom: *from, EffectiveTo: to})
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read meters for missing data: %w", err)
		}
		return nil
	})
}

// wait queues s until the watermark passes its last end + window, unless
// its current gap was alerted already or the watermark cannot get there in
// this batch.
func (m *missing) wait(s *meterState) {
	if !s.lastEnd.IsZero() && s.alerted.Before(s.lastEnd) && !s.lastEnd.After(m.hi.Add(-m.h.window)) {
		heap.Push(&m.queue, silence{s, s.lastEnd})
	}
}

// live reports whether e still describes its meter's current gap, unalerted,
// on this partition.
func (m *missing) live(e silence) bool {
	return e.m.lastEnd.Equal(e.lastEnd) && e.m.alerted.Before(e.lastEnd) && e.m.slot == m.slot
}

// eachMeterRun calls fn once per run of a step's touches of one meter, with
// the run's latest end. A step's touches land together before the
// watermark moves (reads.go), so a meter's earlier ends in a run never
// count: a record of a day's reads is one touch, not 96. (A meter in two
// runs of a step is touched twice, which is the same.)
func eachMeterRun(ds []meterDelta, fn func(id string, t meterTouch)) {
	for i := 0; i < len(ds); {
		t := ds[i].meterTouch
		j := i + 1
		for ; j < len(ds) && ds[j].id == ds[i].id; j++ {
			if ds[j].end.After(t.end) {
				t.end = ds[j].end
			}
		}
		fn(ds[i].id, t)
		i = j
	}
}

// touch records a record's reads of a meter.
func (m *missing) touch(id string, t meterTouch) {
	s := m.meters[id]
	if s == nil {
		s = &meterState{id: id}
		m.meters[id] = s
	}
	s.slot, s.dirty = t.slot, true
	if t.end.After(s.lastEnd) {
		s.lastEnd = t.end
		m.wait(s)
	}
}

// advance moves the watermark by a record ending at end and returns the
// missing_data alerts due now.
func (m *missing) advance(end time.Time) []alerts.Alert {
	var out []alerts.Alert
	if end.After(m.w) {
		m.w, m.advanced = end, true
		// An assignment may cover the new watermark.
		keep := m.uncovered[:0]
		for _, e := range m.uncovered {
			if !m.live(e) {
				continue
			}
			if al, ok := m.fire(e); ok {
				out = append(out, al)
			} else {
				keep = append(keep, e)
			}
		}
		m.uncovered = keep
	}
	cutoff := m.w.Add(-m.h.window)
	for len(m.queue) > 0 && !m.queue[0].lastEnd.After(cutoff) {
		e := heap.Pop(&m.queue).(silence)
		if !m.live(e) {
			continue
		}
		if al, ok := m.fire(e); ok {
			out = append(out, al)
		} else {
			m.uncovered = append(m.uncovered, e)
		}
	}
	return out
}

// fire alerts e's gap if an assignment of the meter covers the watermark.
func (m *missing) fire(e silence) (alerts.Alert, bool) {
	var a *meters.Assignment
	for i := range e.m.assign {
		if e.m.assign[i].Covers(m.w) {
			a = &e.m.assign[i]
			break
		}
	}
	if a == nil {
		return alerts.Alert{}, false
	}
	al, ok := alerts.CheckMissingData(alerts.Silence{MeterID: e.m.id, AccountID: a.AccountID, LastEnd: e.lastEnd, Watermark: m.w},
		m.h.window, m.h.locale)
	if ok {
		e.m.alerted, e.m.dirty = e.lastEnd, true
	}
	return al, ok
}

// queueWrites stores the meters that changed and the followed watermark.
func (m *missing) queueWrites(b *pgx.Batch) {
	var rows []*meterState
	for _, id := range sortedKeys(m.meters, cmp.Compare[string]) {
		if s := m.meters[id]; s.dirty {
			rows = append(rows, s)
		}
	}
	queueMeters(b, rows)
	if m.advanced {
		b.Queue(`
			INSERT INTO alert_watermarks AS w (topic, partition, watermark) VALUES ($1, $2, $3)
			ON CONFLICT (topic, partition) DO UPDATE SET watermark = GREATEST(w.watermark, excluded.watermark)`,
			m.topic, m.slot, m.w)
	}
}

// touchedMeters are the meter rows a replay moves (no watermark: nothing is
// evaluated), in id order.
func touchedMeters(t map[string]meterTouch) []*meterState {
	var out []*meterState
	for _, id := range sortedKeys(t, cmp.Compare[string]) {
		out = append(out, &meterState{id: id, slot: t[id].slot, lastEnd: t[id].end})
	}
	return out
}

// queueMeters upserts meter rows (in id order); last ends and alerted gaps
// only move forward.
func queueMeters(b *pgx.Batch, rows []*meterState) {
	if len(rows) == 0 {
		return
	}
	n := len(rows)
	ids, slots, ends, alerted := make([]string, n), make([]int32, n), make([]time.Time, n), make([]*time.Time, n)
	for i, s := range rows {
		ids[i], slots[i], ends[i] = s.id, s.slot, s.lastEnd
		if !s.alerted.IsZero() {
			alerted[i] = &s.alerted
		}
	}
	b.Queue(`
		INSERT INTO alert_meters AS m (meter_id, slot, last_end, alerted_end)
		SELECT * FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::timestamptz[])
		ON CONFLICT (meter_id) DO UPDATE SET
			slot = excluded.slot,
			last_end = GREATEST(m.last_end, excluded.last_end),
			alerted_end = GREATEST(m.alerted_end, excluded.alerted_end)`,
		ids, slots, ends, alerted)
}

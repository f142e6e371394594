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
	// uncovered is the stored flag that has every batch of the meter's
	// partition read it, whatever the partition's silence floor: silent for
	// the window by the partition's watermark, not alerted, as no assignment
	// covered it; or written by a replay (touchedMeters).
	uncovered bool
	dirty     bool
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
	lo, hi    time.Time // bounds of every watermark this batch can reach
	meters    map[string]*meterState
	queue     silences
	uncovered []silence // silent long enough, but no assignment covered the watermark
	// scanned: the partition's meters not alerted were read, rest the
	// earliest last end among those not silent by hi (nil: none).
	scanned bool
	rest    *time.Time
}

// loadMissing reads what missing_data needs to follow a's records: the
// partition's followed watermark, the touched meters that can fire in this
// batch (canFire), and the meters that are silent by the batch's last
// watermark and not yet alerted for their gap, unless the batch touches
// them before its watermark finds them silent, with their assignments.
// Silent meters are looked for only when the window before the batch's
// last watermark reaches the partition's silence floor
// (migrations/00810_alert_meters_silence_floor.sql); uncovered ones always.
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
	cutoff := m.hi.Add(-h.window)
	m.scanned = true
	b := &pgx.Batch{}
	b.Queue(`SELECT watermark, coalesce(silence_floor > $3, false) FROM alert_watermarks WHERE topic = $1 AND partition = $2`,
		m.topic, m.slot, cutoff,
	).QueryRow(func(row pgx.Row) error {
		var quiet bool
		if err := row.Scan(&m.w, &quiet); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read alert watermark: %w", err)
		}
		m.w, m.scanned = m.w.UTC(), !quiet
		return nil
	})
	var silent []*meterState
	b.Queue(`SELECT meter_id, slot, last_end, alerted_end, uncovered FROM alert_meters WHERE slot = $1 AND uncovered`, m.slot).Query(func(rows pgx.Rows) error {
		var err error
		silent, err = scanMeters(rows)
		return err
	})
	// The same test of the floor as above, in the statement: one round trip.
	b.Queue(`
		WITH f AS (SELECT silence_floor FROM alert_watermarks WHERE topic = $1 AND partition = $2),
		s AS MATERIALIZED (
			SELECT meter_id, last_end, alerted_end FROM alert_meters
			WHERE slot = $2 AND NOT uncovered AND (alerted_end IS NULL OR alerted_end < last_end)
			  AND NOT EXISTS (SELECT FROM f WHERE f.silence_floor > $3)
		)
		SELECT meter_id, last_end, alerted_end FROM s WHERE last_end <= $3
		UNION ALL
		SELECT NULL, min(last_end), NULL FROM s WHERE last_end > $3`,
		m.topic, m.slot, cutoff,
	).Query(func(rows pgx.Rows) error {
		var id *string
		var lastEnd, alerted *time.Time
		_, err := pgx.ForEachRow(rows, []any{&id, &lastEnd, &alerted}, func() error {
			if id == nil { // the earliest last end of the others
				if lastEnd != nil {
					rest := lastEnd.UTC()
					m.rest = &rest
				}
				return nil
			}
			st := &meterState{id: *id, slot: m.slot, lastEnd: lastEnd.UTC()}
			if alerted != nil {
				st.alerted = alerted.UTC()
			}
			silent = append(silent, st)
			return nil
		})
		if err != nil {
			return fmt.Errorf("read silent meters: %w", err)
		}
		return nil
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("alerts: load silent meters: %w", err)
	}
	can, touched := m.canFire(steps)
	for _, s := range silent {
		// A meter the batch touches before its watermark finds the meter
		// silent cannot fire for this gap: its touches, as far as they can
		// fire, are canFire's; it is written as touched.
		if t, ok := touched[s.id]; !ok || m.silentBy(s.lastEnd, t.before) {
			m.meters[s.id] = s
		}
	}
	for _, id := range can {
		if m.meters[id] == nil {
			m.meters[id] = &meterState{id: id, slot: m.slot}
		}
	}
	if len(m.meters) == 0 {
		return m, nil
	}
	b = &pgx.Batch{}
	if len(can) > 0 {
		b.Queue(`SELECT meter_id, slot, last_end, alerted_end, uncovered FROM alert_meters WHERE meter_id = ANY($1::text[])`, can).Query(func(rows pgx.Rows) error {
			stored, err := scanMeters(rows)
			for _, s := range stored {
				m.meters[s.id] = s
			}
			return err
		})
	}
	m.queueAssignments(b)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("alerts: load meters: %w", err)
	}
	for _, s := range m.meters {
		m.wait(s)
	}
	return m, nil
}

// scanMeters reads alert_meters rows (meter_id, slot, last_end,
// alerted_end, uncovered).
func scanMeters(rows pgx.Rows) ([]*meterState, error) {
	var out []*meterState
	var id string
	var slot int32
	var lastEnd time.Time
	var alerted *time.Time
	var uncovered bool
	_, err := pgx.ForEachRow(rows, []any{&id, &slot, &lastEnd, &alerted, &uncovered}, func() error {
		s := &meterState{id: id, slot: slot, lastEnd: lastEnd.UTC(), uncovered: uncovered}
		if alerted != nil {
			s.alerted = alerted.UTC()
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read meters for missing data: %w", err)
	}
	return out, nil
}

// silentBy reports whether a meter whose last read ended at lastEnd is
// silent for the window at watermark mark.
func (m *missing) silentBy(lastEnd, mark time.Time) bool { return !lastEnd.Add(m.h.window).After(mark) }

// canFire are the touched meters, in id order, that may fire in this batch:
// those whose last end, as far as the batch's own records move it, the
// watermark passes by the window before the meter's next records (or by
// the batch's end). Only those are read, with their assignments; the others
// are written blind (queueMeters only moves last ends and alerted gaps
// forward), which in a catch-up is nearly all of them. A meter's stored
// last end can only be later, and a meter silent before its first touch is
// read as a silent meter anyway (loadMissing). touched has every touched
// meter.
func (m *missing) canFire(steps []step) (can []string, touched map[string]touchSpan) {
	n := 0
	for _, st := range steps {
		n += len(st.meters)
	}
	w := m.w
	touched = make(map[string]touchSpan, n)
	fires := map[string]bool{}
	for _, st := range steps {
		eachMeterRun(st.meters, func(id string, t meterTouch) {
			s, ok := touched[id]
			if !ok {
				touched[id] = touchSpan{w, t.end}
				return
			}
			if m.silentBy(s.last, w) {
				fires[id] = true
			}
			if t.end.After(s.last) {
				s.last = t.end
				touched[id] = s
			}
		})
		if st.hasEnd && st.end.After(w) {
			w = st.end
		}
	}
	for id, s := range touched {
		if m.silentBy(s.last, w) {
			fires[id] = true
		}
	}
	return sortedKeys(fires, cmp.Compare[string]), touched
}

// touchSpan is what canFire follows of a touched meter: the watermark
// before its first touch (the latest at which its stored gap can fire in
// the batch) and its latest end so far.
type touchSpan struct{ before, last time.Time }

// queueAssignments queues the read of the assignments of the loaded meters
// over the batch's watermarks.
func (m *missing) queueAssignments(b *pgx.Batch) {
	b.Queue(`
		SELECT meter_id, account_id, effective_from, effective_to FROM meter_assignments
		WHERE meter_id = ANY($1::text[]) AND effective_from <= $3 AND (effective_to IS NULL OR effective_to > $2)
		ORDER BY meter_id, effective_from`,
		sortedKeys(m.meters, cmp.Compare[string]), m.lo, m.hi,
	).Query(func(rows pgx.Rows) error {
		var id, account string
		var from time.Time
		var to *time.Time
		_, err := pgx.ForEachRow(rows, []any{&id, &account, &from, &to}, func() error {
			s := m.meters[id]
			s.assign = append(s.assign, meters.Assignment{MeterID: id, AccountID: account, EffectiveFrom: from, EffectiveTo: to})
			to = nil
			return nil
		})
		if err != nil {
			return fmt.Errorf("read assignments for missing data: %w", err)
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
		m.w = end
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

// queueWrites stores the meters that changed, with their uncovered flags,
// and the followed watermark with the partition's silence floor: after a
// look-up of silent meters the earliest last end of the others, else the
// floor as it was, and in both cases no later than the last end of any
// meter of the partition the batch leaves neither alerted nor uncovered.
func (m *missing) queueWrites(b *pgx.Batch) {
	var rows []*meterState
	var least *time.Time
	for _, id := range sortedKeys(m.meters, cmp.Compare[string]) {
		s := m.meters[id]
		open := s.slot == m.slot && s.alerted.Before(s.lastEnd)
		// Silent by the watermark and not alerted: every such meter was
		// due at the last record, and no assignment covered it (advance).
		uncovered := open && m.silentBy(s.lastEnd, m.w)
		if uncovered != s.uncovered {
			s.uncovered, s.dirty = uncovered, true
		}
		if s.dirty {
			rows = append(rows, s)
		}
		if open && !uncovered && (least == nil || s.lastEnd.Before(*least)) {
			least = &s.lastEnd
		}
	}
	queueMeters(b, rows)
	b.Queue(`
		INSERT INTO alert_watermarks AS w (topic, partition, watermark, silence_floor)
		VALUES ($1, $2, $3, coalesce(LEAST($5::timestamptz, $6::timestamptz), 'infinity'))
		ON CONFLICT (topic, partition) DO UPDATE SET
			watermark = GREATEST(w.watermark, excluded.watermark),
			silence_floor = CASE WHEN $4 THEN excluded.silence_floor ELSE LEAST(w.silence_floor, $6::timestamptz) END`,
		m.topic, m.slot, m.w, m.scanned, m.rest, least)
}

// touchedMeters are the meter rows a replay moves (no watermark: nothing is
// evaluated), in id order, flagged uncovered. A replay is not its
// partition's consumer: it neither reads nor keeps the partition's silence
// floor, and the last end it writes may lie before the floor (a replayed
// record is old), where no floor look-up would find the meter until the
// window passed the floor. The flag has the partition's next batch read
// the meter and evaluate it; that batch clears the flag and keeps the floor
// at or before the meter's last end (queueWrites).
func touchedMeters(t map[string]meterTouch) []*meterState {
	var out []*meterState
	for _, id := range sortedKeys(t, cmp.Compare[string]) {
		out = append(out, &meterState{id: id, slot: t[id].slot, lastEnd: t[id].end, uncovered: true})
	}
	return out
}

// queueMeters upserts meter rows (in id order); last ends and alerted gaps
// only move forward. A row's indexed columns, slot and uncovered, change
// only when its candidacy does, so updating the others is heap-only.
func queueMeters(b *pgx.Batch, rows []*meterState) {
	if len(rows) == 0 {
		return
	}
	n := len(rows)
	ids, slots, ends, alerted, uncovered := make([]string, n), make([]int32, n), make([]time.Time, n), make([]*time.Time, n), make([]bool, n)
	for i, s := range rows {
		ids[i], slots[i], ends[i], uncovered[i] = s.id, s.slot, s.lastEnd, s.uncovered
		if !s.alerted.IsZero() {
			alerted[i] = &s.alerted
		}
	}
	b.Queue(`
		INSERT INTO alert_meters AS m (meter_id, slot, last_end, alerted_end, uncovered)
		SELECT * FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::timestamptz[], $5::bool[])
		ON CONFLICT (meter_id) DO UPDATE SET
			slot = excluded.slot,
			last_end = GREATEST(m.last_end, excluded.last_end),
			alerted_end = GREATEST(m.alerted_end, excluded.alerted_end),
			uncovered = excluded.uncovered`,
		ids, slots, ends, alerted, uncovered)
}

package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/gridsettle/gridsettle/settlement"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
)

// ExplainRoutes serve the explanation of a statement line against an
// earlier version of it (settlement/README.md "Explain a statement line"),
// computed by the engine (settlementpg.Runs.Explain) and answered in the one
// shape settlement.Explanation marshals to.
type ExplainRoutes struct {
	Runs *settlementpg.Runs
}

// The bounds of the explanations kept between pages. Completed runs never
// change, so an explanation computed once answers every page of it; the
// bounds keep what clients can make the server hold small whatever they
// ask for.
const (
	maxCachedExplanations     = 16
	maxCachedExplanationBytes = 64 << 20
	// explainSlots is how many explanations are computed at once: each
	// holds up to settlementpg.MaxExplainChanges changes (a few hundred
	// MB at the worst), so concurrent first requests of large lines wait
	// for a slot (or their deadline) rather than add up.
	explainSlots = 2
)

// Routes implements Routes.
func (g ExplainRoutes) Routes() []Route {
	h := newExplainHandler(g.Runs, newExplainCache(maxCachedExplanations, maxCachedExplanationBytes))
	return []Route{{
		Method: http.MethodGet, Path: "/api/v1/statements/{statement_id}/explain", Roles: Readers,
		Summary: "Which reads and prices changed between two versions of a statement line, and what each cost",
		Description: "statement_id percent-encoded ('/' as %2F; the unencoded form is accepted too). against is the " +
			"version explained against: by default the latest completed version before the line's own, 0 for nothing. " +
			"404 when the line does not exist, its day has no completed run of version against, or against is not " +
			"lower than the line's version; 409 when a run of the two was made before runs recorded what " +
			"explaining needs. changes are paginated with limit and cursor: every page is the whole object with " +
			"that page's changes, summary and totals covering all of them, and next_cursor absent on the last page.",
		Params: []Param{
			Path("statement_id", "e.g. HB_NORTH%2FRETAILER-A%2F2026-11-01%2F2"),
			IntParam("against", "the version explained against (default: the one before the line's; 0: nothing)", 0, 1<<31-1),
			IntParam("limit", fmt.Sprintf("changes per page (default %d)", DefaultLimit), 1, MaxLimit),
			Query("cursor", "opaque cursor: the next_cursor of the previous page"),
		},
		Response: &Body{JSON: explanationSchema(), Other: map[string]Schema{MIMETextCSV: {"type": "string",
			"description": "one row per change of the page, columns " + strings.Join(explainColumnNames(), ", ") +
				"; the next cursor in the " + HeaderNextCursor + " header"}}},
		ETag: true, Errors: []int{http.StatusConflict, http.StatusNotAcceptable},
		Handler: h.explain,
	}}
}

type explainHandler struct {
	runs  *settlementpg.Runs
	cache *explainCache
	slots chan struct{} // explanations being computed
}

func newExplainHandler(runs *settlementpg.Runs, cache *explainCache) explainHandler {
	return explainHandler{runs: runs, cache: cache, slots: make(chan struct{}, explainSlots)}
}

// explainCursor is the cursor of a page of changes: the last change
// answered (its place in the contract's order), with the explanation it
// belongs to, so that a cursor of another explanation is refused rather
// than answering a page of this one.
type explainCursor struct {
	Statement string               `json:"s"`
	Against   *int                 `json:"a"`
	After     settlement.ChangeKey `json:"k"`
}

func (h explainHandler) explain(c echo.Context) error {
	wantCSV, err := WantsCSV(c)
	if err != nil {
		return err
	}
	// routed percent-encoded; checkParams has checked both forms as plain text
	id, err := url.PathUnescape(c.Param("statement_id"))
	if err != nil {
		return BadParam("statement_id", "is not percent-encoded correctly")
	}
	v, err := QueryInt(c, "against", 0, 1<<31-1)
	if err != nil {
		return err
	}
	var against *int
	if v != nil {
		a := int(*v)
		against = &a
	}
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	var cur explainCursor
	has, err := Cursor(c, &cur)
	if err != nil {
		return err
	}
	if has && (cur.Statement != id || !sameAgainst(cur.Against, against)) {
		return BadParam("cursor", "is not a cursor of this explanation")
	}
	var after *settlement.ChangeKey
	if has {
		after = &cur.After
	}
	page, more, err := h.page(c.Request().Context(), id, against, after, limit)
	switch {
	case errors.Is(err, settlementpg.ErrNotFound):
		return NotFoundf("no explanation of statement line %q against %s: the line does not exist, its day has no "+
			"completed run of that version, or it is not lower than the line's", id, againstText(against))
	case errors.Is(err, settlementpg.ErrNotExplainable):
		return Conflictf("statement line %q cannot be explained against %s: %s", id, againstText(against), settlementpg.ErrNotExplainable)
	case err != nil:
		// settlement.ErrUnexplained among them: a defect, logged as an
		// internal error by handleError, never an answer.
		return err
	}
	page.NextCursor = ""
	if more {
		next := page.Changes[len(page.Changes)-1].Key()
		if page.NextCursor, err = EncodeCursor(explainCursor{Statement: id, Against: against, After: next}); err != nil {
			return err
		}
	}
	if wantCSV {
		if page.NextCursor != "" {
			c.Response().Header().Set(HeaderNextCursor, page.NextCursor)
		}
		return writeChangesCSV(c, page.Changes)
	}
	return c.JSON(http.StatusOK, page)
}

// explainColumns are the CSV columns of a change: the fields of both kinds'
// JSON, before and after flattened as before.value and so on; a field the
// change's kind has not is an empty cell.
var explainColumns = func() [][]string {
	cols := [][]string{{"kind"}, {"settlement_interval"}, {"settlement_point"}, {"meter_id"}, {"channel"}, {"start"}}
	for _, side := range []string{"before", "after"} {
		for _, f := range []string{"value", "version", "quality", "loss_factor", "estimate", "topic", "partition", "offset", "price"} {
			cols = append(cols, []string{side, f})
		}
	}
	return append(cols, []string{"energy_mwh_effect"}, []string{"amount_effect"})
}()

func explainColumnNames() []string {
	out := make([]string, len(explainColumns))
	for i, col := range explainColumns {
		out[i] = strings.Join(col, ".")
	}
	return out
}

// writeChangesCSV answers changes as CSV, one row per change, each cell
// taken from the change's own JSON (so CSV and JSON agree) and neutralised
// as every CSV answer's.
func writeChangesCSV(c echo.Context, changes []settlement.Change) error {
	return writeCSVColumns(c, http.StatusOK, explainColumns, len(changes), func(i int) any { return changes[i] })
}

func sameAgainst(a, b *int) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func againstText(against *int) string {
	if against == nil {
		return "the version before it"
	}
	return fmt.Sprintf("version %d", *against)
}

// page is the page of at most limit changes after `after` (nil: the
// first), and whether more follow. An
// explanation is computed whole once and paged from the cache; one too
// large to hold (settlementpg.ErrTooLarge) or to cache is remembered as
// such and every page of it streams its inputs again keeping only that
// page (Runs.ExplainPage).
func (h explainHandler) page(ctx context.Context, id string, against *int, after *settlement.ChangeKey, limit int) (
	page *settlement.Explanation, more bool, err error) {
	key := explainKey{statement: id, against: -1}
	if against != nil {
		key.against = *against
	}
	e, cached := h.cache.lookup(key)
	if !cached || e == nil {
		select {
		case h.slots <- struct{}{}:
			defer func() { <-h.slots }()
		case <-ctx.Done():
			return nil, false, fmt.Errorf("explain %s: waiting for a slot: %w", id, ctx.Err())
		}
	}
	if !cached {
		e, err = h.runs.Explain(ctx, id, against)
		switch {
		case errors.Is(err, settlementpg.ErrTooLarge):
			h.cache.add(key, nil, 0)
		case err != nil:
			return nil, false, fmt.Errorf("explain %s: %w", id, err)
		default:
			// Its size as answered: what it costs to hold, to within
			// the decimals' representation.
			b, err := json.Marshal(e)
			if err != nil {
				return nil, false, fmt.Errorf("encode explanation of %s: %w", id, err)
			}
			if len(b) > h.cache.maxBytes {
				h.cache.add(key, nil, 0) // this page is answered from e, the next ones stream theirs
			} else {
				h.cache.add(key, e, len(b))
			}
		}
	}
	if e == nil {
		p, remaining, err := h.runs.ExplainPage(ctx, id, against, after, limit)
		if err != nil {
			return nil, false, fmt.Errorf("explain %s: %w", id, err)
		}
		return p, remaining > len(p.Changes), nil
	}
	start := 0
	if after != nil {
		start, _ = slices.BinarySearchFunc(e.Changes, *after, func(c settlement.Change, k settlement.ChangeKey) int {
			if c.Follows(k) {
				return 1
			}
			return -1
		})
	}
	p := *e // the summary and totals cover every change
	end := min(start+limit, len(e.Changes))
	p.Changes = e.Changes[start:end]
	return &p, end < len(e.Changes), nil
}

// explainKey names an explanation: against -1 is the default.
type explainKey struct {
	statement string
	against   int
}

type cachedExplanation struct {
	e     *settlement.Explanation
	bytes int
	seq   uint64 // insertion order: the oldest goes first
}

// explainCache holds the latest explanations computed, at most maxEntries
// of them and maxBytes in all; an entry without an explanation marks one
// too large to keep, paged with Runs.ExplainPage.
type explainCache struct {
	maxEntries, maxBytes int

	mu      sync.Mutex
	entries map[explainKey]cachedExplanation
	bytes   int
	seq     uint64
}

func newExplainCache(maxEntries, maxBytes int) *explainCache {
	return &explainCache{maxEntries: maxEntries, maxBytes: maxBytes, entries: map[explainKey]cachedExplanation{}}
}

func (c *explainCache) lookup(k explainKey) (*settlement.Explanation, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	return e.e, ok
}

func (c *explainCache) add(k explainKey, e *settlement.Explanation, size int) {
	if size > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[k]; ok {
		c.bytes -= old.bytes
		delete(c.entries, k)
	}
	for len(c.entries) >= c.maxEntries || c.bytes+size > c.maxBytes {
		var oldest explainKey
		first := true
		for key, v := range c.entries {
			if first || v.seq < c.entries[oldest].seq {
				oldest, first = key, false
			}
		}
		c.bytes -= c.entries[oldest].bytes
		delete(c.entries, oldest)
	}
	c.seq++
	c.entries[k] = cachedExplanation{e: e, bytes: size, seq: c.seq}
	c.bytes += size
}

// explanationSchema is the OpenAPI schema of settlement.Explanation's JSON
// (settlement/README.md "Explaining every figure"), which marshals itself and
// so has no Go shape to derive it from; TestAnswersMatchOpenAPI validates real
// answers against it.
func explanationSchema() NamedSchema {
	str := Schema{"type": "string"}
	dec := Schema{"type": "string", "format": "decimal", "pattern": `^-?[0-9]+(\.[0-9]+)?$`}
	instant := Schema{"type": "string", "format": "date-time"}
	null := func(s Schema) Schema { return Schema{"anyOf": []any{s, Schema{"type": "null"}}} }
	object := func(props map[string]any) Schema {
		req := make([]string, 0, len(props))
		for k := range props {
			req = append(req, k)
		}
		slices.Sort(req)
		return Schema{"type": "object", "properties": props, "required": req, "additionalProperties": false}
	}
	readState := object(map[string]any{
		"value": dec, "version": null(Schema{"type": "integer"}), "quality": null(str), "loss_factor": dec,
		"estimate": null(str), "topic": null(str), "partition": null(Schema{"type": "integer"}),
		"offset": null(Schema{"type": "integer"}),
	})
	readChange := object(map[string]any{
		"kind": Schema{"const": settlement.ChangeRead}, "meter_id": str, "channel": str, "start": instant,
		"settlement_interval": instant, "before": null(readState), "after": null(readState),
		"energy_mwh_effect": dec, "amount_effect": dec,
	})
	price := object(map[string]any{"price": null(dec)})
	priceChange := object(map[string]any{
		"kind": Schema{"const": settlement.ChangePrice}, "settlement_point": str, "settlement_interval": instant,
		"before": price, "after": price, "energy_mwh_effect": dec, "amount_effect": dec,
	})
	summary := object(map[string]any{"changes": Schema{"type": "integer"}, "energy_mwh_effect": dec, "amount_effect": dec})
	top := object(map[string]any{
		"statement_id": str, "against": str, "delta_energy_mwh": dec, "delta_amount": dec,
		"exact_delta_energy_mwh": dec, "exact_delta_amount": dec, "rounding": dec,
		"changes": Schema{"type": "array", "items": Schema{"oneOf": []any{readChange, priceChange}}},
		"summary": object(map[string]any{settlement.ChangeRead: summary, settlement.ChangePrice: summary}),
	})
	top["properties"].(map[string]any)["next_cursor"] = Schema{"type": "string", "description": "absent on the last page"}
	return NamedSchema{Name: "Explanation", Schema: top}
}

package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/ingest"
	"github.com/gridsettle/gridsettle/settlement/ingest/readstore"
	"github.com/gridsettle/gridsettle/settlement/kafka"
	settlementpg "github.com/gridsettle/gridsettle/settlement/postgres"
	"github.com/gridsettle/gridsettle/settlement/publish"
)

// IngestRoutes are the endpoints of what ingest stores: current reads and
// prices with their lineage, live positions, the quarantine and its replay,
// and the service status.
type IngestRoutes struct {
	Pool    *pgxpool.Pool
	Market  settlement.Market
	Topics  kafka.Topics
	Applier *ingest.Applier    // replays; it must carry the consumers' hooks
	Kafka   *kadm.Client       // the input topics' last stable offsets, for the status
	Runs    *settlementpg.Runs // the last runs and failing scheduled runs, for the status; nil: none listed
}

// statusRuns is how many of the latest runs, and of the failing scheduled
// runs, the status lists.
const statusRuns = 10

// decimalScale is the fixed scale of read values (kWh) and prices.
const decimalScale = 6

// Read is a current read (api/README.md "A read").
type Read struct {
	MeterID         string    `json:"meter_id"`
	Channel         string    `json:"channel"`
	Start           time.Time `json:"start"`
	IntervalSeconds int       `json:"interval_seconds"`
	Value           string    `json:"value"` // kWh, 6 decimals
	Quality         string    `json:"quality"`
	Version         int64     `json:"version"`
	Source          string    `json:"source"`
	Topic           string    `json:"topic"`
	Partition       int32     `json:"partition"`
	Offset          int64     `json:"offset"`
}

// ReadVersion is a stored version of a read (versions=all): the read and the
// input record whose version replaced it, null for the current one.
type ReadVersion struct {
	Read
	SupersededBy *InputOffset `json:"superseded_by"`
}

// InputOffset is where an input record is in its topic.
type InputOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

func inputOffset(o *readstore.Origin) *InputOffset {
	if o == nil {
		return nil
	}
	return &InputOffset{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset}
}

// versionsParam is the versions query parameter of reads and prices:
// current (the default) or all, which adds superseded versions
// (settlement/README.md "Every version of every input is kept").
var versionsParam = EnumParam("versions", "current (the default): the current version of each; all: every stored version, "+
	"each with superseded_by, the input record that replaced it (null for the current one)", versionsCurrent, versionsAll)

const (
	versionsCurrent = "current"
	versionsAll     = "all"
)

// allVersions reports whether the request asks for every version.
func allVersions(c echo.Context) (bool, error) {
	v, err := QueryEnum(c, "versions", versionsCurrent, versionsAll)
	return v == versionsAll, err
}

// Price is a current price with its lineage.
type Price struct {
	Market          string    `json:"market"`
	SettlementPoint string    `json:"settlement_point"`
	Start           time.Time `json:"start"`
	IntervalSeconds int       `json:"interval_seconds"`
	Price           string    `json:"price"` // per MWh, 6 decimals
	Currency        string    `json:"currency"`
	Version         int64     `json:"version"`
	Topic           string    `json:"topic"`
	Partition       int32     `json:"partition"`
	Offset          int64     `json:"offset"`
}

// PriceVersion is a stored version of a price (versions=all), as ReadVersion.
type PriceVersion struct {
	Price
	SupersededBy *InputOffset `json:"superseded_by"`
}

// Position is the live (unsettled) position of a participant at a
// settlement point in one settlement interval.
type Position struct {
	ParticipantID   string    `json:"participant_id"`
	SettlementPoint string    `json:"settlement_point"`
	IntervalStart   time.Time `json:"interval_start"`
	EnergyMWh       string    `json:"energy_mwh"` // exact, unrounded
	Price           *string   `json:"price"`      // settlement price, 6 decimals; null: unpriced
	Amount          *string   `json:"amount"`     // energy × price, exact, unrounded; null: unpriced
	Currency        string    `json:"currency"`
}

// QuarantineItem is a rejected input record (api/README.md "A quarantine
// item").
type QuarantineItem struct {
	ID            int64      `json:"id"`
	Reason        string     `json:"reason"`
	Detail        string     `json:"detail"`
	Topic         string     `json:"topic"`
	Partition     int32      `json:"partition"`
	Offset        int64      `json:"offset"`
	Key           *string    `json:"key"`                    // null: the record had no key
	KeyEncoding   string     `json:"key_encoding,omitempty"` // "base64" when the key is not UTF-8 or holds U+0000
	Value         string     `json:"value"`
	ValueEncoding string     `json:"value_encoding,omitempty"` // "base64" when the value is not UTF-8 or holds U+0000
	ReceivedAt    time.Time  `json:"received_at"`
	ReplayedAt    *time.Time `json:"replayed_at"`
}

// ReplayRequest is the body of POST /api/v1/quarantine/replay.
type ReplayRequest struct {
	Reason string `json:"reason"` // unknown_meter or unknown_settlement_point
}

// Status is the service status (api/README.md "GET /api/v1/status").
type Status struct {
	Inputs []ingest.PartitionStatus `json:"inputs"`
	Outbox OutboxStatus             `json:"outbox"`
	Runs   []settlementpg.Run       `json:"runs"` // the latest runs, newest first
	// ScheduledRunFailures are the scheduled runs whose attempts failed and
	// that have not completed since: retrying, or given up by the
	// scheduler (then only an operator's run resolves them). Latest first.
	ScheduledRunFailures []settlementpg.ScheduledFailure `json:"scheduled_run_failures"`
}

// OutboxStatus is the publishing backlog.
type OutboxStatus struct {
	Pending     int64 `json:"pending"`     // outbox rows not yet confirmed published
	Quarantined int64 `json:"quarantined"` // output records the log refused (GET /api/v1/outbox/quarantine)
	// Parked are the output streams whose topic or partition does not exist
	// in the cluster: their rows wait until an operator recreates it.
	Parked []publish.ParkedStream `json:"parked"`
}

// OutputQuarantineItem is an output record the log refused for what it is
// (record_too_large, record_invalid): never published, kept here whole.
type OutputQuarantineItem struct {
	ID            int64     `json:"id"`
	Reason        string    `json:"reason"`
	Detail        string    `json:"detail"`
	Topic         string    `json:"topic"`
	Partition     int32     `json:"partition"`
	Seq           int64     `json:"seq"`       // its gridsettle-seq, absent from the log
	RecordID      string    `json:"record_id"` // its gridsettle-id
	Schema        string    `json:"schema"`
	Key           *string   `json:"key"`
	KeyEncoding   string    `json:"key_encoding,omitempty"`
	Value         string    `json:"value"`
	ValueEncoding string    `json:"value_encoding,omitempty"`
	CreatedAt     time.Time `json:"created_at"` // when it was enqueued
	QuarantinedAt time.Time `json:"quarantined_at"`
}

var replayable = []string{string(meters.UnknownMeter), string(meters.UnknownSettlementPoint)}

func allReasons() []string {
	return []string{
		string(meters.MalformedJSON), string(meters.SchemaViolation), string(meters.UnsupportedInterval),
		string(meters.MisalignedStart), string(meters.ValueOutOfRange), string(meters.TooManyDecimals),
		string(meters.QualityLengthMismatch), string(meters.UnknownMeter), string(meters.UnknownSettlementPoint),
		string(meters.CurrencyMismatch), string(meters.IntervalLengthMismatch), string(meters.ConflictingDuplicate),
	}
}

// Routes implements Routes.
func (g IngestRoutes) Routes() []Route {
	rangeParams := []Param{
		InstantParam("from", "interval starts at or after this instant (RFC 3339)"),
		InstantParam("to", "interval starts before this instant (RFC 3339)"),
	}
	return []Route{{
		Method: http.MethodGet, Path: "/api/v1/meters/{meter_id}/reads", Roles: Readers,
		Summary: "Current reads of a meter, or every version",
		Description: "The current (highest version) read of each interval, with its quality, source and input offset, ordered by start then channel. " +
			"With versions=all, every stored version of each read (corrections supersede, never erase), ordered by start, channel and version, " +
			"each with superseded_by: the input record whose version replaced it, null for the current one.",
		Params: append(append([]Param{Path("meter_id", "the meter"),
			EnumParam("channel", "only this channel", string(meters.Import), string(meters.Export))}, rangeParams...), versionsParam),
		Response: ListBody(OneOf{Read{}, ReadVersion{}}), Handler: g.reads,
	}, {
		Method: http.MethodGet, Path: "/api/v1/prices", Roles: Readers,
		Summary: "Current prices, or every version",
		Description: "The current (highest version) price of each market, settlement point and interval, with its input offset. " +
			"With versions=all, every stored version of each price, ordered by market, settlement point, start and version, " +
			"each with superseded_by: the input record whose version replaced it, null for the current one.",
		Params: append(append([]Param{Query("settlement_point", "only this settlement point"),
			EnumParam("market", "only this market", string(meters.RealTime), string(meters.DayAhead))}, rangeParams...), versionsParam),
		Response: ListBody(OneOf{Price{}, PriceVersion{}}), Handler: g.prices,
	}, {
		Method: http.MethodGet, Path: "/api/v1/positions", Roles: Readers,
		Summary: "Live positions of an operating day",
		Description: "Unsettled energy per participant, settlement point and settlement interval from the current reads, " +
			"with the settlement price from the current RT prices and the amount where priced. Energy and amount are exact " +
			"(no rounding happens before a statement line).",
		Params: []Param{DayParam("operating_day", "the operating day").Require(),
			Query("participant_id", "only this participant"), Query("settlement_point", "only this settlement point")},
		Response: ListBody(Position{}), Handler: g.positions,
	}, {
		Method: http.MethodGet, Path: "/api/v1/quarantine", Roles: Readers,
		Summary:     "Quarantined input records",
		Description: "Rejected records with reason, detail, source offset and the original bytes, in the order they were received.",
		Params: []Param{EnumParam("reason", "only this reason", allReasons()...),
			Query("topic", "only records of this input topic")},
		Response: ListBody(QuarantineItem{}), Handler: g.quarantine,
	}, {
		Method: http.MethodPost, Path: "/api/v1/quarantine/replay", Roles: Operators,
		Summary: "Replay quarantined records after a registry fix",
		Description: "Re-validates every never-replayed item of the reason (unknown_meter or unknown_settlement_point) in one " +
			"transaction: those that now pass are applied and marked replayed, exactly once; the others stay quarantined.",
		Request: JSONBody(ReplayRequest{}), Response: JSONBody(ingest.ReplayResult{}), Handler: g.replay,
	}, {
		Method: http.MethodGet, Path: "/api/v1/outbox/quarantine", Roles: Readers,
		Summary: "Output records the log refused",
		Description: "Rows of the outbox that the Kafka cluster refused for what they are (larger than the topic's " +
			"max.message.bytes, or invalid), moved aside by the relay so that the stream goes on: never published, " +
			"kept whole, in the order they were moved.",
		Params:   []Param{EnumParam("topic", "only records of this output topic", g.Topics.Outputs()...)},
		Response: ListBody(OutputQuarantineItem{}), Handler: g.outputQuarantine,
	}, {
		Method: http.MethodGet, Path: "/api/v1/status", Roles: Readers,
		Summary: "Ingest positions, lag and watermarks, outbox backlog, latest runs, failing scheduled runs",
		Description: "One entry for every partition of the input topics, whichever instance consumes it: next_offset is the " +
			"stored consumer position, end_offset the last stable offset now, lag their difference. " +
			"outbox counts the rows waiting to be published and the output records the log refused, and lists the parked " +
			"streams (topic or partition missing). scheduled_run_failures lists the scheduled runs whose attempts failed and that have not completed since: " +
			"status retrying (next_attempt_at says when) or gave_up (the scheduler starts it no more; POST /api/v1/runs does).",
		Response: JSONBody(Status{}), Errors: []int{http.StatusServiceUnavailable}, Handler: g.status,
	}}
}

func (g IngestRoutes) reads(c echo.Context) error {
	meter, err := ParseID("meter_id", c.Param("meter_id"))
	if err != nil {
		return err
	}
	f := readstore.ReadFilter{MeterID: meter}
	ch, err := QueryEnum(c, "channel", string(meters.Import), string(meters.Export))
	if err != nil {
		return err
	}
	f.Channel = meters.Channel(ch)
	if f.From, f.To, err = timeRange(c); err != nil {
		return err
	}
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	every, err := allVersions(c)
	if err != nil {
		return err
	}
	var after readstore.ReadKey
	if ok, err := Cursor(c, &after); err != nil {
		return err
	} else if ok {
		f.After = &after
	}
	if every {
		vs, err := readstore.ReadVersions(c.Request().Context(), g.Pool, f, limit+1)
		if err != nil {
			return err
		}
		items := make([]ReadVersion, len(vs))
		for i := range vs {
			items[i] = ReadVersion{Read: apiRead(vs[i].Read, vs[i].Origin), SupersededBy: inputOffset(vs[i].SupersededBy)}
		}
		return List(c, items, limit, func(r ReadVersion) any {
			return readstore.ReadKey{Start: r.Start, Channel: meters.Channel(r.Channel), Version: r.Version}
		})
	}
	rs, err := readstore.CurrentReads(c.Request().Context(), g.Pool, f, limit+1)
	if err != nil {
		return err
	}
	items := make([]Read, len(rs))
	for i, r := range rs {
		items[i] = apiRead(r.Read, r.Origin)
	}
	return List(c, items, limit, func(r Read) any {
		return readstore.ReadKey{Start: r.Start, Channel: meters.Channel(r.Channel)}
	})
}

func apiRead(r meters.Read, o readstore.Origin) Read {
	return Read{
		MeterID: r.MeterID, Channel: string(r.Channel), Start: r.Start, IntervalSeconds: r.IntervalSeconds,
		Value: r.Value.StringFixedBank(decimalScale), Quality: string(r.Quality), Version: r.Version, Source: r.Source,
		Topic: o.Topic, Partition: o.Partition, Offset: o.Offset,
	}
}

// timeRange is the [from, to) instant filter, zero when absent.
func timeRange(c echo.Context) (from, to time.Time, err error) {
	f, t, err := QueryRange(c)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if f != nil {
		from = *f
	}
	if t != nil {
		to = *t
	}
	return from, to, nil
}

func (g IngestRoutes) prices(c echo.Context) error {
	var f readstore.PriceFilter
	var err error
	if f.SettlementPoint, err = QueryID(c, "settlement_point"); err != nil {
		return err
	}
	m, err := QueryEnum(c, "market", string(meters.RealTime), string(meters.DayAhead))
	if err != nil {
		return err
	}
	f.Market = meters.Market(m)
	if f.From, f.To, err = timeRange(c); err != nil {
		return err
	}
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	if f.AllVersions, err = allVersions(c); err != nil {
		return err
	}
	var after readstore.PriceKey
	if ok, err := Cursor(c, &after); err != nil {
		return err
	} else if ok {
		f.After = &after
	}
	ps, err := readstore.CurrentPrices(c.Request().Context(), g.Pool, f, limit+1)
	if err != nil {
		return err
	}
	if f.AllVersions {
		items := make([]PriceVersion, len(ps))
		for i := range ps {
			items[i] = PriceVersion{Price: apiPrice(&ps[i]), SupersededBy: inputOffset(ps[i].SupersededBy)}
		}
		return List(c, items, limit, func(p PriceVersion) any {
			return readstore.PriceKey{Market: meters.Market(p.Market), SettlementPoint: p.SettlementPoint, Start: p.Start, Version: p.Version}
		})
	}
	items := make([]Price, len(ps))
	for i := range ps {
		items[i] = apiPrice(&ps[i])
	}
	return List(c, items, limit, func(p Price) any {
		return readstore.PriceKey{Market: meters.Market(p.Market), SettlementPoint: p.SettlementPoint, Start: p.Start}
	})
}

func apiPrice(p *readstore.StoredPrice) Price {
	return Price{
		Market: string(p.Market), SettlementPoint: p.SettlementPoint, Start: p.Start, IntervalSeconds: p.IntervalSeconds,
		Price: p.Price.Price.StringFixedBank(decimalScale), Currency: p.Currency, Version: p.Version,
		Topic: p.Origin.Topic, Partition: p.Origin.Partition, Offset: p.Origin.Offset,
	}
}

func (g IngestRoutes) positions(c echo.Context) error {
	day, err := QueryDay(c, "operating_day")
	if err != nil {
		return err
	}
	if day == nil {
		return BadParam("operating_day", "is required")
	}
	q := ingest.PositionQuery{Day: *day}
	if q.ParticipantID, err = QueryID(c, "participant_id"); err != nil {
		return err
	}
	if q.SettlementPoint, err = QueryID(c, "settlement_point"); err != nil {
		return err
	}
	limit, err := Limit(c)
	if err != nil {
		return err
	}
	q.Limit = limit + 1
	var after readstore.PositionKey
	if ok, err := Cursor(c, &after); err != nil {
		return err
	} else if ok {
		q.After = &after
	}
	ps, err := ingest.Positions(c.Request().Context(), g.Pool, g.Market, q)
	if err != nil {
		return err
	}
	items := make([]Position, len(ps))
	for i, p := range ps {
		items[i] = Position{
			ParticipantID: p.ParticipantID, SettlementPoint: p.SettlementPoint, IntervalStart: p.IntervalStart,
			EnergyMWh: p.EnergyMWh.String(), Currency: g.Market.Currency,
		}
		if p.Price.Valid {
			price, amount := p.Price.Decimal.StringFixedBank(decimalScale), p.Amount.Decimal.String()
			items[i].Price, items[i].Amount = &price, &amount
		}
	}
	return List(c, items, limit, func(p Position) any {
		return readstore.PositionKey{ParticipantID: p.ParticipantID, SettlementPoint: p.SettlementPoint, IntervalStart: p.IntervalStart}
	})
}

type quarantineKey struct {
	ID int64 `json:"id"`
}

func (g IngestRoutes) quarantine(c echo.Context) error {
	reason, err := QueryEnum(c, "reason", allReasons()...)
	if err != nil {
		return err
	}
	f := readstore.QuarantineFilter{Reason: meters.Reason(reason), Topic: c.QueryParam("topic")}
	limit, afterID, err := idPage(c)
	if err != nil {
		return err
	}
	f.AfterID = afterID
	qs, err := readstore.QuarantineItems(c.Request().Context(), g.Pool, f, limit+1)
	if err != nil {
		return err
	}
	items := make([]QuarantineItem, len(qs))
	for i, q := range qs {
		items[i] = QuarantineItem{
			ID: q.ID, Reason: string(q.Reason), Detail: q.Detail, Topic: q.Source.Topic, Partition: q.Source.Partition,
			Offset: q.Source.Offset, ReceivedAt: q.ReceivedAt, ReplayedAt: q.ReplayedAt,
		}
		items[i].Value, items[i].ValueEncoding = bytesText(q.Source.Value)
		items[i].Key, items[i].KeyEncoding = keyText(q.Source.Key)
	}
	return List(c, items, limit, func(q QuarantineItem) any { return quarantineKey{q.ID} })
}

// idPage is the limit and the cursor (the last id seen) of a list paged by
// id.
func idPage(c echo.Context) (limit int, afterID int64, err error) {
	if limit, err = Limit(c); err != nil {
		return 0, 0, err
	}
	var after quarantineKey
	if _, err := Cursor(c, &after); err != nil {
		return 0, 0, err
	}
	return limit, after.ID, nil
}

func (g IngestRoutes) outputQuarantine(c echo.Context) error {
	topic, err := QueryEnum(c, "topic", g.Topics.Outputs()...)
	if err != nil {
		return err
	}
	limit, afterID, err := idPage(c)
	if err != nil {
		return err
	}
	qs, err := publish.Quarantined(c.Request().Context(), g.Pool, topic, afterID, limit+1)
	if err != nil {
		return err
	}
	items := make([]OutputQuarantineItem, len(qs))
	for i, q := range qs {
		items[i] = OutputQuarantineItem{
			ID: q.ID, Reason: q.Reason, Detail: q.Detail, Topic: q.Topic, Partition: q.Partition, Seq: q.Seq,
			RecordID: q.RecordID, Schema: q.Schema, CreatedAt: q.CreatedAt, QuarantinedAt: q.QuarantinedAt,
		}
		items[i].Value, items[i].ValueEncoding = bytesText(q.Value)
		items[i].Key, items[i].KeyEncoding = keyText(q.Key)
	}
	return List(c, items, limit, func(q OutputQuarantineItem) any { return quarantineKey{q.ID} })
}

// keyText is a record key as bytesText has it, nil for no key (a null key
// is not an empty one).
func keyText(k []byte) (*string, string) {
	if k == nil {
		return nil, ""
	}
	t, enc := bytesText(k)
	return &t, enc
}

// bytesText is b as text when it is UTF-8 without U+0000, else base64 with
// the encoding named: a NUL passes JSON but not every client's string type
// (nor a spreadsheet's, nor Postgres text).
func bytesText(b []byte) (string, string) {
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 {
		return string(b), ""
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

func (g IngestRoutes) replay(c echo.Context) error {
	var req ReplayRequest
	if err := DecodeJSON(c, &req); err != nil {
		return err
	}
	if _, err := ParseEnum("reason", req.Reason, replayable...); err != nil {
		return err
	}
	res, err := Audited(c, g.Pool, func(ctx context.Context, tx pgx.Tx) (ingest.ReplayResult, int, string, error) {
		res, err := g.Applier.Replay(ctx, tx, meters.Reason(req.Reason))
		return res, http.StatusOK, fmt.Sprintf("replayed %s: %d items applied, %d still quarantined",
			req.Reason, res.Replayed, res.StillQuarantined), err
	})
	if err != nil {
		if errors.Is(err, ingest.ErrNotReplayable) {
			return BadParam("reason", "%s", err.Error())
		}
		return err
	}
	return c.JSON(http.StatusOK, res)
}

func (g IngestRoutes) status(c echo.Context) error {
	ctx := c.Request().Context()
	st, err := ingest.ReadStatus(ctx, g.Pool, g.Kafka, g.Topics)
	if err != nil {
		return &Error{Kind: Unavailable, Detail: "cannot read the ingest status from Kafka and Postgres", Err: err}
	}
	backlog, err := publish.ReadBacklog(ctx, g.Pool)
	if err != nil {
		return err
	}
	out := Status{Inputs: st.Inputs, Runs: []settlementpg.Run{}, ScheduledRunFailures: []settlementpg.ScheduledFailure{},
		Outbox: OutboxStatus{Pending: backlog.Pending, Quarantined: backlog.Quarantined,
			Parked: append([]publish.ParkedStream{}, backlog.Parked...)}}
	if out.Inputs == nil {
		out.Inputs = []ingest.PartitionStatus{}
	}
	if g.Runs != nil {
		runs, err := g.Runs.Latest(ctx, statusRuns)
		if err != nil {
			return err
		}
		out.Runs = append(out.Runs, runs...)
		failing, err := g.Runs.ScheduledFailures(ctx, statusRuns)
		if err != nil {
			return err
		}
		out.ScheduledRunFailures = append(out.ScheduledRunFailures, failing...)
	}
	return c.JSON(http.StatusOK, out)
}

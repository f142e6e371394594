package simulate

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/kafka"
)

// Config says what to generate. Zero fields take the defaults of
// WithDefaults.
type Config struct {
	Seed     int64
	Meters   int               // at least MinMeters
	Days     int               // operating days, from StartDay
	StartDay settlement.Day    // the first operating day
	Market   settlement.Market // any IANA zone, half-hour offsets (Australia/Adelaide, Asia/Kolkata) included
	Topics   kafka.Topics      // only Reads and Prices are used
}

// MinMeters is the fewest meters a scenario can have: the first ten play
// fixed roles (a retailer switch, a silent meter, an outage, a move-out, a
// new connection, the reference meter of the bad records, ...).
const MinMeters = 10

// Limits that keep a scenario small enough for a test machine.
const (
	maxMeters = 1_000_000
	maxDays   = 92
)

// DefaultStartDay is the day before the fall-back day of America/Chicago in
// 2026, so the default two days cross a DST change.
var DefaultStartDay = settlement.Day{Year: 2026, Month: time.October, Day: 31}

// WithDefaults fills zero fields: 200 meters, 2 days from DefaultStartDay,
// the market defaults of the contract (America/Chicago, USD, 900 s, spike
// threshold 1000) and the default topic names.
func (c Config) WithDefaults() (Config, error) {
	if c.Meters == 0 {
		c.Meters = 200
	}
	if c.Days == 0 {
		c.Days = 2
	}
	if c.StartDay == (settlement.Day{}) {
		c.StartDay = DefaultStartDay
	}
	if c.Market.Location == nil {
		loc, err := time.LoadLocation("America/Chicago")
		if err != nil {
			return c, fmt.Errorf("load the default market time zone: %w", err)
		}
		c.Market.Location = loc
	}
	if c.Market.Currency == "" {
		c.Market.Currency = "USD"
	}
	if c.Market.IntervalSeconds == 0 {
		c.Market.IntervalSeconds = 900
	}
	if c.Market.PriceSpikeThreshold.IsZero() {
		c.Market.PriceSpikeThreshold = decimal.NewFromInt(1000)
	}
	def := kafka.DefaultTopics()
	if c.Topics.Reads == "" {
		c.Topics.Reads = def.Reads
	}
	if c.Topics.Prices == "" {
		c.Topics.Prices = def.Prices
	}
	return c, nil
}

var currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)

// maxSpikeThreshold keeps generated spike prices (up to 2.4 × the
// threshold) within the contract's |price| ≤ 1,000,000.
var maxSpikeThreshold = decimal.NewFromInt(400_000)

// Validate reports the first setting that cannot be generated.
func (c Config) Validate() error {
	switch {
	case c.Meters < MinMeters || c.Meters > maxMeters:
		return fmt.Errorf("meters: %d is not from %d to %d", c.Meters, MinMeters, maxMeters)
	case c.Days < 1 || c.Days > maxDays:
		return fmt.Errorf("days: %d is not from 1 to %d", c.Days, maxDays)
	case c.Market.Location == nil:
		return errors.New("market time zone: missing")
	case !slices.Contains([]int{300, 900, 1800, 3600}, c.Market.IntervalSeconds):
		return fmt.Errorf("settlement interval: %d is not 300, 900, 1800 or 3600", c.Market.IntervalSeconds)
	case !currencyRE.MatchString(c.Market.Currency):
		return fmt.Errorf("market currency: %q is not an ISO 4217 code", c.Market.Currency)
	case c.Market.PriceSpikeThreshold.Sign() <= 0 || c.Market.PriceSpikeThreshold.GreaterThan(maxSpikeThreshold):
		return fmt.Errorf("price spike threshold: %s is not in (0, %s]", c.Market.PriceSpikeThreshold, maxSpikeThreshold)
	case !meters.AtMostDecimals(c.Market.PriceSpikeThreshold, meters.MaxDecimals):
		return fmt.Errorf("price spike threshold: %s has more than 6 decimal places", c.Market.PriceSpikeThreshold)
	case c.Topics.Reads == "" || c.Topics.Prices == "":
		return errors.New("topics: the reads and prices topic names are required")
	}
	return nil
}

// Record is one input record: what a producer sends to Topic.
type Record struct {
	Topic string
	Key   []byte
	Value []byte
	// Reason is the quarantine reason of meters/README.md the record was built
	// to trigger, empty for a record meant to be accepted. It is not sent.
	Reason string
}

// Scenario is a generated registry and input stream.
type Scenario struct {
	Config           Config // with defaults filled
	Participants     []meters.Participant
	SettlementPoints []meters.SettlementPoint
	Accounts         []meters.Account
	Assignments      []meters.Assignment // ordered by meter, then effective_from
	// Records is the stream in production order. Order matters only
	// between records of one key (they share a partition).
	Records []Record
	// Late are restatements (upward corrections, price corrections) and
	// late reads, meant to be produced after a first run of the days.
	Late []Record
}

// Generate builds the scenario of cfg (zero fields defaulted). It is a pure
// function of cfg: the same Config gives byte-identical output.
func Generate(cfg Config) (*Scenario, error) {
	cfg, err := cfg.WithDefaults()
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("simulate: %w", err)
	}
	g := newGen(cfg)
	g.registry()
	g.history()
	g.stream()
	g.badRecords()
	return g.scenario(), nil
}

package simulate_test

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/settlement"
	"github.com/gridsettle/gridsettle/settlement/oracle"
	"github.com/gridsettle/gridsettle/settlement/simulate"
)

func generate(t testing.TB, cfg simulate.Config) *simulate.Scenario {
	t.Helper()
	sc, err := simulate.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// world is a scenario laid out on partitions with the oracle over it.
type world struct {
	sc       *simulate.Scenario
	o        *oracle.Oracle
	log      []oracle.Input
	mainOnly oracle.Snapshot // everything but the late part
}

// newWorld lays sc out with a consumer whose clock reads now; zero means
// a day after the scenario's last day ends.
func newWorld(t *testing.T, sc *simulate.Scenario, partitions int32, now time.Time) *world {
	t.Helper()
	m := sc.Config.Market
	if now.IsZero() {
		_, end := m.Bounds(sc.Config.StartDay.AddDays(sc.Config.Days - 1))
		now = end.Add(24 * time.Hour)
	}
	dir := t.TempDir()
	if err := simulate.WriteRegistry(dir, sc); err != nil {
		t.Fatal(err)
	}
	reg, err := oracle.ReadRegistry(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	o, err := oracle.New(reg, oracle.Market{Location: m.Location, Currency: m.Currency,
		IntervalSeconds: int64(m.IntervalSeconds), PriceSpikeThreshold: m.PriceSpikeThreshold, Now: now},
		oracle.Topics{Reads: sc.Config.Topics.Reads, Prices: sc.Config.Topics.Prices})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{sc: sc, o: o, mainOnly: oracle.Snapshot{}}
	for i, p := range simulate.Assign(slices.Concat(sc.Records, sc.Late), partitions) {
		w.log = append(w.log, oracle.Input{Topic: p.Topic, Partition: p.Partition, Offset: p.Offset, Key: p.Key, Value: p.Value})
		if i < len(sc.Records) {
			w.mainOnly[oracle.TopicPartition{Topic: p.Topic, Partition: p.Partition}] = p.Offset + 1
		}
	}
	return w
}

func (w *world) ingest(t *testing.T, snap oracle.Snapshot) *oracle.State {
	t.Helper()
	s, err := w.o.Ingest(w.log, snap)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func registryFiles(t *testing.T, sc *simulate.Scenario) map[string][]byte {
	t.Helper()
	dir := t.TempDir()
	if err := simulate.WriteRegistry(dir, sc); err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, name := range []string{simulate.ParticipantsFile, simulate.SettlementPointsFile, simulate.AccountsFile, simulate.MetersFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

func TestSameSeedSameBytes(t *testing.T) {
	cfg := simulate.Config{Seed: 42, Meters: 40, Days: 2}
	a, b := generate(t, cfg), generate(t, cfg)
	if !slices.EqualFunc(slices.Concat(a.Records, a.Late), slices.Concat(b.Records, b.Late), sameRecord) {
		t.Error("same seed, different records")
	}
	ra, rb := registryFiles(t, a), registryFiles(t, b)
	for name := range ra {
		if !bytes.Equal(ra[name], rb[name]) {
			t.Errorf("same seed, different %s", name)
		}
	}
	cfg.Seed = 43
	c := generate(t, cfg)
	if slices.EqualFunc(a.Records, c.Records, sameRecord) {
		t.Error("seeds 42 and 43 give the same records")
	}
	if bytes.Equal(ra[simulate.MetersFile], registryFiles(t, c)[simulate.MetersFile]) {
		t.Error("seeds 42 and 43 give the same meters.csv")
	}
}

func sameRecord(a, b simulate.Record) bool {
	return a.Topic == b.Topic && bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) && a.Reason == b.Reason
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []simulate.Config{
		{Meters: simulate.MinMeters - 1},
		{Days: -1},
		{Days: 400},
		{Market: settlement.Market{IntervalSeconds: 600}},
		{Market: settlement.Market{Currency: "usd"}},
		{Market: settlement.Market{PriceSpikeThreshold: decimal.NewFromInt(-5)}},
	} {
		if _, err := simulate.Generate(cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

// TestEveryQuarantineReason checks the generator against the independent
// oracle: every record is quarantined exactly with the reason it was built
// for, and every reason of the contract occurs, whether the consumer reads
// the stream a day after its last day or decades later (no record depends
// on the wall clock).
func TestEveryQuarantineReason(t *testing.T) {
	for _, c := range []struct {
		seed int64
		now  time.Time
	}{{1, time.Time{}}, {7, time.Time{}}, {7, time.Date(2125, time.December, 31, 0, 0, 0, 0, time.UTC)}} {
		seed := c.seed
		sc := generate(t, simulate.Config{Seed: seed, Meters: 30, Days: 2})
		w := newWorld(t, sc, 4, c.now)
		s := w.ingest(t, nil)
		seen := map[string]int{}
		all := slices.Concat(sc.Records, sc.Late) // in the order of w.log
		for i, in := range w.log {
			q := s.Quarantine[oracle.Position{Topic: in.Topic, Partition: in.Partition, Offset: in.Offset}]
			intended := all[i].Reason
			if q.Reason != intended {
				t.Errorf("seed %d: %s/%d/%d quarantined as %q (%s), built for %q: %s", seed,
					in.Topic, in.Partition, in.Offset, q.Reason, q.Detail, intended, in.Value)
			}
			if q.Reason != "" {
				seen[q.Reason]++
			}
		}
		if got := slices.Sorted(maps.Keys(seen)); !slices.Equal(got, slices.Sorted(slices.Values(oracle.Reasons))) {
			t.Errorf("seed %d: reasons %v, want all of %v", seed, got, oracle.Reasons)
		}
	}
}

// BenchmarkGenerate is the size: 1,000 meters over two days.
func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		generate(b, simulate.Config{Seed: 1, Meters: 1000, Days: 2})
	}
}

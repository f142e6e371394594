package failpoint

import (
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/shopspring/decimal"

	"github.com/gridsettle/gridsettle/meters"
)

// The failpoints (see the package doc for where each one is).
const (
	IngestBeforeBegin    = "ingest-before-begin"
	IngestBeforeCommit   = "ingest-before-commit"
	IngestAfterOutbox    = "ingest-after-outbox"
	IngestAfterCommit    = "ingest-after-commit"
	PublishBeforeProduce = "publish-before-produce"
	PublishAfterFlush    = "publish-after-flush"
	PublishAfterCommit   = "publish-after-commit"
	RunMid               = "run-mid"
	BridgeBeforeProduce  = "bridge-before-produce"
	BridgeAfterCommit    = "bridge-after-commit"
)

// Names are every failpoint, in the order of the package doc.
var Names = []string{IngestBeforeBegin, IngestBeforeCommit, IngestAfterOutbox, IngestAfterCommit,
	PublishBeforeProduce, PublishAfterFlush, PublishAfterCommit, RunMid, BridgeBeforeProduce, BridgeAfterCommit}

// Action is what a firing point does to its own process.
type Action int

const (
	// Kill sends SIGKILL: the process dies on the spot.
	Kill Action = iota
	// Stop sends SIGSTOP: the process freezes until someone sends SIGCONT,
	// then carries on from the point, a zombie of its former self.
	Stop
)

func (a Action) String() string {
	if a == Stop {
		return "SIGSTOP"
	}
	return "SIGKILL"
}

// Spec is one armed point of a list.
type Spec struct {
	Name string
	// Nth, when positive, fires at that hit only.
	Nth int64
	// PPM, when positive, fires each hit with probability PPM/1,000,000.
	// Neither Nth nor PPM: the first hit fires.
	PPM    int64
	Action Action
}

// maxPPM is probability 1.
const maxPPM = 1_000_000

// Parse reads a GRIDSETTLE_FAILPOINTS list (package doc) into its specs and
// seed. An empty list is valid and arms nothing.
func Parse(list string) ([]Spec, uint64, error) {
	var specs []Spec
	seed := uint64(1)
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if s, ok := strings.CutPrefix(item, "seed="); ok {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("failpoints: seed %q is not a non-negative integer", s)
			}
			seed = n
			continue
		}
		sp, err := parseSpec(item)
		if err != nil {
			return nil, 0, fmt.Errorf("failpoints: %q: %w", item, err)
		}
		if slices.ContainsFunc(specs, func(o Spec) bool { return o.Name == sp.Name }) {
			return nil, 0, fmt.Errorf("failpoints: %s is armed twice", sp.Name)
		}
		specs = append(specs, sp)
	}
	return specs, seed, nil
}

func parseSpec(item string) (Spec, error) {
	var sp Spec
	if rest, ok := strings.CutSuffix(item, ":stop"); ok {
		item, sp.Action = rest, Stop
	}
	name, n, hasN := strings.Cut(item, "@")
	if hasN {
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil || v < 1 {
			return Spec{}, fmt.Errorf("hit number %q is not an integer ≥ 1", n)
		}
		sp.Nth = v
	} else if nm, p, hasP := strings.Cut(item, "%"); hasP {
		name = nm
		d, err := meters.ParseDecimal(p, 6)
		if err != nil || d.Sign() <= 0 || d.GreaterThan(decimal.NewFromInt(1)) {
			return Spec{}, fmt.Errorf("probability %q is not in (0, 1] with at most 6 decimal places", p)
		}
		sp.PPM = d.Shift(6).IntPart()
	}
	if !slices.Contains(Names, name) {
		return Spec{}, fmt.Errorf("unknown failpoint %q (known: %s)", name, strings.Join(Names, ", "))
	}
	sp.Name = name
	return sp, nil
}

// point is an armed failpoint's state.
type point struct {
	spec Spec
	mu   sync.Mutex
	hits int64
	rng  *rand.Rand // %P only
}

var (
	armed  atomic.Bool
	mu     sync.Mutex // guards points and logger against Enable
	points map[string]*point
	logger *slog.Logger
)

// Enable arms the points of list (Parse's grammar), replacing whatever was
// armed before; an empty list disarms everything. log receives the line
// written right before a point fires.
func Enable(list string, log *slog.Logger) error {
	specs, seed, err := Parse(list)
	if err != nil {
		return err
	}
	if err := supported(specs); err != nil {
		return err
	}
	ps := make(map[string]*point, len(specs))
	for _, sp := range specs {
		ps[sp.Name] = newPoint(sp, seed)
	}
	mu.Lock()
	defer mu.Unlock()
	points, logger = ps, log
	armed.Store(len(ps) > 0)
	if len(ps) > 0 {
		log.Warn("failpoints armed: this process will kill or stop itself on purpose", "failpoints", list)
	}
	return nil
}

// Disable disarms every point.
func Disable() {
	mu.Lock()
	defer mu.Unlock()
	points = nil
	armed.Store(false)
}

// Hit passes failpoint name: when it is armed and its condition holds, the
// process logs one line and kills or stops itself here.
func Hit(name string) {
	if !armed.Load() {
		return
	}
	hit(name)
}

func hit(name string) {
	mu.Lock()
	p, log := points[name], logger
	mu.Unlock()
	if p == nil {
		return
	}
	n, fire := p.next()
	if !fire {
		return
	}
	log.Warn("failpoint fired", "failpoint", name, "hit", n, "signal", p.spec.Action.String())
	if err := signalSelf(p.spec.Action); err != nil {
		log.Error("failpoint could not signal its own process", "failpoint", name, "err", err)
	}
}

// newPoint arms sp; a %P point draws from a source of its own, seeded by
// seed and its name, so points do not shift each other's draws.
func newPoint(sp Spec, seed uint64) *point {
	p := &point{spec: sp}
	if sp.PPM > 0 {
		h := fnv.New64a()
		h.Write([]byte(sp.Name))
		p.rng = rand.New(rand.NewPCG(seed, h.Sum64()))
	}
	return p
}

// next counts a hit and says whether it fires.
func (p *point) next() (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hits++
	switch {
	case p.spec.Nth > 0:
		return p.hits, p.hits == p.spec.Nth
	case p.spec.PPM > 0:
		return p.hits, p.rng.Int64N(maxPPM) < p.spec.PPM
	default:
		return p.hits, p.hits == 1
	}
}

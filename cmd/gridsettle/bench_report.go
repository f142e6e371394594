package main

import (
	"fmt"
	"math"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
)

// figure is one line of the bench's output: a measured figure, the limit
// it is compared with (measured in the same run), and the target.
type benchFigure struct {
	name      string    // e.g. "ingest, exactly-once"
	unit      string    // of values and limits
	values    []float64 // one per repetition
	limits    []float64 // one per repetition; nil: no limit applies
	limitWhat string    // what the limit is
	// lowerIsBetter: latencies and memory. The ratio is then limit/figure,
	// so that for every line 1 means "as good as the limit".
	lowerIsBetter bool
	target        string                          // as the issue states it
	pass          func(value, ratio float64) bool // nil: no target
	note          string                          // what the reader must know, e.g. a size below the target's
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// line renders f as the one line bench prints for it.
func (f benchFigure) line() string {
	v := median(f.values)
	var b strings.Builder
	fmt.Fprintf(&b, "%-34s %14s %-8s", f.name, human(v), f.unit)
	ratio := math.NaN()
	if len(f.limits) > 0 {
		l := median(f.limits)
		ratio = v / l
		if f.lowerIsBetter {
			ratio = l / v
		}
		fmt.Fprintf(&b, "  limit %12s %s (%s)  ratio %.2f", human(l), f.unit, f.limitWhat, ratio)
	} else {
		b.WriteString("  limit —")
	}
	if f.pass != nil {
		verdict := "MISS"
		if f.pass(v, ratio) {
			verdict = "PASS"
		}
		fmt.Fprintf(&b, "  target %s  %s", f.target, verdict)
	}
	if len(f.values) > 1 {
		samples := make([]string, len(f.values))
		for i, x := range f.values {
			samples[i] = human(x)
		}
		fmt.Fprintf(&b, "  [runs: %s]", strings.Join(samples, ", "))
	}
	if f.note != "" {
		b.WriteString("  — " + f.note)
	}
	return b.String()
}

// human formats x with thousands separators, and 2 decimals below 100.
func human(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "n/a"
	}
	if math.Abs(x) < 100 {
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func (b *bench) print(f benchFigure) { fmt.Fprintln(b.out, f.line()) }

// sizeNote says when a figure was measured below the size its target is
// stated at.
func sizeNote(got, want int, what string) string {
	if got >= want {
		return ""
	}
	return fmt.Sprintf("measured at %s %s, the target is stated at %s: indicative", human(float64(got)), what, human(float64(want)))
}

func atLeast(min float64) func(v, _ float64) bool { return func(v, _ float64) bool { return v >= min } }

func atMost(max float64) func(v, _ float64) bool { return func(v, _ float64) bool { return v <= max } }

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// peakRSS is this process's peak resident set (VmHWM) in bytes, or -1.
func peakRSS() int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kib << 10
		}
	}
	return -1
}

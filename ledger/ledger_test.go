package ledger

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

var day = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func entry(key string, amounts ...string) Entry {
	e := Entry{Key: key, RunID: "run-2026-11-01-initial-1", EffectiveDate: day,
		PostedAt: time.Date(2026, 11, 7, 6, 0, 0, 123456000, time.UTC), Currency: "USD"}
	for i, a := range amounts {
		e.Lines = append(e.Lines, Line{Account: "acct:" + string(rune('a'+i)), Amount: dec(a), SettlementPoint: "HB_NORTH", OperatingDay: day})
	}
	e.Number()
	return e
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		e    Entry
		ok   bool
	}{
		{"two lines", entry("k", "178.90", "-178.90"), true},
		{"three lines", entry("k", "1.00", "2.50", "-3.50"), true},
		{"negative first", entry("k", "-0.01", "0.01"), true},
		{"one line", entry("k", "0.00"), false},
		{"no lines", entry("k"), false},
		{"sum not zero", entry("k", "1.00", "-0.99"), false},
		{"three places", entry("k", "1.005", "-1.005"), false},
		{"no key", entry("", "1", "-1"), false},
		{"no currency", func() Entry { e := entry("k", "1", "-1"); e.Currency = ""; return e }(), false},
		{"no account", func() Entry { e := entry("k", "1", "-1"); e.Lines[1].Account = ""; return e }(), false},
		{"misnumbered", func() Entry { e := entry("k", "1", "-1"); e.Lines[1].LineNo = 3; return e }(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.e.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrUnbalanced) {
				t.Fatalf("error %v does not wrap ErrUnbalanced", err)
			}
		})
	}
}

func chain(n int) []Entry {
	prev := Genesis
	var out []Entry
	for i := range n {
		e := entry("HB_NORTH/P/2026-11-01/"+string(rune('1'+i)), "10.00", "-10.00")
		e.ID = int64(i + 1)
		e.Seal(prev)
		prev = e.Hash
		out = append(out, e)
	}
	return out
}

func verify(entries []Entry) (int, *Failure) {
	v := NewVerifier()
	for _, e := range entries {
		if f := v.Check(e); f != nil {
			return v.Checked(), f
		}
	}
	return v.Checked(), nil
}

func TestChainVerifies(t *testing.T) {
	entries := chain(4)
	if entries[0].PrevHash != Genesis || len(entries[0].Hash) != 64 {
		t.Fatalf("first entry prev %s hash %s", entries[0].PrevHash, entries[0].Hash)
	}
	if n, f := verify(entries); f != nil || n != 4 {
		t.Fatalf("verify = %d, %v", n, f)
	}
}

// TestTamperNamesFirstBadEntry changes one stored field of entry 3 at a time
// and checks verification stops at entry 3, never earlier, never later.
func TestTamperNamesFirstBadEntry(t *testing.T) {
	tampers := map[string]func(e *Entry){
		"amount":        func(e *Entry) { e.Lines[0].Amount = dec("10.01"); e.Lines[1].Amount = dec("-10.01") },
		"account":       func(e *Entry) { e.Lines[0].Account = "acct:z" },
		"point":         func(e *Entry) { e.Lines[1].SettlementPoint = "HB_SOUTH" },
		"operating day": func(e *Entry) { e.Lines[1].OperatingDay = day.AddDate(0, 0, 1) },
		"key":           func(e *Entry) { e.Key = "other" },
		"run":           func(e *Entry) { e.RunID = "run-x" },
		"effective":     func(e *Entry) { e.EffectiveDate = day.AddDate(0, 0, -1) },
		"posted":        func(e *Entry) { e.PostedAt = e.PostedAt.Add(time.Microsecond) },
		"currency":      func(e *Entry) { e.Currency = "EUR" },
		"id":            func(e *Entry) { e.ID = 30 },
		"prev hash":     func(e *Entry) { e.PrevHash = strings.Repeat("1", 64) },
		"hash":          func(e *Entry) { e.Hash = strings.Repeat("2", 64) },
		"line dropped":  func(e *Entry) { e.Lines = e.Lines[:1] },
		"unbalanced":    func(e *Entry) { e.Lines[0].Amount = dec("11") },
		"line added": func(e *Entry) {
			e.Lines = append(e.Lines, Line{LineNo: 3, Account: "acct:c", Amount: decimal.Zero})
		},
	}
	for name, tamper := range tampers {
		t.Run(name, func(t *testing.T) {
			entries := chain(5)
			tamper(&entries[2])
			n, f := verify(entries)
			if f == nil {
				t.Fatal("tampered chain verified")
			}
			if n != 2 || f.EntryID != entries[2].ID {
				t.Fatalf("failure %v after %d entries, want entry 3 after 2", f, n)
			}
		})
	}
	t.Run("entry removed", func(t *testing.T) {
		entries := chain(5)
		entries = append(entries[:2], entries[3:]...)
		if _, f := verify(entries); f == nil || f.EntryID != 4 {
			t.Fatalf("failure %v, want entry 4", f)
		}
	})
}

func TestCanonicalBytesAreUnambiguous(t *testing.T) {
	a := entry("k", "1", "-1")
	b := a
	b.Lines = []Line{a.Lines[0], a.Lines[1]}
	a.Key, a.RunID = "ab", "c"
	b.Key, b.RunID = "a", "bc"
	if string(a.CanonicalBytes()) == string(b.CanonicalBytes()) {
		t.Fatal("moving a character between fields kept the canonical bytes")
	}
	// equal values at another scale are the same entry
	c, d := entry("k", "1", "-1"), entry("k", "1.00", "-1.0")
	if c.ComputeHash() != d.ComputeHash() {
		t.Fatal("1 and 1.00 hash differently")
	}
}

// FuzzValidate: Validate accepts exactly the entries of at least two lines
// with two-place amounts summing to zero; every accepted entry sums to zero.
func FuzzValidate(f *testing.F) {
	f.Add(int64(17890), int64(-17890), int64(0), uint8(2), uint8(0))
	f.Add(int64(1), int64(2), int64(-3), uint8(3), uint8(0))
	f.Add(int64(1005), int64(-1005), int64(0), uint8(2), uint8(3))
	f.Fuzz(func(t *testing.T, a, b, c int64, n, extraPlaces uint8) {
		n %= 4
		places := int32(2 + extraPlaces%2)
		amounts := []int64{a, b, c}[:min(int(n), 3)]
		e := Entry{Key: "k", Currency: "USD"}
		sum := decimal.Zero
		for _, v := range amounts {
			amt := decimal.New(v, -places)
			sum = sum.Add(amt)
			e.Lines = append(e.Lines, Line{Account: "x", Amount: amt})
		}
		e.Number()
		tooFine := false
		for _, l := range e.Lines {
			if !l.Amount.Equal(l.Amount.Truncate(2)) {
				tooFine = true
			}
		}
		want := len(e.Lines) >= 2 && sum.IsZero() && !tooFine
		if got := e.Validate() == nil; got != want {
			t.Fatalf("Validate(%v) ok=%v, want %v", amounts, got, want)
		}
	})
}

func verifyAnchored(entries []Entry, anchors ...Anchor) (int, *Failure) {
	v := NewVerifier(anchors...)
	for _, e := range entries {
		if f := v.Check(e); f != nil {
			return v.Checked(), f
		}
	}
	return v.Checked(), v.Finish()
}

// TestAnchorsCatchTheTail: a chain cut or rewritten after an export is
// consistent on its own; the chain head the export recorded names it.
func TestAnchorsCatchTheTail(t *testing.T) {
	entries := chain(5)
	anchors := []Anchor{
		{EntryID: 5, Hash: entries[4].Hash, ExportID: "export-b"},
		{EntryID: 3, Hash: entries[2].Hash, ExportID: "export-a"},
	}
	v := NewVerifier(anchors...)
	for _, e := range entries {
		if f := v.Check(e); f != nil {
			t.Fatalf("intact chain: %v", f)
		}
	}
	if f := v.Finish(); f != nil || v.Anchored() != 2 || v.Checked() != 5 {
		t.Fatalf("intact chain: %v, %d anchors, %d entries", f, v.Anchored(), v.Checked())
	}

	// The last entry removed.
	if n, f := verifyAnchored(entries[:4], anchors...); f == nil || f.ExportID != "export-b" || f.EntryID != 5 || n != 4 ||
		!strings.Contains(f.Error(), "export-b") {
		t.Fatalf("tail cut: %d, %v", n, f)
	}
	// The last two removed: the first anchor missing is named.
	if _, f := verifyAnchored(entries[:3], anchors...); f == nil || f.ExportID != "export-b" {
		t.Fatalf("two cut: %v", f)
	}
	// The last entry rewritten and resealed: the chain holds, the anchor does not.
	forged := append([]Entry{}, entries...)
	forged[4].Lines = []Line{{LineNo: 1, Account: "acct:a", Amount: dec("99.00")}, {LineNo: 2, Account: "acct:b", Amount: dec("-99.00")}}
	forged[4].Seal(forged[3].Hash)
	if _, f := verifyAnchored(forged); f != nil {
		t.Fatalf("the forged chain must verify on its own: %v", f)
	}
	if n, f := verifyAnchored(forged, anchors...); f == nil || f.ExportID != "export-b" || f.EntryID != 5 || n != 4 {
		t.Fatalf("rewritten tail: %d, %v", n, f)
	}
	// An anchored entry missing from the middle, its successor relinked.
	relinked := append(append([]Entry{}, entries[:2]...), entries[3:]...)
	relinked[2].Seal(relinked[1].Hash)
	relinked[3].Seal(relinked[2].Hash)
	if _, f := verifyAnchored(relinked, anchors[1]); f == nil || f.ExportID != "export-a" || f.EntryID != 3 {
		t.Fatalf("anchored entry gone from the middle: %v", f)
	}
}

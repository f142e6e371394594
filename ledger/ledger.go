package ledger

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Scale is the number of decimal places of ledger amounts (currency minor
// units).
const Scale = 2

// Genesis is the PrevHash of the first entry of the chain.
var Genesis = strings.Repeat("0", sha256.Size*2)

// Line is one signed posting to an account. Positive and negative amounts
// are the two sides; an entry's lines sum to zero.
type Line struct {
	LineNo          int             // 1, 2, … within the entry
	Account         string          // e.g. participant:RETAILER-A:energy_receivable
	Amount          decimal.Decimal // at most Scale places
	SettlementPoint string          // what the line is for; "" when not applicable
	OperatingDay    time.Time       // a calendar date (its Y-M-D); zero when not applicable
}

// Entry is one balanced journal entry.
type Entry struct {
	ID            int64     // position in the chain, assigned when posted
	Key           string    // idempotency key: posting the same key twice posts once
	RunID         string    // the run that posted it, "" when none
	EffectiveDate time.Time // a calendar date: the day the entry is for
	PostedAt      time.Time // when it was posted; microsecond precision
	Currency      string
	Lines         []Line
	PrevHash      string // hex SHA-256 of the previous entry, Genesis for the first
	Hash          string // hex SHA-256 of the canonical bytes
}

// ErrUnbalanced is wrapped by Validate's errors.
var ErrUnbalanced = errors.New("unbalanced journal entry")

// Validate checks an entry's own rules: a key, a currency, at least two
// lines numbered 1..n, amounts of at most two places, summing to zero.
func (e Entry) Validate() error {
	if e.Key == "" {
		return fmt.Errorf("%w: no key", ErrUnbalanced)
	}
	if e.Currency == "" {
		return fmt.Errorf("%w %s: no currency", ErrUnbalanced, e.Key)
	}
	if len(e.Lines) < 2 {
		return fmt.Errorf("%w %s: %d line(s), an entry needs at least 2", ErrUnbalanced, e.Key, len(e.Lines))
	}
	sum := decimal.Zero
	for i, l := range e.Lines {
		if l.LineNo != i+1 {
			return fmt.Errorf("%w %s: line %d numbered %d", ErrUnbalanced, e.Key, i+1, l.LineNo)
		}
		if l.Account == "" {
			return fmt.Errorf("%w %s: line %d has no account", ErrUnbalanced, e.Key, l.LineNo)
		}
		if !l.Amount.Equal(l.Amount.Truncate(Scale)) {
			return fmt.Errorf("%w %s: line %d amount %s has more than %d decimal places", ErrUnbalanced, e.Key, l.LineNo, l.Amount, Scale)
		}
		sum = sum.Add(l.Amount)
	}
	if !sum.IsZero() {
		return fmt.Errorf("%w %s: lines sum to %s", ErrUnbalanced, e.Key, sum.StringFixed(Scale))
	}
	return nil
}

// Number sets the line numbers 1..n in the lines' order.
func (e *Entry) Number() {
	for i := range e.Lines {
		e.Lines[i].LineNo = i + 1
	}
}

// CanonicalBytes is the byte form the hash is taken over: every stored field
// of the entry and its lines, then PrevHash, each as a netstring
// ("len:bytes,") so no two different entries share a form. Hash is not part
// of it.
func (e Entry) CanonicalBytes() []byte {
	var b []byte
	put := func(s string) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
		b = append(b, ',')
	}
	put("gridsettle.journal/v1")
	put(strconv.FormatInt(e.ID, 10))
	put(e.Key)
	put(e.RunID)
	put(formatDate(e.EffectiveDate))
	put(e.PostedAt.UTC().Format("2006-01-02T15:04:05.000000Z"))
	put(e.Currency)
	put(strconv.Itoa(len(e.Lines)))
	for _, l := range e.Lines {
		put(strconv.Itoa(l.LineNo))
		put(l.Account)
		put(l.Amount.StringFixed(Scale))
		put(l.SettlementPoint)
		put(formatDate(l.OperatingDay))
	}
	put(e.PrevHash)
	return b
}

func formatDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}

// ComputeHash is the hex SHA-256 of the entry's canonical bytes.
func (e Entry) ComputeHash() string {
	sum := sha256.Sum256(e.CanonicalBytes())
	return hex.EncodeToString(sum[:])
}

// Seal links the entry after prevHash and sets its Hash.
func (e *Entry) Seal(prevHash string) {
	e.PrevHash = prevHash
	e.Hash = e.ComputeHash()
}

// Failure names the first entry of a chain that does not verify and why;
// ExportID names the export whose recorded chain head the journal no longer
// holds, when that is the failure.
type Failure struct {
	EntryID  int64  `json:"entry_id"`
	EntryKey string `json:"entry_key"`
	Reason   string `json:"reason"`
	ExportID string `json:"export_id,omitempty"`
}

func (f *Failure) Error() string {
	if f.EntryKey == "" {
		return fmt.Sprintf("journal entry %d: %s", f.EntryID, f.Reason)
	}
	return fmt.Sprintf("journal entry %d (%s): %s", f.EntryID, f.EntryKey, f.Reason)
}

// Anchor is a chain head recorded outside the journal: an export's manifest
// records the id and hash of the last entry its run posted. A chain that
// verifies on its own can still have lost or rewritten its tail since; the
// anchor catches that, since the journal must still hold that entry with
// that hash.
type Anchor struct {
	EntryID  int64
	Hash     string
	ExportID string
}

// Verifier checks a chain one entry at a time, in entry id order, and the
// anchors against it.
type Verifier struct {
	prev    string
	checked int
	anchors []Anchor // by entry id; those not yet reached
	matched int
}

// NewVerifier starts checking a chain from its first entry, with the chain
// heads that exports recorded.
func NewVerifier(anchors ...Anchor) *Verifier {
	a := slices.Clone(anchors)
	slices.SortStableFunc(a, func(x, y Anchor) int { return cmp.Compare(x.EntryID, y.EntryID) })
	return &Verifier{prev: Genesis, anchors: a}
}

// Check verifies the next entry of the chain: that no anchored entry before
// it is missing, its balance, its link to the entry before, its hash, and
// the hash every anchor records for it. The first failure is final; keep
// no checking after it.
func (v *Verifier) Check(e Entry) *Failure {
	if len(v.anchors) > 0 && v.anchors[0].EntryID < e.ID {
		return v.missing(v.anchors[0])
	}
	fail := func(reason string) *Failure { return &Failure{EntryID: e.ID, EntryKey: e.Key, Reason: reason} }
	if err := e.Validate(); err != nil {
		return fail(err.Error())
	}
	if e.PrevHash != v.prev {
		return fail(fmt.Sprintf("prev_hash %s does not match the previous entry's hash %s", e.PrevHash, v.prev))
	}
	if h := e.ComputeHash(); h != e.Hash {
		return fail(fmt.Sprintf("stored hash %s does not match the recomputed %s", e.Hash, h))
	}
	for len(v.anchors) > 0 && v.anchors[0].EntryID == e.ID {
		a := v.anchors[0]
		if a.Hash != e.Hash {
			f := fail(fmt.Sprintf("hash %s is not the chain head %s that export %s recorded: the entry was changed after the export", e.Hash, a.Hash, a.ExportID))
			f.ExportID = a.ExportID
			return f
		}
		v.anchors = v.anchors[1:]
		v.matched++
	}
	v.prev = e.Hash
	v.checked++
	return nil
}

// Finish is called after the last entry: an anchor left unreached names an
// entry the journal no longer holds, its tail cut after the export.
func (v *Verifier) Finish() *Failure {
	if len(v.anchors) > 0 {
		return v.missing(v.anchors[0])
	}
	return nil
}

func (v *Verifier) missing(a Anchor) *Failure {
	return &Failure{EntryID: a.EntryID, ExportID: a.ExportID,
		Reason: fmt.Sprintf("the journal no longer holds this entry, the chain head %s that export %s recorded: entries were removed after the export", a.Hash, a.ExportID)}
}

// Checked is the number of entries verified so far.
func (v *Verifier) Checked() int { return v.checked }

// Anchored is the number of anchors verified so far.
func (v *Verifier) Anchored() int { return v.matched }

// Head is the hash of the last verified entry (Genesis before any).
func (v *Verifier) Head() string { return v.prev }

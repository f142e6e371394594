package meters

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxDetailChars bounds a rejection's detail (meters/README.md "Nothing a
// producer sends can stop ingest").
const MaxDetailChars = 200

// SafeDetail makes s a valid quarantine detail whatever bytes it holds:
// invalid UTF-8 becomes U+FFFD, control characters U+0000–U+001F are escaped
// as \uXXXX, and the result is cut at a character boundary (never inside an
// escape) to at most MaxDetailChars characters, ending in "…" when cut.
// Postgres refuses invalid UTF-8 in text (SQLSTATE 22021), so an unsafe
// detail would fail the very transaction that sets its record aside.
func SafeDetail(s string) string {
	var b strings.Builder
	chars := 0
	for i, r := range s { // ranging a string yields U+FFFD for each invalid byte
		piece := string(r)
		if r < 0x20 {
			piece = fmt.Sprintf(`\u%04X`, r)
		}
		w := utf8.RuneCountInString(piece)
		_, size := utf8.DecodeRuneInString(s[i:]) // 1 for an invalid byte
		if chars+w > MaxDetailChars || chars+w == MaxDetailChars && i+size < len(s) {
			b.WriteString("…") // keeps the total at most MaxDetailChars
			return b.String()
		}
		b.WriteString(piece)
		chars += w
	}
	return b.String()
}

package meters

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSafeDetail(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a\x00b\nc", `a\u0000b\u000Ac`},
		{"bad \xff byte", "bad \uFFFD byte"},
		{strings.Repeat("é", 200), strings.Repeat("é", 200)},
		{strings.Repeat("é", 201), strings.Repeat("é", 199) + "…"},
		{strings.Repeat("x", 198) + "\x01", strings.Repeat("x", 198) + "…"},
	} {
		got := SafeDetail(tc.in)
		if got != tc.want {
			t.Errorf("SafeDetail(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzSafeDetail(f *testing.F) {
	f.Add("é\x00\xff")
	f.Fuzz(func(t *testing.T, s string) {
		got := SafeDetail(s)
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > MaxDetailChars {
			t.Fatalf("SafeDetail(%q) = %q: not valid UTF-8 of at most %d characters", s, got, MaxDetailChars)
		}
		for _, r := range got {
			if r < 0x20 {
				t.Fatalf("SafeDetail(%q) = %q keeps a control character", s, got)
			}
		}
	})
}

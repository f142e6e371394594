package settlement

import (
	"testing"
	"time"
)

func TestIntervalsAcrossDST(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	m := Market{Location: chicago, IntervalSeconds: 900}
	for _, tc := range []struct {
		day  string
		want int
	}{{"2026-11-01", 100}, {"2026-03-08", 92}, {"2026-06-15", 96}} {
		d, err := ParseDay(tc.day)
		if err != nil {
			t.Fatal(err)
		}
		iv := m.Intervals(d)
		if len(iv) != tc.want {
			t.Errorf("%s: %d intervals, want %d", tc.day, len(iv), tc.want)
		}
		if got := m.DayOf(iv[0]); got != d {
			t.Errorf("%s: first interval %s is on %s", tc.day, iv[0], got)
		}
		if got := m.DayOf(iv[len(iv)-1]); got != d {
			t.Errorf("%s: last interval %s is on %s", tc.day, iv[len(iv)-1], got)
		}
	}
	start, _ := m.Bounds(Day{2026, 11, 1})
	if want := time.Date(2026, 11, 1, 5, 0, 0, 0, time.UTC); !start.Equal(want) {
		t.Errorf("2026-11-01 starts at %s, want %s", start, want)
	}
}

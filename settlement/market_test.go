package settlement

import (
	"errors"
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

// TestCheckDay: a day whose intervals end after 9999-12-31T23:59:59Z
// cannot be settled; east of UTC the last day still can.
func TestCheckDay(t *testing.T) {
	for _, c := range []struct {
		zone string
		day  Day
		bad  bool
	}{
		{"America/Chicago", Day{9999, time.December, 31}, true},
		{"America/Chicago", Day{9999, time.December, 30}, false},
		{"Asia/Tokyo", Day{9999, time.December, 31}, false},
		{"UTC", Day{9999, time.December, 31}, false},
		{"America/Chicago", Day{2026, time.November, 1}, false},
	} {
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			t.Fatal(err)
		}
		err = Market{Location: loc}.CheckDay(c.day)
		if got := errors.Is(err, ErrDayOutOfRange); got != c.bad {
			t.Errorf("%s in %s: %v, out of range %v", c.day, c.zone, err, c.bad)
		}
	}
}

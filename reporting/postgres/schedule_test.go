package postgres_test

import (
	"strings"
	"testing"
	"time"

	exportpg "github.com/gridsettle/gridsettle/reporting/postgres"
)

// A schedule fires in the market's zone unless it names its own.
func TestScheduleZone(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		spec string
		want time.Time
	}{
		{"0 6 * * *", time.Date(2026, 12, 6, 6, 0, 0, 0, chicago)},
		{"CRON_TZ=Asia/Tokyo 0 6 * * *", time.Date(2026, 12, 7, 6, 0, 0, 0, tokyo)},
		{"TZ=UTC 0 6 * * *", time.Date(2026, 12, 6, 6, 0, 0, 0, time.UTC)},
		{"CRON_TZ=America/Chicago @daily", time.Date(2026, 12, 6, 0, 0, 0, 0, chicago)},
		// rare but real: the next 29 February
		{"0 6 29 2 *", time.Date(2028, 2, 29, 6, 0, 0, 0, chicago)},
		{"CRON_TZ=Asia/Tokyo 0 0 29 2 *", time.Date(2028, 2, 29, 0, 0, 0, 0, tokyo)},
	} {
		s, err := exportpg.ParseSchedule(tt.spec, chicago)
		if err != nil {
			t.Errorf("%q: %v", tt.spec, err)
			continue
		}
		if got := s.Next(now); !got.Equal(tt.want) {
			t.Errorf("%q: next %v, want %v", tt.spec, got, tt.want)
		}
	}
}

func TestScheduleRejects(t *testing.T) {
	for spec, want := range map[string]string{
		"CRON_TZ=America/Chicago":       "names a time zone but no schedule",
		"CRON_TZ=America/Chicago  ":     "names a time zone but no schedule",
		"TZ=":                           "names a time zone but no schedule",
		"CRON_TZ= 0 6 * * *":            "name an IANA time zone",
		"CRON_TZ=Local 0 6 * * *":       "name an IANA time zone",
		"CRON_TZ=Mars/Olympus @daily":   `"Mars/Olympus" is not an IANA time zone`,
		"":                              "empty",
		"61 * * * *":                    "not a cron expression",
		"@every never":                  "not a cron expression",
		"0 0 30 2 *":                    "never fires",
		"0 0 31 4,6,9,11 *":             "never fires",
		"CRON_TZ=Asia/Tokyo 0 0 30 2 *": "never fires",
		"TZ=UTC 15 3 31 2 *":            "never fires",
	} {
		if _, err := exportpg.ParseSchedule(spec, time.UTC); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error containing %q", spec, err, want)
		}
	}
}

// Whatever the text, parsing answers; it never panics.
func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"CRON_TZ=America/Chicago", "TZ=UTC @hourly", "CRON_TZ=", "0 6 * * *", "@every 1h", "TZ=UTC"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		_, _ = exportpg.ParseSchedule(spec, time.UTC)
	})
}

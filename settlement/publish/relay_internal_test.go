package publish

import (
	"strings"
	"testing"
	"time"
)

func TestParseStream(t *testing.T) {
	for _, tc := range []struct {
		payload string
		want    Stream
		ok      bool
	}{
		{"settlement.statements/3", Stream{"settlement.statements", 3}, true},
		{"alerts.customer/0", Stream{"alerts.customer", 0}, true},
		{"a/b/12", Stream{"a/b", 12}, true},
		{"settlement.statements", Stream{}, false},
		{"/3", Stream{}, false},
		{"t/", Stream{}, false},
		{"t/-1", Stream{}, false},
		{"t/x", Stream{}, false},
		{"t/2147483648", Stream{}, false},
	} {
		got, ok := parseStream(tc.payload)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseStream(%q) = %v, %v; want %v, %v", tc.payload, got, ok, tc.want, tc.ok)
		}
	}
}

// A stream survives the trip through a notification payload, and no
// payload makes parsing panic.
func FuzzParseStream(f *testing.F) {
	f.Add("settlement.statements", int32(3))
	f.Add("a/b", int32(0))
	f.Add("", int32(-1))
	f.Fuzz(func(t *testing.T, topic string, partition int32) {
		parseStream(topic)
		if topic == "" || partition < 0 {
			return
		}
		s := Stream{topic, partition}
		got, ok := parseStream(s.String())
		if !ok || got != s {
			t.Fatalf("%v came back as %v, %v", s, got, ok)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	base := Config{Env: "prod"}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		err    string // substring; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no env", func(c *Config) { c.Env = "" }, "env"},
		{"env with a space", func(c *Config) { c.Env = "my env" }, "env"},
		{"batch too large", func(c *Config) { c.BatchSize = 10001 }, "batch size"},
		{"negative timeout", func(c *Config) { c.TransactionTimeout = -1 }, "negative"},
		{"backoff only", func(c *Config) { c.RestartBackoff = time.Second }, ""},
		{"lease timeout below a second", func(c *Config) { c.LeaseTimeout = 999 * time.Millisecond }, "lease timeout"},
		{"negative lease timeout", func(c *Config) { c.LeaseTimeout = -time.Second }, "lease timeout"},
		{"backoff above max", func(c *Config) { c.RestartBackoff, c.MaxRestartBackoff = time.Minute, time.Second }, "backoff"},
	} {
		c := base
		tc.change(&c)
		err := c.Validate()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one about %q", tc.name, err, tc.err)
		}
	}
}

// Distinct streams take distinct leases.
func TestLeaseKeysDiffer(t *testing.T) {
	seen := map[int64]Stream{}
	for _, topic := range []string{"settlement.statements", "settlement.account-charges", "alerts.customer", "gridsettle.dead-letter"} {
		for p := range int32(64) {
			s := Stream{topic, p}
			k := leaseKey(s)
			if prev, dup := seen[k]; dup {
				t.Fatalf("%v and %v share lease key %d", prev, s, k)
			}
			seen[k] = s
		}
	}
}

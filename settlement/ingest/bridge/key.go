package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/gridsettle/gridsettle/meters"
)

// Kind is what an MQTT subscription carries: which Kafka topic its messages
// go to and which field keys them.
type Kind int

const (
	// Reads are interval-read records (meters/README.md "In:
	// ami.interval-reads"), keyed by meter_id.
	Reads Kind = iota
	// Prices are price records (meters/README.md "In: market.prices"), keyed by
	// settlement_point.
	Prices
)

func (k Kind) String() string {
	switch k {
	case Reads:
		return "reads"
	case Prices:
		return "prices"
	}
	return "unrouted"
}

// keyField is the JSON field whose value keys a record of kind k.
func (k Kind) keyField() string {
	if k == Prices {
		return "settlement_point"
	}
	return "meter_id"
}

// maxTopicBytes bounds what of an MQTT topic (up to 65,535 bytes) the bridge
// copies into a record's key or header: enough for any sensible topic, and
// small beside the record size limit.
const maxTopicBytes = 512

// Key is the Kafka key of a payload of kind k: its meter_id or
// settlement_point when the payload is a JSON object holding a valid
// identifier there (meters.ValidIdentifier), else the MQTT topic (cut to
// maxTopicBytes at a character boundary), so that a record without a
// readable key still reaches ingest, which quarantines it with its reason.
// The second result reports whether the key came from the payload.
func Key(k Kind, topic string, payload []byte) ([]byte, bool) {
	if id, ok := payloadKey(k, payload); ok {
		return []byte(id), true
	}
	return []byte(cut(topic, maxTopicBytes)), false
}

func payloadKey(k Kind, payload []byte) (string, bool) {
	// Field names are matched exactly, as ingest does: json.Unmarshal into
	// a struct would also accept "METER_ID".
	var obj map[string]json.RawMessage
	if json.Unmarshal(payload, &obj) != nil {
		return "", false
	}
	raw, ok := obj[k.keyField()]
	if !ok {
		return "", false
	}
	var id string
	if json.Unmarshal(raw, &id) != nil || !meters.ValidIdentifier(id) {
		return "", false
	}
	return id, true
}

// cut is s shortened to at most n bytes without splitting a character.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// maxFilterBytes is the MQTT limit of a topic filter's length.
const maxFilterBytes = 65535

// ValidFilter reports why f is not an MQTT topic filter the bridge can
// subscribe to (MQTT 3.1.1 §4.7): non-empty UTF-8 without NUL, '#' only as
// the whole last level, '+' only as a whole level.
func ValidFilter(f string) error {
	if f == "" || len(f) > maxFilterBytes {
		return fmt.Errorf("%d bytes: a topic filter has 1 to %d", len(f), maxFilterBytes)
	}
	if !utf8.ValidString(f) || strings.ContainsRune(f, 0) {
		return errors.New("not UTF-8 without NUL")
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return fmt.Errorf("%q: '#' only as the whole last level", f)
		}
		if strings.Contains(l, "+") && l != "+" {
			return fmt.Errorf("%q: '+' only as a whole level", f)
		}
	}
	return nil
}

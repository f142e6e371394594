package alerts

import (
	"testing"

	"github.com/gridsettle/gridsettle/meters/contractdoc"
)

// TestReadmeTypes: the table of settlement/alerts/README.md lists exactly
// the alert types of alerts.go, in their order.
func TestReadmeTypes(t *testing.T) {
	contractdoc.CheckConsts(t, "README.md", "Customer-facing alerts", "alerts.go", "Type")
}

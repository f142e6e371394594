package alerts

import (
	"slices"
	"testing"

	"github.com/gridsettle/gridsettle/internal/contractdoc"
)

// TestReadmeTypes: the table of settlement/alerts/README.md lists exactly
// the alert types of alerts.go, in their order.
func TestReadmeTypes(t *testing.T) {
	rows, err := contractdoc.TableRows("README.md", "Customer-facing alerts")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, r := range rows {
		documented = append(documented, r[0])
	}
	defined, err := contractdoc.Consts("alerts.go", "Type")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(documented, defined) {
		t.Errorf("settlement/alerts/README.md lists the alert types\n  %v\nalerts.go defines\n  %v", documented, defined)
	}
}

package meters

import (
	"slices"
	"testing"

	"github.com/gridsettle/gridsettle/internal/contractdoc"
)

// TestReadmeReasons: the reason table of meters/README.md "Validation and
// quarantine" lists exactly the Reason constants of reason.go, in their
// order (the order the checks run).
func TestReadmeReasons(t *testing.T) {
	rows, err := contractdoc.TableRows("README.md", "Validation and quarantine")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, r := range rows {
		documented = append(documented, r[0])
	}
	defined, err := contractdoc.Consts("reason.go", "Reason")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(documented, defined) {
		t.Errorf("meters/README.md \"Validation and quarantine\" lists the reasons\n  %v\nreason.go defines\n  %v", documented, defined)
	}
}

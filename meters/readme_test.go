package meters

import (
	"testing"

	"github.com/gridsettle/gridsettle/meters/contractdoc"
)

// TestReadmeReasons: the reason table of meters/README.md "Validation and
// quarantine" lists exactly the Reason constants of reason.go, in their
// order (the order the checks run).
func TestReadmeReasons(t *testing.T) {
	contractdoc.CheckConsts(t, "README.md", "Validation and quarantine", "reason.go", "Reason")
}

package readstore

import (
	"testing"

	"github.com/gridsettle/gridsettle/migrations/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

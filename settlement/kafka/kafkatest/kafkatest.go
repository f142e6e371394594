// Package kafkatest starts an in-process kfake cluster for a test: the real
// Kafka protocol on loopback, with the contract's topics created. Tests use
// ordinary franz-go clients against it; nothing is mocked.
package kafkatest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/gridsettle/gridsettle/settlement/kafka"
)

// Partitions is the partition count of every topic a test cluster creates.
const Partitions = 4

// New starts a single-broker kfake cluster with every default topic of the
// contract (Partitions partitions each) and closes it when t ends. It returns
// the broker addresses.
func New(t testing.TB, opts ...kfake.Opt) []string {
	t.Helper()
	opts = append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(Partitions, kafka.DefaultTopics().All()...),
	}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kafkatest: start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

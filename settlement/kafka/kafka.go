// Package kafka holds what every Kafka-facing part of gridsettle shares: the
// topic names of the contract, client options built from one Config
// (brokers, SASL, TLS), and creation of missing topics. It does not wrap the
// franz-go client: callers use *kgo.Client directly.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	mkafka "github.com/gridsettle/gridsettle/meters/kafka"
)

// Topics are the topic names of meters/README.md; each is configurable.
type Topics struct {
	Reads          string
	Prices         string
	Statements     string
	AccountCharges string
	Alerts         string
	DeadLetter     string
}

// DefaultTopics are the contract's default names.
func DefaultTopics() Topics {
	return Topics{
		Reads:          mkafka.DefaultTopic,
		Prices:         "market.prices",
		Statements:     "settlement.statements",
		AccountCharges: "settlement.account-charges",
		Alerts:         "alerts.customer",
		DeadLetter:     "gridsettle.dead-letter",
	}
}

// Inputs are the topics gridsettle consumes.
func (t Topics) Inputs() []string { return []string{t.Reads, t.Prices} }

// Outputs are the topics gridsettle writes, only inside Kafka transactions.
func (t Topics) Outputs() []string {
	return []string{t.Statements, t.AccountCharges, t.Alerts, t.DeadLetter}
}

// All is every topic gridsettle uses.
func (t Topics) All() []string { return append(t.Inputs(), t.Outputs()...) }

// Config is how to reach a Kafka cluster.
type Config struct {
	Brokers       []string
	SASLMechanism string // "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	SASLUser      string
	SASLPassword  string
	TLS           bool
	TLSCAFile     string
}

// Validate reports the first setting that cannot work, naming its flag.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("--kafka-brokers: at least one broker address is required")
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.SASLUser == "" {
			return errors.New("--kafka-sasl-user: required with --kafka-sasl-mechanism")
		}
	default:
		return fmt.Errorf("--kafka-sasl-mechanism: %q is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
	}
	if c.TLSCAFile != "" && !c.TLS {
		return errors.New("--kafka-tls-ca: given without --kafka-tls")
	}
	return nil
}

// ClientOpts are the franz-go options that reach the cluster of c.
func (c Config) ClientOpts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLSCAFile != "" {
			pool, err := CertPool(c.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("--kafka-tls-ca: %w", err)
			}
			tc.RootCAs = pool
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	var mech sasl.Mechanism
	switch strings.ToUpper(c.SASLMechanism) {
	case "PLAIN":
		mech = plain.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsMechanism()
	case "SCRAM-SHA-256":
		mech = scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		mech = scram.Auth{User: c.SASLUser, Pass: c.SASLPassword}.AsSha512Mechanism()
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// CertPool is the PEM certificates of file, for a TLS client's RootCAs
// (Kafka's here, the MQTT bridge's too).
func CertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA certificates: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates found", file)
	}
	return pool, nil
}

// EnsureTopics creates each missing topic with partitions partitions.
// Existing topics are left as they are.
func EnsureTopics(ctx context.Context, cl *kgo.Client, partitions int32, topics ...string) error {
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, partitions, -1, nil, topics...)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Err)
		}
	}
	return nil
}

package publish

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	published    *prometheus.CounterVec // by topic
	transactions *prometheus.CounterVec // by outcome
	restarts     *prometheus.CounterVec // by topic, partition
	lag          *prometheus.GaugeVec   // by topic, partition
	leases       prometheus.Gauge
	quarantined  *prometheus.CounterVec // by topic, reason
	parked       *prometheus.GaugeVec   // by topic, partition
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_published_records_total",
			Help: "Records published in committed Kafka transactions.",
		}, []string{"topic"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_publish_transactions_total",
			Help: "Kafka transactions of the outbox relay by outcome: committed, or aborted (ended without a confirmed commit: aborted, abandoned to fencing, or of unknown outcome).",
		}, []string{"outcome"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_publish_relay_restarts_total",
			Help: "Stream sessions of the outbox relay that failed and restarted from the log.",
		}, []string{"topic", "partition"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gridsettle_publish_lag_records",
			Help: "Outbox rows of a stream not yet confirmed in the log, for the streams this instance holds.",
		}, []string{"topic", "partition"}),
		leases: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gridsettle_publish_leases_held",
			Help: "Output streams whose lease this instance holds.",
		}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_publish_quarantined_records_total",
			Help: "Outbox rows the log refused (record_too_large, record_invalid), moved to the output quarantine.",
		}, []string{"topic", "reason"}),
		parked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gridsettle_publish_parked_streams",
			Help: "1 for each stream this instance holds whose topic or partition does not exist: not published until it does.",
		}, []string{"topic", "partition"}),
	}
	// Both outcomes exist from the start, so a rate over them is defined
	// before the first abort.
	m.transactions.WithLabelValues("committed")
	m.transactions.WithLabelValues("aborted")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.published, m.transactions, m.restarts, m.lag, m.leases, m.quarantined, m.parked} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register publish metrics: %w", err)
		}
	}
	return m, nil
}

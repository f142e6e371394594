package bridge

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	in           *prometheus.CounterVec
	redeliveries *prometheus.CounterVec
	committed    *prometheus.CounterVec
	transactions *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	connected    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		in: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_bridge_messages_total",
			Help: "MQTT messages received, by kind (reads, prices, unrouted), redeliveries included.",
		}, []string{"kind"}),
		redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_bridge_redeliveries_total",
			Help: "MQTT messages received with the DUP flag: sent before and not acknowledged (a bridge that died before its PUBACK).",
		}, []string{"kind"}),
		committed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_bridge_records_committed_total",
			Help: "Records committed to Kafka, by topic.",
		}, []string{"topic"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_bridge_transactions_total",
			Help: "Kafka transactions of the bridge, by outcome (committed, aborted).",
		}, []string{"outcome"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_bridge_dead_letters_total",
			Help: "Payloads the bridge itself committed to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gridsettle_bridge_mqtt_connected",
			Help: "1 while the bridge is connected to its MQTT broker.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.in, m.redeliveries, m.committed, m.transactions, m.deadLetters, m.connected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register bridge metrics: %w", err)
		}
	}
	return m, nil
}

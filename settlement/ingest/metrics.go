package ingest

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the consumer's Prometheus collectors. Counts are converted to
// the client library's sample type here and nowhere else; no amount or
// energy ever passes through them.
type metrics struct {
	records     *prometheus.CounterVec   // by topic: every data record consumed
	quarantined *prometheus.CounterVec   // by topic, reason
	ignored     *prometheus.CounterVec   // by topic, kind (stale, duplicate)
	batchSize   *prometheus.HistogramVec // by topic: records per batch (markers included)
	batchTime   *prometheus.HistogramVec // by topic: seconds per committed batch
	casMisses   *prometheus.CounterVec   // by topic, partition
	failures    *prometheus.CounterVec   // by topic, partition: batches rolled back on an error (transient or refused)
	lag         *prometheus.GaugeVec     // by topic, partition
	watermark   *prometheus.GaugeVec     // by topic, partition: unix seconds
	refused     *prometheus.GaugeVec     // by topic, partition: 1 while its log is refused
	skipped     *prometheus.CounterVec   // by topic, partition: records below the stored offset delivered and skipped
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	tp := []string{"topic", "partition"}
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_ingest_records_total",
			Help: "Input records consumed and committed (transaction markers excluded).",
		}, []string{"topic"}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_ingest_quarantined_total",
			Help: "Input records quarantined, by reason.",
		}, []string{"topic", "reason"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_ingest_ignored_total",
			Help: "Reads and prices ignored by versioning: stale (lower version) or duplicate (same version and value).",
		}, []string{"topic", "kind"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gridsettle_ingest_batch_records",
			Help:    "Records (markers included) per committed batch of one partition.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}, []string{"topic"}),
		batchTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gridsettle_ingest_batch_seconds",
			Help:    "Time to apply and commit one batch (its records are decoded before).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"topic"}),
		casMisses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_ingest_offset_cas_misses_total",
			Help: "Batches rolled back because the stored offset had moved (another owner of the partition).",
		}, tp),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_ingest_batch_failures_total",
			Help: "Batches rolled back on an error: retried from the stored offset (transient), or applied in parts to find a refused record.",
		}, tp),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gridsettle_ingest_lag_records",
			Help: "Last stable offset minus the stored next offset, for the partitions this instance consumes.",
		}, tp),
		watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gridsettle_ingest_watermark_seconds",
			Help: "Event-time watermark (latest interval end seen) as unix seconds.",
		}, tp),
		refused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gridsettle_ingest_log_refused",
			Help: "1 while a partition this instance owns is refused because its log ends below the stored offset (reset or recreated topic); an operator must reset its offset.",
		}, tp),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gridsettle_ingest_skipped_records_total",
			Help: "Records delivered below the stored offset and skipped: the input log may have been reset while reaching past the stored offset.",
		}, tp),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.records, m.quarantined, m.ignored, m.batchSize, m.batchTime,
		m.casMisses, m.failures, m.lag, m.watermark, m.refused, m.skipped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register ingest metrics: %w", err)
		}
	}
	return m, nil
}

func partitionLabel(p int32) string { return strconv.FormatInt(int64(p), 10) }

// committed records a committed batch.
func (m *metrics) committed(b *batch, out outcome, seconds float64, lastStable int64) {
	p := partitionLabel(b.partition)
	m.records.WithLabelValues(b.topic).Add(float64(len(b.reads) + len(b.prices)))
	for _, q := range out.quarantined {
		m.quarantined.WithLabelValues(b.topic, string(q.Reason)).Inc()
	}
	m.ignored.WithLabelValues(b.topic, "stale").Add(float64(out.stale))
	m.ignored.WithLabelValues(b.topic, "duplicate").Add(float64(out.duplicates))
	m.batchSize.WithLabelValues(b.topic).Observe(float64(b.to - b.from))
	m.batchTime.WithLabelValues(b.topic).Observe(seconds)
	if lastStable >= b.to {
		m.lag.WithLabelValues(b.topic, p).Set(float64(lastStable - b.to))
	}
	if !out.watermark.IsZero() {
		m.watermark.WithLabelValues(b.topic, p).Set(float64(out.watermark.Unix()))
	}
}

//! Prometheus metrics of physical replication (documented in docs/metrics.md), labelled by
//! the virtual cluster: the standby's name for ingestion metrics, the source's for producer
//! metrics.

use prometheus::{
    Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

const LABEL: &[&str] = &["virtual_cluster"];

/// Replication metrics of one node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReplicationMetrics {
    pub replicated_time_seconds: GaugeVec,
    pub retained_time_seconds: GaugeVec,
    pub replication_lag_seconds: GaugeVec,
    pub logical_bytes: IntCounterVec,
    pub events_ingested: IntCounterVec,
    pub checkpoint_events_ingested: IntCounterVec,
    pub flushes: IntCounterVec,
    pub flush_duration_seconds: HistogramVec,
    pub admit_latency_seconds: HistogramVec,
    pub commit_latency_seconds: HistogramVec,
    pub running: IntGaugeVec,
    pub replans: IntCounterVec,
    pub cutover_progress: GaugeVec,
    pub producer_streams: IntGaugeVec,
    pub producer_bytes_sent: IntCounterVec,
    pub store_available_bytes: Gauge,
}

fn latency_buckets() -> Vec<f64> {
    vec![
        0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0, 600.0,
    ]
}

impl ReplicationMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = |n: &str, h: &str| GaugeVec::new(Opts::new(n, h), LABEL);
        let counter = |n: &str, h: &str| IntCounterVec::new(Opts::new(n, h), LABEL);
        let hist = |n: &str, h: &str, b: Vec<f64>| {
            HistogramVec::new(HistogramOpts::new(n, h).buckets(b), LABEL)
        };
        let m = ReplicationMetrics {
            replicated_time_seconds: gauge(
                "physical_replication_replicated_time_seconds",
                "The replicated time of the stream (Unix seconds): everything up to it is durable on the standby; 0 after cutover",
            )?,
            retained_time_seconds: gauge(
                "physical_replication_retained_time_seconds",
                "The retained time (Unix seconds): the earliest time one can cut over to",
            )?,
            replication_lag_seconds: gauge(
                "physical_replication_replication_lag_seconds",
                "Now minus the replicated time",
            )?,
            logical_bytes: counter(
                "physical_replication_logical_bytes_total",
                "Bytes of keys and values ingested by this node",
            )?,
            events_ingested: counter(
                "physical_replication_events_ingested_total",
                "Versions ingested by this node",
            )?,
            checkpoint_events_ingested: counter(
                "physical_replication_checkpoint_events_ingested_total",
                "Checkpoint events received by this node",
            )?,
            flushes: counter(
                "physical_replication_flushes_total",
                "Flushes of ingested versions into the Raft log by this node",
            )?,
            flush_duration_seconds: hist(
                "physical_replication_flush_duration_seconds",
                "Time to write one flush durably",
                vec![
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
                ],
            )?,
            admit_latency_seconds: hist(
                "physical_replication_admit_latency_seconds",
                "From a version's MVCC time to its arrival at the ingesting node",
                latency_buckets(),
            )?,
            commit_latency_seconds: hist(
                "physical_replication_commit_latency_seconds",
                "From the MVCC time of the oldest version of a flush to the flush being durable",
                latency_buckets(),
            )?,
            running: IntGaugeVec::new(
                Opts::new(
                    "physical_replication_running",
                    "Replication jobs coordinated by this node",
                ),
                LABEL,
            )?,
            replans: counter(
                "physical_replication_replans_total",
                "Times a replication job re-planned its partitions (after an error or a topology change)",
            )?,
            cutover_progress: gauge(
                "physical_replication_cutover_progress",
                "Spans left to revert during a cutover (0 when none is in flight)",
            )?,
            producer_streams: IntGaugeVec::new(
                Opts::new(
                    "physical_replication_producer_streams",
                    "Partition streams this source node is serving",
                ),
                LABEL,
            )?,
            producer_bytes_sent: counter(
                "physical_replication_producer_bytes_sent_total",
                "Compressed bytes of versions sent by this source node",
            )?,
            store_available_bytes: Gauge::with_opts(Opts::new(
                "physical_replication_store_available_bytes",
                "Free disk space of this standby node's store, as last checked before an ingestion flush",
            ))?,
        };
        registry.register(Box::new(m.replicated_time_seconds.clone()))?;
        registry.register(Box::new(m.retained_time_seconds.clone()))?;
        registry.register(Box::new(m.replication_lag_seconds.clone()))?;
        registry.register(Box::new(m.logical_bytes.clone()))?;
        registry.register(Box::new(m.events_ingested.clone()))?;
        registry.register(Box::new(m.checkpoint_events_ingested.clone()))?;
        registry.register(Box::new(m.flushes.clone()))?;
        registry.register(Box::new(m.flush_duration_seconds.clone()))?;
        registry.register(Box::new(m.admit_latency_seconds.clone()))?;
        registry.register(Box::new(m.commit_latency_seconds.clone()))?;
        registry.register(Box::new(m.running.clone()))?;
        registry.register(Box::new(m.replans.clone()))?;
        registry.register(Box::new(m.cutover_progress.clone()))?;
        registry.register(Box::new(m.producer_streams.clone()))?;
        registry.register(Box::new(m.producer_bytes_sent.clone()))?;
        registry.register(Box::new(m.store_available_bytes.clone()))?;
        Ok(m)
    }

    /// Metrics in a private registry (tests).
    pub fn unregistered() -> Self {
        Self::new(&Registry::new()).expect("fresh registry")
    }
}

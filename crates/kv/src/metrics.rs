//! Prometheus metrics of the KV layer (documented in docs/metrics.md).

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The KV layer's metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct KvMetrics {
    pub raft_is_leader: IntGauge,
    pub raft_term: IntGauge,
    pub raft_applied_index: IntGauge,
    pub closed_ts_lag_seconds: Gauge,
    pub txn_commits: IntCounter,
    pub txn_aborts: IntCounter,
    pub rpc_requests: IntCounterVec,
    pub rangefeed_active: IntGauge,
    pub snapshots_installed: IntCounter,
    pub commands_too_large: IntCounter,
    pub is_leaseholder: IntGauge,
    pub lease_acquisitions: IntCounter,
    pub not_leaseholder_rejections: IntCounter,
    pub reads: IntCounterVec,
    pub read_uncertainty_restarts: IntCounter,
    pub close_proposals: IntCounter,
    pub gc_runs: IntCounter,
    pub gc_versions_removed: IntCounter,
    pub gc_bytes_removed: IntCounter,
    pub gc_threshold_lag_seconds: Gauge,
    pub raft_log_entries: IntGauge,
    pub raft_log_bytes: IntGauge,
    pub raft_log_truncations: IntCounter,
    pub snapshots_built: IntCounter,
    pub snapshot_files_written: IntCounter,
    pub snapshots_sent: IntCounter,
    pub snapshot_sent_bytes: IntCounter,
    pub snapshots_received: IntCounter,
    pub snapshot_received_bytes: IntCounter,
}

impl KvMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = KvMetrics {
            raft_is_leader: IntGauge::new(
                "raft_is_leader",
                "1 if this node leads its range, else 0",
            )?,
            raft_term: IntGauge::new("raft_term", "The current Raft term")?,
            raft_applied_index: IntGauge::new(
                "raft_applied_index",
                "The index of the last applied Raft entry",
            )?,
            closed_ts_lag_seconds: Gauge::new(
                "kv_closed_timestamp_lag_seconds",
                "How far this replica's closed timestamp trails its clock",
            )?,
            txn_commits: IntCounter::new(
                "kv_txn_commits_total",
                "Transactions committed (applied on this replica)",
            )?,
            txn_aborts: IntCounter::new(
                "kv_txn_aborts_total",
                "Transactions aborted by a conflict (applied on this replica)",
            )?,
            rpc_requests: IntCounterVec::new(
                Opts::new("rpc_requests_total", "RPC requests served, by method"),
                &["method"],
            )?,
            rangefeed_active: IntGauge::new(
                "rangefeed_active",
                "Rangefeeds being served by this node",
            )?,
            snapshots_installed: IntCounter::new(
                "raft_snapshots_installed_total",
                "Raft snapshots installed on this replica (a follower too far behind the log)",
            )?,
            commands_too_large: IntCounter::new(
                "kv_commands_too_large_total",
                "Commands this node refused (as gateway or leader) for exceeding kv.raft.command.max_size",
            )?,
            is_leaseholder: IntGauge::new(
                "kv_is_leaseholder",
                "1 if this node holds the range lease and may serve present-time reads, else 0",
            )?,
            lease_acquisitions: IntCounter::new(
                "kv_lease_acquisitions_total",
                "Changes of the range's leaseholder (applied on this replica)",
            )?,
            not_leaseholder_rejections: IntCounter::new(
                "kv_not_leaseholder_rejections_total",
                "Commands rejected at apply because their proposer did not hold the lease",
            )?,
            reads: IntCounterVec::new(
                Opts::new(
                    "kv_reads_total",
                    "Reads (gets and scans) served by this node, by how: lease (present time, by the leaseholder, no Raft round), closed (at or below the closed timestamp, any replica), forwarded (sent to the leaseholder), close_wait (waited for a closed timestamp proposed through Raft)",
                ),
                &["path"],
            )?,
            read_uncertainty_restarts: IntCounter::new(
                "kv_read_uncertainty_restarts_total",
                "Reads that found a value in their uncertainty window (restarted above it, or refused with a retry error)",
            )?,
            close_proposals: IntCounter::new(
                "kv_close_proposals_total",
                "Close entries this node proposed to advance the closed timestamp",
            )?,
            gc_runs: IntCounter::new(
                "kv_gc_runs_total",
                "Runs of the GC queue on this node (as leader, over every span of the policy)",
            )?,
            gc_versions_removed: IntCounter::new(
                "kv_gc_versions_removed_total",
                "MVCC versions garbage collected (applied on this replica)",
            )?,
            gc_bytes_removed: IntCounter::new(
                "kv_gc_bytes_removed_total",
                "Bytes of MVCC versions (encoded keys and values) garbage collected on this replica",
            )?,
            gc_threshold_lag_seconds: Gauge::new(
                "kv_gc_threshold_lag_seconds",
                "How far the oldest GC threshold of this replica trails its clock (the history kept)",
            )?,
            raft_log_entries: IntGauge::new(
                "raft_log_entries",
                "Entries in this replica's Raft log (after the last truncation)",
            )?,
            raft_log_bytes: IntGauge::new(
                "raft_log_bytes",
                "Encoded bytes of the entries in this replica's Raft log",
            )?,
            raft_log_truncations: IntCounter::new(
                "raft_log_truncations_total",
                "Truncations of this replica's Raft log (by kv.raft_log.truncation_max_entries or _max_bytes, or behind every follower)",
            )?,
            snapshots_built: IntCounter::new(
                "raft_snapshots_built_total",
                "Snapshots taken on this replica (a read view at the applied index; written to a file only when sent)",
            )?,
            snapshot_files_written: IntCounter::new(
                "raft_snapshot_files_written_total",
                "Snapshots written to a file on this replica to be sent to a follower",
            )?,
            snapshots_sent: IntCounter::new(
                "raft_snapshots_sent_total",
                "Snapshots this node sent to a follower completely",
            )?,
            snapshot_sent_bytes: IntCounter::new(
                "raft_snapshot_sent_bytes_total",
                "Bytes of snapshot chunks this node sent",
            )?,
            snapshots_received: IntCounter::new(
                "raft_snapshots_received_total",
                "Snapshots this replica received completely (installed or not)",
            )?,
            snapshot_received_bytes: IntCounter::new(
                "raft_snapshot_received_bytes_total",
                "Bytes of snapshot chunks this replica received",
            )?,
        };
        registry.register(Box::new(m.raft_is_leader.clone()))?;
        registry.register(Box::new(m.raft_term.clone()))?;
        registry.register(Box::new(m.raft_applied_index.clone()))?;
        registry.register(Box::new(m.closed_ts_lag_seconds.clone()))?;
        registry.register(Box::new(m.txn_commits.clone()))?;
        registry.register(Box::new(m.txn_aborts.clone()))?;
        registry.register(Box::new(m.rpc_requests.clone()))?;
        registry.register(Box::new(m.rangefeed_active.clone()))?;
        registry.register(Box::new(m.snapshots_installed.clone()))?;
        registry.register(Box::new(m.commands_too_large.clone()))?;
        registry.register(Box::new(m.is_leaseholder.clone()))?;
        registry.register(Box::new(m.lease_acquisitions.clone()))?;
        registry.register(Box::new(m.not_leaseholder_rejections.clone()))?;
        registry.register(Box::new(m.reads.clone()))?;
        registry.register(Box::new(m.read_uncertainty_restarts.clone()))?;
        registry.register(Box::new(m.close_proposals.clone()))?;
        registry.register(Box::new(m.gc_runs.clone()))?;
        registry.register(Box::new(m.gc_versions_removed.clone()))?;
        registry.register(Box::new(m.gc_bytes_removed.clone()))?;
        registry.register(Box::new(m.gc_threshold_lag_seconds.clone()))?;
        for c in [
            &m.raft_log_truncations,
            &m.snapshots_built,
            &m.snapshot_files_written,
            &m.snapshots_sent,
            &m.snapshot_sent_bytes,
            &m.snapshots_received,
            &m.snapshot_received_bytes,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(m.raft_log_entries.clone()))?;
        registry.register(Box::new(m.raft_log_bytes.clone()))?;
        Ok(m)
    }

    /// Metrics registered nowhere (for tests and tools).
    pub fn unregistered() -> Self {
        Self::new(&Registry::new()).expect("fresh registry has no name clashes")
    }
}

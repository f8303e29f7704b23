use std::time::Duration;

/// Settings of the KV layer.
#[derive(Debug, Clone)]
pub struct KvConfig {
    /// `kv.closed_timestamp.target_interval`: the leader proposes an empty entry when nothing
    /// was proposed for this long, so closed timestamps keep up with real time.
    pub closed_ts_target_interval: Duration,
    /// `kv.rangefeed.checkpoint_interval`: the longest gap between rangefeed checkpoints.
    pub rangefeed_checkpoint_interval: Duration,
    /// Applied entries a rangefeed may fall behind before it fails and must resubscribe.
    pub rangefeed_buffer_entries: usize,
    /// How long a read waits for the local replica to close its timestamp.
    pub read_wait_max: Duration,
    /// How long a range lease lasts from its last extension (`kv.range_lease.duration`). The
    /// leaseholder extends it when half is left; after the leaseholder dies, writes wait up to
    /// this long for another node to take the lease.
    pub range_lease_duration: Duration,
    /// How long a request retries while the cluster has no reachable leader.
    pub leader_wait_max: Duration,
    /// Raft heartbeat interval.
    pub raft_heartbeat_interval: Duration,
    /// Raft election timeout range: lower bound (the upper is twice it).
    pub raft_election_timeout: Duration,
    /// A snapshot is built after this many entries since the last one.
    pub snapshot_entries_since_last: u64,
    /// Entries kept in the log behind the last snapshot (for slow followers); older ones are
    /// purged, and a follower further behind catches up by installing a snapshot.
    pub log_entries_kept_behind_snapshot: u64,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            closed_ts_target_interval: Duration::from_millis(200),
            rangefeed_checkpoint_interval: Duration::from_millis(200),
            rangefeed_buffer_entries: 8192,
            read_wait_max: Duration::from_secs(5),
            range_lease_duration: Duration::from_secs(4),
            leader_wait_max: Duration::from_secs(10),
            // openraft gives an append one heartbeat interval to complete: replication's
            // ingest entries (up to a few MiB) need more than 100 ms on a loaded machine, and
            // each timeout is a retry and an ERROR line.
            raft_heartbeat_interval: Duration::from_millis(250),
            raft_election_timeout: Duration::from_millis(1500),
            snapshot_entries_since_last: 20_000,
            log_entries_kept_behind_snapshot: 1_000,
        }
    }
}

impl KvConfig {
    /// The openraft configuration derived from these settings.
    pub(crate) fn raft_config(&self) -> openraft::Config {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        openraft::Config {
            cluster_name: "roach".to_string(),
            heartbeat_interval: ms(self.raft_heartbeat_interval),
            election_timeout_min: ms(self.raft_election_timeout),
            election_timeout_max: ms(self.raft_election_timeout) * 2,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(
                self.snapshot_entries_since_last,
            ),
            max_in_snapshot_log_to_keep: self.log_entries_kept_behind_snapshot,
            purge_batch_size: 1,
            snapshot_max_chunk_size: crate::limits::SNAPSHOT_CHUNK_BYTES as u64,
            ..Default::default()
        }
    }
}

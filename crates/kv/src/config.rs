use std::time::Duration;

/// The default of `kv.raft_log.truncation_max_entries`.
pub const RAFT_LOG_TRUNCATION_MAX_ENTRIES_DEFAULT: u64 = 10_000;
/// The default of `kv.raft_log.truncation_max_bytes` (CockroachDB's raft log truncation
/// threshold is 16 MiB too).
pub const RAFT_LOG_TRUNCATION_MAX_BYTES_DEFAULT: u64 = 16 << 20;

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
    /// `kv.raft_log.truncation_max_entries`: the most entries a replica's Raft log keeps.
    /// The log is truncated behind the slowest live follower; a follower so far behind that
    /// keeping its entries would exceed this (or the byte cap) is left to catch up from a
    /// snapshot.
    pub raft_log_truncation_max_entries: u64,
    /// `kv.raft_log.truncation_max_bytes`: the most encoded bytes a replica's Raft log keeps
    /// (as above).
    pub raft_log_truncation_max_bytes: u64,
    /// How often a replica checks whether its log should be truncated.
    pub raft_log_truncation_interval: Duration,
    /// How long one snapshot chunk RPC may take, the last one including the follower's
    /// install of the whole snapshot.
    pub raft_snapshot_rpc_timeout: Duration,
    /// Test hook: make a snapshot install fail after this many load batches, leaving the
    /// store as a crash in the middle of the install would. Never set it in production.
    #[doc(hidden)]
    pub snapshot_install_fail_after_batches: Option<u64>,
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
            raft_log_truncation_max_entries: RAFT_LOG_TRUNCATION_MAX_ENTRIES_DEFAULT,
            raft_log_truncation_max_bytes: RAFT_LOG_TRUNCATION_MAX_BYTES_DEFAULT,
            raft_log_truncation_interval: Duration::from_secs(1),
            raft_snapshot_rpc_timeout: Duration::from_secs(60),
            snapshot_install_fail_after_batches: None,
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
            // Snapshots are taken by the log truncation queue (`log_truncation`), which then
            // asks openraft to purge exactly what it decided; openraft's own purge after a
            // snapshot is off (it would keep this many entries, i.e. none is purged).
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: u64::MAX,
            purge_batch_size: 1,
            install_snapshot_timeout: ms(self.raft_snapshot_rpc_timeout),
            snapshot_max_chunk_size: crate::limits::SNAPSHOT_CHUNK_BYTES as u64,
            ..Default::default()
        }
    }
}

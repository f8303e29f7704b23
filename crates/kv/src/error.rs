use crate::NodeId;
use hlc::Timestamp;
use storage::encoding::PrettyKey;

/// The result of a KV operation.
pub type KvResult<T> = Result<T, KvError>;

/// Errors of the KV layer.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The storage engine failed.
    #[error("storage: {0}")]
    Storage(#[from] storage::StorageError),
    /// A transaction conflicted with a concurrent write and was aborted; retry it.
    #[error(
        "restart transaction: {key} changed after the read timestamp {read_ts} (retry the transaction)"
    )]
    TxnRetry { key: PrettyKey, read_ts: Timestamp },
    /// No leader could be reached in time.
    #[error("range has no reachable leader after {waited_ms} ms: {last_error}")]
    NoLeader { waited_ms: u64, last_error: String },
    /// This node is not the leader; the request must go to `leader`.
    #[error("not the leader; the leader is {leader:?}")]
    NotLeader { leader: Option<NodeId> },
    /// This node does not hold the range lease; the request must go to the leaseholder.
    #[error("not the leaseholder; the lease is held by {holder:?}")]
    NotLeaseholder { holder: Option<NodeId> },
    /// A read found a value written after its timestamp but within the clock uncertainty
    /// window, so it cannot tell whether the write happened before it; the transaction must
    /// restart above the value.
    #[error(
        "restart transaction: read at {read_ts} found a value of {key} at {value_ts}, within the maximum clock offset (retry the transaction)"
    )]
    ReadWithinUncertainty {
        key: PrettyKey,
        read_ts: Timestamp,
        value_ts: Timestamp,
    },
    /// The local replica did not close the read timestamp in time.
    #[error(
        "replica did not reach closed timestamp {wanted} within {waited_ms} ms (closed at {closed})"
    )]
    ReadTimeout {
        wanted: Timestamp,
        closed: Timestamp,
        waited_ms: u64,
    },
    /// A rangefeed consumer fell too far behind; resubscribe from the last checkpoint.
    #[error(
        "rangefeed consumer fell behind by {missed} entries; resubscribe from the last checkpoint"
    )]
    RangefeedOverflow { missed: u64 },
    /// A remote timestamp was too far in the future (clock offset).
    #[error("clock: {0}")]
    Clock(#[from] hlc::ClockError),
    /// The Raft group failed.
    #[error("raft: {0}")]
    Raft(String),
    /// An RPC to another node failed.
    #[error("rpc to {target}: {message}")]
    Rpc { target: String, message: String },
    /// A message could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(String),
    /// The request named a range this node does not have.
    #[error("unknown range {0}")]
    UnknownRange(crate::RangeId),
    /// No range of this node holds the key.
    #[error("no range holds key {key}")]
    NoRange { key: storage::encoding::PrettyKey },
    /// A request (a span, a transaction, an ingest batch) reaches outside the range that
    /// holds its first key `start`; requests are not split across ranges.
    #[error("request from key {start} reaches outside range {range}")]
    CrossesRanges {
        start: storage::encoding::PrettyKey,
        range: crate::RangeId,
    },
    /// `init` on a cluster that is already initialised.
    #[error("cluster has already been initialized")]
    AlreadyInitialized,
    /// A proposed command was rejected when applied, identically on every replica (for
    /// example an ingest that disagrees with stored history); nothing of it was written.
    #[error("{command} rejected on {range}: {error}")]
    CommandRejected {
        command: &'static str,
        range: crate::RangeId,
        error: String,
    },
    /// A fenced ingest found its fence moved when it applied (the writer's epoch is over);
    /// nothing of it was written, and retrying with the same fence cannot succeed.
    #[error("ingest fenced on {range}: the writer's epoch is over (fence key {key})")]
    IngestFenced {
        range: crate::RangeId,
        key: PrettyKey,
    },
    /// A request would make a Raft entry larger than the limit; split it.
    #[error("{what} of {bytes} bytes on {range} exceeds the entry limit of {bytes_max} bytes")]
    EntryTooLarge {
        what: &'static str,
        range: crate::RangeId,
        bytes: usize,
        bytes_max: usize,
    },
    /// A command's encoded size exceeds `kv.raft.command.max_size`; nothing was proposed.
    #[error(
        "{command} command of {bytes} bytes exceeds the limit of {bytes_max} bytes (kv.raft.command.max_size)"
    )]
    CommandTooLarge {
        command: String,
        bytes: usize,
        bytes_max: usize,
    },
    /// A read (or a new protected timestamp) below the GC threshold of a span it touches:
    /// history before the threshold may have been garbage collected (`gc.ttl`).
    #[error(
        "batch timestamp {read_ts} must be at or after the replica's GC threshold {threshold} (span from {span}): that history has been garbage collected"
    )]
    BelowGcThreshold {
        read_ts: Timestamp,
        threshold: Timestamp,
        span: String,
    },
    /// The node is shutting down.
    #[error("node is shutting down")]
    ShuttingDown,
    /// Reading or writing a Raft snapshot file failed.
    #[error("snapshot file {path}: {source}")]
    SnapshotIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A Raft snapshot file is malformed (truncated, corrupt, or of another version); nothing
    /// of it was installed.
    #[error("snapshot file {path} is corrupt: {reason}")]
    SnapshotCorrupt { path: String, reason: String },
    /// The store directory was written by an incompatible version of roach.
    #[error("store {path} is incompatible: {reason}")]
    IncompatibleStore { path: String, reason: String },
    /// A reachable member did not confirm, in time, that it applied a timestamp (see
    /// [`crate::Store::wait_applied_everywhere`]).
    #[error("node {node} did not confirm applying {ts} within {waited_ms} ms: {reason}")]
    NotApplied {
        node: NodeId,
        ts: Timestamp,
        waited_ms: u64,
        reason: String,
    },
}

use crate::encoding::PrettyKey;
use hlc::Timestamp;

/// The result of a storage operation.
pub type StorageResult<T> = Result<T, StorageError>;

/// Errors of the storage engine.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The underlying fjall store failed; after a failed write the store is poisoned and every
    /// later write fails too (restart the process to recover from the journal).
    #[error("fjall store: {0}")]
    Fjall(#[from] fjall::Error),
    /// A stored key does not decode as a versioned key.
    #[error("corrupt versioned key {key}: {reason}")]
    CorruptKey {
        key: PrettyKey,
        reason: &'static str,
    },
    /// A stored value does not decode.
    #[error("corrupt value at {key}: {reason}")]
    CorruptValue {
        key: PrettyKey,
        reason: &'static str,
    },
    /// A span whose start does not sort before its end.
    #[error("invalid span [{start}, {end}): the start must sort before the end")]
    InvalidSpan { start: PrettyKey, end: PrettyKey },
    /// A time interval whose start is not below its end.
    #[error("invalid time interval ({start}, {end}]: the start must be below the end")]
    InvalidInterval { start: Timestamp, end: Timestamp },
    /// A write at the zero timestamp, which is reserved for "before all history".
    #[error("version of {key} has the zero timestamp; writes need a timestamp above zero")]
    ZeroTimestamp { key: PrettyKey },
    /// An ingested version differs from the version already stored at the same key and
    /// timestamp: the two histories disagree. Nothing of the batch was written.
    #[error("ingest conflict at {key} @ {ts}: a different version is already stored")]
    IngestConflict { key: PrettyKey, ts: Timestamp },
    /// A bound that must be positive was zero.
    #[error("{what} must be at least 1")]
    ZeroLimit { what: &'static str },
}

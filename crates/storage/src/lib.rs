//! The MVCC storage engine: versioned keys over an ordered byte store (fjall on disk, a
//! `BTreeMap` in memory for tests).
//!
//! Owns: the encoding of versioned keys (`key@ts`) and values, reads at a timestamp, span
//! scans, exports (latest as of a time, or every revision in a time interval), atomic write
//! batches with a durability choice, ingestion of replicated versions with their original
//! timestamps, reverting a span to a timestamp, garbage collection of shadowed versions below
//! a threshold (in bounded steps), and span fingerprints (optionally ignoring a key
//! prefix, to compare one virtual cluster's data under two tenant prefixes).
//!
//! Does not own: replication of writes (that is `kv`), choosing timestamps (`kv`, `hlc`),
//! protected timestamps and GC thresholds (`kv`, replicated), or tenant prefixes (`tenant`).
//! Keys here are plain bytes.
//!
//! Invariants:
//! - A forward scan of the data partition yields user keys in ascending byte order and each
//!   key's versions newest first; the encoding is unambiguous (see [`encoding`]).
//! - No version has the zero timestamp: [`Timestamp::ZERO`] means "before all history".
//! - A [`WriteBatch`] is applied whole or not at all; a [`Durability::Sync`] write is on disk
//!   when the call returns.
//! - Garbage collection at a threshold never changes what a read at or above it returns.
//! - A fingerprint depends only on the set of versions in its span and interval, not on the
//!   order they were written in, the engine, restarts or compactions.

pub mod backend;
pub mod encoding;
mod engine;
mod error;
mod export;
mod fingerprint;
mod fjall_backend;
mod gc;
mod mem_backend;
mod mvcc;
mod revert;
mod span;

pub use engine::{
    Durability, Engine, ExportIter, ExportMode, GcProgress, IngestStats, KeyValue, MvccVersion,
    RevertProgress, ScanResult, WriteBatch,
};
pub use error::{StorageError, StorageResult};
pub use fingerprint::version_hash;
pub use fjall_backend::{DataReadView, DiskSpace, FjallBackend, StoreOptions};
pub use hlc::Timestamp;
pub use mem_backend::MemBackend;
pub use mvcc::MvccEngine;
pub use span::{Span, prefix_end};

/// The MVCC engine on disk, over fjall.
pub type FjallEngine = MvccEngine<FjallBackend>;
/// The MVCC engine in memory, for tests and as a reference.
pub type MemEngine = MvccEngine<MemBackend>;

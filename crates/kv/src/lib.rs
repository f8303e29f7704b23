//! The cluster's replicated key-value service.
//!
//! Owns: one Raft group per range (openraft), its log and vote in their own fjall database
//! beside the node's store, log truncation by size and count, point-in-time snapshots streamed
//! through files and installed crash-safely, the state machine that applies entries to the
//! MVCC `storage` engine, the Raft and KV RPCs over
//! tonic, timestamps and closed timestamps, optimistic serializable transactions,
//! rangefeeds, MVCC garbage collection with the cluster's protected timestamps (replicated
//! records, see [`protectedts`]), and the replicated primitives of physical cluster replication (ingesting
//! versions with their original timestamps, reverting a span to a timestamp, prefix-stripped
//! fingerprints).
//!
//! Does not own: tenants and their key prefixes (`tenant`), SQL (`sql`), process start-up,
//! certificates and listeners (`server`).
//!
//! Invariants:
//! - Every applied entry has a commit timestamp `max(proposed_ts, previous + 1 logical)`,
//!   computed at apply, so every replica computes the same one and timestamps grow in log order.
//! - A replica's `closed_ts` is the commit timestamp of its last applied entry: every write at
//!   or below it is applied there, and no later write can be at or below it (ingested
//!   versions excepted: see below).
//! - A transaction commits only if no key or span it read has a version newer than its read
//!   timestamp when its entry is applied; the decision is deterministic on every replica.
//! - A rangefeed yields each version above its start exactly once, in timestamp order, or
//!   fails with an error telling the consumer to resubscribe; it never drops events silently.
//! - Ingested versions keep their original timestamps, which lie below their entry's commit
//!   timestamp; the leader's clock is forwarded past them first, so later writes are newer.
//!   They reach rangefeeds only through catch-up scans, never the live tail.
//! - Only the holder of the range lease ([`lease`]) has its writes applied; it serves
//!   present-time reads without a Raft round, any replica serves reads at or below its closed
//!   timestamp, and reads honour clock uncertainty (see `read.rs`).
//! - GC never removes a version newer than the oldest protected timestamp on an overlapping
//!   span, as applied at the GC entry's place in the log; a span's GC threshold never moves
//!   back, and no read below it is answered.
//! - A log entry is purged only once a snapshot covers it and the data store is durable up
//!   to it; a snapshot is the replica's state at exactly its applied index; a replica is never
//!   left, across a crash, with part of a snapshot installed (an install marker finishes it at
//!   start-up).
//! - Callers address keys: a [`Store`] (one per node) routes each request to the [`Replica`]
//!   whose range holds the keys; only the replica API names a [`RangeId`]. There is one
//!   range, [`RangeId::FIRST`], for now. A replica's own state (log, vote, applied state,
//!   lease) lives under keys prefixed by its range id.

// openraft's storage traits fix `openraft::StorageError` (large) as the error type; helpers that
// feed those traits return it too.
#![allow(clippy::result_large_err)]

mod applied_wait;
mod client;
mod command;
mod config;
mod convert;
mod error;
mod gc;
mod ids;
pub mod lease;
pub mod limits;
mod log_store;
mod log_truncation;
mod metrics;
mod network;
pub mod protectedts;
mod rangefeed;
mod read;
mod replica;
mod service;
mod snapshot;
mod state_machine;
#[cfg(test)]
mod storage_suite;
mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod txn;

pub use client::{KvClient, RemoteRangefeed, RemoteTxn};
pub use command::{Command, CommandResult, IngestFence, TypeConfig, WireSpan, WireVersion};
pub use config::{
    KvConfig, RAFT_LOG_TRUNCATION_MAX_BYTES_DEFAULT, RAFT_LOG_TRUNCATION_MAX_ENTRIES_DEFAULT,
};
pub use error::{KvError, KvResult};
pub use gc::{GC_INTERVAL_DEFAULT, GcPolicy, GcRunStats, GcSpan};
pub use ids::{NodeId, RangeId};
pub use lease::Lease;
pub use log_truncation::{TRUNCATION_MAX_BYTES_FLOOR, TRUNCATION_MAX_ENTRIES_FLOOR};
pub use metrics::KvMetrics;
pub use rangefeed::RangefeedEvent;
pub use replica::{NodeStatus, Replica};
pub use service::{KvService, NodeSlot, RaftService, filled_slot};
pub use snapshot::SnapshotData;
pub use state_machine::Applied;
pub use store::Store;
pub use txn::Txn;

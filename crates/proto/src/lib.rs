//! Wire types: every `.proto` file of roach and the tonic code generated from it.
//!
//! Owns: message and service definitions shared by clients and servers of an RPC (for
//! example the `kv` crate's Raft transport and KV service). Does not own: any logic or
//! conversion to domain types; those live with the crate that uses the messages.

#![allow(missing_debug_implementations, clippy::all)]

/// The cluster's internal RPCs: Raft transport and the KV service.
pub mod kv {
    tonic::include_proto!("roach.kv");
}

/// Node administration RPCs (cluster initialisation).
pub mod server {
    tonic::include_proto!("roach.server");
}

/// Physical cluster replication: partition streams (primary to standby) and ingestion RPCs
/// between a standby's nodes.
pub mod replication {
    tonic::include_proto!("roach.replication");
}

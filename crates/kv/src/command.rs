//! What the Raft log carries and what applying it returns.

use hlc::Timestamp;
use serde::{Deserialize, Serialize};
use std::io::Cursor;

openraft::declare_raft_types!(
    /// The Raft type configuration of a range.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A key span as carried in the log: `[start, end)`, no end meaning unbounded.
pub type WireSpan = (Vec<u8>, Option<Vec<u8>>);

/// A proposed state change. `proposed_ts` is the leader's clock when it proposed; the entry's
/// commit timestamp is fixed at apply (see the crate invariants).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// No writes: advances the closed timestamp.
    Close { proposed_ts: Timestamp },
    /// A transaction's writes, committed only if its read set is unchanged since `read_ts`.
    Txn {
        proposed_ts: Timestamp,
        read_ts: Timestamp,
        read_keys: Vec<Vec<u8>>,
        read_spans: Vec<WireSpan>,
        /// Keys and values; `None` deletes.
        writes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    },
    /// Allocates a new node id (for a node joining the cluster).
    AllocateNodeId { proposed_ts: Timestamp },
}

impl Command {
    pub(crate) fn proposed_ts(&self) -> Timestamp {
        match self {
            Command::Close { proposed_ts }
            | Command::Txn { proposed_ts, .. }
            | Command::AllocateNodeId { proposed_ts } => *proposed_ts,
        }
    }
}

/// The result of applying one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// An entry without a client outcome (close, blank, membership) applied at `ts`.
    Applied { ts: Timestamp },
    /// The transaction committed at `commit_ts`.
    Committed { commit_ts: Timestamp },
    /// The transaction aborted: `conflict_key` changed after its read timestamp.
    Aborted { conflict_key: Vec<u8> },
    /// A node id was allocated.
    NodeIdAllocated { node_id: u64, ts: Timestamp },
}

//! What the Raft log carries and what applying it returns.

use hlc::Timestamp;
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// The Raft type configuration of a range.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = crate::snapshot::SnapshotData,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A key span as carried in the log: `[start, end)`, no end meaning unbounded.
pub type WireSpan = (Vec<u8>, Option<Vec<u8>>);

/// A version as carried in the log: key, timestamp, and value (`None` for a tombstone).
pub type WireVersion = (Vec<u8>, Timestamp, Option<Vec<u8>>);

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
    // New variants go last: entries already in Raft logs are decoded by variant index.
    /// Writes replicated versions with their own (original) timestamps, which are below the
    /// entry's commit timestamp. Applied atomically; a version that disagrees with one
    /// already stored at the same key and timestamp rejects the whole entry.
    Ingest {
        proposed_ts: Timestamp,
        #[serde(with = "versions_as_bytes")]
        versions: Vec<WireVersion>,
    },
    /// Removes at most `max_versions` versions of `span` newer than `to_ts` (the cutover
    /// primitive); the result says where to resume.
    RevertSpan {
        proposed_ts: Timestamp,
        span: WireSpan,
        to_ts: Timestamp,
        max_versions: u64,
    },
    /// An [`Command::Ingest`] that applies only while `fence.key` holds exactly
    /// `fence.value`, read at apply from the replica's own state, so every replica decides
    /// alike and a write ordered after the fence moved (a cutover, a new writer) is refused
    /// with [`CommandResult::Fenced`] and writes nothing.
    FencedIngest {
        proposed_ts: Timestamp,
        fence: IngestFence,
        #[serde(with = "versions_as_bytes")]
        versions: Vec<WireVersion>,
    },
    /// Asks for the range lease for the proposing node (the entry's leader), from the entry's
    /// commit timestamp for `duration_ns` of wall time, or extends it if that node holds it
    /// (see [`crate::lease`]). `released` is the `(sequence, released_at)` the previous holder
    /// answered when it gave its lease up early.
    RequestLease {
        proposed_ts: Timestamp,
        duration_ns: u64,
        released: Option<(u64, Timestamp)>,
    },
    /// One step of garbage collection of `span` (the GC queue's span, as recorded with its GC
    /// threshold), from `resume_key` (the span's start when `None`): removes at most
    /// `max_versions` versions that no read at or above the threshold can see. `threshold`
    /// is the requested one (`now - gc.ttl`); at apply it is lowered to the oldest protected
    /// timestamp overlapping `span`, read from the replica's own state, so every replica
    /// removes the same versions. The result says where to resume.
    Gc {
        proposed_ts: Timestamp,
        span: WireSpan,
        resume_key: Option<Vec<u8>>,
        threshold: Timestamp,
        max_versions: u64,
    },
}

/// The condition of a [`Command::FencedIngest`]: the latest committed value of `key` must be
/// `value` (a writer's identity and epoch, as its owner encodes them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestFence {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl Command {
    pub(crate) fn proposed_ts(&self) -> Timestamp {
        match self {
            Command::Close { proposed_ts }
            | Command::Txn { proposed_ts, .. }
            | Command::AllocateNodeId { proposed_ts }
            | Command::Ingest { proposed_ts, .. }
            | Command::RevertSpan { proposed_ts, .. }
            | Command::FencedIngest { proposed_ts, .. }
            | Command::RequestLease { proposed_ts, .. }
            | Command::Gc { proposed_ts, .. } => *proposed_ts,
        }
    }

    /// The command with its proposal timestamp set to `ts` (the leader's clock reading).
    pub(crate) fn with_proposed_ts(mut self, ts: Timestamp) -> Self {
        match &mut self {
            Command::Close { proposed_ts }
            | Command::Txn { proposed_ts, .. }
            | Command::AllocateNodeId { proposed_ts }
            | Command::Ingest { proposed_ts, .. }
            | Command::RevertSpan { proposed_ts, .. }
            | Command::FencedIngest { proposed_ts, .. }
            | Command::RequestLease { proposed_ts, .. }
            | Command::Gc { proposed_ts, .. } => *proposed_ts = ts,
        }
        self
    }

    /// A timestamp the leader's clock must be forwarded past before stamping the command: a
    /// transaction's read timestamp, the newest ingested version.
    pub(crate) fn clock_floor(&self) -> Option<Timestamp> {
        match self {
            Command::Txn { read_ts, .. } => Some(*read_ts),
            Command::Ingest { versions, .. } | Command::FencedIngest { versions, .. } => {
                versions.iter().map(|v| v.1).max()
            }
            Command::Close { .. }
            | Command::AllocateNodeId { .. }
            | Command::RevertSpan { .. }
            | Command::RequestLease { .. }
            | Command::Gc { .. } => None,
        }
    }

    /// The size of the command's encoding in the Raft log (postcard), without encoding it.
    pub(crate) fn encoded_bytes(&self) -> usize {
        encoded_bytes(self)
    }

    /// The command's name, for errors and logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Command::Close { .. } => "close",
            Command::Txn { .. } => "txn",
            Command::AllocateNodeId { .. } => "allocate_node_id",
            Command::Ingest { .. } => "ingest",
            Command::RevertSpan { .. } => "revert_span",
            Command::FencedIngest { .. } => "fenced_ingest",
            Command::RequestLease { .. } => "request_lease",
            Command::Gc { .. } => "gc",
        }
    }

    /// The keys applying the command may write (see [`crate::lease::ProposalTracker`]):
    /// spans, or `None` for any key.
    pub(crate) fn footprint(&self) -> crate::lease::Footprint {
        use storage::Span;
        match self {
            Command::Txn { writes, .. } => Some(writes.iter().map(|(k, _)| Span::key(k)).collect()),
            Command::Ingest { versions, .. } | Command::FencedIngest { versions, .. } => Some(
                Span::covering(versions.iter().map(|v| v.0.as_slice()))
                    .into_iter()
                    .collect(),
            ),
            Command::RevertSpan { span, .. } => Some(vec![storage::Span {
                start: span.0.clone(),
                end: span.1.clone(),
            }]),
            Command::Close { .. } | Command::RequestLease { .. } => Some(Vec::new()),
            // A node-id counter; a GC step writes its threshold record besides its span.
            Command::AllocateNodeId { .. } | Command::Gc { .. } => None,
        }
    }

    /// Whether applying the command may change data, so that only the leaseholder's proposals
    /// of it are applied (closes and lease requests change none).
    pub(crate) fn needs_lease(&self) -> bool {
        !matches!(self, Command::Close { .. } | Command::RequestLease { .. })
    }
}

/// The size of `value`'s postcard encoding, computed without allocating it.
pub(crate) fn encoded_bytes<T: Serialize + ?Sized>(value: &T) -> usize {
    // Serializing into the size-counting flavor cannot fail for these types (no maps with
    // unknown length, no custom errors); if it ever did, report the largest size so the
    // command is refused rather than proposed unchecked.
    postcard::serialize_with_flavor::<T, postcard::ser_flavors::Size, usize>(
        value,
        postcard::ser_flavors::Size::default(),
    )
    .unwrap_or(usize::MAX)
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
    /// The entry applied at `ts` but its command was rejected, identically on every replica
    /// (an ingest conflicting with stored history, an invalid span): nothing of it was
    /// written. `error` says why.
    Failed { ts: Timestamp, error: String },
    /// A revert step applied at `ts` removed `removed` versions; `resume_key` is where the
    /// next step starts, `None` when the span now reads as of the target timestamp.
    Reverted {
        ts: Timestamp,
        resume_key: Option<Vec<u8>>,
        removed: u64,
    },
    /// A [`Command::FencedIngest`] applied at `ts` found its fence moved: nothing of it was
    /// written, on any replica.
    Fenced { ts: Timestamp },
    /// A [`Command::RequestLease`] applied at `ts`: the lease now in force, the proposer's or
    /// (when refused) another node's unexpired one.
    Lease {
        ts: Timestamp,
        lease: crate::lease::Lease,
        granted: bool,
    },
    /// The command was proposed by a node that does not hold the lease (`holder` does):
    /// nothing of it was written, on any replica. Retrying through the leaseholder is safe.
    NotLeaseholder { ts: Timestamp, holder: u64 },
    /// A GC step applied at `ts` removed `removed` versions (`bytes_removed` bytes) at
    /// `threshold` (the requested one, lowered to the protected timestamps); `resume_key` is
    /// where the next step starts, `None` when the span is done.
    GcStepped {
        ts: Timestamp,
        threshold: Timestamp,
        resume_key: Option<Vec<u8>>,
        removed: u64,
        bytes_removed: u64,
    },
}

/// Encodes ingested keys and values as byte strings (a length and the bytes) rather than as
/// sequences of `u8`, which serde would hand to the format one byte at a time: an ingest entry
/// of several MiB is encoded and decoded on every append and log read, and must cross a Raft
/// append within the heartbeat interval (openraft's append timeout).
mod versions_as_bytes {
    use super::WireVersion;
    use hlc::Timestamp;
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::ser::Serializer;
    use serde::{Deserialize, Serialize};
    use std::fmt;

    struct Bytes<'a>(&'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    struct ByteBuf(Vec<u8>);

    impl<'de> Deserialize<'de> for ByteBuf {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = ByteBuf;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a byte string")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v.to_vec()))
                }
                fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                    let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                    while let Some(b) = seq.next_element()? {
                        out.push(b);
                    }
                    Ok(ByteBuf(out))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    pub(super) fn serialize<S: Serializer>(
        versions: &[WireVersion],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            versions
                .iter()
                .map(|(key, ts, value)| (Bytes(key), ts, value.as_deref().map(Bytes))),
        )
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<WireVersion>, D::Error> {
        let raw: Vec<(ByteBuf, Timestamp, Option<ByteBuf>)> = Deserialize::deserialize(d)?;
        Ok(raw
            .into_iter()
            .map(|(key, ts, value)| (key.0, ts, value.map(|v| v.0)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: an ingest command survives a postcard round trip (keys and values as byte
    // strings, tombstones, empty keys), as it must through the log and the Propose RPC.
    #[test]
    fn ingest_command_round_trips() {
        let command = Command::Ingest {
            proposed_ts: Timestamp::new(9, 1),
            versions: vec![
                (b"a".to_vec(), Timestamp::new(1, 0), Some(vec![0, 1, 255])),
                (Vec::new(), Timestamp::new(2, 3), None),
                (vec![0xfe; 9], Timestamp::new(3, 0), Some(Vec::new())),
            ],
        };
        let bytes = postcard::to_allocvec(&command).expect("encode");
        let back: Command = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(back, command);
    }
}

//! What a producer tells a consumer over the control channel (JSON in one text column), and
//! the conversions between the partition-stream wire types and domain types.

use crate::frontier::{KeySpan, SpanTs};
use hlc::Timestamp;
use proto::replication as pb;
use serde::{Deserialize, Serialize};

/// The answer to *start stream*.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHandle {
    pub stream_id: u64,
    /// The secret a partition stream request must carry.
    pub token: String,
    /// The initial scan's timestamp; history from here on is protected on the source.
    pub start_time: Timestamp,
    pub source_tenant_id: u64,
    pub source_tenant_name: String,
}

impl std::fmt::Display for StreamHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stream {} of {:?}",
            self.stream_id, self.source_tenant_name
        )
    }
}

/// One partition: spans served by one source node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    pub id: u32,
    pub node_id: u64,
    /// The node's address (RPC and SQL share it).
    pub addr: String,
    pub spans: Vec<KeySpan>,
}

/// The stream spec: partitions whose spans exactly cover the source virtual cluster's keyspace,
/// at least one per live source node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSpec {
    pub stream_id: u64,
    pub source_tenant_id: u64,
    pub tenant_span: KeySpan,
    pub partitions: Vec<Partition>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStatus {
    /// `active`, or why the stream can no longer be used.
    pub status: String,
    /// The source's protected timestamp after the heartbeat.
    pub protected_ts: Timestamp,
}

impl StreamStatus {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

pub fn ts_to_pb(ts: Timestamp) -> pb::Timestamp {
    pb::Timestamp {
        wall_time_ns: ts.wall_time_ns,
        logical: ts.logical,
    }
}

pub fn ts_from_pb(ts: Option<pb::Timestamp>) -> Timestamp {
    ts.map_or(Timestamp::ZERO, |t| {
        Timestamp::new(t.wall_time_ns, t.logical)
    })
}

pub fn span_ts_to_pb(s: &SpanTs) -> pb::SpanTs {
    pb::SpanTs {
        start: s.span.start.clone(),
        end: s.span.end.clone(),
        ts: Some(ts_to_pb(s.ts)),
    }
}

pub fn span_ts_from_pb(s: pb::SpanTs) -> SpanTs {
    SpanTs {
        span: KeySpan::new(s.start, s.end),
        ts: ts_from_pb(s.ts),
    }
}

/// One replicated version on the wire: key, timestamp, value (`None`: a tombstone).
pub type WireVersion = (Vec<u8>, Timestamp, Option<Vec<u8>>);

/// Encodes a batch of versions (postcard, then lz4).
pub fn encode_batch(versions: &[WireVersion]) -> pb::Batch {
    let raw = postcard::to_allocvec(versions).expect("versions always serialize");
    let logical: usize = versions
        .iter()
        .map(|(k, _, v)| k.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    pb::Batch {
        lz4: lz4_flex::compress_prepend_size(&raw),
        count: u32::try_from(versions.len()).unwrap_or(u32::MAX),
        logical_bytes: logical as u64,
    }
}

/// Decodes a batch made by [`encode_batch`].
pub fn decode_batch(batch: &pb::Batch) -> Result<Vec<WireVersion>, String> {
    let raw = lz4_flex::decompress_size_prepended(&batch.lz4)
        .map_err(|e| format!("corrupt batch (lz4): {e}"))?;
    postcard::from_bytes(&raw).map_err(|e| format!("corrupt batch: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trip() {
        let versions: Vec<WireVersion> = (0..1000u64)
            .map(|i| {
                (
                    format!("key{i:05}").into_bytes(),
                    Timestamp::new(i, 1),
                    (i % 7 != 0).then(|| vec![b'x'; 100]),
                )
            })
            .collect();
        let b = encode_batch(&versions);
        assert_eq!(b.count, 1000);
        assert!(
            b.lz4.len() < b.logical_bytes as usize / 4,
            "compresses repetitive data"
        );
        assert_eq!(decode_batch(&b).expect("decodes"), versions);
        let mut broken = b.clone();
        broken.lz4.truncate(10);
        assert!(decode_batch(&broken).is_err());
    }
}

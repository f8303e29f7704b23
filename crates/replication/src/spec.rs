//! What a producer tells a consumer over the control channel (JSON in one text column), and
//! the conversions between the partition-stream wire types and domain types.

use crate::frontier::{KeySpan, SpanTs};
use hlc::Timestamp;
use proto::replication as pb;
use serde::{Deserialize, Serialize};

/// The secret a partition stream request must carry: 32 random bytes as hex. Never shown:
/// its `Debug` says `StreamToken(redacted)`. Serialized as its text.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamToken(String);

impl std::fmt::Debug for StreamToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamToken(redacted)")
    }
}

impl StreamToken {
    /// A fresh random token.
    pub fn random() -> Self {
        use rand::Rng;
        let mut rng = rand::rng();
        StreamToken(
            (0..32)
                .map(|_| format!("{:02x}", rng.random::<u8>()))
                .collect(),
        )
    }

    /// The token as sent on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.len() == presented.len()
            && self
                .0
                .bytes()
                .zip(presented.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl From<String> for StreamToken {
    fn from(s: String) -> Self {
        StreamToken(s)
    }
}

/// The answer to *start stream*.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHandle {
    pub stream_id: u64,
    /// The secret a partition stream request must carry.
    pub token: StreamToken,
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
    fn stream_tokens_are_never_shown() {
        // Goal: a token is random, compared exactly, stored as its text, and hidden in Debug
        // output (of itself and of what holds it).
        let t = StreamToken::random();
        assert_eq!(t.expose().len(), 64);
        assert_ne!(t, StreamToken::random());
        assert!(t.matches(t.expose()));
        assert!(!t.matches(&t.expose()[1..]));
        assert!(!t.matches(&t.expose().replace(|_| true, "0")));
        let json = serde_json::to_string(&t).expect("serialize");
        assert_eq!(json, format!("\"{}\"", t.expose()));
        assert_eq!(
            serde_json::from_str::<StreamToken>(&json).expect("parse"),
            t
        );
        let h = StreamHandle {
            stream_id: 1,
            token: t.clone(),
            start_time: Timestamp::ZERO,
            source_tenant_id: 3,
            source_tenant_name: "application".into(),
        };
        let shown = format!("{h:?}");
        assert!(!shown.contains(t.expose()), "{shown}");
        assert!(shown.contains("StreamToken(redacted)"), "{shown}");
    }

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

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

/// The largest batch a consumer may ask a producer for (uncompressed bytes of keys and
/// values); a producer closes a batch once it reaches the size asked for.
pub const BATCH_BYTES_MAX: usize = 16 << 20;
/// The largest message of a partition stream, both ways (the gRPC decoding limit).
pub const STREAM_MESSAGE_BYTES_MAX: usize = 64 << 20;
/// The largest decompressed batch a consumer accepts: [`BATCH_BYTES_MAX`], plus the one
/// version that crossed it (itself bounded by the standby's 32 MiB ingest entry), plus the
/// encoding's overhead, fits well within this. Checked against the size the batch's header
/// claims before anything is allocated for it.
pub const BATCH_DECODED_BYTES_MAX: usize = STREAM_MESSAGE_BYTES_MAX;

/// Why a batch from a producer cannot be used. Nothing is allocated for a batch whose header
/// claims more than a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch claims {claimed} decompressed bytes, more than the limit of {limit} bytes")]
    TooLarge { claimed: u64, limit: usize },
    #[error("corrupt batch (lz4): {0}")]
    Lz4(String),
    #[error("corrupt batch: {0}")]
    Decode(String),
    #[error("batch claims {claimed} versions but holds {actual}")]
    CountMismatch { claimed: u32, actual: usize },
}

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

/// Decodes a batch made by [`encode_batch`]. Every length in it comes from the network: the
/// decompressed size its header claims is checked against [`BATCH_DECODED_BYTES_MAX`] before
/// the buffer is allocated, and its version count against what it holds.
pub fn decode_batch(batch: &pb::Batch) -> Result<Vec<WireVersion>, BatchError> {
    let header: [u8; 4] = batch
        .lz4
        .get(..4)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| BatchError::Lz4("shorter than its 4-byte size header".into()))?;
    let claimed = u32::from_le_bytes(header);
    if u64::from(claimed) > BATCH_DECODED_BYTES_MAX as u64 {
        return Err(BatchError::TooLarge {
            claimed: u64::from(claimed),
            limit: BATCH_DECODED_BYTES_MAX,
        });
    }
    let raw = lz4_flex::decompress_size_prepended(&batch.lz4)
        .map_err(|e| BatchError::Lz4(e.to_string()))?;
    let versions: Vec<WireVersion> =
        postcard::from_bytes(&raw).map_err(|e| BatchError::Decode(e.to_string()))?;
    if usize::try_from(batch.count).ok() != Some(versions.len()) {
        return Err(BatchError::CountMismatch {
            claimed: batch.count,
            actual: versions.len(),
        });
    }
    Ok(versions)
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
        let mut miscounted = b.clone();
        miscounted.count = 1001;
        assert_eq!(
            decode_batch(&miscounted),
            Err(BatchError::CountMismatch {
                claimed: 1001,
                actual: 1000
            })
        );
    }

    #[test]
    fn a_batch_claiming_4_gib_is_refused_before_allocating() {
        // issue 14 item 5 (replication stream): lz4's size-prepended decoding allocates
        // whatever the primary's header claims (up to 4 GiB), which aborted the standby when
        // the allocation failed. Method: a crafted frame whose header claims u32::MAX bytes
        // (and one just over the limit) is a typed TooLarge error, returned before lz4 runs;
        // a frame too short to hold its header is a typed error too.
        for claimed in [u32::MAX, BATCH_DECODED_BYTES_MAX as u32 + 1] {
            let mut lz4 = claimed.to_le_bytes().to_vec();
            lz4.extend_from_slice(&[0x1f, 0, 0, 0, 0]);
            let frame = pb::Batch {
                lz4,
                count: 1,
                logical_bytes: u64::from(claimed),
            };
            assert_eq!(
                decode_batch(&frame),
                Err(BatchError::TooLarge {
                    claimed: u64::from(claimed),
                    limit: BATCH_DECODED_BYTES_MAX
                })
            );
        }
        let short = pb::Batch {
            lz4: vec![1, 2],
            count: 0,
            logical_bytes: 0,
        };
        assert!(matches!(decode_batch(&short), Err(BatchError::Lz4(_))));
    }
}

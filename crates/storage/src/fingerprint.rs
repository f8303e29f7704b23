//! Span fingerprints: an order-independent 64-bit hash of a set of versions.

use crate::backend::Backend;
use crate::export::{raw_versions, validate_interval};
use crate::{Span, StorageResult};
use hlc::Timestamp;
use xxhash_rust::xxh3::xxh3_64;

/// The hash of one version: xxh3-64 over the key's length (u32, little endian), the key, the
/// timestamp (wall and logical, big endian), a tag (0 tombstone, 1 value) and the value.
/// Defined on the logical content, not the stored encoding, so that it stays stable if the
/// encoding changes.
pub fn version_hash(key: &[u8], ts: Timestamp, value: Option<&[u8]>, buf: &mut Vec<u8>) -> u64 {
    buf.clear();
    let key_len = u32::try_from(key.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&key_len.to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(&ts.wall_time_ns.to_be_bytes());
    buf.extend_from_slice(&ts.logical.to_be_bytes());
    match value {
        None => buf.push(0),
        Some(v) => {
            buf.push(1);
            buf.extend_from_slice(v);
        }
    }
    xxh3_64(buf)
}

/// XOR of [`version_hash`] over every version of `span` in `(start_ts, end_ts]`, each key
/// hashed without its first `strip_prefix` bytes (a key no longer than that hashes as the
/// empty key). With `strip_prefix` zero this is the plain fingerprint. Each (key, timestamp)
/// is stored at most once, so XOR never cancels two distinct versions as long as stripping
/// keeps keys distinct (it does when every key of the span shares the stripped prefix).
pub(crate) fn fingerprint<B: Backend>(
    backend: &B,
    span: &Span,
    strip_prefix: usize,
    start_ts: Timestamp,
    end_ts: Timestamp,
) -> StorageResult<u64> {
    span.validate()?;
    validate_interval(start_ts, end_ts)?;
    let mut acc = 0u64;
    let mut buf = Vec::new();
    for v in raw_versions(backend, span) {
        let v = v?;
        if v.ts <= start_ts || v.ts > end_ts {
            continue;
        }
        let key = v.user_key()?;
        let value = v.value()?;
        let stripped = key.get(strip_prefix..).unwrap_or_default();
        acc ^= version_hash(stripped, v.ts, value.as_deref(), &mut buf);
    }
    Ok(acc)
}

//! The on-disk encoding of versioned keys and values.
//!
//! A versioned key is the user key with every `0x00` byte written as `0x00 0xff`, then the
//! terminator `0x00 0x01`, then the timestamp as `!wall_time_ns` (8 bytes, big endian) and
//! `!logical` (4 bytes, big endian). The escaping keeps byte order between user keys (a key
//! that is a prefix of another sorts first, because the terminator sorts below every escaped
//! byte) and makes the end of the user key unambiguous; the inverted timestamp makes a key's
//! versions sort newest first.
//!
//! A value is a tag byte, `0` for a tombstone (nothing follows) or `1` followed by the bytes.

use crate::backend::Bytes;
use crate::{StorageError, StorageResult};
use hlc::Timestamp;
use std::fmt;

const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xff;
const TERMINATOR: u8 = 0x01;
/// Bytes of the encoded timestamp suffix.
pub const TIMESTAMP_LEN: usize = 12;

const TAG_TOMBSTONE: u8 = 0;
const TAG_VALUE: u8 = 1;

/// A key printed for people: printable ASCII as is, other bytes as `\xNN`.
#[derive(Clone, PartialEq, Eq)]
pub struct PrettyKey(pub Vec<u8>);

impl fmt::Display for PrettyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

impl fmt::Debug for PrettyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Appends the escaped user key and its terminator: the prefix shared by all of the key's
/// versions, and the smallest encoding of the key.
pub fn encode_key_prefix(key: &[u8], out: &mut Vec<u8>) {
    out.reserve(key.len() + 2 + TIMESTAMP_LEN);
    for &b in key {
        out.push(b);
        if b == ESCAPE {
            out.push(ESCAPED_ZERO);
        }
    }
    out.push(ESCAPE);
    out.push(TERMINATOR);
}

/// The encoded prefix of `key`, as a new vector.
pub fn key_prefix(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_key_prefix(key, &mut out);
    out
}

/// The first encoding after every version of `key`.
pub fn key_prefix_end(key: &[u8]) -> Vec<u8> {
    let mut out = key_prefix(key);
    // The prefix ends with the terminator 0x01; 0x02 sorts right after all of its versions
    // and before any longer key (whose next encoded byte pair is 0x00 0xff or a byte > 0x00).
    if let Some(last) = out.last_mut() {
        *last = TERMINATOR + 1;
    }
    out
}

/// Appends the timestamp suffix.
pub fn encode_timestamp(ts: Timestamp, out: &mut Vec<u8>) {
    out.extend_from_slice(&(!ts.wall_time_ns).to_be_bytes());
    out.extend_from_slice(&(!ts.logical).to_be_bytes());
}

/// Encodes the versioned key `key@ts`.
pub fn encode_versioned_key(key: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2 + TIMESTAMP_LEN);
    encode_key_prefix(key, &mut out);
    encode_timestamp(ts, &mut out);
    out
}

/// Splits an encoded versioned key into its key prefix (escaped key and terminator) and
/// timestamp. Use it to group versions of one key without decoding the key.
pub fn split_versioned_key(raw: &[u8]) -> StorageResult<(&[u8], Timestamp)> {
    let corrupt = |reason| StorageError::CorruptKey {
        key: PrettyKey(raw.to_vec()),
        reason,
    };
    let split = raw
        .len()
        .checked_sub(TIMESTAMP_LEN)
        .ok_or_else(|| corrupt("shorter than a timestamp"))?;
    let (prefix, suffix) = raw.split_at(split);
    if !prefix.ends_with(&[ESCAPE, TERMINATOR]) {
        return Err(corrupt("missing key terminator"));
    }
    let (wall, logical) = suffix.split_at(8);
    let wall = u64::from_be_bytes(wall.try_into().map_err(|_| corrupt("bad wall time"))?);
    let logical = u32::from_be_bytes(logical.try_into().map_err(|_| corrupt("bad logical"))?);
    Ok((prefix, Timestamp::new(!wall, !logical)))
}

/// Decodes the user key from an encoded key prefix (as returned by [`split_versioned_key`]).
pub fn decode_key_prefix(prefix: &[u8]) -> StorageResult<Vec<u8>> {
    let corrupt = |reason| StorageError::CorruptKey {
        key: PrettyKey(prefix.to_vec()),
        reason,
    };
    let mut key = Vec::with_capacity(prefix.len().saturating_sub(2));
    let mut bytes = prefix.iter().copied();
    while let Some(b) = bytes.next() {
        if b != ESCAPE {
            key.push(b);
            continue;
        }
        match bytes.next() {
            Some(ESCAPED_ZERO) => key.push(ESCAPE),
            Some(TERMINATOR) if bytes.next().is_none() => return Ok(key),
            Some(TERMINATOR) => return Err(corrupt("bytes after the key terminator")),
            _ => return Err(corrupt("bad escape sequence")),
        }
    }
    Err(corrupt("missing key terminator"))
}

/// Decodes a versioned key into the user key and timestamp.
pub fn decode_versioned_key(raw: &[u8]) -> StorageResult<(Vec<u8>, Timestamp)> {
    let (prefix, ts) = split_versioned_key(raw)?;
    Ok((decode_key_prefix(prefix)?, ts))
}

/// Encodes a value, `None` being a tombstone, copying the value once.
pub fn encode_value(value: Option<&[u8]>) -> Bytes {
    match value {
        None => Bytes::from(&[TAG_TOMBSTONE][..]),
        Some(v) => Bytes::from(byteview::ByteView::fused(&[TAG_VALUE], v)),
    }
}

/// Decodes a value stored at `raw_key` (for the error message), `None` being a tombstone.
pub fn decode_value(raw_key: &[u8], raw: &[u8]) -> StorageResult<Option<Vec<u8>>> {
    match raw.split_first() {
        Some((&TAG_TOMBSTONE, [])) => Ok(None),
        Some((&TAG_VALUE, rest)) => Ok(Some(rest.to_vec())),
        Some((&TAG_TOMBSTONE, _)) => Err(StorageError::CorruptValue {
            key: PrettyKey(raw_key.to_vec()),
            reason: "tombstone with a payload",
        }),
        _ => Err(StorageError::CorruptValue {
            key: PrettyKey(raw_key.to_vec()),
            reason: "unknown value tag",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: fixed examples of the layout, so an accidental format change fails loudly.
    #[test]
    fn layout_is_stable() {
        let raw = encode_versioned_key(b"a\x00b", Timestamp::new(1, 2));
        let mut expected = b"a\x00\xffb\x00\x01".to_vec();
        expected.extend_from_slice(&(!1u64).to_be_bytes());
        expected.extend_from_slice(&(!2u32).to_be_bytes());
        assert_eq!(raw, expected);
        assert_eq!(&encode_value(None)[..], &[0]);
        assert_eq!(&encode_value(Some(b"x"))[..], &[1, b'x']);
    }

    // Goal: malformed bytes are reported as corruption, not misread.
    #[test]
    fn corrupt_keys_and_values_are_errors() {
        assert!(decode_versioned_key(b"short").is_err());
        assert!(decode_versioned_key(&[0u8; 12]).is_err());
        let mut bad_escape = b"a\x00\x07\x00\x01".to_vec();
        bad_escape.extend_from_slice(&[0; TIMESTAMP_LEN]);
        assert!(decode_versioned_key(&bad_escape).is_err());
        assert!(decode_value(b"k", &[]).is_err());
        assert!(decode_value(b"k", &[9]).is_err());
        assert!(decode_value(b"k", &[0, 1]).is_err());
    }
}

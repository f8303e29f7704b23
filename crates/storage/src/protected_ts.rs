//! Protected timestamps: records in the meta partition that hold garbage collection back on a
//! span, so that history a reader still needs (a replication stream, a backup) survives.

use crate::backend::{Backend, Partition, RawBatch};
use crate::encoding::PrettyKey;
use crate::{Durability, Span, StorageError, StorageResult};
use hlc::Timestamp;
use std::fmt;

const RECORD_PREFIX: &[u8] = b"pts/";
const NEXT_ID_KEY: &[u8] = b"pts-next-id";

/// The id of a protected timestamp record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtectionId(pub u64);

impl fmt::Display for ProtectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A protected timestamp: no version of `span` newer than `ts` is garbage collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedTimestamp {
    /// The record's id.
    pub id: ProtectionId,
    /// The protected keys.
    pub span: Span,
    /// The protected time.
    pub ts: Timestamp,
}

fn record_key(id: ProtectionId) -> Vec<u8> {
    let mut key = RECORD_PREFIX.to_vec();
    key.extend_from_slice(&id.0.to_be_bytes());
    key
}

fn encode(span: &Span, ts: Timestamp) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&ts.wall_time_ns.to_be_bytes());
    out.extend_from_slice(&ts.logical.to_be_bytes());
    put_bytes(&mut out, &span.start);
    match &span.end {
        None => out.push(0),
        Some(end) => {
            out.push(1);
            put_bytes(&mut out, end);
        }
    }
    out
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("span keys are far shorter than 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A cursor over a record's bytes that reports truncation as corruption.
struct Reader<'a> {
    key: &'a [u8],
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> StorageResult<&'a [u8]> {
        if self.rest.len() < n {
            return Err(StorageError::CorruptValue {
                key: PrettyKey(self.key.to_vec()),
                reason: "truncated protected timestamp record",
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u64(&mut self) -> StorageResult<u64> {
        let b = self.take(8)?;
        Ok(u64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
    }

    fn u32(&mut self) -> StorageResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes(b.try_into().unwrap_or([0; 4])))
    }

    fn bytes(&mut self) -> StorageResult<Vec<u8>> {
        let len = self.u32()? as usize;
        Ok(self.take(len)?.to_vec())
    }
}

fn decode(key: &[u8], value: &[u8]) -> StorageResult<ProtectedTimestamp> {
    let corrupt = |reason| StorageError::CorruptValue {
        key: PrettyKey(key.to_vec()),
        reason,
    };
    let id_bytes: [u8; 8] = key
        .strip_prefix(RECORD_PREFIX)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("bad protected timestamp record key"))?;
    let mut r = Reader { key, rest: value };
    let ts = Timestamp::new(r.u64()?, r.u32()?);
    let start = r.bytes()?;
    let end = match r.take(1)? {
        [0] => None,
        [1] => Some(r.bytes()?),
        _ => return Err(corrupt("bad span end tag in protected timestamp record")),
    };
    if !r.rest.is_empty() {
        return Err(corrupt("trailing bytes in protected timestamp record"));
    }
    Ok(ProtectedTimestamp {
        id: ProtectionId(u64::from_be_bytes(id_bytes)),
        span: Span { start, end },
        ts,
    })
}

/// Registers a record. The caller serialises writers.
pub(crate) fn protect<B: Backend>(
    backend: &B,
    span: &Span,
    ts: Timestamp,
) -> StorageResult<ProtectionId> {
    span.validate()?;
    let next = match backend.get(Partition::Meta, NEXT_ID_KEY)? {
        None => 1,
        Some(bytes) => {
            let arr: [u8; 8] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| StorageError::CorruptValue {
                        key: PrettyKey(NEXT_ID_KEY.to_vec()),
                        reason: "protected timestamp id counter is not 8 bytes",
                    })?;
            u64::from_be_bytes(arr)
        }
    };
    let id = ProtectionId(next);
    let mut batch = RawBatch::with_capacity(2);
    batch.put(Partition::Meta, record_key(id), encode(span, ts));
    batch.put(
        Partition::Meta,
        NEXT_ID_KEY.to_vec(),
        (next + 1).to_be_bytes().to_vec(),
    );
    backend.commit(batch, Durability::Sync)?;
    Ok(id)
}

/// Every record, by id.
pub(crate) fn list<B: Backend>(backend: &B) -> StorageResult<Vec<ProtectedTimestamp>> {
    let end = crate::span::prefix_end(RECORD_PREFIX);
    backend
        .range(Partition::Meta, RECORD_PREFIX.to_vec(), end)
        .map(|item| {
            let (key, value) = item?;
            decode(&key, &value)
        })
        .collect()
}

fn get<B: Backend>(backend: &B, id: ProtectionId) -> StorageResult<ProtectedTimestamp> {
    let key = record_key(id);
    match backend.get(Partition::Meta, &key)? {
        Some(value) => decode(&key, &value),
        None => Err(StorageError::ProtectionNotFound(id)),
    }
}

/// Moves a record's timestamp. The caller serialises writers.
pub(crate) fn update<B: Backend>(
    backend: &B,
    id: ProtectionId,
    ts: Timestamp,
) -> StorageResult<()> {
    let record = get(backend, id)?;
    let mut batch = RawBatch::with_capacity(1);
    batch.put(Partition::Meta, record_key(id), encode(&record.span, ts));
    backend.commit(batch, Durability::Sync)
}

/// Removes a record. The caller serialises writers.
pub(crate) fn release<B: Backend>(backend: &B, id: ProtectionId) -> StorageResult<()> {
    get(backend, id)?;
    let mut batch = RawBatch::with_capacity(1);
    batch.delete(Partition::Meta, record_key(id));
    backend.commit(batch, Durability::Sync)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: a record reads back exactly as written, for bounded and unbounded spans.
    #[test]
    fn record_round_trip() {
        for span in [Span::new("a\x00", "b"), Span::from_key("x")] {
            let ts = Timestamp::new(7, 9);
            let key = record_key(ProtectionId(42));
            let got = decode(&key, &encode(&span, ts)).expect("decodes");
            assert_eq!(
                got,
                ProtectedTimestamp {
                    id: ProtectionId(42),
                    span,
                    ts
                }
            );
        }
        let key = record_key(ProtectionId(1));
        assert!(decode(&key, &[1, 2, 3]).is_err());
    }
}

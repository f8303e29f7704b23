//! The MVCC engine over any [`Backend`].

use crate::backend::{Backend, Bytes, Partition, RawBatch};
use crate::encoding::{PrettyKey, encode_value, encode_versioned_key, key_prefix_end};
use crate::export::{export, raw_versions};
use crate::{
    Durability, Engine, ExportIter, ExportMode, GcProgress, IngestStats, KeyValue, MvccVersion,
    RevertProgress, ScanResult, Span, StorageError, StorageResult, WriteBatch, fingerprint, gc,
    revert,
};
use hlc::Timestamp;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// The MVCC logic shared by both engines, over a byte store `B`.
#[derive(Debug)]
pub struct MvccEngine<B: Backend> {
    backend: B,
    /// Serialises mutations, so that read-then-write operations (ingest's identity check, a
    /// revert or GC step's scan) see no interleaved writer.
    write_lock: Mutex<()>,
}

impl<B: Backend> MvccEngine<B> {
    /// An engine over `backend`.
    pub fn with_backend(backend: B) -> Self {
        MvccEngine {
            backend,
            write_lock: Mutex::new(()),
        }
    }

    /// The underlying byte store.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The guarded value is (); a panic in another writer leaves nothing half-updated here
        // (every backend commit is atomic), so a poisoned lock is still usable.
        self.write_lock.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Local metadata lives in the meta partition under its own prefix.
fn local_key(key: &[u8]) -> Vec<u8> {
    let mut out = b"local/".to_vec();
    out.extend_from_slice(key);
    out
}

fn check_ts(version: &MvccVersion) -> StorageResult<()> {
    if version.ts.is_zero() {
        return Err(StorageError::ZeroTimestamp {
            key: PrettyKey(version.key.clone()),
        });
    }
    Ok(())
}

/// Appends the writes of `batch` to `raw`; fails, adding nothing, on a zero timestamp.
fn append_batch(raw: &mut RawBatch, batch: WriteBatch) -> StorageResult<()> {
    if let Some(key) = batch.zero_ts_key {
        return Err(StorageError::ZeroTimestamp {
            key: PrettyKey(key),
        });
    }
    raw.ops.reserve(batch.encoded.len() + batch.local.len());
    for (key, value) in batch.encoded {
        raw.put(Partition::Data, key, value);
    }
    for (key, value) in batch.local {
        match value {
            Some(v) => raw.put(Partition::Meta, local_key(&key), v),
            None => raw.delete(Partition::Meta, local_key(&key)),
        }
    }
    Ok(())
}

impl<B: Backend> Engine for MvccEngine<B> {
    fn write(&self, batch: WriteBatch, durability: Durability) -> StorageResult<()> {
        let mut raw = RawBatch::default();
        append_batch(&mut raw, batch)?;
        let _guard = self.lock();
        self.backend.commit(raw, durability)
    }

    fn get_local(&self, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        self.backend.get(Partition::Meta, &local_key(key))
    }

    fn get(&self, key: &[u8], read_ts: Timestamp) -> StorageResult<Option<Vec<u8>>> {
        let start = encode_versioned_key(key, read_ts);
        let end = key_prefix_end(key);
        let Some(item) = self.backend.range(Partition::Data, start, Some(end)).next() else {
            return Ok(None);
        };
        let (raw_key, raw_value) = item?;
        crate::encoding::decode_value(&raw_key, &raw_value)
    }

    fn scan(&self, span: &Span, read_ts: Timestamp, limit: usize) -> StorageResult<ScanResult> {
        if limit == 0 {
            return Err(StorageError::ZeroLimit {
                what: "the scan limit",
            });
        }
        let mut result = ScanResult::default();
        for v in export(
            &self.backend,
            span,
            Timestamp::ZERO,
            read_ts,
            ExportMode::Latest,
        )? {
            let v = v?;
            let Some(value) = v.value else {
                continue;
            };
            if result.rows.len() == limit {
                result.resume_key = Some(v.key);
                break;
            }
            result.rows.push(KeyValue {
                key: v.key,
                ts: v.ts,
                value,
            });
        }
        Ok(result)
    }

    fn export(
        &self,
        span: &Span,
        start_ts: Timestamp,
        end_ts: Timestamp,
        mode: ExportMode,
    ) -> StorageResult<ExportIter> {
        export(&self.backend, span, start_ts, end_ts, mode)
    }

    fn ingest_with(
        &self,
        versions: &[MvccVersion],
        with: WriteBatch,
        durability: Durability,
    ) -> StorageResult<IngestStats> {
        let _guard = self.lock();
        let mut stats = IngestStats::default();
        let mut pending: HashMap<Vec<u8>, Bytes> = HashMap::with_capacity(versions.len());
        let mut raw = RawBatch::with_capacity(versions.len());
        for v in versions {
            check_ts(v)?;
            let raw_key = encode_versioned_key(&v.key, v.ts);
            let raw_value = encode_value(v.value.as_deref());
            let existing = match pending.get(&raw_key) {
                Some(value) => Some(value.to_vec()),
                None => self.backend.get(Partition::Data, &raw_key)?,
            };
            match existing {
                Some(existing) if existing[..] == raw_value[..] => stats.unchanged += 1,
                Some(_) => {
                    return Err(StorageError::IngestConflict {
                        key: PrettyKey(v.key.clone()),
                        ts: v.ts,
                    });
                }
                None => {
                    pending.insert(raw_key.clone(), raw_value.clone());
                    raw.put(Partition::Data, raw_key, raw_value);
                    stats.written += 1;
                }
            }
        }
        append_batch(&mut raw, with)?;
        self.backend.commit(raw, durability)?;
        Ok(stats)
    }

    fn revert_span_with(
        &self,
        span: &Span,
        to_ts: Timestamp,
        batch_versions_max: usize,
        with: WriteBatch,
        durability: Durability,
    ) -> StorageResult<RevertProgress> {
        let _guard = self.lock();
        let (mut raw, progress) =
            revert::revert_batch(&self.backend, span, to_ts, batch_versions_max)?;
        append_batch(&mut raw, with)?;
        self.backend.commit(raw, durability)?;
        Ok(progress)
    }

    fn gc_with(
        &self,
        span: &Span,
        threshold: Timestamp,
        batch_versions_max: usize,
        with: WriteBatch,
        durability: Durability,
    ) -> StorageResult<GcProgress> {
        let _guard = self.lock();
        let (mut raw, progress) = gc::gc_batch(&self.backend, span, threshold, batch_versions_max)?;
        append_batch(&mut raw, with)?;
        self.backend.commit(raw, durability)?;
        Ok(progress)
    }

    fn fingerprint_stripped(
        &self,
        span: &Span,
        strip_prefix: usize,
        start_ts: Timestamp,
        end_ts: Timestamp,
    ) -> StorageResult<u64> {
        fingerprint::fingerprint(&self.backend, span, strip_prefix, start_ts, end_ts)
    }
}

impl<B: Backend> MvccEngine<B> {
    /// The number of stored versions in `span`, at any timestamp (for tests and GC metrics).
    pub fn version_count(&self, span: &Span) -> StorageResult<u64> {
        span.validate()?;
        let mut n = 0;
        for v in raw_versions(&self.backend, span) {
            v?;
            n += 1;
        }
        Ok(n)
    }
}

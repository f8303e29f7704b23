use crate::backend::Bytes;
use crate::encoding::{encode_value, encode_versioned_key};
use crate::{Span, StorageResult};
use hlc::Timestamp;
use std::fmt::Debug;

/// How durable a write must be when the call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk (the journal is fsynced): survives a machine crash.
    Sync,
    /// Handed to the operating system: survives a process crash, not a machine crash.
    NoSync,
}

/// One version of a key: a value, or a tombstone (`value: None`) that deletes the key as of
/// its timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MvccVersion {
    /// The user key.
    pub key: Vec<u8>,
    /// When the version was written.
    pub ts: Timestamp,
    /// The value, or `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

impl MvccVersion {
    /// A value version.
    pub fn put(key: impl Into<Vec<u8>>, ts: Timestamp, value: impl Into<Vec<u8>>) -> Self {
        MvccVersion {
            key: key.into(),
            ts,
            value: Some(value.into()),
        }
    }

    /// A tombstone version.
    pub fn tombstone(key: impl Into<Vec<u8>>, ts: Timestamp) -> Self {
        MvccVersion {
            key: key.into(),
            ts,
            value: None,
        }
    }

    /// Bytes of key and value, the unit of throughput figures.
    pub fn size_bytes(&self) -> usize {
        self.key.len() + self.value.as_ref().map_or(0, Vec::len)
    }
}

/// A live key and its value as read at some timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The user key.
    pub key: Vec<u8>,
    /// The timestamp of the version read.
    pub ts: Timestamp,
    /// The value.
    pub value: Vec<u8>,
}

/// A page of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanResult {
    /// Live keys in ascending order.
    pub rows: Vec<KeyValue>,
    /// Where to continue when the limit stopped the scan; `None` when the span is exhausted.
    pub resume_key: Option<Vec<u8>>,
}

/// What an export yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportMode {
    /// For each key, its newest version at or below `end_ts`, if that version is newer than
    /// `start_ts`. Tombstones are included only when `start_ts` is above zero (an incremental
    /// export must carry deletions; a full one has no use for them).
    Latest,
    /// Every version in `(start_ts, end_ts]`, tombstones included.
    AllRevisions,
}

/// An iterator of versions from an export, in key order and, within a key, newest first.
pub type ExportIter = Box<dyn Iterator<Item = StorageResult<MvccVersion>> + Send>;

/// What [`Engine::ingest`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestStats {
    /// Versions written.
    pub written: u64,
    /// Versions already stored identically, left as they were.
    pub unchanged: u64,
}

/// What one call of [`Engine::revert_span`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RevertProgress {
    /// Versions removed by this call.
    pub versions_removed: u64,
    /// When the batch limit stopped the call, the key to resume from (pass a span starting
    /// there); `None` when the whole span now reads as of the target time.
    pub resume_key: Option<Vec<u8>>,
}

/// What one call of [`Engine::gc`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GcProgress {
    /// Versions removed by this call.
    pub versions_removed: u64,
    /// Bytes of the removed versions (encoded keys and values).
    pub bytes_removed: u64,
    /// When the step's bounds stopped the call, the key to resume from (pass a span starting
    /// there); `None` when the whole span has been collected.
    pub resume_key: Option<Vec<u8>>,
}

/// An atomic group of writes at given timestamps, encoded as they are added (each value is
/// copied once, straight into the form the store keeps).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// Encoded versioned keys and values.
    pub(crate) encoded: Vec<(Bytes, Bytes)>,
    /// The key of the first write at the zero timestamp, which fails the whole batch.
    pub(crate) zero_ts_key: Option<Vec<u8>>,
    /// Unversioned local metadata to set (`Some`) or clear (`None`) with the same batch.
    pub(crate) local: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        WriteBatch::default()
    }

    /// An empty batch with room for `n` writes.
    pub fn with_capacity(n: usize) -> Self {
        WriteBatch {
            encoded: Vec::with_capacity(n),
            zero_ts_key: None,
            local: Vec::new(),
        }
    }

    fn add(&mut self, key: &[u8], ts: Timestamp, value: Option<&[u8]>) {
        if ts.is_zero() && self.zero_ts_key.is_none() {
            self.zero_ts_key = Some(key.to_vec());
        }
        self.encoded
            .push((encode_versioned_key(key, ts).into(), encode_value(value)));
    }

    /// Adds a value version.
    pub fn put(&mut self, key: impl AsRef<[u8]>, ts: Timestamp, value: impl AsRef<[u8]>) {
        self.add(key.as_ref(), ts, Some(value.as_ref()));
    }

    /// Adds a tombstone version.
    pub fn delete(&mut self, key: impl AsRef<[u8]>, ts: Timestamp) {
        self.add(key.as_ref(), ts, None);
    }

    /// Adds a version.
    pub fn push(&mut self, version: MvccVersion) {
        self.add(&version.key, version.ts, version.value.as_deref());
    }

    /// Sets unversioned local metadata `key` (not replicated, not exported, not in
    /// fingerprints) atomically with the batch's versions; read it with [`Engine::get_local`].
    /// Used, for example, to record the Raft log position a batch applies.
    pub fn put_local(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.local.push((key.into(), Some(value.into())));
    }

    /// Clears unversioned local metadata `key` atomically with the batch.
    pub fn delete_local(&mut self, key: impl Into<Vec<u8>>) {
        self.local.push((key.into(), None));
    }

    /// The number of versioned writes.
    pub fn len(&self) -> usize {
        self.encoded.len()
    }

    /// Whether there are no writes at all.
    pub fn is_empty(&self) -> bool {
        self.encoded.is_empty() && self.local.is_empty()
    }
}

/// The MVCC storage API, implemented by both engines ([`crate::FjallEngine`] and
/// [`crate::MemEngine`]).
pub trait Engine: Send + Sync + Debug {
    /// Applies every write of `batch` or none. A later write at the same key and timestamp
    /// replaces the earlier one.
    fn write(&self, batch: WriteBatch, durability: Durability) -> StorageResult<()>;

    /// Writes `key = value` at `ts`, durably.
    fn put(&self, key: &[u8], ts: Timestamp, value: &[u8]) -> StorageResult<()> {
        let mut batch = WriteBatch::with_capacity(1);
        batch.put(key, ts, value);
        self.write(batch, Durability::Sync)
    }

    /// Writes a tombstone for `key` at `ts`, durably.
    fn delete(&self, key: &[u8], ts: Timestamp) -> StorageResult<()> {
        let mut batch = WriteBatch::with_capacity(1);
        batch.delete(key, ts);
        self.write(batch, Durability::Sync)
    }

    /// Unversioned local metadata written with [`WriteBatch::put_local`].
    fn get_local(&self, key: &[u8]) -> StorageResult<Option<Vec<u8>>>;

    /// The value of the newest version of `key` at or below `read_ts`; `None` when there is
    /// none or it is a tombstone.
    fn get(&self, key: &[u8], read_ts: Timestamp) -> StorageResult<Option<Vec<u8>>>;

    /// The live keys of `span` as of `read_ts`, at most `limit` of them.
    fn scan(&self, span: &Span, read_ts: Timestamp, limit: usize) -> StorageResult<ScanResult>;

    /// The versions of `span` selected by `mode` in the interval `(start_ts, end_ts]`, read
    /// lazily from a consistent snapshot.
    fn export(
        &self,
        span: &Span,
        start_ts: Timestamp,
        end_ts: Timestamp,
        mode: ExportMode,
    ) -> StorageResult<ExportIter>;

    /// Writes replicated versions with their own timestamps, atomically. A version already
    /// stored identically is left alone; one stored with a different value fails the whole
    /// call with [`crate::StorageError::IngestConflict`].
    fn ingest(
        &self,
        versions: &[MvccVersion],
        durability: Durability,
    ) -> StorageResult<IngestStats> {
        self.ingest_with(versions, WriteBatch::new(), durability)
    }

    /// [`Engine::ingest`], committing `with` (typically local metadata, such as the Raft log
    /// position the ingest applies) in the same atomic batch, after the ingested versions. The
    /// versions of `with` are written unchecked. On any error nothing is written, `with`
    /// included.
    fn ingest_with(
        &self,
        versions: &[MvccVersion],
        with: WriteBatch,
        durability: Durability,
    ) -> StorageResult<IngestStats>;

    /// Removes versions of `span` newer than `to_ts`, at most `batch_versions_max` of them in
    /// one durable batch, so that once it reports no resume key the span reads exactly as it
    /// did at `to_ts`.
    fn revert_span(
        &self,
        span: &Span,
        to_ts: Timestamp,
        batch_versions_max: usize,
    ) -> StorageResult<RevertProgress> {
        self.revert_span_with(
            span,
            to_ts,
            batch_versions_max,
            WriteBatch::new(),
            Durability::Sync,
        )
    }

    /// [`Engine::revert_span`], committing `with` (typically local metadata, such as the Raft
    /// log position the revert applies) in the same atomic batch, after the removals, with the
    /// durability of the caller's choosing. On any error nothing is written, `with` included.
    fn revert_span_with(
        &self,
        span: &Span,
        to_ts: Timestamp,
        batch_versions_max: usize,
        with: WriteBatch,
        durability: Durability,
    ) -> StorageResult<RevertProgress>;

    /// Removes versions of `span` that no read at or above `threshold` can see (those
    /// shadowed by a newer version at or below it, and a tombstone that is the newest version
    /// at or below it), at most `batch_versions_max` of them in one durable batch; the result
    /// says where to resume. The caller chooses the threshold: protected timestamps are
    /// `kv`'s, which lowers the threshold to them before it calls this.
    fn gc(
        &self,
        span: &Span,
        threshold: Timestamp,
        batch_versions_max: usize,
    ) -> StorageResult<GcProgress> {
        self.gc_with(
            span,
            threshold,
            batch_versions_max,
            WriteBatch::new(),
            Durability::Sync,
        )
    }

    /// [`Engine::gc`], committing `with` (typically local metadata, such as the Raft log
    /// position the step applies, and the new GC threshold) in the same atomic batch, after
    /// the removals. On any error nothing is written, `with` included.
    fn gc_with(
        &self,
        span: &Span,
        threshold: Timestamp,
        batch_versions_max: usize,
        with: WriteBatch,
        durability: Durability,
    ) -> StorageResult<GcProgress>;

    /// A hash of every version of `span` in `(start_ts, end_ts]` (`start_ts` zero meaning all
    /// history up to `end_ts`), independent of write order, engine, restarts and compactions.
    fn fingerprint(
        &self,
        span: &Span,
        start_ts: Timestamp,
        end_ts: Timestamp,
    ) -> StorageResult<u64> {
        self.fingerprint_stripped(span, 0, start_ts, end_ts)
    }

    /// [`Engine::fingerprint`] with each key hashed without its first `strip_prefix` bytes (a
    /// key no longer than that hashes as the empty key), so the same data under two different
    /// prefixes of that length (two tenants' keyspaces, say) fingerprints the same. With
    /// `strip_prefix` zero it equals [`Engine::fingerprint`].
    fn fingerprint_stripped(
        &self,
        span: &Span,
        strip_prefix: usize,
        start_ts: Timestamp,
        end_ts: Timestamp,
    ) -> StorageResult<u64>;
}

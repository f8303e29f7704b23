//! Raft snapshots of a replica: a point-in-time image of the data partition at the applied
//! index, written to a file only when a follower needs it, streamed in bounded chunks, and
//! installed so that a crash at any point leaves the old replica state or the new one.
//!
//! - **Build** ([`BuiltSnapshot::new`]): the state machine takes a fjall read view between two
//!   applies (openraft asks for the builder there), so the view and the applied state agree.
//!   Nothing is copied: building a snapshot costs a read view and its metadata, which is what
//!   lets the log be truncated often (openraft purges only what a snapshot covers).
//! - **Send**: the [`SnapshotData`] of a built snapshot writes the view to a file under the
//!   store's `raft-snapshots` directory the first time it is read (on a blocking thread, in
//!   the replication task, not in the state machine), and openraft sends it in chunks of
//!   `limits::SNAPSHOT_CHUNK_BYTES`.
//! - **Receive**: chunks are written to a file in the same directory; memory holds one chunk.
//! - **Install** ([`install`]): the file is checked whole (structure, keys, checksum), made
//!   durable, and recorded as "installing" in the store's local metadata (durably); then the
//!   data partition is cleared and loaded in batches, and the applied state is written and
//!   the marker removed in one durable batch. A node that starts with the marker present
//!   finishes the install from the file before it serves anything ([`resume`]).
//!
//! File format: `MAGIC`, a u32 (LE) length and the postcard-encoded [`AppliedState`], then
//! records `[1][u32 key len][key][u32 value len][value]` of the data partition's encoded keys
//! and values in key order, then `[0][u64 records][u64 xxh3 of the records' bytes]`.

use crate::ids::ReplicaKeys;
use crate::limits::{COMMAND_BYTES_CEILING, SNAPSHOT_BYTES_MAX};
use crate::state_machine::AppliedState;
use crate::{KvError, KvResult};
use openraft::SnapshotMeta;
use prometheus::IntCounter;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::future::Future;
use std::io::{self, BufReader, BufWriter, Read, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use storage::backend::{Backend, Partition, RawBatch};
use storage::{DataReadView, Durability, Engine, FjallEngine, WriteBatch};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};
use xxhash_rust::xxh3::Xxh3;

type NodeIdRaw = u64;
pub(crate) type Meta = SnapshotMeta<NodeIdRaw, openraft::BasicNode>;

/// The directory, under the store's, that holds snapshot files.
pub(crate) const SNAPSHOT_DIR: &str = "raft-snapshots";
const MAGIC: &[u8; 8] = b"RSNAP\x00\x00\x01";
const TAG_RECORD: u8 = 1;
const TAG_END: u8 = 0;
/// Buffer of the file reader and writer.
const IO_BUFFER_BYTES: usize = 1 << 20;
/// Encoded bytes of one write batch when clearing or loading the data partition.
pub(crate) const INSTALL_BATCH_BYTES: usize = 4 << 20;
/// The largest header (applied state) a snapshot file may claim.
const HEADER_BYTES_MAX: usize = 1 << 20;
/// The largest key or value a snapshot record may claim: no version is larger than a command.
const FIELD_BYTES_MAX: usize = COMMAND_BYTES_CEILING;

/// Makes file names unique within the process (snapshot ids repeat across restarts and
/// replicas).
static FILE_SEQ: AtomicU64 = AtomicU64::new(0);

fn io_err(path: &Path, e: io::Error) -> KvError {
    KvError::SnapshotIo {
        path: path.display().to_string(),
        source: e,
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> KvError {
    KvError::SnapshotCorrupt {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The snapshot directory of `range`'s replica in the store at `store_path`, created if
/// missing.
pub(crate) fn snapshot_dir(store_path: &Path, range: crate::RangeId) -> KvResult<PathBuf> {
    let dir = store_path.join(SNAPSHOT_DIR).join(range.to_string());
    std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
    Ok(dir)
}

fn next_file(dir: &Path, kind: &str) -> PathBuf {
    let seq = FILE_SEQ.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{kind}-{}-{seq}.snap", std::process::id()))
}

fn sync_dir(dir: &Path) -> KvResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, e))
}

/// A snapshot taken at an applied index: its metadata, applied state and a read view of the
/// data partition, written to a file when first read.
pub(crate) struct BuiltSnapshot {
    pub meta: Meta,
    state: AppliedState,
    view: DataReadView,
    dir: PathBuf,
    /// The file once written (complete, durable).
    file: std::sync::Mutex<Option<PathBuf>>,
    sent_files: IntCounter,
}

impl std::fmt::Debug for BuiltSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltSnapshot")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl BuiltSnapshot {
    /// Must be called between two applies, so that `state` is the view's applied state.
    pub fn new(
        meta: Meta,
        state: AppliedState,
        view: DataReadView,
        dir: PathBuf,
        files_written: IntCounter,
    ) -> Self {
        BuiltSnapshot {
            meta,
            state,
            view,
            dir,
            file: std::sync::Mutex::new(None),
            sent_files: files_written,
        }
    }

    /// The file holding this snapshot, written on first use (blocking).
    fn materialise(&self) -> KvResult<PathBuf> {
        let mut slot = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(path) = slot.as_ref() {
            return Ok(path.clone());
        }
        let path = next_file(&self.dir, "built");
        write_file(&path, &self.state, self.view.raw_iter())?;
        self.sent_files.inc();
        tracing::info!(
            snapshot_id = %self.meta.snapshot_id,
            path = %path.display(),
            "wrote a snapshot file"
        );
        *slot = Some(path.clone());
        Ok(path)
    }
}

impl Drop for BuiltSnapshot {
    fn drop(&mut self) {
        let slot = self.file.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(path) = slot.take() {
            // A sender still reading it keeps its open descriptor.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Writes `state` and the encoded versions of `records` to `path`, durably.
fn write_file(
    path: &Path,
    state: &AppliedState,
    records: storage::backend::RawIter,
) -> KvResult<()> {
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    let mut w = BufWriter::with_capacity(IO_BUFFER_BYTES, file);
    let header = postcard::to_allocvec(state).map_err(|e| KvError::Codec(e.to_string()))?;
    let header_len = u32::try_from(header.len()).map_err(|_| corrupt(path, "header too large"))?;
    let werr = |e| io_err(&tmp, e);
    w.write_all(MAGIC).map_err(werr)?;
    w.write_all(&header_len.to_le_bytes()).map_err(werr)?;
    w.write_all(&header).map_err(werr)?;
    let mut hash = Xxh3::new();
    let mut count = 0u64;
    for record in records {
        let (key, value) = record?;
        let mut head = [0u8; 5];
        head[0] = TAG_RECORD;
        let klen = u32::try_from(key.len()).map_err(|_| corrupt(path, "key too large"))?;
        let vlen = u32::try_from(value.len()).map_err(|_| corrupt(path, "value too large"))?;
        head[1..].copy_from_slice(&klen.to_le_bytes());
        for part in [&head[..], &key, &vlen.to_le_bytes(), &value] {
            hash.update(part);
            w.write_all(part).map_err(werr)?;
        }
        count += 1;
    }
    w.write_all(&[TAG_END]).map_err(werr)?;
    w.write_all(&count.to_le_bytes()).map_err(werr)?;
    w.write_all(&hash.digest().to_le_bytes()).map_err(werr)?;
    let file = w.into_inner().map_err(|e| io_err(&tmp, e.into_error()))?;
    file.sync_all().map_err(werr)?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Reads a snapshot file record by record, with bounded memory.
struct FileReader {
    path: PathBuf,
    r: BufReader<File>,
    hash: Xxh3,
    count: u64,
    done: bool,
}

impl FileReader {
    fn open(path: &Path) -> KvResult<(AppliedState, FileReader)> {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        let mut r = BufReader::with_capacity(IO_BUFFER_BYTES, file);
        let mut magic = [0u8; 8];
        read_exact(&mut r, &mut magic, path)?;
        if &magic != MAGIC {
            return Err(corrupt(path, "not a snapshot file of this version"));
        }
        let len = read_u32(&mut r, path)? as usize;
        if len > HEADER_BYTES_MAX {
            return Err(corrupt(path, format!("header of {len} bytes")));
        }
        let header = read_vec(&mut r, len, path)?;
        let state: AppliedState = postcard::from_bytes(&header)
            .map_err(|e| corrupt(path, format!("undecodable header: {e}")))?;
        Ok((
            state,
            FileReader {
                path: path.to_path_buf(),
                r,
                hash: Xxh3::new(),
                count: 0,
                done: false,
            },
        ))
    }

    /// The next record, or `None` after the trailer (checked).
    fn next_record(&mut self) -> KvResult<Option<(Vec<u8>, Vec<u8>)>> {
        if self.done {
            return Ok(None);
        }
        let path = self.path.clone();
        let mut tag = [0u8; 1];
        read_exact(&mut self.r, &mut tag, &path)?;
        match tag[0] {
            TAG_RECORD => {
                let klen = read_u32(&mut self.r, &path)?;
                let key = read_field(&mut self.r, klen, &path)?;
                let vlen = read_u32(&mut self.r, &path)?;
                let value = read_field(&mut self.r, vlen, &path)?;
                storage::encoding::split_versioned_key(&key)
                    .map_err(|e| corrupt(&path, format!("bad key: {e}")))?;
                for part in [
                    &tag[..],
                    &klen.to_le_bytes(),
                    &key,
                    &vlen.to_le_bytes(),
                    &value,
                ] {
                    self.hash.update(part);
                }
                self.count += 1;
                Ok(Some((key, value)))
            }
            TAG_END => {
                let mut trailer = [0u8; 16];
                read_exact(&mut self.r, &mut trailer, &path)?;
                let (count, digest) = trailer.split_at(8);
                let count = u64::from_le_bytes(count.try_into().unwrap_or_default());
                let digest = u64::from_le_bytes(digest.try_into().unwrap_or_default());
                if count != self.count {
                    return Err(corrupt(
                        &path,
                        format!("{} records, trailer says {count}", self.count),
                    ));
                }
                if digest != self.hash.digest() {
                    return Err(corrupt(&path, "checksum mismatch"));
                }
                let mut rest = [0u8; 1];
                if self.r.read(&mut rest).map_err(|e| io_err(&path, e))? != 0 {
                    return Err(corrupt(&path, "bytes after the trailer"));
                }
                self.done = true;
                Ok(None)
            }
            t => Err(corrupt(&path, format!("unknown record tag {t}"))),
        }
    }
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], path: &Path) -> KvResult<()> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => corrupt(path, "truncated"),
        _ => io_err(path, e),
    })
}

fn read_u32(r: &mut impl Read, path: &Path) -> KvResult<u32> {
    let mut b = [0u8; 4];
    read_exact(r, &mut b, path)?;
    Ok(u32::from_le_bytes(b))
}

/// Reads `len` bytes, growing only with bytes actually read (a claimed length allocates
/// nothing by itself).
fn read_vec(r: &mut impl Read, len: usize, path: &Path) -> KvResult<Vec<u8>> {
    let mut out = Vec::new();
    let n = r
        .take(len as u64)
        .read_to_end(&mut out)
        .map_err(|e| io_err(path, e))?;
    if n != len {
        return Err(corrupt(path, "truncated"));
    }
    Ok(out)
}

fn read_field(r: &mut impl Read, len: u32, path: &Path) -> KvResult<Vec<u8>> {
    let len = len as usize;
    if len > FIELD_BYTES_MAX {
        return Err(corrupt(path, format!("field of {len} bytes")));
    }
    read_vec(r, len, path)
}

/// What the store records, durably, before it starts replacing its data.
#[derive(Debug, Serialize, Deserialize)]
struct InstallMarker {
    /// The snapshot file, relative to the snapshot directory.
    file: String,
    state: AppliedState,
}

/// A test hook: fail an install after this many load batches (a crash in the middle).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct InstallHooks {
    pub fail_after_batches: Option<u64>,
}

/// Installs the snapshot file `path` (in `dir`, the store's snapshot directory) whose
/// metadata is `meta`, crash-safely (blocking). Returns the applied state installed.
pub(crate) fn install(
    engine: &FjallEngine,
    keys: ReplicaKeys,
    dir: &Path,
    path: &Path,
    meta: &Meta,
    hooks: InstallHooks,
) -> KvResult<AppliedState> {
    // Check the whole file before touching the store: a bad file never gets a marker.
    let state = match check_file(path, meta) {
        Ok(state) => state,
        Err(e) => {
            let _ = std::fs::remove_file(path);
            return Err(e);
        }
    };
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(path, e))?;
    sync_dir(dir)?;
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| corrupt(path, "snapshot file has no name"))?
        .to_string();
    let marker = InstallMarker { file, state };
    let mut batch = WriteBatch::new();
    batch.put_local(
        keys.installing_snapshot(),
        postcard::to_allocvec(&marker).map_err(|e| KvError::Codec(e.to_string()))?,
    );
    engine.write(batch, Durability::Sync)?;
    finish(engine, keys, dir, marker, hooks)
}

/// Reads `path` whole: structure, keys, checksum, and the applied index `meta` names.
fn check_file(path: &Path, meta: &Meta) -> KvResult<AppliedState> {
    let (state, mut reader) = FileReader::open(path)?;
    while reader.next_record()?.is_some() {}
    if state.last_applied != meta.last_log_id {
        return Err(corrupt(
            path,
            format!(
                "holds applied index {:?}, the snapshot's metadata says {:?}",
                state.last_applied, meta.last_log_id
            ),
        ));
    }
    Ok(state)
}

/// `path` itself when it is in `dir`, else a copy in `dir` (blocking): an install must use a
/// file of its own store, which a restart can still find. (openraft's storage suite hands a
/// built snapshot of another store over directly.)
pub(crate) fn adopt(dir: &Path, path: PathBuf) -> KvResult<PathBuf> {
    if path.parent() == Some(dir) {
        return Ok(path);
    }
    let copy = next_file(dir, "copied");
    std::fs::copy(&path, &copy).map_err(|e| io_err(&copy, e))?;
    Ok(copy)
}

/// Finishes an install a crash interrupted, if the store records one (blocking; before the
/// replica serves). Returns the applied state it installed.
pub(crate) fn resume(
    engine: &FjallEngine,
    keys: ReplicaKeys,
    dir: &Path,
) -> KvResult<Option<AppliedState>> {
    let Some(bytes) = engine.get_local(&keys.installing_snapshot())? else {
        return Ok(None);
    };
    let marker: InstallMarker = postcard::from_bytes(&bytes)
        .map_err(|e| corrupt(dir, format!("undecodable install marker: {e}")))?;
    tracing::warn!(
        file = %marker.file,
        last_index = marker.state.last_applied.map_or(0, |l| l.index),
        "finishing a snapshot install a restart interrupted"
    );
    finish(engine, keys, dir, marker, InstallHooks::default()).map(Some)
}

/// Replaces the data partition with the marker's file, then writes the applied state and
/// removes the marker in one durable batch. Idempotent: a crash in here repeats it whole.
fn finish(
    engine: &FjallEngine,
    keys: ReplicaKeys,
    dir: &Path,
    marker: InstallMarker,
    hooks: InstallHooks,
) -> KvResult<AppliedState> {
    let path = dir.join(&marker.file);
    let backend = engine.backend();
    // Clear: the iterator reads a fixed view, so deleting behind it is safe.
    let mut batch = RawBatch::default();
    let mut batch_bytes = 0usize;
    for item in backend.range(Partition::Data, Vec::new(), None) {
        let (key, _) = item?;
        batch_bytes += key.len();
        batch.delete(Partition::Data, key);
        if batch_bytes >= INSTALL_BATCH_BYTES {
            backend.commit(std::mem::take(&mut batch), Durability::NoSync)?;
            batch_bytes = 0;
        }
    }
    if !batch.is_empty() {
        backend.commit(std::mem::take(&mut batch), Durability::NoSync)?;
    }
    // Load.
    let (state, mut reader) = FileReader::open(&path)?;
    let mut batches = 0u64;
    batch_bytes = 0;
    while let Some((key, value)) = reader.next_record()? {
        batch_bytes += key.len() + value.len();
        batch.put(Partition::Data, key, value);
        if batch_bytes >= INSTALL_BATCH_BYTES {
            backend.commit(std::mem::take(&mut batch), Durability::NoSync)?;
            batch_bytes = 0;
            batches += 1;
            if hooks.fail_after_batches.is_some_and(|n| batches >= n) {
                return Err(KvError::Raft(format!(
                    "snapshot install stopped by a test hook after {batches} batches"
                )));
            }
        }
    }
    if !batch.is_empty() {
        backend.commit(batch, Durability::NoSync)?;
    }
    if state.last_applied != marker.state.last_applied {
        return Err(corrupt(&path, "file and install marker disagree"));
    }
    let mut last = WriteBatch::new();
    last.put_local(
        keys.applied(),
        postcard::to_allocvec(&state).map_err(|e| KvError::Codec(e.to_string()))?,
    );
    last.delete_local(keys.installing_snapshot());
    // Durable, and with it every write above (they share the store's journal).
    engine.write(last, Durability::Sync)?;
    let _ = std::fs::remove_file(&path);
    Ok(state)
}

/// Removes the snapshot files a previous process left (none is in use once [`resume`] ran).
pub(crate) fn remove_stale_files(dir: &Path) -> KvResult<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let path = entry.path();
        if path.is_file() {
            std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
        }
    }
    Ok(())
}

/// A file being received, checked against limits a peer cannot move.
#[derive(Debug)]
struct Receiving {
    file: tokio::fs::File,
    path: PathBuf,
    /// Bytes written so far (the end of the furthest write).
    len: u64,
    pos: u64,
    bytes_max: u64,
    received_bytes: IntCounter,
}

enum State {
    /// A built snapshot not yet written to its file.
    Built(Arc<BuiltSnapshot>),
    /// Its file being written on a blocking thread.
    Writing {
        handle: tokio::task::JoinHandle<KvResult<PathBuf>>,
        built: Arc<BuiltSnapshot>,
    },
    /// A complete file, read from.
    Reading {
        file: tokio::fs::File,
        path: PathBuf,
        /// Keeps the built snapshot (and so its file) alive while it is read.
        _built: Option<Arc<BuiltSnapshot>>,
    },
    Receiving(Receiving),
    Failed,
}

/// A snapshot's bytes as openraft moves them (`TypeConfig::SnapshotData`): a built snapshot
/// to send, or a file being received. Never holds more than one chunk in memory.
pub struct SnapshotData {
    state: State,
    /// A seek asked for before the file exists.
    pending_seek: Option<SeekFrom>,
}

impl std::fmt::Debug for SnapshotData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Built(_) => "built",
            State::Writing { .. } => "writing",
            State::Reading { .. } => "reading",
            State::Receiving(_) => "receiving",
            State::Failed => "failed",
        };
        f.debug_struct("SnapshotData")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl SnapshotData {
    pub(crate) fn built(snapshot: Arc<BuiltSnapshot>) -> Self {
        SnapshotData {
            state: State::Built(snapshot),
            pending_seek: None,
        }
    }

    /// An empty file in `dir` to receive a snapshot into, up to [`SNAPSHOT_BYTES_MAX`].
    pub(crate) fn receiving(dir: &Path, received_bytes: IntCounter) -> KvResult<Self> {
        Self::receiving_with_limit(dir, received_bytes, SNAPSHOT_BYTES_MAX)
    }

    fn receiving_with_limit(
        dir: &Path,
        received_bytes: IntCounter,
        bytes_max: u64,
    ) -> KvResult<Self> {
        let path = next_file(dir, "received");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        Ok(SnapshotData {
            state: State::Receiving(Receiving {
                file: tokio::fs::File::from_std(file),
                path,
                len: 0,
                pos: 0,
                bytes_max,
                received_bytes,
            }),
            pending_seek: None,
        })
    }

    /// Drives a built snapshot to an open file.
    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.state {
                State::Built(b) => {
                    let built = b.clone();
                    let b = b.clone();
                    self.state = State::Writing {
                        handle: tokio::task::spawn_blocking(move || b.materialise()),
                        built,
                    };
                }
                State::Writing { handle, .. } => {
                    let joined = ready!(Pin::new(handle).poll(cx));
                    let built = match std::mem::replace(&mut self.state, State::Failed) {
                        State::Writing { built, .. } => Some(built),
                        _ => None,
                    };
                    let path = match joined {
                        Ok(Ok(path)) => path,
                        Ok(Err(e)) => return Poll::Ready(Err(other(e))),
                        Err(e) => return Poll::Ready(Err(other(e))),
                    };
                    let file = File::open(&path)?;
                    self.state = State::Reading {
                        file: tokio::fs::File::from_std(file),
                        path,
                        _built: built,
                    };
                }
                State::Reading { .. } | State::Receiving(_) => return Poll::Ready(Ok(())),
                State::Failed => return Poll::Ready(Err(other("snapshot data failed earlier"))),
            }
        }
    }

    /// The complete file holding this snapshot (flushed and durable when received), and the
    /// built snapshot that owns it, if any (the file lives as long as it does).
    pub(crate) async fn into_file(mut self) -> KvResult<(PathBuf, Option<Arc<BuiltSnapshot>>)> {
        match std::mem::replace(&mut self.state, State::Failed) {
            State::Built(b) => {
                let b2 = b.clone();
                let path = tokio::task::spawn_blocking(move || b2.materialise())
                    .await
                    .map_err(|e| KvError::Raft(e.to_string()))??;
                Ok((path, Some(b)))
            }
            State::Writing { handle, built } => {
                let path = handle.await.map_err(|e| KvError::Raft(e.to_string()))??;
                Ok((path, Some(built)))
            }
            State::Reading { path, _built, .. } => Ok((path, _built)),
            State::Receiving(mut r) => {
                use tokio::io::AsyncWriteExt;
                r.file.flush().await.map_err(|e| io_err(&r.path, e))?;
                r.file.sync_all().await.map_err(|e| io_err(&r.path, e))?;
                Ok((r.path, None))
            }
            State::Failed => Err(KvError::Raft("snapshot data failed earlier".into())),
        }
    }
}

impl Drop for SnapshotData {
    fn drop(&mut self) {
        // A partly received snapshot that is never installed.
        if let State::Receiving(r) = &self.state {
            let _ = std::fs::remove_file(&r.path);
        }
    }
}

impl AsyncRead for SnapshotData {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_open(cx))?;
        match &mut this.state {
            State::Reading { file, .. } => Pin::new(file).poll_read(cx, buf),
            State::Receiving(r) => Pin::new(&mut r.file).poll_read(cx, buf),
            _ => Poll::Ready(Err(other("snapshot data is not readable"))),
        }
    }
}

impl AsyncWrite for SnapshotData {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let State::Receiving(r) = &mut self.get_mut().state else {
            return Poll::Ready(Err(other("a built snapshot is read-only")));
        };
        let end = r.pos.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > r.bytes_max) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "snapshot exceeds the limit of {} bytes (writing {} bytes at offset {})",
                    r.bytes_max,
                    buf.len(),
                    r.pos
                ),
            )));
        }
        let n = ready!(Pin::new(&mut r.file).poll_write(cx, buf))?;
        r.pos += n as u64;
        r.len = r.len.max(r.pos);
        r.received_bytes.inc_by(n as u64);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Receiving(r) => Pin::new(&mut r.file).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl AsyncSeek for SnapshotData {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        match &mut this.state {
            State::Receiving(r) => {
                // Never past the bytes received: a peer-chosen offset must not grow the file.
                let target = match position {
                    SeekFrom::Start(o) => i128::from(o),
                    SeekFrom::End(d) => i128::from(r.len) + i128::from(d),
                    SeekFrom::Current(d) => i128::from(r.pos) + i128::from(d),
                };
                if !(0..=i128::from(r.len)).contains(&target) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "snapshot seek to {target} outside the {} bytes received",
                            r.len
                        ),
                    ));
                }
                let target = u64::try_from(target).unwrap_or(r.len);
                Pin::new(&mut r.file).start_seek(SeekFrom::Start(target))?;
                r.pos = target;
                Ok(())
            }
            State::Reading { file, .. } => Pin::new(file).start_seek(position),
            _ => {
                this.pending_seek = Some(position);
                Ok(())
            }
        }
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        ready!(this.poll_open(cx))?;
        if let Some(position) = this.pending_seek.take() {
            Pin::new(&mut *this).start_seek(position)?;
        }
        match &mut this.state {
            State::Reading { file, .. } => Pin::new(file).poll_complete(cx),
            State::Receiving(r) => Pin::new(&mut r.file).poll_complete(cx),
            _ => Poll::Ready(Err(other("snapshot data is not seekable"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, TypeConfig};
    use crate::metrics::KvMetrics;
    use crate::state_machine::{AppliedFeed, StateMachine};
    use hlc::{Clock, Timestamp};
    use openraft::storage::RaftStateMachine;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
    use storage::Span;
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

    struct Replica {
        _dir: tempfile::TempDir,
        engine: Arc<FjallEngine>,
        sm: StateMachine,
    }

    fn must_open(dir: tempfile::TempDir, hooks: InstallHooks) -> Replica {
        let engine = Arc::new(FjallEngine::open(dir.path()).expect("open store"));
        let sm = StateMachine::open(
            crate::RangeId::FIRST,
            engine.clone(),
            Arc::new(Clock::system()),
            Arc::new(AppliedFeed::new(16)),
            KvMetrics::unregistered(),
            hooks,
        )
        .expect("open state machine");
        Replica {
            _dir: dir,
            engine,
            sm,
        }
    }

    fn must_new(hooks: InstallHooks) -> Replica {
        must_open(tempfile::tempdir().expect("temp dir"), hooks)
    }

    /// A transaction entry at `index` writing `keys` values of `value_bytes` bytes, tagged
    /// `tag`.
    fn txn(
        index: u64,
        keys: std::ops::Range<u64>,
        value_bytes: usize,
        tag: u8,
    ) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::Txn {
                proposed_ts: Timestamp::new(index, 0),
                read_ts: Timestamp::ZERO,
                read_keys: Vec::new(),
                read_spans: Vec::new(),
                writes: keys
                    .map(|k| {
                        (
                            format!("key{k:06}").into_bytes(),
                            Some(vec![tag; value_bytes]),
                        )
                    })
                    .collect(),
            }),
        }
    }

    fn fingerprint(engine: &FjallEngine) -> u64 {
        engine
            .fingerprint(&Span::all(), Timestamp::ZERO, Timestamp::MAX)
            .expect("fingerprint")
    }

    /// Moves a snapshot from `from` into a fresh receiving file of `to` in chunks, as
    /// openraft's chunked transport does.
    async fn must_transfer(mut from: SnapshotData, to: &mut SnapshotData) {
        let end = from.seek(SeekFrom::End(0)).await.expect("seek end");
        let mut offset = 0u64;
        while offset < end {
            from.seek(SeekFrom::Start(offset)).await.expect("seek");
            let mut chunk = vec![0u8; 64 << 10];
            let n = from.read(&mut chunk).await.expect("read");
            assert!(n > 0, "a snapshot file reads to its end");
            to.write_all(&chunk[..n]).await.expect("write");
            offset += n as u64;
        }
        to.shutdown().await.expect("shutdown");
    }

    // issue 15 item 3: point-in-time snapshots. Goal: a snapshot is the replica's state at
    // exactly the applied index when openraft asked for the builder, even though entries
    // apply before it is built and written out; the installed replica then has that state
    // and that applied index. Method: take the builder after entries 1-3, apply entries 4-6
    // (new keys and overwrites), then build, stream through files in chunks and install on
    // a fresh replica; compare fingerprints with the leader's at index 3 and now.
    #[tokio::test]
    async fn a_snapshot_is_the_state_at_its_applied_index() {
        let mut leader = must_new(InstallHooks::default());
        leader
            .sm
            .apply((1..=3).map(|i| txn(i, i * 10..i * 10 + 10, 100, 1)))
            .await
            .expect("apply 1-3");
        let at_3 = fingerprint(&leader.engine);
        let mut builder = leader.sm.get_snapshot_builder().await;
        leader
            .sm
            .apply((4..=6).map(|i| txn(i, 0..40, 100, 2)))
            .await
            .expect("apply 4-6");
        assert_ne!(
            fingerprint(&leader.engine),
            at_3,
            "later entries changed the store"
        );
        let snap = builder.build_snapshot().await.expect("build");
        assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(3));

        let mut follower = must_new(InstallHooks::default());
        follower
            .sm
            .apply([txn(1, 500..600, 10, 9)])
            .await
            .expect("follower's own state");
        let mut receiving = follower.sm.begin_receiving_snapshot().await.expect("begin");
        must_transfer(*snap.snapshot, &mut receiving).await;
        follower
            .sm
            .install_snapshot(&snap.meta, receiving)
            .await
            .expect("install");
        assert_eq!(fingerprint(&follower.engine), at_3);
        let (applied, _) = follower.sm.applied_state().await.expect("applied state");
        assert_eq!(applied.map(|l| l.index), Some(3));
        // What it would send on is the same image, under the same id.
        let current = follower
            .sm
            .get_current_snapshot()
            .await
            .expect("current")
            .expect("a current snapshot");
        assert_eq!(current.meta, snap.meta);
    }

    // issue 15 item 3: crash-safe install. Goal: an install interrupted after it started
    // replacing the store (a crash) leaves a store that, reopened, finishes the install
    // from the snapshot file before serving: the data and applied index are the snapshot's,
    // not an empty or mixed store claiming the old applied index. Method: install a
    // snapshot larger than several load batches with a hook that fails after the first
    // batch, check the store is mid-install, reopen the state machine over the same store
    // and compare with the leader.
    #[tokio::test]
    async fn an_interrupted_install_is_finished_at_restart() {
        let mut leader = must_new(InstallHooks::default());
        // About 3 load batches: 60 entries of 10 values of 20 KiB.
        leader
            .sm
            .apply((1..=60).map(|i| txn(i, i * 10..i * 10 + 10, 20 << 10, 3)))
            .await
            .expect("apply");
        let want = fingerprint(&leader.engine);
        let snap = leader
            .sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build");

        let mut follower = must_new(InstallHooks {
            fail_after_batches: Some(1),
        });
        follower
            .sm
            .apply((1..=5).map(|i| txn(i, 0..10, 100, 7)))
            .await
            .expect("follower's old state");
        let old = fingerprint(&follower.engine);
        let mut receiving = follower.sm.begin_receiving_snapshot().await.expect("begin");
        must_transfer(*snap.snapshot, &mut receiving).await;
        follower
            .sm
            .install_snapshot(&snap.meta, receiving)
            .await
            .expect_err("the hook stops the install");
        let mid = fingerprint(&follower.engine);
        assert_ne!(mid, old, "the install had started replacing the store");
        assert_ne!(mid, want, "the install had not finished");
        assert!(
            follower
                .engine
                .get_local(&ReplicaKeys::new(crate::RangeId::FIRST).installing_snapshot())
                .expect("read marker")
                .is_some(),
            "the install is recorded as in progress"
        );

        // "Restart": reopen the state machine over the same store.
        let Replica {
            _dir, engine, sm, ..
        } = follower;
        drop(sm);
        drop(engine);
        let mut restarted = must_open(_dir, InstallHooks::default());
        assert_eq!(fingerprint(&restarted.engine), want);
        let (applied, membership) = restarted.sm.applied_state().await.expect("applied");
        assert_eq!(applied, snap.meta.last_log_id);
        assert_eq!(membership, snap.meta.last_membership);
        assert!(
            restarted
                .engine
                .get_local(&ReplicaKeys::new(crate::RangeId::FIRST).installing_snapshot())
                .expect("read marker")
                .is_none()
        );
        // The snapshot directory is left empty.
        let left = std::fs::read_dir(restarted.sm.sm_snapshot_dir())
            .expect("list")
            .count();
        assert_eq!(left, 0, "no snapshot file is left behind");
    }

    // issue 15 item 3: a damaged snapshot never reaches the store. Goal: a snapshot file with
    // a flipped byte is refused whole before anything of the replica changes (no marker, the
    // old data intact). Method: corrupt one byte in the middle of a received file, install,
    // expect `SnapshotCorrupt`, compare the store with before.
    #[tokio::test]
    async fn a_corrupt_snapshot_is_refused_before_the_store_changes() {
        let mut leader = must_new(InstallHooks::default());
        leader
            .sm
            .apply((1..=3).map(|i| txn(i, i * 10..i * 10 + 10, 1000, 1)))
            .await
            .expect("apply");
        let snap = leader
            .sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build");
        let mut follower = must_new(InstallHooks::default());
        follower
            .sm
            .apply([txn(1, 0..5, 10, 4)])
            .await
            .expect("apply");
        let old = fingerprint(&follower.engine);
        let mut receiving = follower.sm.begin_receiving_snapshot().await.expect("begin");
        must_transfer(*snap.snapshot, &mut receiving).await;
        receiving.seek(SeekFrom::Start(20_000)).await.expect("seek");
        let mut byte = [0u8; 1];
        receiving.read_exact(&mut byte).await.expect("read");
        receiving.seek(SeekFrom::Start(20_000)).await.expect("seek");
        receiving.write_all(&[byte[0] ^ 0x55]).await.expect("flip");
        let err = follower
            .sm
            .install_snapshot(&snap.meta, receiving)
            .await
            .expect_err("a corrupt snapshot is refused");
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert_eq!(fingerprint(&follower.engine), old);
        assert!(
            follower
                .engine
                .get_local(&ReplicaKeys::new(crate::RangeId::FIRST).installing_snapshot())
                .expect("read marker")
                .is_none()
        );
    }

    // issue 14 item 5, kept for the file-backed receiver (issue 15 item 3): a snapshot chunk's
    // offset and size come from the peer. Goal: the receiving file never grows from a claimed
    // offset and refuses to grow past its limit with an error. Method: seek far past the end,
    // and write past a small limit; both fail and the file keeps only what was written.
    #[tokio::test]
    async fn snapshot_receiver_refuses_peer_controlled_growth() {
        let dir = tempfile::tempdir().expect("temp dir");
        let metrics = KvMetrics::unregistered();
        let mut buf = SnapshotData::receiving_with_limit(
            dir.path(),
            metrics.snapshot_received_bytes.clone(),
            10,
        )
        .expect("receiving file");
        buf.write_all(b"0123")
            .await
            .expect("write within the limit");
        let far = buf.seek(SeekFrom::Start(1 << 40)).await;
        assert_eq!(
            far.expect_err("seek past the end").kind(),
            io::ErrorKind::InvalidInput
        );
        let over = buf.write_all(b"456789abc").await;
        assert_eq!(
            over.expect_err("write past the limit").kind(),
            io::ErrorKind::InvalidData
        );
        // A resend from an offset already received overwrites in place.
        buf.seek(SeekFrom::Start(2)).await.expect("seek back");
        buf.write_all(b"xy").await.expect("rewrite");
        buf.seek(SeekFrom::Start(0)).await.expect("rewind");
        let mut out = Vec::new();
        buf.read_to_end(&mut out).await.expect("read");
        assert_eq!(out, b"01xy");
        assert_eq!(metrics.snapshot_received_bytes.get(), 6);
    }
}

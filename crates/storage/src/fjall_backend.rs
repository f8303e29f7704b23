//! The on-disk byte store: one fjall database per store, with one keyspace for MVCC data and
//! one for local metadata.

use crate::backend::{Backend, Partition, RawBatch, RawIter, RawOp};
use crate::{Durability, FjallEngine, MvccEngine, StorageResult};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use std::fmt;
use std::path::{Path, PathBuf};

const DATA_KEYSPACE: &str = "mvcc";
const META_KEYSPACE: &str = "meta";

/// A fjall database holding one store.
pub struct FjallBackend {
    path: PathBuf,
    db: Database,
    data: Keyspace,
    meta: Keyspace,
}

impl fmt::Debug for FjallBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FjallBackend")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FjallBackend {
    /// Opens (creating if needed) the store in directory `path`, recovering from its journal.
    pub fn open(path: &Path) -> StorageResult<Self> {
        Self::open_with(path, &StoreOptions::default())
    }

    /// Opens the store with `options`.
    pub fn open_with(path: &Path, options: &StoreOptions) -> StorageResult<Self> {
        let mut builder = Database::builder(path);
        if let Some(bytes) = options.cache_bytes {
            builder = builder.cache_size(bytes);
        }
        let db = builder.open()?;
        let data = db.keyspace(DATA_KEYSPACE, KeyspaceCreateOptions::default)?;
        let meta = db.keyspace(META_KEYSPACE, KeyspaceCreateOptions::default)?;
        Ok(FjallBackend {
            path: path.to_path_buf(),
            db,
            data,
            meta,
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The size and the free space of the filesystem holding the store (`statvfs`).
    pub fn disk_space(&self) -> std::io::Result<DiskSpace> {
        let st = rustix::fs::statvfs(&self.path)?;
        Ok(DiskSpace {
            total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
            available_bytes: st.f_bavail.saturating_mul(st.f_frsize),
        })
    }

    /// The fjall database (for benchmarks that compare against raw fjall).
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn keyspace(&self, partition: Partition) -> &Keyspace {
        match partition {
            Partition::Data => &self.data,
            Partition::Meta => &self.meta,
        }
    }

    /// A point-in-time view of the data partition (a fjall snapshot): later writes are not
    /// visible through it, and the versions it sees stay on disk until it is dropped.
    pub fn data_read_view(&self) -> DataReadView {
        DataReadView {
            snapshot: self.db.snapshot(),
            data: self.data.clone(),
        }
    }

    /// Makes every write committed so far durable, whatever durability it was written with.
    pub fn persist(&self) -> StorageResult<()> {
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// Flushes the data memtable and compacts the data keyspace fully. Uses fjall's hidden
    /// maintenance hooks; meant for tests that check results survive compaction.
    pub fn compact(&self) -> StorageResult<()> {
        self.data.rotate_memtable_and_wait()?;
        self.data.major_compact()?;
        Ok(())
    }
}

impl Backend for FjallBackend {
    fn get(&self, partition: Partition, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.keyspace(partition).get(key)?.map(|v| v.to_vec()))
    }

    fn range(&self, partition: Partition, start: Vec<u8>, end: Option<Vec<u8>>) -> RawIter {
        let keyspace = self.keyspace(partition);
        let iter = match end {
            Some(end) => keyspace.range(start..end),
            None => keyspace.range(start..),
        };
        Box::new(iter.map(|guard| {
            let (k, v) = guard.into_inner()?;
            Ok((k.to_vec(), v.to_vec()))
        }))
    }

    fn commit(&self, batch: RawBatch, durability: Durability) -> StorageResult<()> {
        let mode = match durability {
            Durability::Sync => Some(PersistMode::SyncAll),
            Durability::NoSync => None,
        };
        let mut fb = self.db.batch().durability(mode);
        for op in batch.ops {
            match op {
                RawOp::Put(p, k, v) => fb.insert(self.keyspace(p), k, v),
                RawOp::Delete(p, k) => fb.remove(self.keyspace(p), k),
            }
        }
        fb.commit()?;
        Ok(())
    }
}

/// A point-in-time view of a store's data partition; see [`FjallBackend::data_read_view`].
#[derive(Clone)]
pub struct DataReadView {
    snapshot: fjall::Snapshot,
    data: Keyspace,
}

impl fmt::Debug for DataReadView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataReadView")
            .field("seqno", &self.snapshot.seqno())
            .finish_non_exhaustive()
    }
}

impl DataReadView {
    /// Every encoded key and value of the data partition as of the view, ascending. The
    /// iterator keeps the view alive.
    pub fn raw_iter(&self) -> RawIter {
        let view = self.snapshot.clone();
        let iter = view.iter(&self.data);
        Box::new(iter.map(move |guard| {
            // Holds the snapshot for as long as the iterator lives.
            let _view = &view;
            let (k, v) = guard.into_inner()?;
            Ok((k.to_vec(), v.to_vec()))
        }))
    }
}

/// The size of a store's filesystem and what of it this process may still write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    pub total_bytes: u64,
    /// Free bytes an unprivileged writer may use (`f_bavail`).
    pub available_bytes: u64,
}

/// Options of an on-disk store.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// Bytes of block cache (fjall's default when `None`).
    pub cache_bytes: Option<u64>,
}

impl FjallEngine {
    /// Opens (creating if needed) the MVCC store in directory `path`.
    pub fn open(path: &Path) -> StorageResult<Self> {
        Ok(MvccEngine::with_backend(FjallBackend::open(path)?))
    }

    /// Opens the MVCC store in directory `path` with `options`.
    pub fn open_with(path: &Path, options: &StoreOptions) -> StorageResult<Self> {
        Ok(MvccEngine::with_backend(FjallBackend::open_with(
            path, options,
        )?))
    }
}

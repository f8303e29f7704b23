//! The in-memory byte store: two `BTreeMap`s behind a lock.

use crate::backend::{Backend, Partition, RawBatch, RawIter, RawOp};
use crate::{Durability, MemEngine, MvccEngine, StorageResult};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Default)]
struct Maps {
    data: Map,
    meta: Map,
}

impl Maps {
    fn get(&self, partition: Partition) -> &Map {
        match partition {
            Partition::Data => &self.data,
            Partition::Meta => &self.meta,
        }
    }

    fn get_mut(&mut self, partition: Partition) -> &mut Map {
        match partition {
            Partition::Data => &mut self.data,
            Partition::Meta => &mut self.meta,
        }
    }
}

/// An ordered byte store in memory. Durability is ignored: nothing survives the process.
/// Iterators read in chunks and see writes committed while they run (no snapshot).
#[derive(Debug, Default, Clone)]
pub struct MemBackend {
    maps: Arc<RwLock<Maps>>,
}

/// Pairs read under one lock acquisition by an iterator.
const CHUNK: usize = 256;

impl MemBackend {
    fn read(&self) -> RwLockReadGuard<'_, Maps> {
        // Writers apply a whole batch before releasing the lock and do not panic midway, so a
        // poisoned lock still guards consistent maps.
        self.maps.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Backend for MemBackend {
    fn get(&self, partition: Partition, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.read().get(partition).get(key).cloned())
    }

    fn range(&self, partition: Partition, start: Vec<u8>, end: Option<Vec<u8>>) -> RawIter {
        let backend = self.clone();
        let mut lower = Bound::Included(start);
        let mut buffer = std::collections::VecDeque::new();
        let mut exhausted = false;
        Box::new(std::iter::from_fn(move || {
            if buffer.is_empty() && !exhausted {
                let maps = backend.read();
                let upper = end.clone().map_or(Bound::Unbounded, Bound::Excluded);
                buffer.extend(
                    maps.get(partition)
                        .range((lower.clone(), upper))
                        .take(CHUNK)
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
                exhausted = buffer.len() < CHUNK;
                if let Some((k, _)) = buffer.back() {
                    lower = Bound::Excluded(k.clone());
                }
            }
            buffer.pop_front().map(Ok)
        }))
    }

    fn commit(&self, batch: RawBatch, _durability: Durability) -> StorageResult<()> {
        let mut maps = self.write();
        for op in batch.ops {
            match op {
                RawOp::Put(p, k, v) => {
                    maps.get_mut(p).insert(k.to_vec(), v.to_vec());
                }
                RawOp::Delete(p, k) => {
                    maps.get_mut(p).remove(&k[..]);
                }
            }
        }
        Ok(())
    }
}

impl MemEngine {
    /// An empty in-memory store.
    pub fn new() -> Self {
        MvccEngine::with_backend(MemBackend::default())
    }
}

impl Default for MemEngine {
    fn default() -> Self {
        MemEngine::new()
    }
}

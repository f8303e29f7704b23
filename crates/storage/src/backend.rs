//! The seam between the MVCC logic and an ordered byte store. Both engines share the MVCC
//! logic in [`crate::MvccEngine`]; a backend only stores bytes.

use crate::{Durability, StorageResult};
use std::fmt::Debug;

/// Immutable bytes as the store keeps them (fjall's slice type, built with one copy).
pub type Bytes = fjall::Slice;

/// The two partitions of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partition {
    /// Versioned keys and values.
    Data,
    /// Local metadata of the store (the Raft applied state, counters); not versioned.
    Meta,
}

/// One write of a [`RawBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawOp {
    /// Set a key to a value.
    Put(Partition, Bytes, Bytes),
    /// Remove a key.
    Delete(Partition, Bytes),
}

/// Writes applied atomically by [`Backend::commit`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawBatch {
    /// The writes, applied in order.
    pub ops: Vec<RawOp>,
}

impl RawBatch {
    /// An empty batch with room for `n` writes.
    pub fn with_capacity(n: usize) -> Self {
        RawBatch {
            ops: Vec::with_capacity(n),
        }
    }

    /// Adds a put.
    pub fn put(&mut self, partition: Partition, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.ops
            .push(RawOp::Put(partition, key.into(), value.into()));
    }

    /// Adds a delete.
    pub fn delete(&mut self, partition: Partition, key: impl Into<Bytes>) {
        self.ops.push(RawOp::Delete(partition, key.into()));
    }

    /// The number of writes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no writes.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A forward iterator over raw key-value pairs.
pub type RawIter = Box<dyn Iterator<Item = StorageResult<(Vec<u8>, Vec<u8>)>> + Send>;

/// An ordered byte store with two partitions and atomic batches.
pub trait Backend: Send + Sync + Debug + 'static {
    /// The value of `key`.
    fn get(&self, partition: Partition, key: &[u8]) -> StorageResult<Option<Vec<u8>>>;
    /// The pairs with `start <= key < end` (no upper bound when `end` is `None`), ascending.
    fn range(&self, partition: Partition, start: Vec<u8>, end: Option<Vec<u8>>) -> RawIter;
    /// Applies all writes of `batch` or none of them.
    fn commit(&self, batch: RawBatch, durability: Durability) -> StorageResult<()>;
}

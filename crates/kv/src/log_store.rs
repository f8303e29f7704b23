//! The Raft log and vote, in their own keyspace of the node's fjall database.

use crate::TypeConfig;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, OptionalSend, StorageError, StorageIOError, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

type NodeIdRaw = u64;

const KEYSPACE: &str = "raft_log";
const VOTE_KEY: &[u8] = b"m/vote";
const PURGED_KEY: &[u8] = b"m/purged";
const ENTRY_PREFIX: u8 = b'e';
/// The encoded bytes of entries one Raft append carries to a follower, unless its first entry
/// alone is larger. openraft batches up to `max_payload_entries` (300) entries per append and
/// gives an append one heartbeat interval to complete; without a byte bound, a follower
/// catching up over a run of multi-MiB ingest entries would be sent (and the leader would
/// load) gigabytes in one message that could never arrive in time.
const APPEND_BYTES_TARGET: usize = 4 << 20;

fn entry_key(index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = ENTRY_PREFIX;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StorageError<NodeIdRaw>> {
    postcard::to_allocvec(v).map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, StorageError<NodeIdRaw>> {
    postcard::from_bytes(b).map_err(|e| StorageIOError::read_logs(AnyError::new(&e)).into())
}

fn read_err(e: fjall::Error) -> StorageError<NodeIdRaw> {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

fn write_err(e: fjall::Error) -> StorageError<NodeIdRaw> {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

/// The log store. Cheap to clone (fjall handles are shared); a clone is the log reader.
#[derive(Clone)]
pub struct LogStore {
    db: Database,
    ks: Keyspace,
    /// See [`APPEND_BYTES_TARGET`]; smaller in tests.
    append_bytes_target: usize,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    pub fn open(db: &Database) -> Result<Self, fjall::Error> {
        let ks = db.keyspace(KEYSPACE, KeyspaceCreateOptions::default)?;
        Ok(LogStore {
            db: db.clone(),
            ks,
            append_bytes_target: APPEND_BYTES_TARGET,
        })
    }

    fn get_meta<T: DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError<NodeIdRaw>> {
        match self.ks.get(key).map_err(read_err)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    fn last_entry_id(&self) -> Result<Option<LogId<NodeIdRaw>>, StorageError<NodeIdRaw>> {
        let last = self
            .ks
            .range(entry_key(0)..=entry_key(u64::MAX))
            .next_back();
        match last {
            None => Ok(None),
            Some(guard) => {
                let (_, v) = guard.into_inner().map_err(read_err)?;
                let entry: Entry<TypeConfig> = decode(&v)?;
                Ok(Some(entry.log_id))
            }
        }
    }

    /// Removes entries with index in `[from, to]`, durably.
    fn remove_range(&self, from: u64, to: u64) -> Result<(), StorageError<NodeIdRaw>> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        for guard in self.ks.range(entry_key(from)..=entry_key(to)) {
            let k = guard.key().map_err(read_err)?;
            batch.remove(&self.ks, k);
        }
        batch.commit().map_err(write_err)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeIdRaw>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(entry_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(entry_key(*i)),
            Bound::Unbounded => Bound::Included(entry_key(u64::MAX)),
        };
        let mut out = Vec::new();
        for guard in self.ks.range((Bound::Included(entry_key(start)), end)) {
            let (_, v) = guard.into_inner().map_err(read_err)?;
            out.push(decode(&v)?);
        }
        Ok(out)
    }

    /// The entries of `[start, end)` that fit [`APPEND_BYTES_TARGET`] encoded bytes, and at
    /// least one (openraft sends what this returns in one append).
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeIdRaw>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for guard in self.ks.range(entry_key(start)..entry_key(end)) {
            let (_, v) = guard.into_inner().map_err(read_err)?;
            if !out.is_empty() && bytes.saturating_add(v.len()) > self.append_bytes_target {
                break;
            }
            bytes = bytes.saturating_add(v.len());
            out.push(decode(&v)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeIdRaw>> {
        let last_purged_log_id: Option<LogId<NodeIdRaw>> = self.get_meta(PURGED_KEY)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeIdRaw>) -> Result<(), StorageError<NodeIdRaw>> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(&self.ks, VOTE_KEY, encode(vote)?);
        batch
            .commit()
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeIdRaw>>, StorageError<NodeIdRaw>> {
        self.get_meta(VOTE_KEY)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeIdRaw>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = self.db.batch();
        for entry in entries {
            batch.insert(&self.ks, entry_key(entry.log_id.index), encode(&entry)?);
        }
        // Durable before the callback: Raft counts this replica towards a quorum only then.
        let result = batch
            .durability(Some(PersistMode::SyncAll))
            .commit()
            .map_err(std::io::Error::other);
        let failed = result.as_ref().err().map(|e| e.to_string());
        callback.log_io_completed(result);
        match failed {
            Some(e) => Err(StorageIOError::write_logs(AnyError::error(e)).into()),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeIdRaw>) -> Result<(), StorageError<NodeIdRaw>> {
        self.remove_range(log_id.index, u64::MAX)
    }

    async fn purge(&mut self, log_id: LogId<NodeIdRaw>) -> Result<(), StorageError<NodeIdRaw>> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(&self.ks, PURGED_KEY, encode(&log_id)?);
        batch.commit().map_err(write_err)?;
        self.remove_range(0, log_id.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;
    use hlc::Timestamp;
    use openraft::{CommittedLeaderId, EntryPayload};

    // Goal: a Raft append is bounded by bytes, not only by entry count, yet always carries at
    // least one entry (an ingest entry may alone exceed the target). Method: store entries of
    // ~1 KiB directly, read with a 2.5 KiB target.
    #[tokio::test]
    async fn limited_reads_are_bounded_by_bytes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::builder(dir.path()).open().expect("open db");
        let mut store = LogStore::open(&db).expect("open log store");
        store.append_bytes_target = 2_560;
        for index in 1..=5u64 {
            let entry = Entry::<TypeConfig> {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Normal(Command::Ingest {
                    proposed_ts: Timestamp::new(index, 0),
                    versions: vec![(b"k".to_vec(), Timestamp::new(1, 0), Some(vec![7; 1_000]))],
                }),
            };
            store
                .ks
                .insert(entry_key(index), encode(&entry).expect("encode"))
                .expect("insert");
        }
        let got = store.limited_get_log_entries(1, 6).await.expect("read");
        assert_eq!(
            got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            [1, 2]
        );
        let got = store.limited_get_log_entries(5, 6).await.expect("read");
        assert_eq!(got.len(), 1);
        store.append_bytes_target = 10;
        let got = store.limited_get_log_entries(3, 6).await.expect("read");
        assert_eq!(got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), [3]);
        assert!(
            store
                .limited_get_log_entries(6, 9)
                .await
                .expect("read")
                .is_empty()
        );
    }
}

//! The Raft log and vote, in their own fjall database (`raft-log` under the store directory):
//! its own journal, so a log append's fsync does not flush the data keyspace's applies and an
//! apply never waits behind a log fsync.
//!
//! Appends, truncations, purges and votes are durable before they return. Applies are not
//! (the log replays them), so before a purge drops entries this store first makes the data
//! store durable: the entries purged are then applied on disk, not only in its journal buffer.

use crate::ids::ReplicaKeys;
use crate::metrics::KvMetrics;
use crate::{KvError, KvResult, RangeId, TypeConfig};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, OptionalSend, StorageError, StorageIOError, Vote};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use storage::FjallEngine;

type NodeIdRaw = u64;

/// The log database's directory, under the store's.
pub(crate) const LOG_DIR: &str = "raft-log";
/// The keyspace of the log (in its own database now; earlier versions kept it, under the same
/// name, in the data database).
const KEYSPACE: &str = "raft_log";
/// The encoded bytes of entries one Raft append carries to a follower, unless its first entry
/// alone is larger. openraft batches up to `max_payload_entries` (300) entries per append and
/// gives an append one heartbeat interval to complete; without a byte bound, a follower
/// catching up over a run of multi-MiB ingest entries would be sent (and the leader would
/// load) gigabytes in one message that could never arrive in time.
const APPEND_BYTES_TARGET: usize = 4 << 20;

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StorageError<NodeIdRaw>> {
    postcard::to_allocvec(v).map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, StorageError<NodeIdRaw>> {
    postcard::from_bytes(b).map_err(|e| StorageIOError::read_logs(AnyError::new(&e)).into())
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
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
    /// Where this replica's entries, vote and purge point are, in a database that will hold
    /// every replica's of the store.
    keys: ReplicaKeys,
    /// The data store, made durable before a purge.
    data: Arc<FjallEngine>,
    metrics: KvMetrics,
    /// See [`APPEND_BYTES_TARGET`]; smaller in tests.
    append_bytes_target: usize,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens (creating if needed) the log database of the store `data`, in [`LOG_DIR`] under
    /// its directory. A store whose log lives in the data database (an earlier version) is
    /// refused: its log cannot be read here, and starting without it would lose entries.
    pub fn open(data: Arc<FjallEngine>, metrics: KvMetrics, range: RangeId) -> KvResult<Self> {
        let store_path = data.backend().path().to_path_buf();
        if data.backend().database().keyspace_exists(KEYSPACE) {
            return Err(KvError::IncompatibleStore {
                path: store_path.display().to_string(),
                reason: "its raft log is in the data database (created by an earlier version); \
                         start the node on an empty directory"
                    .into(),
            });
        }
        let path = store_path.join(LOG_DIR);
        let fjall_err = |e: fjall::Error| KvError::Storage(e.into());
        let db = Database::builder(&path).open().map_err(fjall_err)?;
        let ks = db
            .keyspace(KEYSPACE, KeyspaceCreateOptions::default)
            .map_err(fjall_err)?;
        let store = LogStore {
            db,
            ks,
            keys: ReplicaKeys::new(range),
            data,
            metrics,
            append_bytes_target: APPEND_BYTES_TARGET,
        };
        let (entries, bytes) = store
            .measure(0, u64::MAX)
            .map_err(|e| KvError::Raft(e.to_string()))?;
        store.metrics.raft_log_entries.set(saturating_i64(entries));
        store.metrics.raft_log_bytes.set(saturating_i64(bytes));
        Ok(store)
    }

    /// The entries and their encoded bytes with index in `[from, to]`.
    fn measure(&self, from: u64, to: u64) -> Result<(u64, u64), StorageError<NodeIdRaw>> {
        let mut entries = 0u64;
        let mut bytes = 0u64;
        for guard in self.ks.range(self.keys.entry(from)..=self.keys.entry(to)) {
            let (_, v) = guard.into_inner().map_err(read_err)?;
            entries += 1;
            bytes += v.len() as u64;
        }
        Ok((entries, bytes))
    }

    fn account(&self, entries: i64, bytes: i64) {
        self.metrics.raft_log_entries.add(entries);
        self.metrics.raft_log_bytes.add(bytes);
    }

    /// The first index to keep so that the log from it to its end holds at most
    /// `entries_max` entries and `bytes_max` bytes (blocking; reads the log's head). `None`
    /// when the whole log fits.
    pub(crate) fn first_index_within(
        &self,
        entries_max: u64,
        bytes_max: u64,
    ) -> Result<Option<u64>, StorageError<NodeIdRaw>> {
        let mut entries = u64::try_from(self.metrics.raft_log_entries.get()).unwrap_or(0);
        let mut bytes = u64::try_from(self.metrics.raft_log_bytes.get()).unwrap_or(0);
        if entries <= entries_max && bytes <= bytes_max {
            return Ok(None);
        }
        for guard in self
            .ks
            .range(self.keys.entry(0)..=self.keys.entry(u64::MAX))
        {
            let (k, v) = guard.into_inner().map_err(read_err)?;
            if entries <= entries_max && bytes <= bytes_max {
                return Ok(Some(ReplicaKeys::index_of(&k)));
            }
            entries = entries.saturating_sub(1);
            bytes = bytes.saturating_sub(v.len() as u64);
        }
        Ok(Some(u64::MAX))
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
            .range(self.keys.entry(0)..=self.keys.entry(u64::MAX))
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
        let mut entries = 0i64;
        let mut bytes = 0i64;
        for guard in self.ks.range(self.keys.entry(from)..=self.keys.entry(to)) {
            let (k, v) = guard.into_inner().map_err(read_err)?;
            entries += 1;
            bytes += saturating_i64(v.len() as u64);
            batch.remove(&self.ks, k);
        }
        batch.commit().map_err(write_err)?;
        self.account(-entries, -bytes);
        Ok(())
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
            Bound::Included(i) => Bound::Included(self.keys.entry(*i)),
            Bound::Excluded(i) => Bound::Excluded(self.keys.entry(*i)),
            Bound::Unbounded => Bound::Included(self.keys.entry(u64::MAX)),
        };
        let mut out = Vec::new();
        for guard in self
            .ks
            .range((Bound::Included(self.keys.entry(start)), end))
        {
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
        for guard in self.ks.range(self.keys.entry(start)..self.keys.entry(end)) {
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
        let last_purged_log_id: Option<LogId<NodeIdRaw>> = self.get_meta(&self.keys.purged())?;
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
        batch.insert(&self.ks, self.keys.vote(), encode(vote)?);
        batch
            .commit()
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeIdRaw>>, StorageError<NodeIdRaw>> {
        self.get_meta(&self.keys.vote())
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
        let mut count = 0i64;
        let mut bytes = 0i64;
        for entry in entries {
            let encoded = encode(&entry)?;
            count += 1;
            bytes += saturating_i64(encoded.len() as u64);
            batch.insert(&self.ks, self.keys.entry(entry.log_id.index), encoded);
        }
        // Durable before the callback: Raft counts this replica towards a quorum only then.
        let result = batch
            .durability(Some(PersistMode::SyncAll))
            .commit()
            .map_err(std::io::Error::other);
        let failed = result.as_ref().err().map(|e| e.to_string());
        if failed.is_none() {
            self.account(count, bytes);
        }
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
        // openraft purges only entries a snapshot covers, so applied; but applies are not
        // fsynced (the log replays them): make them durable before their entries go.
        self.data
            .backend()
            .persist()
            .map_err(|e| StorageIOError::write_state_machine(AnyError::new(&e)))?;
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        batch.insert(&self.ks, self.keys.purged(), encode(&log_id)?);
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
        let engine = Arc::new(FjallEngine::open(dir.path()).expect("open store"));
        let mut store = LogStore::open(engine, KvMetrics::unregistered(), RangeId::FIRST)
            .expect("open log store");
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
                .insert(store.keys.entry(index), encode(&entry).expect("encode"))
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

    fn entry(index: u64, value_bytes: usize) -> Entry<TypeConfig> {
        Entry::<TypeConfig> {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::Ingest {
                proposed_ts: Timestamp::new(index, 0),
                versions: vec![(
                    b"k".to_vec(),
                    Timestamp::new(1, 0),
                    Some(vec![7; value_bytes]),
                )],
            }),
        }
    }

    // issue 15 item 6: the Raft log in its own keyspace with its own persistence. Goal: the
    // log and vote live in their own fjall database under the store directory (its own
    // journal), not in the data database, and survive a reopen; a store whose log is in the
    // data database (an earlier version) is refused with a clear error rather than started
    // with an empty log. Method: open, write a vote and entries, reopen; then open a store
    // that has the old `raft_log` keyspace in its data database.
    #[tokio::test]
    async fn the_log_has_its_own_database() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let engine = Arc::new(FjallEngine::open(dir.path()).expect("open store"));
            let mut store =
                LogStore::open(engine.clone(), KvMetrics::unregistered(), RangeId::FIRST)
                    .expect("open log store");
            let vote = Vote::new(3, 1);
            store.save_vote(&vote).await.expect("save vote");
            store
                .ks
                .insert(store.keys.entry(1), encode(&entry(1, 10)).expect("encode"))
                .expect("insert");
            assert!(!engine.backend().database().keyspace_exists(KEYSPACE));
        }
        assert!(dir.path().join(LOG_DIR).is_dir());
        let engine = Arc::new(FjallEngine::open(dir.path()).expect("reopen store"));
        let mut store = LogStore::open(engine, KvMetrics::unregistered(), RangeId::FIRST)
            .expect("reopen log store");
        assert_eq!(
            store.read_vote().await.expect("vote"),
            Some(Vote::new(3, 1))
        );
        let state = store.get_log_state().await.expect("log state");
        assert_eq!(state.last_log_id.map(|l| l.index), Some(1));

        let old = tempfile::tempdir().expect("temp dir");
        let engine = Arc::new(FjallEngine::open(old.path()).expect("open old store"));
        engine
            .backend()
            .database()
            .keyspace(KEYSPACE, KeyspaceCreateOptions::default)
            .expect("old layout");
        match LogStore::open(engine, KvMetrics::unregistered(), RangeId::FIRST) {
            Err(e @ KvError::IncompatibleStore { .. }) => {
                assert!(e.to_string().contains("earlier version"), "{e}");
            }
            other => panic!("expected an incompatible store error, got {other:?}"),
        }
    }

    // issue 15 item 4: log size accounting for truncation. Goal: the log's entry and byte
    // gauges are right after a reopen and follow purges, and the first index to keep for
    // the log to fit its caps is computed from the head of the log. Method: store ten
    // entries of ~1 KiB, reopen, check the gauges and `first_index_within` for entry and
    // byte caps, purge, check again.
    #[tokio::test]
    async fn log_size_is_tracked_for_truncation() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Arc::new(FjallEngine::open(dir.path()).expect("open store"));
        let size = {
            let store = LogStore::open(engine.clone(), KvMetrics::unregistered(), RangeId::FIRST)
                .expect("open log store");
            let mut size = 0;
            for index in 1..=10u64 {
                let bytes = encode(&entry(index, 1_000)).expect("encode");
                size = bytes.len() as u64;
                store
                    .ks
                    .insert(store.keys.entry(index), bytes)
                    .expect("insert");
            }
            size
        };
        let metrics = KvMetrics::unregistered();
        let mut store =
            LogStore::open(engine, metrics.clone(), RangeId::FIRST).expect("reopen log store");
        assert_eq!(metrics.raft_log_entries.get(), 10);
        assert_eq!(metrics.raft_log_bytes.get() as u64, 10 * size);
        assert_eq!(store.first_index_within(10, u64::MAX).expect("fit"), None);
        assert_eq!(store.first_index_within(4, u64::MAX).expect("fit"), Some(7));
        assert_eq!(
            store.first_index_within(100, 3 * size).expect("fit"),
            Some(8)
        );
        store
            .purge(LogId::new(CommittedLeaderId::new(1, 1), 6))
            .await
            .expect("purge");
        assert_eq!(metrics.raft_log_entries.get(), 4);
        assert_eq!(metrics.raft_log_bytes.get() as u64, 4 * size);
        assert_eq!(store.first_index_within(4, u64::MAX).expect("fit"), None);
    }
}

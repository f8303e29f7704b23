//! The state machine: applies committed entries to the MVCC engine, assigns commit
//! timestamps, validates transactions, and publishes what it applied to rangefeeds.

use crate::command::{Command, CommandResult, IngestFence, TypeConfig, WireSpan};
use crate::ids::{RangeId, ReplicaKeys};
use crate::lease::{self, Lease, LeaseDecision};
use crate::metrics::KvMetrics;
use crate::snapshot::{self, BuiltSnapshot, InstallHooks, SnapshotData};
use hlc::{Clock, Timestamp};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use storage::{Durability, Engine, ExportMode, FjallEngine, MvccVersion, Span, WriteBatch};
use tokio::sync::{broadcast, watch};

type NodeIdRaw = u64;
type Membership = StoredMembership<NodeIdRaw, openraft::BasicNode>;

/// Local metadata key of the applied state, written atomically with each entry's writes.
/// The replicated node id counter (an MVCC key in the system keyspace, so snapshots carry it).
pub(crate) const NODE_ID_SEQ_KEY: &[u8] = b"\x02sys/node-id-seq";

/// What one applied entry changed on a replica, as the applied-entry broadcast carries it
/// (rangefeeds tail it; see [`crate::Store::subscribe_applied`]). Entries arrive in log
/// order, so their timestamps strictly grow.
#[derive(Debug)]
pub enum Applied {
    /// An entry applied at `ts` (its commit timestamp, now the replica's closed timestamp)
    /// with the versions it wrote at `ts`, in key order. Entries without such writes (closes,
    /// aborted transactions, membership changes) carry none, and so do ingest and revert
    /// entries: ingested versions keep their original timestamps, below `ts`, and a revert
    /// removes versions; a consumer that needs those runs its own scan of storage. Every
    /// entry still tells that everything at or below `ts` is applied.
    Entry {
        ts: Timestamp,
        versions: Vec<MvccVersion>,
    },
    /// The replica's state was replaced by a snapshot: history may have been skipped, and a
    /// consumer must restart from its last checkpoint.
    Reset,
}

/// How an entry changes the engine, committed atomically with the applied state.
enum Effect {
    /// Versions at the entry's timestamp (possibly none).
    Write,
    /// Replicated versions with their own timestamps.
    Ingest(Vec<MvccVersion>),
    /// One revert step.
    Revert {
        span: Span,
        to_ts: Timestamp,
        max_versions: usize,
    },
    /// One GC step, run on a blocking thread; the GC span's threshold is raised in memory
    /// first (see [`crate::gc`]).
    Gc {
        step: crate::gc::GcStep,
        gc_span: Span,
        max_versions: usize,
    },
}

impl Effect {
    /// Ingesting replicated versions as a command carries them.
    fn ingest(versions: Vec<crate::command::WireVersion>) -> Self {
        Effect::Ingest(
            versions
                .into_iter()
                .map(|(key, ts, value)| MvccVersion { key, ts, value })
                .collect(),
        )
    }
}

/// Whether a storage error is a deterministic rejection of the command (every replica
/// rejects it identically, with nothing written), rather than a failure of this store.
fn is_rejection(e: &storage::StorageError) -> bool {
    use storage::StorageError as E;
    match e {
        E::IngestConflict { .. }
        | E::ZeroTimestamp { .. }
        | E::InvalidSpan { .. }
        | E::InvalidInterval { .. }
        | E::ZeroLimit { .. } => true,
        E::Fjall(_) | E::CorruptKey { .. } | E::CorruptValue { .. } => false,
    }
}

/// State shared between the state machine and readers on the same node.
#[derive(Debug)]
pub(crate) struct AppliedFeed {
    pub closed_ts: watch::Sender<Timestamp>,
    pub events: broadcast::Sender<Arc<Applied>>,
    pub applied_index: AtomicU64,
    /// The Raft term of the last applied entry.
    pub applied_term: AtomicU64,
    /// The lease in force as of the last applied entry.
    pub lease: std::sync::Mutex<Option<Lease>>,
    /// The GC thresholds of the replica's spans, as applied (see [`crate::gc`]).
    pub gc_thresholds: crate::gc::GcThresholds,
}

impl AppliedFeed {
    #[cfg(test)]
    pub fn new(buffer_entries: usize) -> Self {
        Self::with_events(broadcast::channel(buffer_entries.max(16)).0)
    }

    /// A feed that publishes into `events`, shared by every replica of a store (see
    /// [`crate::Store::subscribe_applied`]).
    pub fn with_events(events: broadcast::Sender<Arc<Applied>>) -> Self {
        AppliedFeed {
            closed_ts: watch::channel(Timestamp::ZERO).0,
            events,
            applied_index: AtomicU64::new(0),
            applied_term: AtomicU64::new(0),
            lease: std::sync::Mutex::new(None),
            gc_thresholds: crate::gc::GcThresholds::default(),
        }
    }

    /// The lease in force as of the last applied entry.
    pub fn lease(&self) -> Option<Lease> {
        // Replaced whole under the lock; a poisoned lock still holds a complete value.
        *self.lease.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_applied(&self, state: &AppliedState) {
        *self.lease.lock().unwrap_or_else(|p| p.into_inner()) = state.lease;
        self.applied_term.store(
            state.last_applied.map_or(0, |l| l.leader_id.term),
            Ordering::SeqCst,
        );
        self.applied_index
            .store(state.last_applied.map_or(0, |l| l.index), Ordering::SeqCst);
    }

    pub fn closed_ts(&self) -> Timestamp {
        *self.closed_ts.borrow()
    }
}

/// A replica's applied state: written atomically with each entry's writes, and carried at the
/// head of a snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct AppliedState {
    pub last_applied: Option<LogId<NodeIdRaw>>,
    pub membership: Membership,
    pub last_ts: Timestamp,
    /// The range lease in force.
    pub lease: Option<Lease>,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError<NodeIdRaw> {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

/// The state machine of a range.
#[derive(Debug)]
pub struct StateMachine {
    range: RangeId,
    keys: ReplicaKeys,
    engine: Arc<FjallEngine>,
    clock: Arc<Clock>,
    feed: Arc<AppliedFeed>,
    metrics: KvMetrics,
    state: AppliedState,
    current_snapshot: CurrentSnapshot,
    snapshot_seq: u64,
    /// When this state machine opened (ns since the epoch): snapshot ids stay unique across
    /// restarts, so a follower never resumes a stream of an earlier process's snapshot.
    opened_ns: u128,
    snapshot_dir: PathBuf,
    hooks: InstallHooks,
}

/// The last snapshot built or installed, shared with the builders.
type CurrentSnapshot = Arc<std::sync::Mutex<Option<Arc<BuiltSnapshot>>>>;

fn lock_snapshot(s: &CurrentSnapshot) -> std::sync::MutexGuard<'_, Option<Arc<BuiltSnapshot>>> {
    // Replaced whole under the lock; a poisoned lock still holds a complete value.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl StateMachine {
    /// Opens the state machine of `range`'s replica over `engine`. An install a crash
    /// interrupted is finished first, from its file, so the replica starts from the old state
    /// or the new one.
    pub(crate) fn open(
        range: RangeId,
        engine: Arc<FjallEngine>,
        clock: Arc<Clock>,
        feed: Arc<AppliedFeed>,
        metrics: KvMetrics,
        hooks: InstallHooks,
    ) -> crate::KvResult<Self> {
        let keys = ReplicaKeys::new(range);
        let snapshot_dir = snapshot::snapshot_dir(engine.backend().path(), range)?;
        if snapshot::resume(&engine, keys, &snapshot_dir)?.is_some() {
            metrics.snapshots_installed.inc();
        }
        snapshot::remove_stale_files(&snapshot_dir)?;
        let state: AppliedState = match engine.get_local(&keys.applied())? {
            Some(bytes) => {
                postcard::from_bytes(&bytes).map_err(|_| storage::StorageError::CorruptValue {
                    key: storage::encoding::PrettyKey(keys.applied()),
                    reason: "undecodable raft applied state",
                })?
            }
            None => AppliedState::default(),
        };
        feed.closed_ts.send_replace(state.last_ts);
        feed.set_applied(&state);
        let _ = clock.update(state.last_ts);
        feed.gc_thresholds.reload(engine.as_ref(), range)?;
        Ok(StateMachine {
            range,
            keys,
            engine,
            clock,
            feed,
            metrics,
            state,
            current_snapshot: Arc::default(),
            snapshot_seq: 0,
            opened_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            snapshot_dir,
            hooks,
        })
    }

    #[cfg(test)]
    pub(crate) fn sm_snapshot_dir(&self) -> &std::path::Path {
        &self.snapshot_dir
    }

    /// A snapshot of the state as applied now: a read view and the applied state. Called
    /// between applies only (it holds `&mut self`), so both agree.
    fn take_snapshot(&mut self, snapshot_id: String) -> Arc<BuiltSnapshot> {
        self.metrics.snapshots_built.inc();
        Arc::new(BuiltSnapshot::new(
            SnapshotMeta {
                last_log_id: self.state.last_applied,
                last_membership: self.state.membership.clone(),
                snapshot_id,
            },
            self.state.clone(),
            self.engine.backend().data_read_view(),
            self.snapshot_dir.clone(),
            self.metrics.snapshot_files_written.clone(),
        ))
    }

    /// The first version newer than `read_ts` among the read set, if any.
    fn conflict(
        &self,
        read_ts: Timestamp,
        read_keys: &[Vec<u8>],
        read_spans: &[WireSpan],
    ) -> Result<Option<Vec<u8>>, storage::StorageError> {
        let key_spans = read_keys.iter().map(|k| Span::key(k));
        let spans = read_spans.iter().map(|(s, e)| Span {
            start: s.clone(),
            end: e.clone(),
        });
        for span in key_spans.chain(spans) {
            if span.validate().is_err() {
                continue;
            }
            let mut newer =
                self.engine
                    .export(&span, read_ts, Timestamp::MAX, ExportMode::AllRevisions)?;
            if let Some(v) = newer.next() {
                return Ok(Some(v?.key));
            }
        }
        Ok(None)
    }

    /// Whether `fence.key`'s latest committed value is `fence.value`: a read of this
    /// replica's state at the entry's place in the log, the same on every replica.
    fn fence_holds(&self, fence: &IngestFence) -> storage::StorageResult<bool> {
        Ok(self.engine.get(&fence.key, Timestamp::MAX)?.as_deref() == Some(fence.value.as_slice()))
    }

    async fn apply_one(
        &mut self,
        entry: Entry<TypeConfig>,
    ) -> Result<CommandResult, StorageError<NodeIdRaw>> {
        let after_previous = self.state.last_ts.next();
        let ts = match &entry.payload {
            EntryPayload::Normal(cmd) => cmd.proposed_ts().max(after_previous),
            _ => after_previous,
        };
        let mut batch = WriteBatch::new();
        let mut versions = Vec::new();
        let mut effect = Effect::Write;
        // The node that proposed the entry: the leader of the term it was appended in.
        let proposer = entry.log_id.leader_id.node_id;
        let not_holder = match (&entry.payload, self.state.lease) {
            (EntryPayload::Normal(cmd), Some(lease))
                if cmd.needs_lease() && lease.holder != proposer =>
            {
                Some(lease.holder)
            }
            _ => None,
        };
        let result = match entry.payload {
            EntryPayload::Normal(_) if not_holder.is_some() => {
                self.metrics.not_leaseholder_rejections.inc();
                CommandResult::NotLeaseholder {
                    ts,
                    holder: not_holder.unwrap_or_default(),
                }
            }
            EntryPayload::Normal(Command::RequestLease {
                duration_ns,
                released,
                ..
            }) => match lease::decide(self.state.lease, proposer, ts, duration_ns, released) {
                LeaseDecision::Granted(lease) => {
                    if self.state.lease.is_none_or(|l| l.holder != lease.holder) {
                        self.metrics.lease_acquisitions.inc();
                        tracing::info!(
                            holder = lease.holder,
                            sequence = lease.sequence,
                            "range lease acquired"
                        );
                    }
                    self.state.lease = Some(lease);
                    CommandResult::Lease {
                        ts,
                        lease,
                        granted: true,
                    }
                }
                LeaseDecision::Rejected(lease) => CommandResult::Lease {
                    ts,
                    lease,
                    granted: false,
                },
            },
            EntryPayload::Blank => CommandResult::Applied { ts },
            EntryPayload::Membership(m) => {
                self.state.membership = StoredMembership::new(Some(entry.log_id), m);
                CommandResult::Applied { ts }
            }
            EntryPayload::Normal(Command::Close { .. }) => CommandResult::Applied { ts },
            EntryPayload::Normal(Command::Txn {
                read_ts,
                read_keys,
                read_spans,
                writes,
                ..
            }) => match self
                .conflict(read_ts, &read_keys, &read_spans)
                .map_err(sm_err)?
            {
                Some(conflict_key) => {
                    self.metrics.txn_aborts.inc();
                    CommandResult::Aborted { conflict_key }
                }
                None => {
                    let mut writes = writes;
                    writes.sort_by(|a, b| a.0.cmp(&b.0));
                    writes.dedup_by(|later, earlier| {
                        // Keep the last write of a key: dedup keeps the first of a run, so
                        // move the later value into it.
                        if later.0 == earlier.0 {
                            std::mem::swap(&mut later.1, &mut earlier.1);
                            true
                        } else {
                            false
                        }
                    });
                    for (key, value) in writes {
                        let v = MvccVersion { key, ts, value };
                        batch.push(v.clone());
                        versions.push(v);
                    }
                    self.metrics.txn_commits.inc();
                    CommandResult::Committed { commit_ts: ts }
                }
            },
            EntryPayload::Normal(Command::AllocateNodeId { .. }) => {
                let next = match self
                    .engine
                    .get(NODE_ID_SEQ_KEY, Timestamp::MAX)
                    .map_err(sm_err)?
                {
                    Some(b) => u64::from_be_bytes(
                        b.as_slice()
                            .try_into()
                            .map_err(|_| sm_err("corrupt node id counter"))?,
                    ),
                    // Node 1 bootstrapped the cluster.
                    None => 2,
                };
                let v = MvccVersion::put(NODE_ID_SEQ_KEY, ts, (next + 1).to_be_bytes());
                batch.push(v.clone());
                versions.push(v);
                CommandResult::NodeIdAllocated { node_id: next, ts }
            }
            EntryPayload::Normal(Command::Ingest {
                versions: ingested, ..
            }) => {
                effect = Effect::ingest(ingested);
                CommandResult::Applied { ts }
            }
            EntryPayload::Normal(Command::FencedIngest {
                fence,
                versions: ingested,
                ..
            }) => {
                if self.fence_holds(&fence).map_err(sm_err)? {
                    effect = Effect::ingest(ingested);
                    CommandResult::Applied { ts }
                } else {
                    tracing::debug!(
                        log_index = entry.log_id.index,
                        "fenced ingest refused at apply"
                    );
                    CommandResult::Fenced { ts }
                }
            }
            EntryPayload::Normal(Command::RevertSpan {
                span: (start, end),
                to_ts,
                max_versions,
                ..
            }) => {
                effect = Effect::Revert {
                    span: Span { start, end },
                    to_ts,
                    // The same on every replica unless usize is narrower than the limit asked
                    // for, which a 64-bit cluster never sees.
                    max_versions: usize::try_from(max_versions).unwrap_or(usize::MAX),
                };
                // Replaced by the revert's progress below.
                CommandResult::Applied { ts }
            }
            EntryPayload::Normal(Command::Gc {
                span: (start, end),
                resume_key,
                threshold,
                max_versions,
                ..
            }) => {
                let gc_span = Span { start, end };
                let step = crate::gc::plan_step(
                    self.engine.as_ref(),
                    self.range,
                    gc_span.clone(),
                    resume_key,
                    threshold,
                    ts,
                )
                .map_err(sm_err)?;
                if let Some(v) = &step.record {
                    batch.push(v.clone());
                    versions.push(v.clone());
                }
                effect = Effect::Gc {
                    step,
                    gc_span,
                    max_versions: usize::try_from(max_versions).unwrap_or(usize::MAX),
                };
                // Replaced by the step's progress below.
                CommandResult::Applied { ts }
            }
        };
        assert!(
            ts > self.state.last_ts,
            "kv: commit timestamps must grow in log order"
        );
        self.state.last_ts = ts;
        self.state.last_applied = Some(entry.log_id);
        let applied_state = postcard::to_allocvec(&self.state).map_err(sm_err)?;
        batch.put_local(self.keys.applied(), applied_state.clone());
        // The Raft log is durable; the applied state is written atomically with the data (for
        // ingests and reverts too: the engine commits `batch` in the same atomic batch as the
        // ingested versions or the removals), so a crash replays the log from exactly where
        // this left off. Nothing relies on re-applying being harmless, though it is: an ingest
        // is idempotent, and a revert only removes versions above its target.
        let outcome = match effect {
            Effect::Write => self
                .engine
                .write(batch, Durability::NoSync)
                .map(|()| result),
            Effect::Ingest(ingested) => self
                .engine
                .ingest_with(&ingested, batch, Durability::NoSync)
                .map(|_| result),
            Effect::Revert {
                span,
                to_ts,
                max_versions,
            } => self
                .engine
                .revert_span_with(&span, to_ts, max_versions, batch, Durability::NoSync)
                .map(|p| CommandResult::Reverted {
                    ts,
                    resume_key: p.resume_key,
                    removed: p.versions_removed,
                }),
            Effect::Gc {
                step,
                gc_span,
                max_versions,
            } => {
                // Raised before anything is removed: a read that runs meanwhile is refused by
                // its after-read check rather than answered from half-collected history.
                if gc_span.validate().is_ok() && step.cursor.validate().is_ok() && max_versions > 0
                {
                    self.feed.gc_thresholds.raise(&gc_span, step.recorded);
                }
                let engine = self.engine.clone();
                let threshold = step.threshold;
                let outcome = tokio::task::spawn_blocking(move || {
                    engine.gc_with(
                        &step.cursor,
                        threshold,
                        max_versions,
                        batch,
                        Durability::NoSync,
                    )
                })
                .await
                .map_err(sm_err)?;
                outcome.map(|p| {
                    self.metrics.gc_versions_removed.inc_by(p.versions_removed);
                    self.metrics.gc_bytes_removed.inc_by(p.bytes_removed);
                    CommandResult::GcStepped {
                        ts,
                        threshold,
                        resume_key: p.resume_key,
                        removed: p.versions_removed,
                        bytes_removed: p.bytes_removed,
                    }
                })
            }
        };
        let result = match outcome {
            Ok(result) => result,
            Err(e) if is_rejection(&e) => {
                // Nothing of the command was written; the entry still applies (its timestamp
                // closes) with the applied state alone.
                tracing::debug!(log_index = entry.log_id.index, error = %e, "command rejected at apply");
                // Not written, so not published either (a GC step's threshold record).
                versions.clear();
                let mut state_only = WriteBatch::new();
                state_only.put_local(self.keys.applied(), applied_state);
                self.engine
                    .write(state_only, Durability::NoSync)
                    .map_err(sm_err)?;
                CommandResult::Failed {
                    ts,
                    error: e.to_string(),
                }
            }
            Err(e) => return Err(sm_err(e)),
        };
        let _ = self.clock.update(ts);
        self.publish(ts, versions);
        Ok(result)
    }

    fn publish(&self, ts: Timestamp, versions: Vec<MvccVersion>) {
        self.feed.set_applied(&self.state);
        self.feed.closed_ts.send_replace(ts);
        // No receivers is fine: nobody is subscribed.
        let _ = self
            .feed
            .events
            .send(Arc::new(Applied::Entry { ts, versions }));
    }
}

/// Hands openraft a snapshot taken when it asked for the builder (between two applies).
pub struct SnapshotBuilder {
    snapshot: Arc<BuiltSnapshot>,
    current: CurrentSnapshot,
}

impl std::fmt::Debug for SnapshotBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotBuilder")
            .field("meta", &self.snapshot.meta)
            .finish_non_exhaustive()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    /// Cheap: the snapshot is a read view; its file is written only if a follower needs it.
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeIdRaw>> {
        {
            let mut current = lock_snapshot(&self.current);
            // Builders finish in any order; keep the newest.
            let newer = current
                .as_ref()
                .is_none_or(|c| c.meta.last_log_id <= self.snapshot.meta.last_log_id);
            if newer {
                *current = Some(self.snapshot.clone());
            }
        }
        Ok(Snapshot {
            meta: self.snapshot.meta.clone(),
            snapshot: Box::new(SnapshotData::built(self.snapshot.clone())),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeIdRaw>>, Membership), StorageError<NodeIdRaw>> {
        Ok((self.state.last_applied, self.state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError<NodeIdRaw>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut results = Vec::new();
        for entry in entries {
            results.push(self.apply_one(entry).await?);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        let snapshot_id = format!(
            "{}-{}-{}",
            self.state.last_applied.map_or(0, |l| l.index),
            self.opened_ns,
            self.snapshot_seq
        );
        SnapshotBuilder {
            snapshot: self.take_snapshot(snapshot_id),
            current: self.current_snapshot.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<SnapshotData>, StorageError<NodeIdRaw>> {
        let data = SnapshotData::receiving(
            &self.snapshot_dir,
            self.metrics.snapshot_received_bytes.clone(),
        )
        .map_err(sm_err)?;
        Ok(Box::new(data))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeIdRaw, openraft::BasicNode>,
        snapshot: Box<SnapshotData>,
    ) -> Result<(), StorageError<NodeIdRaw>> {
        self.metrics.snapshots_received.inc();
        // `_owner` keeps a built snapshot's file until the install has read it.
        let (path, _owner) = snapshot.into_file().await.map_err(sm_err)?;
        let engine = self.engine.clone();
        let dir = self.snapshot_dir.clone();
        let meta_owned = meta.clone();
        let (hooks, keys) = (self.hooks, self.keys);
        let installed = tokio::task::spawn_blocking(move || {
            let path = snapshot::adopt(&dir, path)?;
            snapshot::install(&engine, keys, &dir, &path, &meta_owned, hooks)
        })
        .await
        .map_err(sm_err)?
        .map_err(sm_err)?;
        self.state = installed;
        let _ = self.clock.update(self.state.last_ts);
        // What this replica would send on: the installed image, under the same id.
        let current = self.take_snapshot(meta.snapshot_id.clone());
        *lock_snapshot(&self.current_snapshot) = Some(current);
        self.feed
            .gc_thresholds
            .reload(self.engine.as_ref(), self.range)
            .map_err(sm_err)?;
        self.feed.set_applied(&self.state);
        self.feed.closed_ts.send_replace(self.state.last_ts);
        let _ = self.feed.events.send(Arc::new(Applied::Reset));
        self.metrics.snapshots_installed.inc();
        tracing::info!(
            last_index = meta.last_log_id.map_or(0, |l| l.index),
            "installed a snapshot"
        );
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeIdRaw>> {
        Ok(lock_snapshot(&self.current_snapshot)
            .as_ref()
            .map(|current| Snapshot {
                meta: current.meta.clone(),
                snapshot: Box::new(SnapshotData::built(current.clone())),
            }))
    }
}

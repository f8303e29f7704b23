//! A node's store: its storage engine, clock and Raft transport, the settings the SQL layer
//! pushes into it, and its replicas (`RangeId -> Replica`). Callers address keys: the store
//! routes each request to the replica whose range holds them. Only the replica API
//! ([`Store::replica`], the RPC services) names ranges.
//!
//! There is one range for now, [`RangeId::FIRST`], spanning the whole keyspace; it also holds
//! the cluster's membership and node-id allocation.

use crate::RangefeedEvent;
use crate::gc::{GcPolicy, GcPolicyCell, GcRunStats};
use crate::limits::{COMMAND_BYTES_CEILING, COMMAND_BYTES_DEFAULT, COMMAND_BYTES_FLOOR};
use crate::log_truncation::TruncationCaps;
use crate::network::Connections;
use crate::read::ReadSpec;
use crate::replica::{CLEAR_PAGE_KEYS, NodeStatus, Replica};
use crate::state_machine::Applied;
use crate::txn::TxnBuffer;
use crate::{IngestFence, KvConfig, KvError, KvMetrics, KvResult, NodeId, RangeId, Txn};
use hlc::{Clock, Timestamp};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use storage::encoding::PrettyKey;
use storage::{FjallEngine, MvccVersion, ScanResult, Span};
use tokio::sync::{broadcast, mpsc};
use tonic::transport::ClientTlsConfig;

/// The cluster settings a store honours, pushed by the SQL layer and shared by its replicas.
#[derive(Debug)]
pub(crate) struct StoreSettings {
    /// `kv.raft.command.max_size`: the largest encoded command a replica proposes (as
    /// leader) or forwards (as gateway).
    command_bytes_max: AtomicUsize,
    /// What the GC queues collect (see [`crate::gc`]).
    pub gc_policy: GcPolicyCell,
    /// `kv.raft_log.truncation_max_entries` and `_max_bytes` (see `log_truncation`).
    pub truncation_caps: TruncationCaps,
}

impl StoreSettings {
    fn new(config: &KvConfig) -> Self {
        StoreSettings {
            command_bytes_max: AtomicUsize::new(COMMAND_BYTES_DEFAULT),
            gc_policy: GcPolicyCell::default(),
            truncation_caps: TruncationCaps::new(
                config.raft_log_truncation_max_entries,
                config.raft_log_truncation_max_bytes,
            ),
        }
    }

    pub fn command_bytes_max(&self) -> usize {
        self.command_bytes_max.load(Ordering::Relaxed)
    }
}

/// What a store shares with each of its replicas (cheap to clone: handles).
#[derive(Clone)]
pub(crate) struct StoreContext {
    pub id: NodeId,
    pub advertise_addr: String,
    pub engine: Arc<FjallEngine>,
    pub clock: Arc<Clock>,
    pub conns: Arc<Connections>,
    pub config: KvConfig,
    pub metrics: KvMetrics,
    pub settings: Arc<StoreSettings>,
    /// What every replica applies, in each replica's log order (see
    /// [`Store::subscribe_applied`]).
    pub events: broadcast::Sender<Arc<Applied>>,
}

/// A node's store and the KV API it serves.
pub struct Store {
    ctx: StoreContext,
    replicas: RwLock<BTreeMap<RangeId, Arc<Replica>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("id", &self.ctx.id)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store of node `id` over `engine` and starts its replicas. `tls` secures
    /// outgoing RPCs; `None` means insecure.
    pub async fn start(
        id: NodeId,
        advertise_addr: String,
        engine: Arc<FjallEngine>,
        clock: Arc<Clock>,
        config: KvConfig,
        tls: Option<ClientTlsConfig>,
        metrics: KvMetrics,
    ) -> KvResult<Arc<Self>> {
        let ctx = StoreContext {
            id,
            advertise_addr,
            conns: Arc::new(Connections::new(tls)),
            settings: Arc::new(StoreSettings::new(&config)),
            events: broadcast::channel(config.rangefeed_buffer_entries.max(16)).0,
            engine,
            clock,
            config,
            metrics,
        };
        let first = Replica::open(RangeId::FIRST, Span::all(), ctx.clone()).await?;
        Ok(Arc::new(Store {
            ctx,
            replicas: RwLock::new(BTreeMap::from([(RangeId::FIRST, first)])),
        }))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.ctx.id
    }

    /// The node's clock.
    pub fn clock(&self) -> &Arc<Clock> {
        &self.ctx.clock
    }

    /// A fresh timestamp from this node's clock (a gateway read timestamp).
    pub fn now(&self) -> Timestamp {
        self.ctx.clock.now()
    }

    /// The node's storage engine.
    pub fn engine(&self) -> &Arc<FjallEngine> {
        &self.ctx.engine
    }

    /// The node's KV settings.
    pub fn config(&self) -> &KvConfig {
        &self.ctx.config
    }

    /// The node's KV metrics.
    pub fn metrics(&self) -> &KvMetrics {
        &self.ctx.metrics
    }

    pub(crate) fn settings(&self) -> &StoreSettings {
        &self.ctx.settings
    }

    fn read_replicas(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<RangeId, Arc<Replica>>> {
        // Replaced whole under the lock; a poisoned lock still holds a complete map.
        self.replicas.read().unwrap_or_else(|p| p.into_inner())
    }

    /// This store's replica of `range`.
    pub fn replica(&self, range: RangeId) -> KvResult<Arc<Replica>> {
        self.read_replicas()
            .get(&range)
            .cloned()
            .ok_or(KvError::UnknownRange(range))
    }

    /// Every replica of this store, by range id.
    pub fn replicas(&self) -> Vec<Arc<Replica>> {
        self.read_replicas().values().cloned().collect()
    }

    /// The replica of the first range, which holds the cluster's membership and node ids.
    fn system_replica(&self) -> Arc<Replica> {
        self.replica(RangeId::FIRST)
            .expect("a store always has the first range")
    }

    /// The replica whose range holds `key`.
    pub(crate) fn replica_for_key(&self, key: &[u8]) -> KvResult<Arc<Replica>> {
        self.read_replicas()
            .values()
            .find(|r| r.span().contains(key))
            .cloned()
            .ok_or_else(|| KvError::NoRange {
                key: PrettyKey(key.to_vec()),
            })
    }

    /// The replica whose range holds all of `span`; a span across ranges is refused
    /// ([`KvError::CrossesRanges`]).
    pub(crate) fn replica_for_span(&self, span: &Span) -> KvResult<Arc<Replica>> {
        let replica = self.replica_for_key(&span.start)?;
        let within = match (&replica.span().end, &span.end) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(range_end), Some(end)) => end <= range_end,
        };
        if !within {
            return Err(KvError::CrossesRanges {
                start: PrettyKey(span.start.clone()),
                range: replica.range_id(),
            });
        }
        Ok(replica)
    }

    /// The replica whose range holds every key a transaction read or wrote.
    pub(crate) fn replica_for_txn(&self, txn: &TxnBuffer) -> KvResult<Arc<Replica>> {
        let first =
            txn.writes.keys().next().ok_or_else(|| {
                KvError::Codec("a transaction without writes commits locally".into())
            })?;
        let replica = self.replica_for_key(first)?;
        let outside = txn
            .writes
            .keys()
            .chain(txn.read_keys.iter())
            .find(|k| !replica.span().contains(k))
            .cloned()
            .or_else(|| {
                txn.read_spans
                    .iter()
                    .find(|s| {
                        !matches!(self.replica_for_span(s), Ok(r) if r.range_id() == replica.range_id())
                    })
                    .map(|s| s.start.clone())
            });
        match outside {
            None => Ok(replica),
            Some(key) => Err(KvError::CrossesRanges {
                start: PrettyKey(key),
                range: replica.range_id(),
            }),
        }
    }

    // Cluster membership: held by the first range.

    /// Initialises a new cluster with this node as its only voter. Fails with
    /// [`KvError::AlreadyInitialized`] if this node already belongs to a cluster.
    pub async fn bootstrap(&self) -> KvResult<()> {
        self.system_replica().bootstrap().await
    }

    /// Whether this node has joined or initialised a cluster.
    pub async fn is_initialized(&self) -> bool {
        self.system_replica().is_initialized().await
    }

    /// The node's status (its replica of the first range's view of the cluster).
    pub fn status(&self) -> NodeStatus {
        self.system_replica().status()
    }

    /// Allocates a fresh node id through the leader.
    pub async fn allocate_node_id(&self) -> KvResult<NodeId> {
        self.system_replica().allocate_node_id().await
    }

    /// Makes node `id` at `addr` a member, through the leader.
    pub async fn add_member(&self, id: NodeId, addr: &str) -> KvResult<()> {
        self.system_replica().add_member(id, addr).await
    }

    /// Every member of the cluster (voters and learners) with its address, by id.
    pub fn members(&self) -> Vec<(NodeId, String)> {
        self.system_replica().members()
    }

    /// The members that answer a status request within `timeout` (this node always counts).
    pub async fn live_members(&self, timeout: Duration) -> Vec<(NodeId, String)> {
        self.system_replica().live_members(timeout).await
    }

    // Key-addressed reads and writes.

    /// Begins a transaction reading at the current time (with clock uncertainty: see
    /// [`crate::read`]).
    pub fn begin(self: &Arc<Self>) -> KvResult<Txn> {
        Ok(Txn::new(
            self.clone(),
            ReadSpec::present(self.ctx.clock.now(), self.ctx.clock.max_offset()),
        ))
    }

    /// Begins a transaction reading at exactly `read_ts` (a historical read when in the past).
    pub fn begin_at(self: &Arc<Self>, read_ts: Timestamp) -> KvResult<Txn> {
        Ok(Txn::new(self.clone(), ReadSpec::fixed(read_ts)))
    }

    /// The value of `key` as of exactly `read_ts` (no uncertainty): see [`Replica::get`].
    pub async fn get(&self, key: &[u8], read_ts: Timestamp) -> KvResult<Option<Vec<u8>>> {
        self.replica_for_key(key)?.get(key, read_ts).await
    }

    /// The live keys of `span` as of exactly `read_ts` (no uncertainty): see
    /// [`Replica::scan`].
    pub async fn scan(
        &self,
        span: &Span,
        read_ts: Timestamp,
        limit: usize,
    ) -> KvResult<ScanResult> {
        self.replica_for_span(span)?
            .scan(span, read_ts, limit)
            .await
    }

    /// The closed timestamp of this node: the lowest of its replicas'.
    pub fn closed_ts(&self) -> Timestamp {
        self.read_replicas()
            .values()
            .map(|r| r.closed_ts())
            .min()
            .unwrap_or(Timestamp::ZERO)
    }

    /// Waits until the replica holding `span` has closed `ts`: see [`Replica::ensure_closed`].
    pub async fn ensure_closed(&self, span: &Span, ts: Timestamp) -> KvResult<()> {
        self.replica_for_span(span)?.ensure_closed(ts).await
    }

    /// See [`Replica::fingerprint`].
    pub async fn fingerprint(
        &self,
        span: &Span,
        start_ts: Timestamp,
        end_ts: Timestamp,
    ) -> KvResult<u64> {
        self.replica_for_span(span)?
            .fingerprint(span, start_ts, end_ts)
            .await
    }

    /// See [`Replica::fingerprint_stripped`].
    pub async fn fingerprint_stripped(
        &self,
        span: &Span,
        strip_prefix: usize,
        start_ts: Timestamp,
        end_ts: Timestamp,
    ) -> KvResult<u64> {
        self.replica_for_span(span)?
            .fingerprint_stripped(span, strip_prefix, start_ts, end_ts)
            .await
    }

    /// The replica holding every key of `versions`.
    fn replica_for_versions(&self, versions: &[MvccVersion]) -> KvResult<Arc<Replica>> {
        match Span::covering(versions.iter().map(|v| v.key.as_slice())) {
            Some(span) => self.replica_for_span(&span),
            None => Ok(self.system_replica()),
        }
    }

    /// Writes replicated versions with their original timestamps: see [`Replica::ingest`].
    pub async fn ingest(&self, versions: Vec<MvccVersion>) -> KvResult<Timestamp> {
        self.replica_for_versions(&versions)?.ingest(versions).await
    }

    /// See [`Replica::ingest_fenced`]; the fence key must be in the same range as the versions.
    pub async fn ingest_fenced(
        &self,
        fence: IngestFence,
        versions: Vec<MvccVersion>,
    ) -> KvResult<Timestamp> {
        let replica = self.replica_for_versions(&versions)?;
        if !replica.span().contains(&fence.key) {
            return Err(KvError::CrossesRanges {
                start: PrettyKey(fence.key.clone()),
                range: replica.range_id(),
            });
        }
        replica.ingest_fenced(fence, versions).await
    }

    /// See [`Replica::revert_span`].
    pub async fn revert_span(
        &self,
        span: Span,
        to_ts: Timestamp,
        max_versions: u64,
    ) -> KvResult<Option<Vec<u8>>> {
        self.replica_for_span(&span)?
            .revert_span(span, to_ts, max_versions)
            .await
    }

    /// Deletes every live key of `span` (writes tombstones, as transactions do), in
    /// transactions of their own, each at most a quarter of `kv.raft.command.max_size` and
    /// [`CLEAR_PAGE_KEYS`] keys: a span of any size is cleared without one oversized Raft
    /// command. The deletes are blind (no read set), so they never conflict; keys written to
    /// the span meanwhile may survive, so callers clear spans nothing writes to any more.
    /// Returns the number of keys deleted.
    pub async fn clear_span(self: &Arc<Self>, span: &Span) -> KvResult<u64> {
        span.validate()?;
        let budget = (self.command_bytes_max() / 4).max(1);
        let mut span = span.clone();
        let mut deleted = 0u64;
        loop {
            let page = self.scan(&span, self.now(), CLEAR_PAGE_KEYS).await?;
            let mut txn = self.begin()?;
            let mut bytes = 0usize;
            for kv in page.rows {
                // A deleted key costs its bytes plus a few of framing in the command.
                let cost = kv.key.len() + 8;
                if bytes > 0 && bytes + cost > budget {
                    txn.commit().await?;
                    txn = self.begin()?;
                    bytes = 0;
                }
                bytes += cost;
                deleted += 1;
                txn.delete(kv.key);
            }
            txn.commit().await?;
            match page.resume_key {
                Some(k) => span.start = k,
                None => return Ok(deleted),
            }
        }
    }

    /// Streams every committed version of `span` above `from_ts`, with checkpoints.
    pub fn rangefeed(
        &self,
        span: Span,
        from_ts: Timestamp,
    ) -> KvResult<mpsc::Receiver<KvResult<RangefeedEvent>>> {
        self.replica_for_span(&span)?.rangefeed(span, from_ts)
    }

    /// Subscribes to the entries every replica of this store applies, the broadcast
    /// rangefeeds tail: for a consumer (a replication producer, a cache) that runs its own
    /// catch-up scans and filters by key. A receiver that falls more than
    /// `rangefeed_buffer_entries` behind gets `Lagged` and must restart from its last
    /// checkpoint, as must one that receives [`Applied::Reset`] (a replica installed a
    /// snapshot).
    pub fn subscribe_applied(&self) -> broadcast::Receiver<Arc<Applied>> {
        self.ctx.events.subscribe()
    }

    /// Waits until every member of every range has applied everything at or below `ts`: see
    /// [`Replica::wait_applied_everywhere`]. Returns the members skipped as unreachable.
    pub async fn wait_applied_everywhere(
        &self,
        ts: Timestamp,
        timeout: Duration,
    ) -> KvResult<Vec<NodeId>> {
        let mut skipped = Vec::new();
        for replica in self.replicas() {
            for id in replica.wait_applied_everywhere(ts, timeout).await? {
                if !skipped.contains(&id) {
                    skipped.push(id);
                }
            }
        }
        Ok(skipped)
    }

    // Settings the SQL layer pushes.

    /// The largest encoded command this node proposes or forwards (`kv.raft.command.max_size`).
    pub fn command_bytes_max(&self) -> usize {
        self.ctx.settings.command_bytes_max()
    }

    /// Sets `kv.raft.command.max_size` on this node, clamped to
    /// [`COMMAND_BYTES_FLOOR`]..=[`COMMAND_BYTES_CEILING`] (so a command always fits a Raft
    /// message); returns the value in effect. The SQL layer calls it when the setting changes.
    pub fn set_command_bytes_max(&self, bytes: u64) -> usize {
        let bytes = usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .clamp(COMMAND_BYTES_FLOOR, COMMAND_BYTES_CEILING);
        self.ctx
            .settings
            .command_bytes_max
            .store(bytes, Ordering::Relaxed);
        bytes
    }

    /// Sets what the GC queues collect and how often (the SQL layer pushes `gc.ttl`, its
    /// per-virtual-cluster overrides and `kv.gc.interval` here); a change wakes the queues.
    pub fn set_gc_policy(&self, policy: GcPolicy) {
        self.ctx.settings.gc_policy.set(policy);
    }

    /// What the GC queues collect and how often.
    pub fn gc_policy(&self) -> GcPolicy {
        self.ctx.settings.gc_policy.get()
    }

    /// One run of every replica's GC queue (on the replicas this node leads).
    pub async fn run_gc(&self) -> KvResult<GcRunStats> {
        let mut total = GcRunStats::default();
        for replica in self.replicas() {
            let s = replica.run_gc().await?;
            total.steps += s.steps;
            total.versions_removed += s.versions_removed;
            total.bytes_removed += s.bytes_removed;
        }
        Ok(total)
    }

    /// Fails when a read of `span` at `read_ts` is below a GC threshold: see
    /// [`Replica::check_gc_threshold`].
    pub fn check_gc_threshold(&self, span: &Span, read_ts: Timestamp) -> KvResult<()> {
        self.replica_for_span(span)?
            .check_gc_threshold(span, read_ts)
    }

    /// The highest GC threshold recorded for a span overlapping `span`, if any.
    pub fn gc_threshold(&self, span: &Span) -> Option<Timestamp> {
        self.replica_for_span(span).ok()?.gc_threshold(span)
    }

    // Transport and test hooks.

    /// A channel to another node of the cluster, with the node's TLS identity (for the
    /// cluster's internal services).
    pub fn channel(&self, addr: &str) -> KvResult<tonic::transport::Channel> {
        self.ctx.conns.channel(addr)
    }

    /// Fault injection for tests: while set, this node sends and accepts no RPC (Raft or KV),
    /// as if a network partition cut it off; requests served in-process still run.
    #[doc(hidden)]
    pub fn set_isolated(&self, isolated: bool) {
        self.ctx.conns.set_isolated(isolated);
    }

    /// Whether [`Store::set_isolated`] cut this node off.
    #[doc(hidden)]
    pub fn is_isolated(&self) -> bool {
        self.ctx.conns.is_isolated()
    }

    /// Stops every replica's Raft group.
    pub async fn shutdown(&self) {
        for replica in self.replicas() {
            replica.shutdown().await;
        }
    }
}

//! A replica: one range's Raft group on this node (its openraft instance, applied state,
//! lease, closed timestamp and rangefeed broadcast) and what it serves: reads at a
//! timestamp, commits (routed to the leader), closing timestamps, rangefeeds, membership
//! changes. The [`crate::Store`] holds a node's replicas and routes key-addressed requests to
//! them; only the replica API takes range ids.

use crate::command::{Command, CommandResult, IngestFence, TypeConfig};
use crate::convert::{ts_from_pb, ts_to_pb};
use crate::lease::{Lease, ProposalTracker};
use crate::limits::KV_MESSAGE_BYTES_MAX;
use crate::log_store::LogStore;
use crate::network::{Connections, NetworkFactory};
use crate::rangefeed::{self, RangefeedEvent};
use crate::read::{ReadOp, ReadSpec, ReadValue};
use crate::state_machine::{AppliedFeed, StateMachine};
use crate::store::{StoreContext, StoreSettings};
use crate::txn::{CommitOutcome, TxnBuffer, outcome_from_response};
use crate::{KvConfig, KvError, KvMetrics, KvResult, NodeId, RangeId};
use hlc::{Clock, Timestamp};
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, Raft};
use proto::kv as pb;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use storage::{Engine, FjallEngine, MvccVersion, ScanResult, Span};
use tokio::sync::mpsc;

/// Voters a range keeps; further nodes join as learners.
const VOTERS_MAX: usize = 5;
/// How long a new leader waits for the previous leaseholder to release its lease.
const RELEASE_WAIT_MAX: Duration = Duration::from_millis(500);
/// Pause between attempts while a leader is being found.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// The largest ingest entry (bytes of keys and values): well under the KV service's message
/// limit, and small enough that a few of them fit one Raft append.
pub(crate) const INGEST_ENTRY_BYTES_MAX: usize = 32 << 20;
/// The most keys [`crate::Store::clear_span`] reads per page.
pub(crate) const CLEAR_PAGE_KEYS: usize = 1_000;
/// The most versions one revert entry removes (a larger request is cut to this).
pub(crate) const REVERT_ENTRY_VERSIONS_MAX: u64 = 100_000;

/// What a node reports about its replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: NodeId,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub applied_index: u64,
    pub closed_ts: Timestamp,
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
}

/// One range's replica on this node.
pub struct Replica {
    range_id: RangeId,
    /// The keys the range holds (its descriptor's span).
    span: Span,
    id: NodeId,
    advertise_addr: String,
    raft: Raft<TypeConfig>,
    engine: Arc<FjallEngine>,
    clock: Arc<Clock>,
    feed: Arc<AppliedFeed>,
    conns: Arc<Connections>,
    config: KvConfig,
    metrics: KvMetrics,
    /// Milliseconds since `started` of the last proposal made by this node.
    last_proposal_ms: AtomicU64,
    started: Instant,
    /// The store's settings (`kv.raft.command.max_size`, the GC policy, the log caps).
    settings: Arc<StoreSettings>,
    /// Held by the leader while it changes the membership: openraft refuses (and logs an
    /// ERROR for) a change while another is in progress, which nodes joining together cause.
    membership_change: tokio::sync::Mutex<()>,
    /// This node's proposals that may write, until they applied (see [`crate::lease`]).
    tracker: ProposalTracker,
    /// The highest Raft term in which a proposal of this node that may write failed with an
    /// unknown outcome (it may still apply): no lease reads in that term.
    tainted_term: AtomicU64,
    /// One close proposal at a time; holds the highest timestamp a finished proposal closed,
    /// so that concurrent waits for a closed timestamp share one proposal.
    close_gate: tokio::sync::Mutex<Timestamp>,
    /// The highest lease sequence this node gave up early (see [`Replica::release_lease`]): it
    /// serves no read under it.
    released_lease: AtomicU64,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("range_id", &self.range_id)
            .field("node_id", &self.id)
            .field("advertise_addr", &self.advertise_addr)
            .finish_non_exhaustive()
    }
}

impl Replica {
    /// Opens `range_id`'s replica on node `id` over the store's `engine` (its Raft log goes in
    /// the store's log database, under keys prefixed by the range id) and starts its
    /// background work: the closed-timestamp and lease ticker, the GC queue, log truncation.
    pub(crate) async fn open(
        range_id: RangeId,
        span: Span,
        ctx: StoreContext,
    ) -> KvResult<Arc<Self>> {
        let StoreContext {
            id,
            advertise_addr,
            engine,
            clock,
            conns,
            config,
            metrics,
            settings,
            events,
        } = ctx;
        let log_store = LogStore::open(engine.clone(), metrics.clone(), range_id)?;
        let truncation_log = log_store.clone();
        let feed = Arc::new(AppliedFeed::with_events(events));
        // Blocking: it may finish a snapshot install a crash interrupted.
        let sm = {
            let (engine, clock, feed, metrics) =
                (engine.clone(), clock.clone(), feed.clone(), metrics.clone());
            let hooks = crate::snapshot::InstallHooks {
                fail_after_batches: config.snapshot_install_fail_after_batches,
            };
            tokio::task::spawn_blocking(move || {
                StateMachine::open(range_id, engine, clock, feed, metrics, hooks)
            })
            .await
            .map_err(|e| KvError::Raft(e.to_string()))??
        };
        let raft_config = config
            .raft_config()
            .validate()
            .map_err(|e| KvError::Raft(e.to_string()))?;
        let raft = Raft::new(
            id.0,
            Arc::new(raft_config),
            NetworkFactory {
                range_id,
                conns: conns.clone(),
                metrics: metrics.clone(),
            },
            log_store,
            sm,
        )
        .await
        .map_err(|e| KvError::Raft(e.to_string()))?;
        let replica = Arc::new(Replica {
            range_id,
            span,
            id,
            advertise_addr,
            raft,
            engine,
            clock,
            feed,
            conns,
            config,
            metrics,
            last_proposal_ms: AtomicU64::new(0),
            started: Instant::now(),
            settings,
            membership_change: tokio::sync::Mutex::new(()),
            tracker: ProposalTracker::default(),
            tainted_term: AtomicU64::new(0),
            close_gate: tokio::sync::Mutex::new(Timestamp::ZERO),
            released_lease: AtomicU64::new(0),
        });
        tokio::spawn(closed_ts_ticker(Arc::downgrade(&replica)));
        tokio::spawn(crate::gc::gc_queue(Arc::downgrade(&replica)));
        tokio::spawn(crate::log_truncation::run(
            Arc::downgrade(&replica),
            truncation_log,
        ));
        Ok(replica)
    }

    /// The range this replica belongs to.
    pub fn range_id(&self) -> RangeId {
        self.range_id
    }

    /// The keys of the range.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    pub(crate) fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    pub(crate) fn engine(&self) -> &Arc<FjallEngine> {
        &self.engine
    }

    pub(crate) fn feed(&self) -> &AppliedFeed {
        &self.feed
    }

    pub(crate) fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    pub(crate) fn config(&self) -> &KvConfig {
        &self.config
    }

    pub(crate) fn metrics(&self) -> &KvMetrics {
        &self.metrics
    }

    /// The Raft handle (for the RPC service).
    pub(crate) fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// This replica's closed timestamp.
    pub fn closed_ts(&self) -> Timestamp {
        self.feed.closed_ts()
    }

    /// The range lease in force as of this replica's last applied entry.
    pub fn lease(&self) -> Option<Lease> {
        self.feed.lease()
    }

    pub(crate) fn tracker(&self) -> &ProposalTracker {
        &self.tracker
    }

    /// The current Raft term when this node may serve present-time reads under its lease:
    /// it holds the lease, leads the range, has applied an entry of its current term (so
    /// nothing of an earlier term is pending), has no proposal of unknown outcome in this
    /// term, and its clock is more than the maximum offset before the lease's expiration.
    pub(crate) fn lease_term(&self) -> Option<u64> {
        let lease = self.feed.lease()?;
        if lease.holder != self.id.0 || self.released_lease.load(Ordering::SeqCst) >= lease.sequence
        {
            return None;
        }
        let term = {
            let m = self.raft.metrics();
            let m = m.borrow();
            if m.current_leader != Some(self.id.0) {
                return None;
            }
            m.current_term
        };
        if self.feed.applied_term.load(Ordering::SeqCst) != term
            || self.tainted_term.load(Ordering::SeqCst) >= term
        {
            return None;
        }
        let offset_ns = u64::try_from(self.clock.max_offset().as_nanos()).unwrap_or(u64::MAX);
        let now = self.clock.now();
        (now.wall_time_ns.saturating_add(offset_ns) < lease.expiration.wall_time_ns).then_some(term)
    }

    /// Initialises a new cluster with this node as its only voter. Fails with
    /// [`KvError::AlreadyInitialized`] if this node already belongs to a cluster.
    pub async fn bootstrap(&self) -> KvResult<()> {
        let members = BTreeMap::from([(self.id.0, BasicNode::new(&self.advertise_addr))]);
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
                Err(KvError::AlreadyInitialized)
            }
            Err(e) => Err(KvError::Raft(e.to_string())),
        }
    }

    /// Whether this node has joined or initialised a cluster.
    pub async fn is_initialized(&self) -> bool {
        self.raft.is_initialized().await.unwrap_or(false)
    }

    /// The node status.
    pub fn status(&self) -> NodeStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let learners = membership.learner_ids().map(NodeId).collect();
        NodeStatus {
            node_id: self.id,
            leader: m.current_leader.map(NodeId),
            term: m.current_term,
            applied_index: m.last_applied.map_or(0, |l| l.index),
            closed_ts: self.closed_ts(),
            voters: voters.into_iter().map(NodeId).collect(),
            learners,
        }
    }

    fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&leader)?
            .addr
            .clone();
        Some((NodeId(leader), addr))
    }

    fn note_proposal(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_proposal_ms.store(ms, Ordering::Relaxed);
    }

    /// On the leader: whether to ask for (or extend) the lease now: nobody holds a valid one,
    /// or this node's expires within half a lease duration.
    fn lease_wanted(&self) -> bool {
        let now = self.clock.now();
        match self.feed.lease() {
            Some(l) if l.holder == self.id.0 => {
                let half_ns = u64::try_from(self.config.range_lease_duration.as_nanos() / 2)
                    .unwrap_or(u64::MAX);
                l.expiration.wall_time_ns.saturating_sub(now.wall_time_ns) < half_ns
            }
            // Another node's: taken once it expired, or released if its holder no longer leads.
            Some(_) | None => true,
        }
    }

    /// Refuses a command of `bytes` encoded bytes over `kv.raft.command.max_size`: one entry
    /// that large would have to cross every follower's Raft append, and the log, whole.
    fn check_command_bytes(&self, command: &str, bytes: usize) -> KvResult<()> {
        let bytes_max = self.settings.command_bytes_max();
        if bytes > bytes_max {
            self.metrics.commands_too_large.inc();
            tracing::info!(
                node_id = self.id.0,
                command,
                bytes,
                bytes_max,
                "command refused: larger than kv.raft.command.max_size"
            );
            return Err(KvError::CommandTooLarge {
                command: command.to_string(),
                bytes,
                bytes_max,
            });
        }
        Ok(())
    }

    /// Proposes `command` on this node, which must be the leader and, for a command that
    /// may write, the leaseholder (it takes the lease first if nobody else holds a valid
    /// one). Every proposal passes here, so this is where a command's size is capped.
    async fn propose_local(&self, command: Command) -> KvResult<CommandResult> {
        if command.needs_lease() {
            self.ensure_lease().await?;
        }
        self.propose_raw(command).await
    }

    /// Stamps `command` with this node's clock and proposes it. A command that may write is
    /// tracked until it applied, so that lease reads wait for it (see [`crate::lease`]).
    async fn propose_raw(&self, command: Command) -> KvResult<CommandResult> {
        let tracked = command.needs_lease().then(|| {
            self.tracker
                .register(|| self.clock.now(), command.footprint())
        });
        let stamp = tracked
            .as_ref()
            .map_or_else(|| self.clock.now(), |t| t.ts());
        let command = command.with_proposed_ts(stamp);
        self.check_command_bytes(command.name(), command.encoded_bytes())?;
        self.note_proposal();
        let term = self.raft.metrics().borrow().current_term;
        let outcome = match self.raft.client_write(command).await {
            Ok(resp) => match resp.data {
                CommandResult::NotLeaseholder { holder, .. } => Err(KvError::NotLeaseholder {
                    holder: Some(NodeId(holder)),
                }),
                data => Ok(data),
            },
            Err(e) => {
                if tracked.is_some() {
                    // The entry may have been appended and may still apply: no lease reads
                    // until a later term (set before the proposal leaves the tracker).
                    let now_term = self.raft.metrics().borrow().current_term;
                    self.tainted_term
                        .fetch_max(term.max(now_term), Ordering::SeqCst);
                }
                match e {
                    RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                        Err(KvError::NotLeader {
                            leader: f.leader_id.map(NodeId),
                        })
                    }
                    e => Err(KvError::Raft(e.to_string())),
                }
            }
        };
        drop(tracked);
        outcome
    }

    /// On the leader: makes sure this node holds the lease before it proposes a write.
    async fn ensure_lease(&self) -> KvResult<()> {
        match self.feed.lease() {
            Some(l) if l.holder == self.id.0 => Ok(()),
            _ => self.acquire_lease().await.map(|_| ()),
        }
    }

    /// On the leader: extends this node's lease, or takes the lease: at once when nobody
    /// holds a valid one, else once its holder (which no longer leads) released it.
    async fn acquire_lease(&self) -> KvResult<Lease> {
        match self.feed.lease() {
            Some(l) if l.holder != self.id.0 && l.expiration >= self.clock.now() => {
                let released_at = self.ask_release(&l).await?;
                // Stamped above the release (an HLC update: the holder's clock may be ahead).
                self.clock.update(released_at)?;
                self.request_lease(Some((l.sequence, released_at))).await
            }
            _ => self.request_lease(None).await,
        }
    }

    /// Asks the holder of `lease` to give it up; returns the timestamp above which it serves
    /// no read under it.
    async fn ask_release(&self, lease: &Lease) -> KvResult<Timestamp> {
        let not_released = || KvError::NotLeaseholder {
            holder: Some(NodeId(lease.holder)),
        };
        let addr = self
            .members()
            .into_iter()
            .find(|(id, _)| id.0 == lease.holder)
            .map(|(_, addr)| addr)
            .ok_or_else(not_released)?;
        let mut client = self.kv_client(&addr)?;
        let request = pb::ReleaseLeaseRequest {
            range_id: RangeId::FIRST.0,
            sequence: lease.sequence,
        };
        match tokio::time::timeout(RELEASE_WAIT_MAX, client.release_lease(request)).await {
            Ok(Ok(r)) => Ok(ts_from_pb(r.into_inner().released_at)),
            // Unreachable, still leading, or slow: wait for the lease to expire instead.
            Ok(Err(_)) | Err(_) => Err(not_released()),
        }
    }

    /// As the lease's holder, asked by a new Raft leader: stops serving reads under lease
    /// `sequence` and returns the timestamp above which none is served. Refused while this
    /// node still believes it leads (the asker's view may be the stale one).
    pub(crate) fn release_lease(&self, sequence: u64) -> KvResult<Timestamp> {
        let lease = self.feed.lease();
        if lease.is_none_or(|l| l.holder != self.id.0 || l.sequence != sequence) {
            return Err(KvError::NotLeaseholder {
                holder: lease.map(|l| NodeId(l.holder)),
            });
        }
        if self.raft.metrics().borrow().current_leader == Some(self.id.0) {
            return Err(KvError::NotLeader {
                leader: Some(self.id),
            });
        }
        // Reads check the release before they read the clock for their timestamp, so every
        // read served under the lease is at or below the clock reading that follows.
        self.released_lease.fetch_max(sequence, Ordering::SeqCst);
        let released_at = self.clock.now();
        tracing::info!(
            node_id = self.id.0,
            sequence,
            %released_at,
            "range lease released to the new leader"
        );
        Ok(released_at)
    }

    /// On the leader: asks for the lease for this node, or extends it.
    async fn request_lease(&self, released: Option<(u64, Timestamp)>) -> KvResult<Lease> {
        let duration_ns =
            u64::try_from(self.config.range_lease_duration.as_nanos()).unwrap_or(u64::MAX);
        match self
            .propose_raw(Command::RequestLease {
                proposed_ts: Timestamp::ZERO,
                duration_ns,
                released,
            })
            .await?
        {
            CommandResult::Lease {
                lease,
                granted: true,
                ..
            } => Ok(lease),
            CommandResult::Lease { lease, .. } => Err(KvError::NotLeaseholder {
                holder: Some(NodeId(lease.holder)),
            }),
            other => Err(KvError::Raft(format!("unexpected lease result {other:?}"))),
        }
    }

    /// On the leader: stamps `command` with this node's clock (first forwarded past the
    /// command's [`Command::clock_floor`]) and proposes it. What the `Propose` RPC serves.
    pub(crate) async fn propose_stamped_local(&self, command: Command) -> KvResult<CommandResult> {
        if let Some(floor) = command.clock_floor() {
            self.clock.update(floor)?;
        }
        let command = command.with_proposed_ts(self.clock.now());
        self.propose_local(command).await
    }

    /// Proposes `command` through the leader, which stamps it, and returns its result. A retry
    /// after a lost response may apply the command twice: only for commands where that is
    /// harmless (ingest, revert).
    async fn propose(&self, command: Command) -> KvResult<CommandResult> {
        let payload = postcard::to_allocvec(&command).map_err(|e| KvError::Codec(e.to_string()))?;
        // Also checked before forwarding: the leader checks again once it has stamped it.
        self.check_command_bytes(command.name(), payload.len())?;
        self.on_leader(
            || self.propose_stamped_local(command.clone()),
            |mut c| {
                let request = pb::ProposeRequest {
                    range_id: self.range_id.0,
                    command: payload.clone(),
                };
                async move {
                    let r = c.propose(request).await?.into_inner();
                    postcard::from_bytes(&r.result).map_err(|e| {
                        tonic::Status::internal(format!("undecodable command result: {e}"))
                    })
                }
            },
        )
        .await
    }

    pub(crate) fn kv_client(
        &self,
        addr: &str,
    ) -> KvResult<pb::kv_client::KvClient<tonic::transport::Channel>> {
        Ok(pb::kv_client::KvClient::new(self.conns.channel(addr)?)
            .max_decoding_message_size(KV_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(KV_MESSAGE_BYTES_MAX))
    }

    /// Runs `local` if this node leads, else `remote` against the leader, retrying while the
    /// leader is unknown or moves, until `leader_wait_max`.
    async fn on_leader<T, L, LF, R, RF>(&self, local: L, remote: R) -> KvResult<T>
    where
        L: Fn() -> LF,
        LF: std::future::Future<Output = KvResult<T>>,
        R: Fn(pb::kv_client::KvClient<tonic::transport::Channel>) -> RF,
        RF: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let deadline = Instant::now() + self.config.leader_wait_max;
        let mut last_error = "no leader elected".to_string();
        loop {
            match self.leader() {
                Some((leader, _)) if leader == self.id => match local().await {
                    Err(KvError::NotLeader { .. }) => last_error = "leadership moved".into(),
                    Err(e @ KvError::NotLeaseholder { .. }) => last_error = e.to_string(),
                    other => return other,
                },
                Some((leader, addr)) => match remote(self.kv_client(&addr)?).await {
                    Ok(v) => return Ok(v),
                    Err(s) if retryable(&s) => last_error = format!("{leader}: {}", s.message()),
                    Err(s) => return Err(crate::service::error_from_status(&addr, s)),
                },
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(KvError::NoLeader {
                    waited_ms: u64::try_from(self.config.leader_wait_max.as_millis())
                        .unwrap_or(u64::MAX),
                    last_error,
                });
            }
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }

    /// On the leader: proposes an entry above `ts`, so every replica closes `ts` once it
    /// applies it. Returns the entry's timestamp.
    pub(crate) async fn close_local(&self, ts: Timestamp) -> KvResult<Timestamp> {
        self.clock.update(ts)?;
        self.metrics.close_proposals.inc();
        match self
            .propose_local(Command::Close {
                proposed_ts: self.clock.now(),
            })
            .await?
        {
            CommandResult::Applied { ts } => Ok(ts),
            other => Err(KvError::Raft(format!("unexpected close result {other:?}"))),
        }
    }

    /// Waits until this replica has closed `ts`, asking the leader to close it if needed.
    /// Concurrent callers share proposals: one is in flight at a time, and a caller whose `ts`
    /// a finished proposal covered proposes nothing.
    pub async fn ensure_closed(&self, ts: Timestamp) -> KvResult<()> {
        if self.closed_ts() >= ts {
            return Ok(());
        }
        {
            let mut promised = self.close_gate.lock().await;
            if *promised < ts && self.closed_ts() < ts {
                let closed =
                    match tokio::time::timeout(self.config.read_wait_max, self.propose_close(ts))
                        .await
                    {
                        Ok(closed) => closed?,
                        Err(_) => {
                            return Err(KvError::ReadTimeout {
                                wanted: ts,
                                closed: self.closed_ts(),
                                waited_ms: u64::try_from(self.config.read_wait_max.as_millis())
                                    .unwrap_or(u64::MAX),
                            });
                        }
                    };
                *promised = (*promised).max(closed);
            }
        }
        self.wait_closed(ts).await
    }

    /// Has the leader close `ts`; returns the closing entry's timestamp.
    async fn propose_close(&self, ts: Timestamp) -> KvResult<Timestamp> {
        self.on_leader(
            || self.close_local(ts),
            |mut c| async move {
                let r = c
                    .close(pb::CloseRequest {
                        range_id: self.range_id.0,
                        ts: Some(ts_to_pb(ts)),
                    })
                    .await?;
                Ok(ts_from_pb(r.into_inner().closed_ts))
            },
        )
        .await
    }

    /// Waits until this replica applied up to `ts`.
    async fn wait_closed(&self, ts: Timestamp) -> KvResult<()> {
        let mut closed = self.feed.closed_ts.subscribe();
        let wait = closed.wait_for(|c| *c >= ts);
        match tokio::time::timeout(self.config.read_wait_max, wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(KvError::ShuttingDown),
            Err(_) => Err(KvError::ReadTimeout {
                wanted: ts,
                closed: self.closed_ts(),
                waited_ms: u64::try_from(self.config.read_wait_max.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    /// The value of `key` as of exactly `read_ts` (no uncertainty), from this replica, the
    /// leaseholder, or once this replica closed `read_ts` (see [`crate::read`]).
    pub async fn get(&self, key: &[u8], read_ts: Timestamp) -> KvResult<Option<Vec<u8>>> {
        match self
            .read(ReadOp::get(key), ReadSpec::fixed(read_ts), false)
            .await?
        {
            (ReadValue::Get(v), _) => Ok(v),
            (other, _) => Err(KvError::Codec(format!("get answered with {other:?}"))),
        }
    }

    /// The live keys of `span` as of exactly `read_ts` (no uncertainty); see [`Replica::get`].
    pub async fn scan(
        &self,
        span: &Span,
        read_ts: Timestamp,
        limit: usize,
    ) -> KvResult<ScanResult> {
        match self
            .read(
                ReadOp::Scan(span.clone(), limit),
                ReadSpec::fixed(read_ts),
                false,
            )
            .await?
        {
            (ReadValue::Scan(r), _) => Ok(r),
            (other, _) => Err(KvError::Codec(format!("scan answered with {other:?}"))),
        }
    }

    /// The fingerprint of `span` in `(start_ts, end_ts]` on this replica, once it has closed
    /// `end_ts` (an `end_ts` of [`Timestamp::MAX`] takes whatever is applied now).
    pub async fn fingerprint(
        &self,
        span: &Span,
        start_ts: Timestamp,
        end_ts: Timestamp,
    ) -> KvResult<u64> {
        if end_ts != Timestamp::MAX {
            self.ensure_closed(end_ts).await?;
        }
        let fp = self.engine.fingerprint(span, start_ts, end_ts)?;
        if end_ts != Timestamp::MAX {
            self.check_gc_threshold(span, end_ts)?;
        }
        Ok(fp)
    }

    /// The fingerprint of `span`'s versions in `(start_ts, end_ts]` on this replica, hashing
    /// each key without its first `strip_prefix` bytes, so a virtual cluster's data
    /// fingerprints the same under different tenant prefixes (see
    /// [`storage::Engine::fingerprint_stripped`]). Waits until this replica has applied
    /// everything proposed before now: it closes `max(now, end_ts)`, or now when `end_ts` is
    /// [`Timestamp::MAX`].
    pub async fn fingerprint_stripped(
        &self,
        span: &Span,
        strip_prefix: usize,
        start_ts: Timestamp,
        end_ts: Timestamp,
    ) -> KvResult<u64> {
        let now = self.clock.now();
        let wait_ts = if end_ts == Timestamp::MAX {
            now
        } else {
            now.max(end_ts)
        };
        self.ensure_closed(wait_ts).await?;
        let fp = self
            .engine
            .fingerprint_stripped(span, strip_prefix, start_ts, end_ts)?;
        if end_ts != Timestamp::MAX {
            self.check_gc_threshold(span, end_ts)?;
        }
        Ok(fp)
    }

    /// Writes replicated versions with their own (original) timestamps on every replica,
    /// atomically, through the leader, as one Raft entry of at most 32 MiB of keys and values.
    /// The leader's clock is first forwarded past the newest version's timestamp (an HLC
    /// update, refused if that is more than the maximum clock offset ahead), and so is this
    /// node's once the entry applied, so later writes are newer than every ingested version.
    /// Returns the entry's commit timestamp.
    ///
    /// Re-ingesting identical versions changes nothing. A version that disagrees with one
    /// stored at the same key and timestamp fails the whole entry with
    /// [`KvError::CommandRejected`] and writes nothing. Ingested versions lie below the closed
    /// timestamp and are not published to rangefeeds' live tail (only to their catch-up
    /// scans), and transactions do not see them as conflicts: the span being ingested must not
    /// be served to transactions meanwhile (a standby's virtual cluster is offline).
    pub async fn ingest(&self, versions: Vec<MvccVersion>) -> KvResult<Timestamp> {
        self.propose_ingest(None, versions).await
    }

    /// [`Replica::ingest`], applied only while `fence.key` holds exactly `fence.value` (checked
    /// at apply, in log order, on every replica): once the fence's owner moved it (a cutover,
    /// a new epoch of writers) the entry writes nothing and this returns
    /// [`KvError::IngestFenced`], which retrying with the same fence cannot change.
    pub async fn ingest_fenced(
        &self,
        fence: IngestFence,
        versions: Vec<MvccVersion>,
    ) -> KvResult<Timestamp> {
        self.propose_ingest(Some(fence), versions).await
    }

    async fn propose_ingest(
        &self,
        fence: Option<IngestFence>,
        versions: Vec<MvccVersion>,
    ) -> KvResult<Timestamp> {
        let bytes: usize = versions.iter().map(MvccVersion::size_bytes).sum();
        if bytes > INGEST_ENTRY_BYTES_MAX {
            return Err(KvError::EntryTooLarge {
                what: "ingest batch",
                range: self.range_id,
                bytes,
                bytes_max: INGEST_ENTRY_BYTES_MAX,
            });
        }
        let versions: Vec<_> = versions
            .into_iter()
            .map(|v| (v.key, v.ts, v.value))
            .collect();
        // Stamped by the leader.
        let proposed_ts = Timestamp::ZERO;
        let fence_key = fence.as_ref().map(|f| f.key.clone());
        let command = match fence {
            None => Command::Ingest {
                proposed_ts,
                versions,
            },
            Some(fence) => Command::FencedIngest {
                proposed_ts,
                fence,
                versions,
            },
        };
        match self.propose(command).await? {
            CommandResult::Applied { ts } => {
                if let Err(e) = self.clock.update(ts) {
                    tracing::warn!(node_id = self.id.0, error = %e, "clock not forwarded past an ingest");
                }
                Ok(ts)
            }
            CommandResult::Fenced { .. } => Err(KvError::IngestFenced {
                range: self.range_id,
                key: storage::encoding::PrettyKey(fence_key.unwrap_or_default()),
            }),
            CommandResult::Failed { error, .. } => Err(KvError::CommandRejected {
                command: "ingest",
                range: self.range_id,
                error,
            }),
            other => Err(KvError::Raft(format!("unexpected ingest result {other:?}"))),
        }
    }

    /// Removes the versions of `span` newer than `to_ts` on every replica, through the leader,
    /// at most `max_versions` (capped at 100 000) per Raft entry. Returns the key to resume
    /// from (call again with a span starting there), or `None` when the span now reads
    /// exactly as it did at `to_ts`.
    pub async fn revert_span(
        &self,
        span: Span,
        to_ts: Timestamp,
        max_versions: u64,
    ) -> KvResult<Option<Vec<u8>>> {
        span.validate()?;
        if max_versions == 0 {
            return Err(KvError::Storage(storage::StorageError::ZeroLimit {
                what: "the revert batch size",
            }));
        }
        let command = Command::RevertSpan {
            // Stamped by the leader.
            proposed_ts: Timestamp::ZERO,
            span: (span.start, span.end),
            to_ts,
            max_versions: max_versions.min(REVERT_ENTRY_VERSIONS_MAX),
        };
        match self.propose(command).await? {
            CommandResult::Reverted { resume_key, .. } => Ok(resume_key),
            CommandResult::Failed { error, .. } => Err(KvError::CommandRejected {
                command: "revert_span",
                range: self.range_id,
                error,
            }),
            other => Err(KvError::Raft(format!("unexpected revert result {other:?}"))),
        }
    }

    /// On the leader: proposes a transaction. `Ok(Err(key))` is an abort on `key`.
    pub(crate) async fn commit_local(&self, txn: TxnBuffer) -> KvResult<CommitOutcome> {
        self.clock.update(txn.read_ts)?;
        let command = txn.into_command(self.clock.now());
        match self.propose_local(command).await? {
            CommandResult::Committed { commit_ts } => Ok(Ok(commit_ts)),
            CommandResult::Aborted { conflict_key } => Ok(Err(conflict_key)),
            other => Err(KvError::Raft(format!("unexpected commit result {other:?}"))),
        }
    }

    /// Commits a transaction through the leader. `Ok(Err(key))` is an abort on `key`.
    pub(crate) async fn commit(&self, txn: &TxnBuffer) -> KvResult<CommitOutcome> {
        // Refused here, before a message of that size is sent to the leader (which checks
        // again with its own clock's timestamp).
        self.check_command_bytes("txn", txn.command_bytes(self.clock.now()))?;
        let request = txn.to_request(self.range_id, false);
        self.on_leader(
            || self.commit_local(txn.clone()),
            |mut c| {
                let request = request.clone();
                async move { outcome_from_response(c.commit(request).await?.into_inner()) }
            },
        )
        .await
    }

    /// Streams every committed version of `span` above `from_ts`, with checkpoints.
    pub fn rangefeed(
        self: &Arc<Self>,
        span: Span,
        from_ts: Timestamp,
    ) -> KvResult<mpsc::Receiver<KvResult<RangefeedEvent>>> {
        Ok(rangefeed::start(self.clone(), span, from_ts))
    }

    /// On the leader: allocates a fresh node id (never reused).
    pub(crate) async fn allocate_node_id_local(&self) -> KvResult<NodeId> {
        match self
            .propose_local(Command::AllocateNodeId {
                proposed_ts: self.clock.now(),
            })
            .await?
        {
            CommandResult::NodeIdAllocated { node_id, .. } => Ok(NodeId(node_id)),
            other => Err(KvError::Raft(format!(
                "unexpected allocation result {other:?}"
            ))),
        }
    }

    /// Allocates a fresh node id through the leader.
    pub async fn allocate_node_id(&self) -> KvResult<NodeId> {
        self.on_leader(
            || self.allocate_node_id_local(),
            |mut c| async move {
                let r = c.allocate_node_id(pb::AllocateNodeIdRequest {}).await?;
                Ok(NodeId(r.into_inner().node_id))
            },
        )
        .await
    }

    /// On the leader: makes node `id` at `addr` a member once it has caught up, as a voter
    /// while the range has fewer than five, else as a learner. Idempotent.
    pub(crate) async fn add_member_local(&self, id: NodeId, addr: &str) -> KvResult<()> {
        let _one_at_a_time = self.membership_change.lock().await;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let voters: BTreeSet<u64> = membership.membership().voter_ids().collect();
        if voters.contains(&id.0) {
            return Ok(());
        }
        self.raft
            .add_learner(id.0, BasicNode::new(addr), true)
            .await
            .map_err(|e| KvError::Raft(e.to_string()))?;
        if voters.len() < VOTERS_MAX {
            let mut new_voters = voters;
            new_voters.insert(id.0);
            self.raft
                .change_membership(new_voters, false)
                .await
                .map_err(|e| KvError::Raft(e.to_string()))?;
        }
        Ok(())
    }

    /// Makes node `id` at `addr` a member, through the leader.
    pub async fn add_member(&self, id: NodeId, addr: &str) -> KvResult<()> {
        self.on_leader(
            || self.add_member_local(id, addr),
            |mut c| async move {
                c.join(pb::JoinRequest {
                    node_id: id.0,
                    advertise_addr: addr.to_string(),
                })
                .await?;
                Ok(())
            },
        )
        .await
    }

    /// Every member of the range (voters and learners) with its address, by id.
    pub fn members(&self) -> Vec<(NodeId, String)> {
        let m = self.raft.metrics().borrow().clone();
        let mut out: Vec<(NodeId, String)> = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (NodeId(*id), n.addr.clone()))
            .collect();
        out.sort();
        out
    }

    /// The members that answer a status request within `timeout` (this node always counts).
    pub async fn live_members(&self, timeout: Duration) -> Vec<(NodeId, String)> {
        let checks = self.members().into_iter().map(|(id, addr)| async move {
            if id == self.id {
                return Some((id, addr));
            }
            let mut client = self.kv_client(&addr).ok()?;
            let ok = tokio::time::timeout(timeout, client.node_status(pb::NodeStatusRequest {}))
                .await
                .is_ok_and(|r| r.is_ok());
            ok.then_some((id, addr))
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// Stops the Raft group.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

/// Statuses worth retrying against a (possibly new) leader: it moved, or was unreachable.
fn retryable(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::FailedPrecondition | tonic::Code::Unavailable
    )
}

/// Keeps closed timestamps moving while idle, and updates the Raft gauges.
async fn closed_ts_ticker(node: std::sync::Weak<Replica>) {
    let period = match node.upgrade() {
        Some(n) => (n.config.closed_ts_target_interval / 4).max(Duration::from_millis(5)),
        None => return,
    };
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        let Some(node) = node.upgrade() else { return };
        let m = node.raft.metrics().borrow().clone();
        let is_leader = m.current_leader == Some(node.id.0);
        node.metrics.raft_is_leader.set(i64::from(is_leader));
        node.metrics
            .raft_term
            .set(i64::try_from(m.current_term).unwrap_or(i64::MAX));
        node.metrics
            .raft_applied_index
            .set(i64::try_from(m.last_applied.map_or(0, |l| l.index)).unwrap_or(i64::MAX));
        let lag_ns = node
            .clock
            .physical_now_ns()
            .saturating_sub(node.closed_ts().wall_time_ns);
        node.metrics.closed_ts_lag_seconds.set(lag_ns as f64 / 1e9);
        node.metrics
            .is_leaseholder
            .set(i64::from(node.lease_term().is_some()));
        if !is_leader {
            continue;
        }
        // A proposal that cannot commit (no quorum) must not stop the ticker.
        let bound = node.config.range_lease_duration / 2;
        if node.lease_wanted() {
            match tokio::time::timeout(bound, node.acquire_lease()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(node_id = node.id.0, error = %e, "lease request failed");
                }
                Err(_) => tracing::debug!(node_id = node.id.0, "lease request timed out"),
            }
            continue;
        }
        let since_ms = u64::try_from(node.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .saturating_sub(node.last_proposal_ms.load(Ordering::Relaxed));
        let target_ms =
            u64::try_from(node.config.closed_ts_target_interval.as_millis()).unwrap_or(u64::MAX);
        if since_ms >= target_ms {
            let proposed_ts = node.clock.now();
            if let Ok(Err(e)) =
                tokio::time::timeout(bound, node.propose_raw(Command::Close { proposed_ts })).await
            {
                tracing::debug!(node_id = node.id.0, error = %e, "closed timestamp proposal failed");
            }
        }
    }
}

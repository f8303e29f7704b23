//! MVCC garbage collection: the GC queue of a replica and its replicated GC thresholds
//! (CockroachDB's mvccGCQueue and range GC threshold, one span per virtual cluster).
//!
//! - The **policy** (which spans, with which `gc.ttl`, how often) is pushed by the layer that
//!   owns the settings ([`crate::Store::set_gc_policy`]); until then nothing is collected.
//! - The **queue** runs on the leader every `kv.gc.interval`: for each span it proposes
//!   [`crate::Command::Gc`] steps at `now - ttl`, each removing a bounded number of versions
//!   and returning where the next one resumes.
//! - At **apply**, every replica lowers the requested threshold to the oldest protected
//!   timestamp overlapping the span ([`crate::protectedts`]), read from its own replicated
//!   state, so every replica removes the same versions; it records the span's GC threshold
//!   (an MVCC key in the system keyspace, replicated and carried by snapshots, never moving
//!   back) and removes the versions no read at or above the threshold can see, on a blocking
//!   thread, in the same atomic batch as the applied state.
//! - **Reads** below a span's GC threshold fail with [`KvError::BelowGcThreshold`]: the check
//!   follows the read, and the in-memory thresholds are raised before a step removes anything,
//!   so a read that raced a GC step is refused rather than answered from half-collected
//!   history.

use crate::command::{Command, CommandResult};
use crate::replica::Replica;
use crate::{KvError, KvResult, RangeId, Txn};
use hlc::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use storage::encoding::PrettyKey;
use storage::{Engine, MvccVersion, Span, StorageResult};

/// The first key of the GC threshold records: `\x02sys/gc-threshold/<range id>/<span start>`.
const THRESHOLD_PREFIX: &[u8] = b"\x02sys/gc-threshold/";
/// The most versions one GC entry removes.
pub(crate) const GC_ENTRY_VERSIONS_MAX: u64 = 10_000;
/// The most threshold records a replica holds (one per GC span: a handful per virtual
/// cluster at most).
const THRESHOLDS_MAX: usize = 100_000;
/// Default `kv.gc.interval`.
pub const GC_INTERVAL_DEFAULT: Duration = Duration::from_secs(600);

/// One span the GC queue collects, with its `gc.ttl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcSpan {
    pub span: Span,
    pub ttl: Duration,
}

/// What the GC queue collects and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcPolicy {
    /// `kv.gc.interval`: the pause between two runs of the queue.
    pub interval: Duration,
    /// The spans to collect (normally the system keyspace and each virtual cluster's).
    pub spans: Vec<GcSpan>,
}

impl Default for GcPolicy {
    fn default() -> Self {
        GcPolicy {
            interval: GC_INTERVAL_DEFAULT,
            spans: Vec::new(),
        }
    }
}

/// What one GC run did on the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GcRunStats {
    /// GC entries applied.
    pub steps: u64,
    /// Versions removed.
    pub versions_removed: u64,
    /// Bytes removed.
    pub bytes_removed: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ThresholdRecord {
    end: Option<Vec<u8>>,
    threshold: Timestamp,
}

fn range_prefix(range: RangeId) -> Vec<u8> {
    let mut k = THRESHOLD_PREFIX.to_vec();
    k.extend_from_slice(&range.0.to_be_bytes());
    k.push(b'/');
    k
}

fn threshold_key(range: RangeId, span: &Span) -> Vec<u8> {
    let mut k = range_prefix(range);
    k.extend_from_slice(&span.start);
    k
}

/// Decodes a threshold record; `None` if it does not decode (ignored: a record only ever
/// refuses reads, never allows a GC).
fn decode(prefix_len: usize, key: &[u8], value: &[u8]) -> Option<(Span, Timestamp)> {
    let rec: ThresholdRecord = postcard::from_bytes(value).ok()?;
    let start = key.get(prefix_len..)?.to_vec();
    Some((
        Span {
            start,
            end: rec.end,
        },
        rec.threshold,
    ))
}

/// The GC thresholds of a replica's spans, as applied (kept in memory for the read check).
#[derive(Debug, Default)]
pub(crate) struct GcThresholds {
    by_span: RwLock<Vec<(Span, Timestamp)>>,
}

impl GcThresholds {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<(Span, Timestamp)>> {
        // Replaced or raised whole under the lock: a poisoned lock still holds whole values.
        self.by_span.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<(Span, Timestamp)>> {
        self.by_span.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Reloads the thresholds of `range` from the engine (at start-up, after a snapshot).
    pub fn reload(&self, engine: &dyn Engine, range: RangeId) -> StorageResult<()> {
        let prefix = range_prefix(range);
        let page = engine.scan(&Span::prefix(&prefix), Timestamp::MAX, THRESHOLDS_MAX)?;
        let loaded = page
            .rows
            .iter()
            .filter_map(|kv| decode(prefix.len(), &kv.key, &kv.value))
            .collect();
        *self.write() = loaded;
        Ok(())
    }

    /// Raises `span`'s threshold to `ts` (never lowers it).
    pub fn raise(&self, span: &Span, ts: Timestamp) {
        let mut all = self.write();
        match all.iter_mut().find(|(s, _)| s == span) {
            Some((_, t)) => *t = (*t).max(ts),
            None => all.push((span.clone(), ts)),
        }
    }

    /// The highest threshold among spans overlapping `span`.
    pub fn max_overlapping(&self, span: &Span) -> Option<(Span, Timestamp)> {
        self.read()
            .iter()
            .filter(|(s, _)| s.overlaps(span))
            .max_by_key(|(_, t)| *t)
            .cloned()
    }

    /// The oldest threshold of any span (for the lag gauge).
    pub fn oldest(&self) -> Option<Timestamp> {
        self.read().iter().map(|(_, t)| *t).min()
    }

    /// Fails when a read of `span` at `read_ts` is below a GC threshold of an overlapping span.
    pub fn check(&self, span: &Span, read_ts: Timestamp) -> KvResult<()> {
        match self.max_overlapping(span) {
            Some((gc_span, threshold)) if read_ts < threshold => Err(KvError::BelowGcThreshold {
                read_ts,
                threshold,
                span: format!("{}", PrettyKey(gc_span.start)),
            }),
            _ => Ok(()),
        }
    }
}

/// What a GC entry does when it applies, decided from the replica's state.
pub(crate) struct GcStep {
    /// Where this step removes versions: the GC span from the resume key on.
    pub cursor: Span,
    /// The threshold the versions are removed at: the requested one lowered to the oldest
    /// protected timestamp overlapping the GC span.
    pub threshold: Timestamp,
    /// The span's GC threshold after the step, and the version recording it when it moved.
    pub recorded: Timestamp,
    pub record: Option<MvccVersion>,
}

/// Decides a GC step at apply (entry timestamp `ts`) from the replica's own replicated state
/// (never from the in-memory thresholds, which may run ahead of it: they are raised before a
/// step that may then be rejected).
pub(crate) fn plan_step(
    engine: &dyn Engine,
    range: RangeId,
    span: Span,
    resume_key: Option<Vec<u8>>,
    requested: Timestamp,
    ts: Timestamp,
) -> StorageResult<GcStep> {
    let floor = crate::protectedts::protected_floor(engine, &span)?;
    let threshold = floor.map_or(requested, |f| f.min(requested));
    let key = threshold_key(range, &span);
    let prefix_len = range_prefix(range).len();
    let old = engine
        .get(&key, Timestamp::MAX)?
        .and_then(|value| decode(prefix_len, &key, &value))
        .filter(|(recorded_span, _)| *recorded_span == span)
        .map(|(_, t)| t);
    let recorded = old.map_or(threshold, |o| o.max(threshold));
    let record = (old != Some(recorded)).then(|| {
        let value = postcard::to_allocvec(&ThresholdRecord {
            end: span.end.clone(),
            threshold: recorded,
        })
        .expect("a threshold record always encodes");
        MvccVersion::put(key.clone(), ts, value)
    });
    let cursor = match resume_key {
        Some(k) => span.with_start(k),
        None => span.clone(),
    };
    Ok(GcStep {
        cursor,
        threshold,
        recorded,
        record,
    })
}

/// Fails, inside `txn`, when `ts` is below the GC threshold of a span overlapping `span`. The
/// threshold records that matter (those overlapping `span`, and the one `span` itself would
/// be recorded under) are read through the transaction, so a GC step that raises one before
/// the transaction commits makes the commit abort (and a retry sees the new threshold). The
/// others are found outside the read set: every GC run rewrites the records of the spans
/// whose threshold follows the clock, and a transaction that read them all would abort with
/// every run.
pub(crate) async fn check_in_txn(txn: &mut Txn, span: &Span, ts: Timestamp) -> KvResult<()> {
    let store = txn.store().clone();
    let range = store.replica_for_span(span)?.range_id();
    let prefix = range_prefix(range);
    let all = store
        .scan(&Span::prefix(&prefix), txn.read_ts(), THRESHOLDS_MAX)
        .await?;
    let mut keys: Vec<Vec<u8>> = all
        .rows
        .iter()
        .filter(|kv| {
            decode(prefix.len(), &kv.key, &kv.value).is_some_and(|(s, _)| s.overlaps(span))
        })
        .map(|kv| kv.key.clone())
        .collect();
    keys.push(threshold_key(range, span));
    keys.sort();
    keys.dedup();
    for key in keys {
        let Some(value) = txn.get(&key).await? else {
            continue;
        };
        if let Some((gc_span, threshold)) = decode(prefix.len(), &key, &value)
            && gc_span.overlaps(span)
            && ts < threshold
        {
            return Err(KvError::BelowGcThreshold {
                read_ts: ts,
                threshold,
                span: format!("{}", PrettyKey(gc_span.start)),
            });
        }
    }
    Ok(())
}

impl Replica {
    /// Collects one span on the leader: GC entries at `now - ttl` until the span is done.
    async fn gc_span(&self, gc: &GcSpan) -> KvResult<GcRunStats> {
        let range = self.range_id();
        let now = self.clock().now();
        let ttl_ns = u64::try_from(gc.ttl.as_nanos()).unwrap_or(u64::MAX);
        let requested = Timestamp::new(now.wall_time_ns.saturating_sub(ttl_ns), 0);
        let mut stats = GcRunStats::default();
        if requested.is_zero() {
            return Ok(stats);
        }
        let mut resume_key = None;
        loop {
            let command = Command::Gc {
                // Stamped below.
                proposed_ts: Timestamp::ZERO,
                span: (gc.span.start.clone(), gc.span.end.clone()),
                resume_key,
                threshold: requested,
                max_versions: GC_ENTRY_VERSIONS_MAX,
            };
            match self.propose_stamped_local(command).await? {
                CommandResult::GcStepped {
                    resume_key: next,
                    removed,
                    bytes_removed,
                    ..
                } => {
                    stats.steps += 1;
                    stats.versions_removed += removed;
                    stats.bytes_removed += bytes_removed;
                    match next {
                        Some(k) => resume_key = Some(k),
                        None => return Ok(stats),
                    }
                }
                CommandResult::Failed { error, .. } => {
                    return Err(KvError::CommandRejected {
                        command: "gc",
                        range,
                        error,
                    });
                }
                other => return Err(KvError::Raft(format!("unexpected gc result {other:?}"))),
            }
        }
    }

    /// One run of the GC queue over every span of the policy that overlaps this range, on
    /// the leader (elsewhere it does nothing). Returns what it removed.
    pub async fn run_gc(&self) -> KvResult<GcRunStats> {
        let status = self.status();
        if status.leader != Some(self.node_id()) {
            return Ok(GcRunStats::default());
        }
        let policy = self.settings().gc_policy.get();
        let mut total = GcRunStats::default();
        for gc in policy.spans.iter().filter(|g| g.span.overlaps(self.span())) {
            let s = self.gc_span(gc).await?;
            total.steps += s.steps;
            total.versions_removed += s.versions_removed;
            total.bytes_removed += s.bytes_removed;
        }
        self.metrics().gc_runs.inc();
        tracing::debug!(
            node_id = self.node_id().0,
            range_id = self.range_id().0,
            steps = total.steps,
            versions_removed = total.versions_removed,
            bytes_removed = total.bytes_removed,
            "gc run"
        );
        Ok(total)
    }

    /// Fails when a read of `span` at `read_ts` is below the GC threshold of an overlapping
    /// span on this replica ([`KvError::BelowGcThreshold`]). Call it after the read: thresholds
    /// only rise, and rise before a GC step removes anything.
    pub fn check_gc_threshold(&self, span: &Span, read_ts: Timestamp) -> KvResult<()> {
        self.feed().gc_thresholds.check(span, read_ts)
    }

    /// The GC threshold of the span overlapping `span` with the highest one, if any was
    /// recorded on this replica.
    pub fn gc_threshold(&self, span: &Span) -> Option<Timestamp> {
        self.feed()
            .gc_thresholds
            .max_overlapping(span)
            .map(|(_, t)| t)
    }
}

/// The GC queue of a replica: runs [`Replica::run_gc`] every `kv.gc.interval` (sooner when
/// the policy changes) and keeps the threshold lag gauge.
pub(crate) async fn gc_queue(node: Weak<Replica>) {
    loop {
        let (interval, changed) = match node.upgrade() {
            Some(n) => (
                n.settings().gc_policy.get().interval,
                n.settings().gc_policy.changed(),
            ),
            None => return,
        };
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = changed.notified() => {}
        }
        let Some(n) = node.upgrade() else { return };
        if let Err(e) = n.run_gc().await {
            tracing::info!(node_id = n.node_id().0, range_id = n.range_id().0, error = %e, "gc run failed; retrying at the next interval");
        }
        let lag_ns = n.feed().gc_thresholds.oldest().map_or(0, |t| {
            n.clock().physical_now_ns().saturating_sub(t.wall_time_ns)
        });
        n.metrics()
            .gc_threshold_lag_seconds
            .set(lag_ns as f64 / 1e9);
    }
}

/// The policy and its change notification, held by the store.
#[derive(Debug, Default)]
pub(crate) struct GcPolicyCell {
    policy: RwLock<GcPolicy>,
    changed: Arc<tokio::sync::Notify>,
}

impl GcPolicyCell {
    pub fn get(&self) -> GcPolicy {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the policy; wakes the queue when it changed.
    pub fn set(&self, policy: GcPolicy) {
        let mut p = self.policy.write().unwrap_or_else(|p| p.into_inner());
        if *p != policy {
            *p = policy;
            self.changed.notify_one();
        }
    }

    pub fn changed(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }
}

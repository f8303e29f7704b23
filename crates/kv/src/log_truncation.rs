//! The Raft log truncation queue of a replica: truncates the log by size and count,
//! independently of how often a snapshot is written out (CockroachDB's raft log queue).
//!
//! Every `raft_log_truncation_interval`, a replica decides up to which index its log may go
//! ([`decide`]): up to its applied index, but on the leader not past what the slowest live
//! follower still needs, unless keeping that would leave the log over
//! `kv.raft_log.truncation_max_entries` or `kv.raft_log.truncation_max_bytes`; a follower
//! further behind than that catches up from a snapshot. A follower, which does not know the
//! others' progress, truncates only down to the caps, so that after a leadership change the
//! new leader still has the entries a lagging replica needs (CockroachDB replicates the
//! leaseholder's decision instead; openraft purges per replica). Small truncations are
//! batched ([`TRUNCATION_ENTRIES_MIN`]).
//!
//! openraft 0.9 purges only entries a snapshot covers, so a truncation first takes a snapshot
//! at the applied index (`trigger().snapshot()`: a read view and its metadata, see
//! `snapshot`), waits for it, then asks for the purge (`trigger().purge_log(index)`).
//! openraft's own snapshot policy and post-snapshot purge are off (see `KvConfig`).

use crate::log_store::LogStore;
use crate::replica::Replica;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Entries that must be truncatable before a truncation below the caps is worth a snapshot
/// and a purge (CockroachDB's `RaftLogQueueStaleThreshold` is 100 too).
pub(crate) const TRUNCATION_ENTRIES_MIN: u64 = 100;
/// A follower whose match index has not moved for this long, while behind, no longer holds
/// the log back (CockroachDB keeps entries only for recently active followers).
const FOLLOWER_LIVE_WINDOW: Duration = Duration::from_secs(10);
/// How long a truncation waits for the snapshot it asked for.
const SNAPSHOT_WAIT_MAX: Duration = Duration::from_secs(10);

/// The smallest `kv.raft_log.truncation_max_entries` a node accepts.
pub const TRUNCATION_MAX_ENTRIES_FLOOR: u64 = 10;
/// The smallest `kv.raft_log.truncation_max_bytes` a node accepts.
pub const TRUNCATION_MAX_BYTES_FLOOR: u64 = 64 << 10;

/// A node's log caps, settable while it runs (the SQL layer pushes the cluster settings).
#[derive(Debug)]
pub(crate) struct TruncationCaps {
    entries_max: AtomicU64,
    bytes_max: AtomicU64,
}

impl TruncationCaps {
    pub fn new(entries_max: u64, bytes_max: u64) -> Self {
        TruncationCaps {
            entries_max: AtomicU64::new(entries_max.max(1)),
            bytes_max: AtomicU64::new(bytes_max.max(1)),
        }
    }

    pub(crate) fn get(&self) -> (u64, u64) {
        (
            self.entries_max.load(Ordering::Relaxed),
            self.bytes_max.load(Ordering::Relaxed),
        )
    }
}

impl crate::Store {
    /// Sets `kv.raft_log.truncation_max_entries` and `kv.raft_log.truncation_max_bytes` on
    /// this node, raised to [`TRUNCATION_MAX_ENTRIES_FLOOR`] and [`TRUNCATION_MAX_BYTES_FLOOR`];
    /// returns the values in effect. The next truncation check uses them.
    pub fn set_raft_log_truncation_caps(&self, entries_max: u64, bytes_max: u64) -> (u64, u64) {
        let caps = &self.settings().truncation_caps;
        let entries_max = entries_max.max(TRUNCATION_MAX_ENTRIES_FLOOR);
        let bytes_max = bytes_max.max(TRUNCATION_MAX_BYTES_FLOOR);
        caps.entries_max.store(entries_max, Ordering::Relaxed);
        caps.bytes_max.store(bytes_max, Ordering::Relaxed);
        (entries_max, bytes_max)
    }

    /// The log caps in effect: (`kv.raft_log.truncation_max_entries`,
    /// `kv.raft_log.truncation_max_bytes`).
    pub fn raft_log_truncation_caps(&self) -> (u64, u64) {
        self.settings().truncation_caps.get()
    }
}

/// What a truncation decision looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TruncationInput {
    /// The replica's applied index (nothing beyond it is ever truncated).
    pub applied: u64,
    /// The last index already truncated (0 when none).
    pub purged: u64,
    /// On the leader, the match index of each live follower (`None` off the leader).
    pub live_followers: Option<Vec<u64>>,
    /// The first index to keep for the log to fit its caps (`None` when it fits whole).
    pub cap_first_index: Option<u64>,
}

/// The index to truncate the log up to (inclusive), if a truncation is due.
pub(crate) fn decide(input: &TruncationInput) -> Option<u64> {
    let mut upto = match &input.live_followers {
        // The leader: up to what every live follower has.
        Some(followers) => followers
            .iter()
            .copied()
            .min()
            .map_or(input.applied, |slowest| slowest.min(input.applied)),
        // A follower keeps its log up to the caps: if it becomes leader, the others catch up
        // from it rather than from snapshots.
        None => 0,
    };
    let over_cap = input.cap_first_index.is_some();
    if let Some(first_kept) = input.cap_first_index {
        upto = upto.max(first_kept.saturating_sub(1).min(input.applied));
    }
    if upto <= input.purged {
        return None;
    }
    if !over_cap && upto - input.purged < TRUNCATION_ENTRIES_MIN {
        return None;
    }
    Some(upto)
}

/// When each follower's match index last moved.
#[derive(Debug, Default)]
struct FollowerActivity {
    seen: BTreeMap<u64, (u64, Instant)>,
}

impl FollowerActivity {
    /// The match indexes of the followers that are live: caught up with `last_index`, or
    /// whose match index moved within [`FOLLOWER_LIVE_WINDOW`].
    fn live(&mut self, matched: &BTreeMap<u64, u64>, last_index: u64, now: Instant) -> Vec<u64> {
        self.seen.retain(|id, _| matched.contains_key(id));
        let mut live = Vec::new();
        for (&id, &index) in matched {
            let entry = self.seen.entry(id).or_insert((index, now));
            if entry.0 != index {
                *entry = (index, now);
            }
            if index >= last_index || now.duration_since(entry.1) < FOLLOWER_LIVE_WINDOW {
                live.push(index);
            }
        }
        live
    }
}

/// Runs the queue until the node is dropped.
pub(crate) async fn run(node: Weak<Replica>, log: LogStore) {
    let mut activity = FollowerActivity::default();
    loop {
        let interval = match node.upgrade() {
            Some(n) => n.config().raft_log_truncation_interval,
            None => return,
        };
        tokio::time::sleep(interval).await;
        let Some(node) = node.upgrade() else { return };
        if let Err(e) = truncate_once(&node, &log, &mut activity).await {
            tracing::debug!(node_id = node.node_id().0, error = %e, "raft log truncation failed");
        }
    }
}

async fn truncate_once(
    node: &Arc<Replica>,
    log: &LogStore,
    activity: &mut FollowerActivity,
) -> Result<(), String> {
    let raft = node.raft();
    let m = raft.metrics().borrow().clone();
    if m.running_state.is_err() {
        return Ok(());
    }
    let reader = log.clone();
    let (entries_max, bytes_max) = node.settings().truncation_caps.get();
    let cap_first_index =
        tokio::task::spawn_blocking(move || reader.first_index_within(entries_max, bytes_max))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    let live_followers = m.replication.as_ref().map(|replication| {
        let matched: BTreeMap<u64, u64> = replication
            .iter()
            .filter(|(id, _)| **id != m.id)
            .map(|(id, l)| (*id, l.map_or(0, |l| l.index)))
            .collect();
        activity.live(&matched, m.last_log_index.unwrap_or(0), Instant::now())
    });
    let input = TruncationInput {
        applied: m.last_applied.map_or(0, |l| l.index),
        purged: m.purged.map_or(0, |l| l.index),
        live_followers,
        cap_first_index,
    };
    let Some(upto) = decide(&input) else {
        return Ok(());
    };
    if m.snapshot.map_or(0, |l| l.index) < upto {
        raft.trigger().snapshot().await.map_err(|e| e.to_string())?;
        raft.wait(Some(SNAPSHOT_WAIT_MAX))
            .metrics(
                |m| m.snapshot.map_or(0, |l| l.index) >= upto,
                "snapshot for log truncation",
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    raft.trigger()
        .purge_log(upto)
        .await
        .map_err(|e| e.to_string())?;
    node.metrics().raft_log_truncations.inc();
    tracing::debug!(
        node_id = node.node_id().0,
        upto,
        applied = input.applied,
        over_cap = input.cap_first_index.is_some(),
        "raft log truncated"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(
        applied: u64,
        purged: u64,
        followers: Option<Vec<u64>>,
        cap: Option<u64>,
    ) -> TruncationInput {
        TruncationInput {
            applied,
            purged,
            live_followers: followers,
            cap_first_index: cap,
        }
    }

    // issue 15 item 4: the truncation decision. Goal: the leader truncates up to its applied
    // index but never past what the slowest live follower needs, unless the log is over a
    // cap; a follower truncates only down to the caps; small truncations wait; nothing
    // beyond the applied index ever goes. Method: the
    // pure decision function over hand-built inputs.
    #[test]
    fn truncation_keeps_what_live_followers_need_up_to_the_caps() {
        // A follower (no progress view) keeps its log up to the caps.
        assert_eq!(decide(&input(500, 0, None, None)), None);
        assert_eq!(decide(&input(500, 0, None, Some(401))), Some(400));
        // The leader keeps what its slowest live follower needs.
        assert_eq!(
            decide(&input(500, 0, Some(vec![450, 300]), None)),
            Some(300)
        );
        // A single replica truncates up to its applied index.
        assert_eq!(decide(&input(500, 0, Some(vec![]), None)), Some(500));
        // Too little to truncate: wait.
        assert_eq!(decide(&input(500, 250, Some(vec![320]), None)), None);
        assert_eq!(decide(&input(50, 0, Some(vec![]), None)), None);
        // Over a cap: the slow follower is left to a snapshot, and the log keeps from the
        // cap's first index on.
        assert_eq!(
            decide(&input(500, 0, Some(vec![450, 3]), Some(401))),
            Some(400)
        );
        // Even a small truncation happens when over a cap.
        assert_eq!(
            decide(&input(500, 395, Some(vec![3]), Some(401))),
            Some(400)
        );
        // Never past the applied index, even when over a cap.
        assert_eq!(decide(&input(500, 0, Some(vec![3]), Some(900))), Some(500));
        assert_eq!(decide(&input(500, 0, None, Some(900))), Some(500));
        // Nothing new to truncate.
        assert_eq!(decide(&input(500, 500, None, Some(501))), None);
    }

    // issue 15 item 4: follower liveness for truncation. Goal: a follower holds the log back
    // while it makes progress or is caught up, and stops holding it once its match index has
    // not moved for the live window. Method: feed match indexes at chosen instants.
    #[test]
    fn a_stalled_follower_stops_holding_the_log() {
        let mut a = FollowerActivity::default();
        let t0 = Instant::now();
        let matched = BTreeMap::from([(2, 10), (3, 100)]);
        assert_eq!(a.live(&matched, 100, t0), vec![10, 100]);
        let later = t0 + FOLLOWER_LIVE_WINDOW + Duration::from_secs(1);
        // Node 2 never moved: not live. Node 3 is caught up: live.
        assert_eq!(a.live(&matched, 100, later), vec![100]);
        // Node 2 moves again: live again.
        let moved = BTreeMap::from([(2, 20), (3, 100)]);
        assert_eq!(a.live(&moved, 100, later), vec![20, 100]);
    }
}

//! Range leases, and what a leaseholder needs to serve present-time reads without a Raft
//! round.
//!
//! A lease names the node that serves present-time reads of the range and the only node whose
//! writes the range accepts: `[start, expiration]` in HLC time, recorded through Raft by
//! [`crate::Command::RequestLease`]. At apply, on every replica alike:
//! - a request by the current holder extends its lease;
//! - a request by another node takes the lease only if the previous one expired before the
//!   request's commit timestamp (its `start`), or its holder released it (answering a new
//!   Raft leader's `ReleaseLease` with the timestamp above which it serves no read) below
//!   that timestamp; otherwise it is rejected;
//! - any other command that writes, proposed (its entry's leader) by a node that does not
//!   hold the lease, is rejected with nothing written ([`crate::CommandResult::NotLeaseholder`]).
//!
//! Hence every write applied under a lease was proposed by its holder, and every write of a
//! later holder has a commit timestamp above the lease's expiration. A holder serves a read at
//! `read_ts` locally once (see [`crate::Replica`]): its clock is forwarded to `read_ts` (so its
//! later proposals are stamped above it), its own proposals stamped at or below `read_ts` that
//! may write into the keys it reads have applied ([`ProposalTracker`]), it has applied an
//! entry of its current Raft term (so every entry of earlier terms is applied or gone), and
//! its clock is below the expiration minus the maximum clock offset (so no other node can
//! hold a lease yet, whatever its clock says).

use hlc::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;
use storage::Span;
use tokio::sync::watch;

/// A range lease as recorded in the replicated state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The node holding it.
    pub holder: u64,
    /// The commit timestamp of the request that took it.
    pub start: Timestamp,
    /// The end of the lease: no read is served under it at or after this, minus the maximum
    /// clock offset, and no other node takes the lease before it.
    pub expiration: Timestamp,
    /// Grows by one with every change of holder.
    pub sequence: u64,
}

/// What applying a lease request decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseDecision {
    /// The lease (new or extended) now in force.
    Granted(Lease),
    /// Another node holds an unexpired lease.
    Rejected(Lease),
}

/// Applies a request by `proposer`, committed at `ts`, for a lease lasting `duration_ns` of
/// wall time from `ts`, to the lease in force. `released` is what the holder answered when
/// asked to give its lease up: `(sequence, released_at)`, after which it serves no read under
/// that lease; the request may then take the lease before it expires, from above
/// `released_at`.
pub(crate) fn decide(
    current: Option<Lease>,
    proposer: u64,
    ts: Timestamp,
    duration_ns: u64,
    released: Option<(u64, Timestamp)>,
) -> LeaseDecision {
    let expiration = Timestamp::new(ts.wall_time_ns.saturating_add(duration_ns), 0);
    match current {
        Some(l) if l.holder == proposer => LeaseDecision::Granted(Lease {
            expiration: l.expiration.max(expiration),
            ..l
        }),
        Some(l)
            if l.expiration >= ts
                && !released.is_some_and(|(seq, at)| seq == l.sequence && at < ts) =>
        {
            LeaseDecision::Rejected(l)
        }
        previous => LeaseDecision::Granted(Lease {
            holder: proposer,
            start: ts,
            expiration,
            sequence: previous.map_or(1, |l| l.sequence + 1),
        }),
    }
}

/// The keys a proposal may write: spans, or `None` for any key.
pub(crate) type Footprint = Option<Vec<Span>>;

fn touches(footprint: &Footprint, span: &Span) -> bool {
    footprint
        .as_ref()
        .is_none_or(|spans| spans.iter().any(|s| s.overlaps(span)))
}

/// The proposals in flight, by stamp (and a sequence number for equal stamps).
#[derive(Debug, Default)]
struct InFlightSet {
    next: u64,
    by_stamp: BTreeMap<(Timestamp, u64), Footprint>,
}

impl InFlightSet {
    /// The oldest stamp in flight among the proposals that may write into `span`.
    fn oldest_touching(&self, span: &Span) -> Option<Timestamp> {
        self.by_stamp
            .iter()
            .find(|(_, f)| touches(f, span))
            .map(|((ts, _), _)| *ts)
    }
}

/// The commands a leaseholder proposed and that have not applied yet, by proposal timestamp,
/// with the keys each may write: a read of a span at `ts` waits for those stamped at or below
/// `ts` that may write into the span, whose commit timestamps may be at or below it (a
/// proposal on other keys cannot change what the read returns). Stamping and registering
/// happen under one lock, as do a reader's clock forward and its look at the set, so a
/// proposal is either seen by the read or stamped above it.
#[derive(Debug)]
pub(crate) struct ProposalTracker {
    in_flight: Mutex<InFlightSet>,
    /// Bumped whenever a proposal leaves the set.
    done: watch::Sender<u64>,
}

impl Default for ProposalTracker {
    fn default() -> Self {
        ProposalTracker {
            in_flight: Mutex::new(InFlightSet::default()),
            done: watch::channel(0).0,
        }
    }
}

impl ProposalTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, InFlightSet> {
        // The set is only ever updated whole per call; a poisoned lock still holds it intact.
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stamps a proposal that may write `footprint` with `stamp()` and registers it,
    /// atomically with respect to [`ProposalTracker::oldest`]'s callers. The returned guard
    /// unregisters it when dropped.
    pub fn register<F: FnOnce() -> Timestamp>(
        &self,
        stamp: F,
        footprint: Footprint,
    ) -> InFlight<'_> {
        let mut set = self.lock();
        let ts = stamp();
        let key = (ts, set.next);
        set.next = set.next.wrapping_add(1);
        set.by_stamp.insert(key, footprint);
        InFlight { tracker: self, key }
    }

    /// Runs `forward` (the reader's clock update) and returns the oldest stamp still in flight
    /// of a proposal that may write into `span`, under the lock.
    pub fn oldest<T, F: FnOnce() -> T>(&self, forward: F, span: &Span) -> (T, Option<Timestamp>) {
        let set = self.lock();
        let t = forward();
        (t, set.oldest_touching(span))
    }

    /// Waits until no proposal stamped at or below `ts` that may write into `span` is in
    /// flight.
    pub async fn wait_below(&self, ts: Timestamp, span: &Span) {
        let mut done = self.done.subscribe();
        loop {
            if self
                .lock()
                .oldest_touching(span)
                .is_none_or(|oldest| oldest > ts)
            {
                return;
            }
            // The sender lives as long as `self`.
            if done.changed().await.is_err() {
                return;
            }
        }
    }
}

/// A registered proposal; unregisters on drop.
#[derive(Debug)]
pub(crate) struct InFlight<'a> {
    tracker: &'a ProposalTracker,
    key: (Timestamp, u64),
}

impl InFlight<'_> {
    /// The proposal's stamp.
    pub fn ts(&self) -> Timestamp {
        self.key.0
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.tracker.lock().by_stamp.remove(&self.key);
        self.tracker.done.send_modify(|v| *v = v.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    // issue 15 item 2: the lease rules applied identically on every replica: a holder extends,
    // another node is refused while the lease is unexpired at its request's commit timestamp
    // and takes it (next sequence, starting at that timestamp) once it expired.
    #[test]
    fn lease_decisions() {
        let first = match decide(None, 1, Timestamp::new(10 * S, 0), 3 * S, None) {
            LeaseDecision::Granted(l) => l,
            other => panic!("first lease refused: {other:?}"),
        };
        assert_eq!(
            first,
            Lease {
                holder: 1,
                start: Timestamp::new(10 * S, 0),
                expiration: Timestamp::new(13 * S, 0),
                sequence: 1
            }
        );
        let extended = match decide(Some(first), 1, Timestamp::new(12 * S, 0), 3 * S, None) {
            LeaseDecision::Granted(l) => l,
            other => panic!("extension refused: {other:?}"),
        };
        assert_eq!(extended.expiration, Timestamp::new(15 * S, 0));
        assert_eq!((extended.start, extended.sequence), (first.start, 1));
        assert_eq!(
            decide(Some(extended), 2, Timestamp::new(15 * S, 0), 3 * S, None),
            LeaseDecision::Rejected(extended),
            "the lease is in force up to and including its expiration"
        );
        match decide(Some(extended), 2, Timestamp::new(15 * S, 1), 3 * S, None) {
            LeaseDecision::Granted(l) => {
                assert_eq!((l.holder, l.sequence), (2, 2));
                assert_eq!(l.start, Timestamp::new(15 * S, 1));
            }
            other => panic!("expired lease not taken over: {other:?}"),
        }
        // Released early by its holder: taken over from above the release, and only for
        // the sequence released.
        let at = Timestamp::new(13 * S, 0);
        assert_eq!(
            decide(Some(extended), 2, at, 3 * S, Some((1, at))),
            LeaseDecision::Rejected(extended),
            "not at the release timestamp itself"
        );
        assert_eq!(
            decide(Some(extended), 2, at.next(), 3 * S, Some((0, at))),
            LeaseDecision::Rejected(extended),
            "a release of another sequence"
        );
        match decide(Some(extended), 2, at.next(), 3 * S, Some((1, at))) {
            LeaseDecision::Granted(l) => {
                assert_eq!((l.holder, l.sequence, l.start), (2, 2, at.next()));
            }
            other => panic!("released lease not taken over: {other:?}"),
        }
    }

    // issue 15 item 2: a reader waits exactly for the proposals stamped at or below its
    // timestamp, and is woken when they leave.
    #[tokio::test]
    async fn reads_wait_for_older_proposals_only() {
        let tracker = ProposalTracker::default();
        let all = Span::all();
        let older = tracker.register(|| Timestamp::new(5, 0), None);
        let newer = tracker.register(|| Timestamp::new(9, 0), None);
        assert_eq!(tracker.oldest(|| (), &all).1, Some(Timestamp::new(5, 0)));
        // Nothing at or below 4 is in flight.
        tracker.wait_below(Timestamp::new(4, 0), &all).await;
        let waiter = tracker.wait_below(Timestamp::new(7, 0), &all);
        tokio::pin!(waiter);
        assert!(
            futures::poll!(&mut waiter).is_pending(),
            "a read at 7 must wait for the proposal stamped 5"
        );
        drop(older);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("the read is woken once the older proposal applied");
        assert_eq!(newer.ts(), Timestamp::new(9, 0));
        drop(newer);
        assert_eq!(tracker.oldest(|| (), &all).1, None);
    }

    // issue 15 item 2 (kv95): a read waits only for proposals that may write into what it
    // reads. Goal: a read of key `b` at 7 is not held up by an in-flight write of key `a`
    // stamped 5, while a read of `a` (or of a span over it) waits, and so does every read for a
    // proposal that may write anywhere (`None`). Method: register the proposals, poll the
    // waits once.
    #[tokio::test]
    async fn reads_wait_only_for_proposals_on_their_keys() {
        let key = Span::key;
        let tracker = ProposalTracker::default();
        let on_a = tracker.register(|| Timestamp::new(5, 0), Some(vec![key(b"a")]));
        let at = Timestamp::new(7, 0);
        assert_eq!(tracker.oldest(|| (), &key(b"b")).1, None);
        tracker.wait_below(at, &key(b"b")).await;
        for span in [key(b"a"), Span::new(b"".to_vec(), b"z".to_vec())] {
            let waiter = tracker.wait_below(at, &span);
            tokio::pin!(waiter);
            assert!(
                futures::poll!(&mut waiter).is_pending(),
                "a read of {span:?} must wait for the write of a"
            );
        }
        let anywhere = tracker.register(|| Timestamp::new(6, 0), None);
        let b = key(b"b");
        let waiter = tracker.wait_below(at, &b);
        tokio::pin!(waiter);
        assert!(futures::poll!(&mut waiter).is_pending());
        drop(anywhere);
        drop(on_a);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken once the proposals applied");
    }
}

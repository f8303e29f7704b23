//! Rangefeeds across node failures and while idle: resuming from a checkpoint on another node
//! misses nothing, and checkpoints keep advancing with no writes.

mod common;

use common::TestCluster;
use hlc::Timestamp;
use kv::{KvClient, RangefeedEvent, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use storage::{Engine, ExportMode, MvccVersion, Span};
use tokio::sync::watch;

const FEED_PREFIX: &[u8] = b"resub/";

/// What one write of the writer task did: its key, its unique value, and its commit timestamp
/// or, if the commit failed, `None` (the outcome is then unknown: it may have been applied).
#[derive(Debug, Clone)]
struct Attempt {
    key: Vec<u8>,
    value: Vec<u8>,
    commit_ts: Option<Timestamp>,
}

/// Commits single-key writes through `node` until `stop` is set: most to the feed's span,
/// every fifth outside it. Publishes the number of committed writes on `progress`.
async fn write_until(
    node: Arc<Store>,
    stop: Arc<AtomicBool>,
    progress: watch::Sender<usize>,
) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    let mut committed = 0;
    let mut i = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let key = if i % 5 == 4 {
            format!("outside/{:02}", i % 7).into_bytes()
        } else {
            format!("resub/{:02}", i % 7).into_bytes()
        };
        let value = format!("v{i}").into_bytes();
        let outcome = match node.begin() {
            Ok(mut txn) => {
                txn.put(key.clone(), value.clone());
                txn.commit().await
            }
            Err(e) => Err(e),
        };
        if outcome.is_ok() {
            committed += 1;
            progress.send_replace(committed);
        }
        attempts.push(Attempt {
            key,
            value,
            commit_ts: outcome.ok(),
        });
        i += 1;
    }
    attempts
}

/// What one subscription delivered, checked as it arrives: values never go back in time and
/// never arrive at or below a checkpoint the same subscription already sent.
#[derive(Debug, Default)]
struct Received {
    values: Vec<MvccVersion>,
    last_checkpoint: Option<Timestamp>,
}

impl Received {
    fn take(&mut self, ev: RangefeedEvent, span: &Span, name: &str) {
        match ev {
            RangefeedEvent::Value(v) => {
                assert!(
                    span.contains(&v.key),
                    "{name}: value outside the span {v:?}"
                );
                if let Some(prev) = self.values.last() {
                    assert!(
                        prev.ts <= v.ts,
                        "{name}: value at {} after one at {}",
                        v.ts,
                        prev.ts
                    );
                }
                if let Some(c) = self.last_checkpoint {
                    assert!(v.ts > c, "{name}: value at {} after checkpoint {c}", v.ts);
                }
                self.values.push(v);
            }
            RangefeedEvent::Checkpoint { resolved_ts, .. } => {
                if let Some(c) = self.last_checkpoint {
                    assert!(
                        resolved_ts >= c,
                        "{name}: checkpoint {resolved_ts} after {c}"
                    );
                }
                self.last_checkpoint = Some(resolved_ts);
            }
        }
    }

    fn values_above(&self, ts: Timestamp) -> usize {
        self.values.iter().filter(|v| v.ts > ts).count()
    }
}

// Goal: after the node serving a rangefeed is killed, resubscribing on another node from the
// last checkpoint received misses nothing. Method: subscribe on n3 while a writer commits a
// stream of uniquely valued writes through n1; stop n3 mid-stream; resubscribe through the KV
// client on n2 from the last checkpoint; keep writing, stop, then wait for a checkpoint at or
// above every write. The union of values from both subscriptions, deduplicated by (key, ts),
// must equal n2's stored history of the span and contain every committed write with its
// value; within each subscription values arrive in timestamp order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribe_on_another_node_from_the_last_checkpoint_misses_nothing() {
    let mut cluster = TestCluster::must_start(3).await;
    let span = Span::prefix(FEED_PREFIX);
    let from_ts = cluster.node(1).now();
    let mut feed_a = cluster
        .node(3)
        .rangefeed(span.clone(), from_ts)
        .expect("rangefeed on n3");

    let stop = Arc::new(AtomicBool::new(false));
    let (progress_tx, mut progress) = watch::channel(0usize);
    let writer = tokio::spawn(write_until(cluster.node(1), stop.clone(), progress_tx));

    // Subscription A on n3: until it delivered some values and a checkpoint above one.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut a = Received::default();
    while a.values.len() < 30 || a.last_checkpoint <= a.values.first().map(|v| v.ts) {
        let ev = tokio::time::timeout_at(deadline.into(), feed_a.recv())
            .await
            .expect("n3's feed delivers before the deadline")
            .expect("n3's feed open")
            .expect("n3's feed without error");
        a.take(ev, &span, "n3");
    }
    // Kill n3 under the feed while writes continue; whatever it had already handed over still
    // counts, the rest is dropped with the subscription.
    cluster.stop(3).await;
    while let Ok(ev) = feed_a.try_recv() {
        match ev {
            Ok(ev) => a.take(ev, &span, "n3"),
            Err(_) => break,
        }
    }
    drop(feed_a);
    let resume_ts = a.last_checkpoint.expect("a checkpoint from n3");

    // Subscription B on n2, through the KV client, from the last checkpoint.
    let client = KvClient::connect(&cluster.nodes[1].as_ref().expect("n2").addr, None)
        .await
        .expect("connect to n2");
    let mut feed_b = client
        .rangefeed(&span, resume_ts)
        .await
        .expect("rangefeed on n2");
    let mut b = Received::default();
    // Keep writing until n2's feed delivered writes above the resume point.
    let written_at_switch = *progress.borrow();
    while b.values_above(resume_ts) < 30 {
        let ev = tokio::time::timeout_at(deadline.into(), feed_b.next())
            .await
            .expect("n2's feed delivers before the deadline")
            .expect("n2's feed open")
            .expect("n2's feed without error");
        b.take(ev, &span, "n2");
    }
    tokio::time::timeout_at(
        deadline.into(),
        progress.wait_for(|n| *n > written_at_switch + 30),
    )
    .await
    .expect("writes continue after the switch")
    .expect("writer alive");
    stop.store(true, Ordering::SeqCst);
    let attempts = writer.await.expect("writer task");

    // Wait until n2's feed resolved every write and every value n3 handed over.
    let last_write_ts = attempts
        .iter()
        .filter_map(|w| w.commit_ts)
        .max()
        .expect("committed writes");
    let target = a
        .values
        .iter()
        .map(|v| v.ts)
        .fold(last_write_ts, Timestamp::max);
    while b.last_checkpoint.is_none_or(|c| c < target) {
        let ev = tokio::time::timeout_at(deadline.into(), feed_b.next())
            .await
            .expect("n2's feed resolves the last write before the deadline")
            .expect("n2's feed open")
            .expect("n2's feed without error");
        b.take(ev, &span, "n2");
    }
    let resolved_ts = b.last_checkpoint.expect("checkpoint");
    println!(
        "resubscribe: {} attempts, n3 delivered {} values up to checkpoint {resume_ts}, n2 \
         delivered {} values up to {resolved_ts}",
        attempts.len(),
        a.values.len(),
        b.values.len()
    );

    // The union of both subscriptions, deduplicated; a duplicate must agree on the value.
    let mut received: BTreeMap<(Vec<u8>, Timestamp), Option<Vec<u8>>> = BTreeMap::new();
    for v in a.values.iter().chain(&b.values) {
        if let Some(prev) = received.insert((v.key.clone(), v.ts), v.value.clone()) {
            assert_eq!(prev, v.value, "duplicate of {v:?} with another value");
        }
    }
    // Exactly n2's history of the span in (from_ts, resolved_ts].
    let stored: BTreeMap<(Vec<u8>, Timestamp), Option<Vec<u8>>> = cluster
        .node(2)
        .engine()
        .export(&span, from_ts, resolved_ts, ExportMode::AllRevisions)
        .expect("export")
        .map(|v| {
            let v = v.expect("exported version");
            ((v.key, v.ts), v.value)
        })
        .collect();
    assert_eq!(
        received.len(),
        stored.len(),
        "versions received vs stored on n2"
    );
    assert!(
        received == stored,
        "received versions differ from n2's history"
    );
    // Every committed write in the span arrived with its value; anything else received is a
    // write whose commit outcome the writer did not learn (values are unique per attempt).
    let by_value: BTreeMap<&[u8], &Attempt> =
        attempts.iter().map(|w| (w.value.as_slice(), w)).collect();
    for ((key, ts), value) in &received {
        let value = value.as_deref().expect("the writer never deletes");
        let w = by_value
            .get(value)
            .unwrap_or_else(|| panic!("received a value nobody wrote: {value:?}"));
        assert_eq!(&w.key, key, "value {value:?} under another key");
        assert!(
            w.commit_ts.is_none_or(|c| c == *ts),
            "value {value:?} at {ts}, committed at {:?}",
            w.commit_ts
        );
    }
    let mut committed_in_span = 0;
    for w in &attempts {
        let Some(ts) = w.commit_ts else { continue };
        if !span.contains(&w.key) {
            continue;
        }
        committed_in_span += 1;
        assert_eq!(
            received.get(&(w.key.clone(), ts)),
            Some(&Some(w.value.clone())),
            "committed write {w:?} received"
        );
    }
    let unknown_outcome = attempts.iter().filter(|w| w.commit_ts.is_none()).count();
    assert!(
        received.len() <= committed_in_span + unknown_outcome,
        "{} values received for {committed_in_span} committed writes and {unknown_outcome} \
         of unknown outcome",
        received.len()
    );
    // The switch happened mid-stream: committed writes on both sides of the resume point.
    assert!(
        attempts
            .iter()
            .any(|w| w.commit_ts.is_some_and(|ts| ts <= resume_ts) && span.contains(&w.key)),
        "writes before the resume point"
    );
    assert!(
        attempts
            .iter()
            .any(|w| w.commit_ts.is_some_and(|ts| ts > resume_ts) && span.contains(&w.key)),
        "writes after the resume point"
    );
}

// Goal: with no writes, a rangefeed's checkpoints keep advancing (the leader closes idle
// time). Method: subscribe on a follower to an untouched span and poll, with a deadline, for
// at least 5 checkpoints with strictly increasing resolved timestamps (a tick may repeat the
// last one), never going back, and no values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_advance_while_idle() {
    let cluster = TestCluster::must_start(3).await;
    let leader = cluster.leader().expect("a leader");
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let node = cluster.node(follower);
    let from_ts = node.now();
    let started = Instant::now();
    let mut feed = node
        .rangefeed(Span::prefix(b"idle/"), from_ts)
        .expect("rangefeed");
    let deadline = started + Duration::from_secs(10);
    let mut checkpoints: Vec<Timestamp> = Vec::new();
    let mut distinct = 0;
    while distinct < 5 {
        let ev = tokio::time::timeout_at(deadline.into(), feed.recv())
            .await
            .expect("5 advancing checkpoints before the deadline")
            .expect("feed open")
            .expect("no error");
        let RangefeedEvent::Checkpoint { resolved_ts, .. } = ev else {
            panic!("a value on an idle span: {ev:?}");
        };
        match checkpoints.last() {
            Some(prev) => assert!(
                resolved_ts >= *prev,
                "checkpoint {resolved_ts} after {prev}"
            ),
            None => assert!(resolved_ts >= from_ts, "first checkpoint below the start"),
        }
        if checkpoints.last() != Some(&resolved_ts) {
            distinct += 1;
        }
        checkpoints.push(resolved_ts);
    }
    let last = *checkpoints.last().expect("checkpoints");
    println!(
        "idle: {} checkpoints ({distinct} distinct) in {:?}",
        checkpoints.len(),
        started.elapsed()
    );
    assert!(last > from_ts, "resolved time moved past the start");
}

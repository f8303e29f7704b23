//! In-process clusters of real KV nodes talking tonic over 127.0.0.1 with OS-assigned ports:
//! replication, transactions, leader failover, restart catch-up and rangefeeds.

mod common;

use common::{TestCluster, config, must_put, poll};
use hlc::Timestamp;
use kv::KvConfig;
use kv::{KvError, RangefeedEvent};
use std::time::{Duration, Instant};
use storage::{Engine, Span};

// Goal: a write through a follower commits, and every replica reads it at its commit time;
// replicas converge to equal fingerprints; the closed timestamp advances while idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_replicate_to_every_node() {
    let cluster = TestCluster::must_start(3).await;
    let leader = cluster.leader().expect("a leader");
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let ts = must_put(&cluster.node(follower), "greeting", "hello").await;
    for id in 1..=3 {
        let got = cluster.node(id).get(b"greeting", ts).await.expect("get");
        assert_eq!(got.as_deref(), Some(&b"hello"[..]), "node {id}");
        assert_eq!(
            cluster
                .node(id)
                .get(b"greeting", ts.prev())
                .await
                .expect("get"),
            None
        );
    }
    let closed = cluster.node(3).closed_ts();
    poll(
        "idle closed timestamp to advance",
        Duration::from_secs(5),
        || cluster.node(3).closed_ts() > closed,
    )
    .await;
    let fps: Vec<u64> = (1..=3)
        .map(|id| {
            cluster
                .node(id)
                .engine()
                .fingerprint(&Span::all(), Timestamp::ZERO, ts)
                .expect("fp")
        })
        .collect();
    assert!(
        fps.windows(2).all(|w| w[0] == w[1]),
        "fingerprints differ: {fps:?}"
    );
}

// Goal: two transactions that read-modify-write the same key: exactly one commits and the
// other gets the retryable error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_transactions_one_commits() {
    let cluster = TestCluster::must_start(3).await;
    must_put(&cluster.node(1), "counter", "0").await;
    let mut a = cluster.node(2).begin().expect("begin");
    let mut b = cluster.node(3).begin().expect("begin");
    let va = a.get(b"counter").await.expect("read");
    let vb = b.get(b"counter").await.expect("read");
    assert_eq!(va, vb);
    a.put("counter", "1");
    b.put("counter", "2");
    let ra = a.commit().await;
    let rb = b.commit().await;
    assert!(ra.is_ok(), "first commit: {ra:?}");
    assert!(
        matches!(rb, Err(KvError::TxnRetry { .. })),
        "second commit: {rb:?}"
    );
    let ts = ra.expect("committed");
    assert_eq!(
        cluster
            .node(1)
            .get(b"counter", ts)
            .await
            .expect("get")
            .as_deref(),
        Some(&b"1"[..])
    );
}

// Goal: after the leader stops, a new leader is elected and writes commit again within 5 s;
// the stopped node restarts from its store, catches up, and matches the others' fingerprint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_and_restart_catch_up() {
    let mut cluster = TestCluster::must_start(3).await;
    must_put(&cluster.node(1), "before", "1").await;
    let old_leader = cluster.leader().expect("leader");
    let addr = cluster.stop(old_leader).await;
    let survivor = (1..=3).find(|i| *i != old_leader).expect("survivor");
    let start = Instant::now();
    let ts = loop {
        let mut txn = cluster.node(survivor).begin().expect("begin");
        txn.put("after", "2");
        match txn.commit().await {
            Ok(ts) => break ts,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(5),
                "no commit within 5 s: {e}"
            ),
        }
    };
    for i in 0..50 {
        must_put(&cluster.node(survivor), &format!("more{i}"), "x").await;
    }
    let last = must_put(&cluster.node(survivor), "last", "y").await;
    assert!(ts <= last);
    cluster.restart(old_leader, &addr).await;
    let restarted = cluster.node(old_leader);
    restarted
        .ensure_closed(&Span::all(), last)
        .await
        .expect("restarted node catches up");
    let fp = |id: u64| {
        cluster
            .node(id)
            .engine()
            .fingerprint(&Span::all(), Timestamp::ZERO, last)
            .expect("fp")
    };
    assert_eq!(fp(old_leader), fp(survivor));
    assert_eq!(
        restarted.get(b"last", last).await.expect("get").as_deref(),
        Some(&b"y"[..])
    );
}

// Goal: a rangefeed from a timestamp delivers every later version in the span exactly once and
// in timestamp order, and checkpoints keep advancing while idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rangefeed_delivers_every_version_in_order() {
    let cluster = TestCluster::must_start(3).await;
    let before = must_put(&cluster.node(1), "feed/0", "old").await;
    // Some history before subscribing (catch-up) and some after (tail).
    let mut expected = Vec::new();
    for i in 0..10 {
        let ts = must_put(
            &cluster.node(1),
            &format!("feed/{}", i % 4),
            &format!("v{i}"),
        )
        .await;
        expected.push((format!("feed/{}", i % 4), ts));
    }
    must_put(&cluster.node(1), "other", "x").await;
    let mut feed = cluster
        .node(3)
        .rangefeed(Span::prefix(b"feed/"), before)
        .expect("rangefeed");
    for i in 10..20 {
        let ts = must_put(
            &cluster.node(2),
            &format!("feed/{}", i % 4),
            &format!("v{i}"),
        )
        .await;
        expected.push((format!("feed/{}", i % 4), ts));
    }
    let last_ts = expected.last().expect("writes").1;
    let mut got = Vec::new();
    let mut checkpoints = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while checkpoints.last().is_none_or(|c: &Timestamp| *c < last_ts) || checkpoints.len() < 4 {
        let ev = tokio::time::timeout_at(deadline.into(), feed.recv())
            .await
            .expect("events before the deadline")
            .expect("feed open")
            .expect("no error");
        match ev {
            RangefeedEvent::Value(v) => got.push((String::from_utf8(v.key).expect("utf8"), v.ts)),
            RangefeedEvent::Checkpoint { resolved_ts, .. } => checkpoints.push(resolved_ts),
        }
    }
    assert_eq!(got, expected, "every version once, in timestamp order");
    assert!(
        checkpoints.windows(2).all(|w| w[0] <= w[1]),
        "checkpoints never go back"
    );
    assert!(checkpoints.last().expect("checkpoints") >= &last_ts);
}

// Goal: a node that was down while the log moved past a snapshot and was purged catches up by
// installing an MVCC snapshot, and then matches the others' fingerprint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_node_catches_up_from_a_snapshot() {
    let mut cluster = TestCluster::must_start_with(
        3,
        KvConfig {
            raft_log_truncation_max_entries: 40,
            raft_log_truncation_interval: Duration::from_millis(100),
            ..config()
        },
    )
    .await;
    must_put(&cluster.node(1), "before", "x").await;
    let addr = cluster.stop(3).await;
    let mut last = Timestamp::ZERO;
    for i in 0..300 {
        last = must_put(
            &cluster.node(1),
            &format!("key{i:04}"),
            &format!("value{i}"),
        )
        .await;
    }
    cluster.restart(3, &addr).await;
    let restarted = cluster.node(3);
    restarted
        .ensure_closed(&Span::all(), last)
        .await
        .expect("catches up");
    assert!(
        restarted.metrics().snapshots_installed.get() >= 1,
        "the restarted node installed a snapshot"
    );
    let fp = |id: u64| {
        cluster
            .node(id)
            .engine()
            .fingerprint(&Span::all(), Timestamp::ZERO, last)
            .expect("fp")
    };
    assert_eq!(fp(3), fp(1));
    assert_eq!(
        restarted
            .get(b"key0299", last)
            .await
            .expect("get")
            .as_deref(),
        Some(&b"value299"[..])
    );
}

// Goal: joining nodes become voters up to five; the sixth joins as a learner and still
// receives every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_voters_then_learners() {
    let cluster = TestCluster::must_start(6).await;
    let status = cluster.node(1).status();
    assert_eq!(status.voters.len(), 5, "{status:?}");
    assert_eq!(status.learners.len(), 1, "{status:?}");
    let ts = must_put(&cluster.node(2), "k", "v").await;
    let learner = status.learners[0].0;
    assert_eq!(
        cluster
            .node(learner)
            .get(b"k", ts)
            .await
            .expect("get")
            .as_deref(),
        Some(&b"v"[..])
    );
}

// Goal: a rangefeed consumer that stops reading gets a bounded buffer and then an explicit
// overflow error telling it to resubscribe; what it did receive is a gap-free prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_rangefeed_consumer_gets_an_overflow_error() {
    let cluster = TestCluster::must_start_with(
        3,
        KvConfig {
            rangefeed_buffer_entries: 16,
            ..config()
        },
    )
    .await;
    let start = must_put(&cluster.node(1), "slow/start", "x").await;
    let mut feed = cluster
        .node(2)
        .rangefeed(Span::prefix(b"slow/"), start)
        .expect("rangefeed");
    // Write far more than the feed's buffers hold while nobody reads.
    let mut written = Vec::new();
    for i in 0..1500 {
        written.push(must_put(&cluster.node(1), &format!("slow/{i:05}"), "v").await);
    }
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let error = loop {
        let ev = tokio::time::timeout_at(deadline.into(), feed.recv())
            .await
            .expect("an event or the error before the deadline")
            .expect("the feed reports an error before it ends");
        match ev {
            Ok(RangefeedEvent::Value(v)) => received.push(v.ts),
            Ok(RangefeedEvent::Checkpoint { .. }) => {}
            Err(e) => break e,
        }
    };
    assert!(
        matches!(error, KvError::RangefeedOverflow { .. }),
        "unexpected error {error}"
    );
    assert!(error.to_string().contains("resubscribe"));
    assert!(
        received.len() < written.len(),
        "the feed overflowed before the end"
    );
    assert_eq!(received, written[..received.len()], "a gap-free prefix");
}

// issue 14 item 8: a single Raft command had no size cap, and one too large for a Raft
// message stopped the cluster. Goal: a command over kv.raft.command.max_size is refused
// with the typed error on every path (proposed on the leader, checked on a gateway before
// forwarding, refused by the leader after a gateway with a higher limit forwarded it, and
// committed by a remote client), nothing of it is written, and the cluster keeps committing.
// Method: lower the limit to its floor (64 KiB), commit ~100 KiB transactions each way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_commands_are_refused_and_the_cluster_keeps_working() {
    let cluster = TestCluster::must_start(3).await;
    let leader = cluster.leader().expect("a leader");
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    for id in 1..=3 {
        assert_eq!(cluster.node(id).set_command_bytes_max(1), 64 << 10);
    }
    let big = vec![b'x'; 100 << 10];
    let too_large = |r: Result<Timestamp, KvError>, path: &str| match r {
        Err(KvError::CommandTooLarge {
            command,
            bytes,
            bytes_max,
        }) => {
            assert_eq!(command, "txn", "{path}");
            assert!(bytes > 100 << 10, "{path}: {bytes}");
            assert_eq!(bytes_max, 64 << 10, "{path}");
        }
        other => panic!("{path}: expected CommandTooLarge, got {other:?}"),
    };
    for (id, path) in [(leader, "on the leader"), (follower, "through a follower")] {
        let mut txn = cluster.node(id).begin().expect("begin");
        txn.put("big", big.clone());
        too_large(txn.commit().await, path);
    }
    // The follower would forward it; the leader refuses it and says why.
    cluster.node(follower).set_command_bytes_max(1 << 20);
    let mut txn = cluster.node(follower).begin().expect("begin");
    txn.put("big", big.clone());
    too_large(txn.commit().await, "refused by the leader");
    let follower_addr = cluster.nodes[(follower - 1) as usize]
        .as_ref()
        .expect("follower is running")
        .addr
        .clone();
    let client = kv::KvClient::connect(&follower_addr, None)
        .await
        .expect("connect");
    cluster.node(follower).set_command_bytes_max(1);
    let mut txn = client.begin().await.expect("begin");
    txn.put("big", big.clone());
    too_large(txn.commit().await, "from a remote client");
    let refused: u64 = (1..=3)
        .map(|id| cluster.node(id).metrics().commands_too_large.get())
        .sum();
    assert!(refused >= 4, "kv_commands_too_large_total: {refused}");
    let ts = must_put(&cluster.node(follower), "after", "ok").await;
    for id in 1..=3 {
        let node = cluster.node(id);
        assert_eq!(node.get(b"big", ts).await.expect("get"), None);
        assert_eq!(
            node.get(b"after", ts).await.expect("get").as_deref(),
            Some(&b"ok"[..])
        );
    }
}

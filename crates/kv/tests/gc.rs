//! MVCC garbage collection with protected timestamps (issue 15 item 5), on an in-process
//! three-node cluster (real nodes talking tonic over 127.0.0.1): the GC queue, the replicated
//! GC threshold and the replicated protected-timestamp records.

mod common;

use common::{TestCluster, poll};
use hlc::Timestamp;
use kv::{GcPolicy, GcSpan, KvError, Store, protectedts};
use std::sync::Arc;
use std::time::Duration;
use storage::{Engine, ExportMode, MvccVersion, Span};

/// Writes `key = value` in a transaction; returns the commit timestamp.
async fn must_write(node: &Arc<Store>, key: &str, value: Option<&str>) -> Timestamp {
    let mut txn = node.begin().expect("begin");
    match value {
        Some(v) => txn.put(key, v),
        None => txn.delete(key),
    }
    txn.commit().await.expect("commit")
}

/// Every version of `span` on `node`'s replica, newest first per key.
fn must_versions(node: &Store, span: &Span) -> Vec<MvccVersion> {
    node.engine()
        .export(
            span,
            Timestamp::ZERO,
            Timestamp::MAX,
            ExportMode::AllRevisions,
        )
        .expect("export")
        .collect::<Result<_, _>>()
        .expect("versions")
}

/// Waits until every replica holds exactly `expected` versions of `span`.
async fn must_converge(cluster: &TestCluster, span: &Span, expected: &[MvccVersion], what: &str) {
    poll(what, Duration::from_secs(30), || {
        (1..=3).all(|id| must_versions(&cluster.node(id), span) == expected)
    })
    .await;
}

// issue 15 item 5: MVCC GC with protected timestamps. Goal: the GC queue removes the versions
// older than gc.ttl that no read at or above its threshold can see (shadowed versions, a
// deleted key entirely) and keeps each key's newest version; on a span under a protected
// timestamp it keeps every version newer than the protection (and still collects below it);
// once the protection is released that history goes too; every replica removes exactly the
// same versions; reads (gets, scans, fingerprints, rangefeed catch-ups) and new protections
// below the recorded GC threshold fail with a typed error, also after a restart. Method: three versions per key (the last of one key a
// tombstone) on two spans, a protected timestamp between the second and third version on
// the second span, a policy with a 1 s TTL and a 50 ms interval; poll every replica's
// versions against the exact expected set (computed from what was written), then read below
// the threshold, protect below it, release the protection, and restart a follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_old_history_and_keeps_protected_history() {
    let mut cluster = TestCluster::must_start(3).await;
    let leader = cluster.node(1);
    let plain = Span::new("a/", "a0");
    let protected = Span::new("b/", "b0");
    let mut written: Vec<MvccVersion> = Vec::new();
    let mut protect_at = Timestamp::ZERO;
    for rev in 0..4 {
        for k in 0..4 {
            for prefix in ["a/", "b/"] {
                let key = format!("{prefix}k{k}");
                let value = (!(prefix == "a/" && k == 0 && rev == 3)).then(|| format!("v{rev}"));
                let ts = must_write(&leader, &key, value.as_deref()).await;
                written.push(MvccVersion {
                    key: key.into_bytes(),
                    ts,
                    value: value.map(String::into_bytes),
                });
            }
        }
        if rev == 1 {
            protect_at = leader.now();
        }
    }
    let first_write = written.iter().map(|v| v.ts).min().expect("writes");
    let mut txn = leader.begin().expect("begin");
    let pts_id = protectedts::protect(&mut txn, &protected, protect_at, 7)
        .await
        .expect("protect");
    txn.commit().await.expect("commit the protection");

    // What GC must leave: on `plain` each key's newest version (the deleted key nothing); on
    // `protected` every version newer than `protect_at` and the newest one at or below it.
    let newest_per_key = |span: &Span, keep_above: Timestamp| -> Vec<MvccVersion> {
        let mut out: Vec<MvccVersion> = Vec::new();
        let mut in_span: Vec<&MvccVersion> =
            written.iter().filter(|v| span.contains(&v.key)).collect();
        in_span.sort_by(|a, b| a.key.cmp(&b.key).then(b.ts.cmp(&a.ts)));
        for v in in_span {
            let below_seen = out.iter().any(|o| o.key == v.key && o.ts <= keep_above);
            if v.ts > keep_above || !below_seen {
                out.push(v.clone());
            }
        }
        // A key whose newest version at or below the threshold is a tombstone keeps nothing
        // at or below it.
        out.retain(|v| v.ts > keep_above || v.value.is_some());
        out
    };
    let expected_plain = newest_per_key(&plain, Timestamp::MAX.prev());
    let expected_protected = newest_per_key(&protected, protect_at);
    assert_eq!(expected_plain.len(), 3, "three live keys, one version each");
    assert_eq!(
        expected_protected.len(),
        4 * 3,
        "two protected versions and one below"
    );

    let ttl = Duration::from_secs(1);
    for id in 1..=3 {
        cluster.node(id).set_gc_policy(GcPolicy {
            interval: Duration::from_millis(50),
            spans: vec![
                GcSpan {
                    span: plain.clone(),
                    ttl,
                },
                GcSpan {
                    span: protected.clone(),
                    ttl,
                },
            ],
        });
    }
    must_converge(&cluster, &plain, &expected_plain, "gc of the plain span").await;
    must_converge(
        &cluster,
        &protected,
        &expected_protected,
        "gc of the protected span down to its protection",
    )
    .await;
    for id in 1..=3 {
        let n = cluster.node(id);
        assert!(
            n.metrics().gc_versions_removed.get() > 0,
            "n{id} counts removals"
        );
        assert!(n.metrics().gc_bytes_removed.get() > 0, "n{id} counts bytes");
        let threshold = n.gc_threshold(&plain).expect("a recorded threshold");
        assert!(threshold > first_write, "n{id}: {threshold}");
        assert!(n.gc_threshold(&protected).expect("recorded") <= protect_at);
    }
    let leader_now = cluster.node(cluster.leader().expect("a leader"));
    assert!(leader_now.metrics().gc_runs.get() > 0);

    // Reads below the threshold fail; at the present they succeed.
    let key = b"a/k1".to_vec();
    match leader.get(&key, first_write).await {
        Err(KvError::BelowGcThreshold { threshold, .. }) => assert!(threshold > first_write),
        other => panic!("a read below the GC threshold returned {other:?}"),
    }
    assert!(matches!(
        leader.scan(&plain, first_write, 100).await,
        Err(KvError::BelowGcThreshold { .. })
    ));
    assert_eq!(
        leader.get(&key, leader.now()).await.expect("read now"),
        Some(b"v3".to_vec())
    );
    // So do a fingerprint as of a time below it and a rangefeed catching up from there.
    assert!(matches!(
        leader
            .fingerprint(&plain, Timestamp::ZERO, first_write)
            .await,
        Err(KvError::BelowGcThreshold { .. })
    ));
    let mut feed = leader
        .rangefeed(plain.clone(), first_write)
        .expect("rangefeed");
    match tokio::time::timeout(Duration::from_secs(10), feed.recv()).await {
        Ok(Some(Err(KvError::BelowGcThreshold { .. }))) => {}
        other => panic!("a rangefeed from below the GC threshold gave {other:?}"),
    }
    // A protection below the threshold is refused: that history is gone.
    let mut txn = leader.begin().expect("begin");
    assert!(matches!(
        protectedts::protect(&mut txn, &plain, first_write, 8).await,
        Err(KvError::BelowGcThreshold { .. })
    ));
    drop(txn);

    // Released, the protection no longer holds the history back.
    let mut txn = leader.begin().expect("begin");
    protectedts::release(&mut txn, pts_id);
    txn.commit().await.expect("release");
    let expected_released = newest_per_key(&protected, Timestamp::MAX.prev());
    must_converge(
        &cluster,
        &protected,
        &expected_released,
        "gc of the released span",
    )
    .await;

    // The threshold is replicated state: a restarted follower still refuses old reads.
    let follower = (1..=3)
        .find(|id| cluster.leader() != Some(*id))
        .expect("a follower");
    let addr = cluster.stop(follower).await;
    cluster.restart(follower, &addr).await;
    let n = cluster.node(follower);
    assert!(
        matches!(
            n.check_gc_threshold(&plain, first_write),
            Err(KvError::BelowGcThreshold { .. })
        ),
        "the restarted follower knows the threshold"
    );
}

// issue 15 item 5: a GC of a large span must not be one giant Raft entry. Goal: a span with
// more garbage than one GC entry may remove (10 000 versions) is collected completely in one
// run of the queue, entry after entry, each resuming where the previous one stopped, on every
// replica. Method: 6 000 keys written three times (12 000 shadowed versions), a policy with a
// 1 s TTL and a one-hour interval (the queue runs once when the policy is set, and not again
// within the test), then poll until every replica holds exactly one version per key and
// counted 12 000 removals; without the resume loop the first entry would leave 2 000.
// The policy is set only once the writes are older than the TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_of_a_large_span_runs_in_bounded_entries() {
    const KEYS: usize = 6_000;
    let cluster = TestCluster::must_start(3).await;
    let node = cluster.node(1);
    let span = Span::new("c/", "c0");
    for rev in 0..3 {
        let mut txn = node.begin().expect("begin");
        for k in 0..KEYS {
            txn.put(format!("c/{k:05}"), format!("v{rev}"));
        }
        txn.commit().await.expect("commit");
    }
    assert_eq!(must_versions(&node, &span).len(), 3 * KEYS);
    // Set once the writes are older than the TTL: the queue runs when the policy is set, and
    // not again within the test.
    let written = node.now();
    poll(
        "the writes to age past the ttl",
        Duration::from_secs(10),
        || node.clock().physical_now_ns() > written.wall_time_ns + 1_500_000_000,
    )
    .await;
    for id in 1..=3 {
        cluster.node(id).set_gc_policy(GcPolicy {
            interval: Duration::from_secs(3600),
            spans: vec![GcSpan {
                span: span.clone(),
                ttl: Duration::from_secs(1),
            }],
        });
    }
    poll(
        "one version per key on every replica",
        Duration::from_secs(60),
        || {
            (1..=3).all(|id| {
                let n = cluster.node(id);
                n.engine().version_count(&span).expect("count") == KEYS as u64
                    && n.metrics().gc_versions_removed.get() == 2 * KEYS as u64
            })
        },
    )
    .await;
}

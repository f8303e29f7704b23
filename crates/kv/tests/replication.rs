//! The KV primitives of physical cluster replication, on in-process three-node clusters (real
//! nodes talking tonic over 127.0.0.1): ingesting versions with their original timestamps,
//! reverting a span to a timestamp, and prefix-stripped fingerprints, each through a follower
//! so the leader forwarding path is exercised.

mod common;

use common::{TestCluster, config, must_put, poll};
use hlc::Timestamp;
use kv::{Applied, KvConfig, KvError, Store};
use std::sync::Arc;
use std::time::Duration;
use storage::{Engine, MemEngine, MvccVersion, Span};

fn follower_of(cluster: &TestCluster) -> u64 {
    let leader = cluster.leader().expect("a leader");
    (1..=3).find(|i| *i != leader).expect("a follower")
}

/// A history of `keys` keys under `prefix`, three versions each (the last of key 0 a
/// tombstone), at wall times from `base_ns`, spaced by microseconds.
fn history(prefix: &[u8], keys: u64, base_ns: u64) -> Vec<MvccVersion> {
    let mut out = Vec::new();
    for k in 0..keys {
        let key = [prefix, format!("k{k:03}").as_bytes()].concat();
        for rev in 0..3u64 {
            let ts = Timestamp::new(base_ns + (k * 3 + rev) * 1_000, 0);
            if k == 0 && rev == 2 {
                out.push(MvccVersion::tombstone(key.clone(), ts));
            } else {
                out.push(MvccVersion::put(key.clone(), ts, format!("v{k}-{rev}")));
            }
        }
    }
    out
}

/// The fingerprint the versions have on their own: the oracle for what every replica holds.
fn must_expected_fingerprint(versions: &[MvccVersion], span: &Span) -> u64 {
    let e = MemEngine::new();
    e.ingest(versions, storage::Durability::NoSync)
        .expect("ingest into the oracle");
    e.fingerprint(span, Timestamp::ZERO, Timestamp::MAX)
        .expect("oracle fingerprint")
}

/// Every node's fingerprint of `span`, `strip` bytes stripped, over all history applied now.
async fn must_fingerprints(cluster: &TestCluster, span: &Span, strip: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for id in 1..=3 {
        out.push(
            cluster
                .node(id)
                .fingerprint_stripped(span, strip, Timestamp::ZERO, Timestamp::MAX)
                .await
                .expect("fingerprint"),
        );
    }
    out
}

/// An hour before `node`'s clock, in nanoseconds.
fn an_hour_ago_ns(node: &Arc<Store>) -> u64 {
    node.now().wall_time_ns - 3_600_000_000_000
}

// Goal: an ingest through a follower writes versions with their original (old) timestamps on
// all three replicas; re-ingesting is a no-op; a conflicting ingest is rejected with an error,
// writes nothing, and leaves the cluster working; the applied broadcast carries the ingest
// entry without versions. Method: compare every replica's fingerprint with one computed from
// the versions alone, and read historical values back on each node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_through_a_follower_lands_on_every_replica() {
    let cluster = TestCluster::must_start(3).await;
    let follower = cluster.node(follower_of(&cluster));
    let base = an_hour_ago_ns(&follower);
    let versions = history(b"/ingest/", 20, base);
    let span = Span::prefix(b"/ingest/");
    let expected = must_expected_fingerprint(&versions, &span);
    let mut applied = follower.subscribe_applied();

    let ts = follower.ingest(versions.clone()).await.expect("ingest");
    let newest = versions.iter().map(|v| v.ts).max().expect("versions");
    assert!(ts > newest, "entry {ts} above the newest version {newest}");
    assert_eq!(must_fingerprints(&cluster, &span, 0).await, [expected; 3]);
    for id in 1..=3 {
        let node = cluster.node(id);
        let k1 = b"/ingest/k001";
        let at = |n: u64| Timestamp::new(base + n * 1_000, 0);
        assert_eq!(
            node.get(k1, at(3)).await.expect("get"),
            Some(b"v1-0".to_vec())
        );
        assert_eq!(node.get(k1, at(3).prev()).await.expect("get"), None);
        assert_eq!(
            node.get(k1, at(5)).await.expect("get"),
            Some(b"v1-2".to_vec())
        );
        assert_eq!(
            node.get(b"/ingest/k000", at(2)).await.expect("get"),
            None,
            "tombstone on node {id}"
        );
    }
    // The follower's broadcast saw the entry, at its timestamp, without the old versions.
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), applied.recv())
            .await
            .expect("an applied entry within 5 s")
            .expect("broadcast open");
        if let Applied::Entry { ts: at, versions } = event.as_ref()
            && *at == ts
        {
            assert!(versions.is_empty(), "ingest entry carries no versions");
            break;
        }
    }

    // Idempotent: the same versions again change nothing.
    let again = follower.ingest(versions.clone()).await.expect("re-ingest");
    assert!(again > ts);
    assert_eq!(must_fingerprints(&cluster, &span, 0).await, [expected; 3]);

    // A conflict (same key and timestamp, another value) is rejected whole.
    let conflicting = vec![
        MvccVersion::put(b"/ingest/new".to_vec(), Timestamp::new(base, 0), "fresh"),
        MvccVersion::put(versions[4].key.clone(), versions[4].ts, "different"),
    ];
    let err = follower
        .ingest(conflicting)
        .await
        .expect_err("conflicting ingest");
    assert!(
        matches!(&err, KvError::CommandRejected { command: "ingest", error, .. } if error.contains("conflict")),
        "unexpected error: {err}"
    );
    assert_eq!(must_fingerprints(&cluster, &span, 0).await, [expected; 3]);

    // The cluster keeps working: writes and further ingests commit on every replica.
    let written = must_put(&follower, "/after/conflict", "ok").await;
    let more = history(b"/ingest/more/", 3, base);
    follower
        .ingest(more.clone())
        .await
        .expect("ingest after a conflict");
    let all = [versions, more].concat();
    assert_eq!(
        must_fingerprints(&cluster, &span, 0).await,
        [must_expected_fingerprint(&all, &span); 3]
    );
    for id in 1..=3 {
        assert_eq!(
            cluster
                .node(id)
                .get(b"/after/conflict", written)
                .await
                .expect("get"),
            Some(b"ok".to_vec())
        );
    }
}

// Goal: ingesting versions stamped slightly ahead of the cluster's clocks forwards the
// leader's and the gateway's clocks past them, so later transactions read and commit above
// every ingested version. Method: ingest at now + 300 ms (under the 500 ms maximum offset)
// through a follower, then begin transactions on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_forwards_clocks_past_the_ingested_versions() {
    let cluster = TestCluster::must_start(3).await;
    let gateway_id = follower_of(&cluster);
    let gateway = cluster.node(gateway_id);
    let ahead = Timestamp::new(gateway.now().wall_time_ns + 300_000_000, 5);
    let ts = gateway
        .ingest(vec![MvccVersion::put(b"future".to_vec(), ahead, "x")])
        .await
        .expect("ingest");
    assert!(ts > ahead);
    let leader = cluster.node(cluster.leader().expect("leader"));
    for node in [&gateway, &leader] {
        let mut txn = node.begin().expect("begin");
        assert!(
            txn.read_ts() > ahead,
            "read timestamp above the ingested version"
        );
        assert_eq!(txn.get(b"future").await.expect("read"), Some(b"x".to_vec()));
        txn.put("after-future", "y");
        let commit_ts = txn.commit().await.expect("commit");
        assert!(commit_ts > ahead);
    }
    for id in 1..=3 {
        let commit_ts = must_put(&cluster.node(id), &format!("later{id}"), "z").await;
        assert!(
            commit_ts > ahead,
            "commit on node {id} above the ingested version"
        );
    }
}

// Goal: revert_span through a follower removes every version of the span above the target on
// all replicas, in bounded steps that hand back resume keys, and leaves other spans alone.
// Method: write history with transactions and an ingest, take the span's fingerprint as of
// T, write more (transactions and an ingest above T), revert three versions per step, and
// compare every replica's full fingerprint with the one at T.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revert_span_through_a_follower_reverts_every_replica() {
    let cluster = TestCluster::must_start(3).await;
    let follower = cluster.node(follower_of(&cluster));
    let span = Span::prefix(b"/rev/");
    follower
        .ingest(history(b"/rev/old/", 4, an_hour_ago_ns(&follower)))
        .await
        .expect("ingest");
    for i in 0..5 {
        must_put(&follower, &format!("/rev/k{i}"), "before").await;
    }
    let t = must_put(&follower, "/rev/k0", "at-t").await;
    let outside_before = must_put(&follower, "/other/key", "stays").await;
    let fp_at_t = follower
        .fingerprint_stripped(&span, 0, Timestamp::ZERO, t)
        .await
        .expect("fingerprint at t");
    for i in 0..5 {
        must_put(&follower, &format!("/rev/k{i}"), "after").await;
        must_put(&follower, &format!("/rev/new{i}"), "after").await;
    }
    let above_t = Timestamp::new(t.wall_time_ns, t.logical + 1);
    follower
        .ingest(vec![
            MvccVersion::put(b"/rev/old/k001".to_vec(), above_t, "ingested after t"),
            MvccVersion::tombstone(b"/rev/k1".to_vec(), above_t),
        ])
        .await
        .expect("ingest above t");
    let outside_after = must_put(&follower, "/other/key", "stays too").await;
    assert_ne!(must_fingerprints(&cluster, &span, 0).await, [fp_at_t; 3]);

    let mut steps = 0;
    let mut resumes = 0;
    let mut cursor = span.clone();
    loop {
        steps += 1;
        assert!(steps < 100, "revert does not finish");
        match follower
            .revert_span(cursor.clone(), t, 3)
            .await
            .expect("revert step")
        {
            Some(key) => {
                assert!(span.contains(&key), "resume key inside the span");
                resumes += 1;
                cursor = span.with_start(key);
            }
            None => break,
        }
    }
    // 12 versions above t: at least four steps of three.
    assert!(
        resumes >= 3,
        "bounded steps with resume keys, got {resumes}"
    );
    assert_eq!(must_fingerprints(&cluster, &span, 0).await, [fp_at_t; 3]);
    for id in 1..=3 {
        let node = cluster.node(id);
        let now = node.now();
        assert_eq!(
            node.get(b"/rev/k0", now).await.expect("get"),
            Some(b"at-t".to_vec())
        );
        assert_eq!(
            node.get(b"/rev/k1", now).await.expect("get"),
            Some(b"before".to_vec())
        );
        assert_eq!(node.get(b"/rev/new0", now).await.expect("get"), None);
        assert_eq!(
            node.get(b"/other/key", outside_after).await.expect("get"),
            Some(b"stays too".to_vec()),
            "outside the span on node {id}"
        );
        assert_eq!(
            node.get(b"/other/key", outside_before).await.expect("get"),
            Some(b"stays".to_vec())
        );
    }
    // Reverting a span with nothing above the target is a single step that removes nothing.
    assert_eq!(
        follower
            .revert_span(span.clone(), t, 3)
            .await
            .expect("revert"),
        None
    );
    assert!(matches!(
        follower.revert_span(span.clone(), t, 0).await,
        Err(KvError::Storage(storage::StorageError::ZeroLimit { .. }))
    ));
    // Writes still commit above everything afterwards.
    let ts = must_put(&follower, "/rev/k0", "after revert").await;
    assert!(ts > t);
}

// Goal: the same virtual cluster data under two tenant prefixes fingerprints the same once the
// prefix is stripped, on every replica, and differently when it is not or when the data
// differs. Method: ingest one history under two 9-byte tenant prefixes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripped_fingerprints_match_across_tenant_prefixes() {
    let cluster = TestCluster::must_start(3).await;
    let follower = cluster.node(follower_of(&cluster));
    let prefix = |tenant: u64| [&[0xfe_u8][..], &tenant.to_be_bytes()].concat();
    let (a, b) = (prefix(2), prefix(3));
    let base = an_hour_ago_ns(&follower);
    follower
        .ingest(history(&a, 10, base))
        .await
        .expect("ingest a");
    follower
        .ingest(history(&b, 10, base))
        .await
        .expect("ingest b");
    let (span_a, span_b) = (Span::prefix(&a), Span::prefix(&b));
    let fa = must_fingerprints(&cluster, &span_a, 9).await;
    let fb = must_fingerprints(&cluster, &span_b, 9).await;
    assert_eq!(fa, fb);
    assert_eq!(fa, [fa[0]; 3], "every replica agrees");
    assert_ne!(
        must_fingerprints(&cluster, &span_a, 0).await,
        must_fingerprints(&cluster, &span_b, 0).await
    );
    let key = [&b[..], b"k003"].concat();
    let mut txn = follower.begin().expect("begin");
    txn.put(key, "diverged");
    txn.commit().await.expect("commit");
    assert_ne!(
        must_fingerprints(&cluster, &span_a, 9).await,
        must_fingerprints(&cluster, &span_b, 9).await
    );
}

/// 128 versions of 64 KiB (8 MiB) under `/big/<batch>/`.
fn big_batch(batch: u64, base_ns: u64) -> Vec<MvccVersion> {
    (0..128u64)
        .map(|i| {
            MvccVersion::put(
                format!("/big/{batch}/{i:04}").into_bytes(),
                Timestamp::new(base_ns + i, 0),
                vec![u8::try_from((batch + i) % 251).unwrap_or(0); 64 << 10],
            )
        })
        .collect()
}

// Goal: ingest entries of about 8 MiB, over tonic's 4 MiB default message limit, go through
// the follower-to-leader forwarding and Raft replication to every replica, also to a replica
// that was down and catches up over several of them; one over the 32 MiB entry limit is
// refused before it is proposed. Method: batches of 128 versions of 64 KiB; stop the third
// node, ingest two more, restart it and compare fingerprints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_ingest_replicates_and_oversize_is_refused() {
    // The log keeps the three 8 MiB entries (over the 16 MiB default truncation cap), so the
    // restarted node catches up over them rather than from a snapshot.
    let mut cluster = TestCluster::must_start_with(
        3,
        KvConfig {
            raft_log_truncation_max_bytes: 64 << 20,
            ..config()
        },
    )
    .await;
    let leader_id = cluster.leader().expect("leader");
    let gateway_id = follower_of(&cluster);
    let other_id = (1..=3)
        .find(|i| *i != leader_id && *i != gateway_id)
        .expect("another follower");
    let gateway = cluster.node(gateway_id);
    let base = an_hour_ago_ns(&gateway);
    let span = Span::prefix(b"/big/");
    let mut all = big_batch(0, base);
    gateway.ingest(all.clone()).await.expect("8 MiB ingest");
    let expected = must_expected_fingerprint(&all, &span);
    assert_eq!(must_fingerprints(&cluster, &span, 0).await, [expected; 3]);

    let addr = cluster.stop(other_id).await;
    for batch in 1..=2 {
        let versions = big_batch(batch, base);
        gateway
            .ingest(versions.clone())
            .await
            .expect("8 MiB ingest with a node down");
        all.extend(versions);
    }
    cluster.restart(other_id, &addr).await;
    let expected = must_expected_fingerprint(&all, &span);
    poll(
        "the restarted node to catch up over the large entries",
        Duration::from_secs(30),
        || {
            cluster
                .node(other_id)
                .engine()
                .fingerprint(&span, Timestamp::ZERO, Timestamp::MAX)
                .ok()
                == Some(expected)
        },
    )
    .await;
    assert_eq!(must_fingerprints(&cluster, &span, 0).await, [expected; 3]);
    let follower = gateway;
    let oversize = vec![MvccVersion::put(
        b"/big/huge".to_vec(),
        Timestamp::new(base, 0),
        vec![0u8; 33 << 20],
    )];
    assert!(matches!(
        follower.ingest(oversize).await,
        Err(KvError::EntryTooLarge { .. })
    ));
}

// issue 14 item 9: ingest commands carried no job or epoch, so a partitioned ingestion
// processor could still write after a cutover's revert. Goal: a fenced ingest applies only
// while its fence key holds exactly its value, decided at apply on every replica. Method:
// ingest through a follower under epoch 1; move the fence (a transaction writes epoch 2, as a
// new coordinator or a cutover does) and propose again under epoch 1: it fails with
// IngestFenced and no replica holds its versions (every fingerprint still equals the first
// batch's); epoch 2 then writes, and after the fence is deleted (cutover) nothing does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_ingest_is_refused_once_the_fence_moves() {
    let cluster = TestCluster::must_start(3).await;
    let follower = cluster.node(follower_of(&cluster));
    let base = an_hour_ago_ns(&follower);
    let fence = |epoch: &str| kv::IngestFence {
        key: b"/fence/tenant-3".to_vec(),
        value: epoch.as_bytes().to_vec(),
    };
    let span = Span::prefix(b"/fenced/");
    must_put(&follower, "/fence/tenant-3", "epoch-1").await;

    let first = history(b"/fenced/a/", 5, base);
    follower
        .ingest_fenced(fence("epoch-1"), first.clone())
        .await
        .expect("ingest under the current epoch");
    let expected = must_expected_fingerprint(&first, &span);
    assert_eq!(must_fingerprints(&cluster, &span, 0).await, [expected; 3]);

    must_put(&follower, "/fence/tenant-3", "epoch-2").await;
    let stale = history(b"/fenced/b/", 5, base);
    let err = follower
        .ingest_fenced(fence("epoch-1"), stale.clone())
        .await
        .expect_err("an ingest of an epoch that is over");
    assert!(
        matches!(err, KvError::IngestFenced { .. }),
        "unexpected error: {err}"
    );
    assert_eq!(
        must_fingerprints(&cluster, &span, 0).await,
        [expected; 3],
        "a fenced ingest wrote nothing on any replica"
    );

    follower
        .ingest_fenced(fence("epoch-2"), stale.clone())
        .await
        .expect("ingest under the new epoch");
    let both = [first.clone(), stale].concat();
    let expected = must_expected_fingerprint(&both, &span);
    assert_eq!(must_fingerprints(&cluster, &span, 0).await, [expected; 3]);

    let mut txn = follower.begin().expect("begin");
    txn.delete("/fence/tenant-3");
    txn.commit().await.expect("close the fence");
    let after = history(b"/fenced/c/", 5, base);
    assert!(matches!(
        follower.ingest_fenced(fence("epoch-2"), after).await,
        Err(KvError::IngestFenced { .. })
    ));
    assert_eq!(must_fingerprints(&cluster, &span, 0).await, [expected; 3]);
}

//! Range leases: the leaseholder serves present-time reads without a Raft round, followers
//! forward them or serve their closed timestamp, and a leaseholder cut off from the others
//! stops serving reads once its lease ends (issue 15 item 2).

mod common;

use common::{R, TestCluster, config, must_put, poll};
use hlc::Timestamp;
use kv::{KvConfig, KvError, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn lease_config() -> KvConfig {
    KvConfig {
        range_lease_duration: Duration::from_secs(2),
        read_wait_max: Duration::from_secs(1),
        ..config()
    }
}

fn counter(node: &Arc<Store>, path: &str) -> u64 {
    node.metrics().reads.with_label_values(&[path]).get()
}

async fn read(node: &Arc<Store>, key: &str) -> Result<Option<Vec<u8>>, KvError> {
    let mut txn = node.begin()?;
    txn.get(key.as_bytes()).await
}

/// Waits until node `id` leads and serves reads under its lease.
async fn wait_for_leaseholder(c: &TestCluster) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(id) = c.leader() {
            let node = c.node(id);
            if node.metrics().is_leaseholder.get() == 1 {
                return id;
            }
        }
        assert!(Instant::now() < deadline, "no leaseholder within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// Goal: present-time reads on the leaseholder cost no Raft round, reads on a follower are
// forwarded to it, and AS OF SYSTEM TIME reads below a follower's closed timestamp are
// served by the follower itself. Method: count the read paths and the close proposals
// (the Raft round a read used to cost) around 50 reads of each kind; without leases every
// present-time read proposes a close.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaseholder_reads_need_no_raft_round() {
    let c = TestCluster::must_start_with(3, lease_config()).await;
    let holder = wait_for_leaseholder(&c).await;
    let lh = c.node(holder);
    let written = must_put(&lh, "k", "v1").await;
    let follower = c.node(if holder == 1 { 2 } else { 1 });

    let closes_before =
        lh.metrics().close_proposals.get() + follower.metrics().close_proposals.get();
    let lease_before = counter(&lh, "lease");
    for _ in 0..50 {
        assert_eq!(
            read(&lh, "k").await.expect("read").as_deref(),
            Some(&b"v1"[..])
        );
    }
    assert_eq!(
        counter(&lh, "lease") - lease_before,
        50,
        "served under the lease"
    );

    let forwarded_before = counter(&follower, "forwarded");
    for _ in 0..50 {
        assert_eq!(
            read(&follower, "k")
                .await
                .expect("follower read")
                .as_deref(),
            Some(&b"v1"[..]),
            "a present-time read on a follower sees the acknowledged write"
        );
    }
    assert_eq!(counter(&follower, "forwarded") - forwarded_before, 50);
    let closes_after =
        lh.metrics().close_proposals.get() + follower.metrics().close_proposals.get();
    assert_eq!(
        closes_after, closes_before,
        "no read proposed a closed timestamp through Raft"
    );

    // A historical read the follower has closed: served locally.
    poll(
        "the follower closes the write",
        Duration::from_secs(10),
        || follower.closed_ts() >= written,
    )
    .await;
    let closed_before = counter(&follower, "closed");
    let mut txn = follower.begin_at(written).expect("begin_at");
    assert_eq!(
        txn.get(b"k").await.expect("aost read").as_deref(),
        Some(&b"v1"[..])
    );
    let mut txn = follower
        .begin_at(Timestamp::new(written.wall_time_ns - 1, 0))
        .expect("begin_at");
    assert_eq!(
        txn.get(b"k").await.expect("aost read before the write"),
        None
    );
    assert_eq!(counter(&follower, "closed") - closed_before, 2);
}

// Goal: the old leaseholder, partitioned away, never serves a read after its lease ends,
// even though it still believes it leads (openraft does not step a partitioned leader down).
// Method: isolate the leaseholder (no RPC in or out), let the others elect a leader, which
// can write only once the old lease expired; then a present-time read on the isolated node
// must fail rather than return the overwritten value. Without the expiration check the
// isolated node serves "v1" from its stale lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_leaseholder_stops_serving_when_its_lease_ends() {
    let c = TestCluster::must_start_with(3, lease_config()).await;
    let holder = wait_for_leaseholder(&c).await;
    let old = c.node(holder);
    must_put(&old, "k", "v1").await;
    assert_eq!(
        read(&old, "k").await.expect("read").as_deref(),
        Some(&b"v1"[..])
    );

    old.set_isolated(true);
    let other = c.node(if holder == 1 { 2 } else { 1 });
    // The majority elects a leader, which takes the lease once the old one expired.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut txn = other.begin().expect("begin");
        txn.put("k", "v2");
        match txn.commit().await {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < deadline, "the majority never wrote: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let lease = other
        .replica(R)
        .expect("the range")
        .lease()
        .expect("a lease");
    assert_ne!(lease.holder, holder, "the lease moved");

    // The isolated node still believes it leads, and it holds no valid lease any more.
    let mut stale_reads = 0;
    for _ in 0..5 {
        match read(&old, "k").await {
            Ok(Some(v)) if v == b"v1" => stale_reads += 1,
            Ok(v) => panic!("an isolated node cannot know {v:?}"),
            Err(_) => {}
        }
    }
    assert_eq!(
        stale_reads, 0,
        "the old leaseholder served a read after its lease"
    );
    assert_eq!(old.metrics().is_leaseholder.get(), 0);
    old.set_isolated(false);
    poll(
        "the old leaseholder catches up",
        Duration::from_secs(20),
        || old.closed_ts() >= other.closed_ts() && other.closed_ts() > Timestamp::ZERO,
    )
    .await;
    assert_eq!(
        read(&old, "k")
            .await
            .expect("read after healing")
            .as_deref(),
        Some(&b"v2"[..])
    );
}

// Goal: when leadership moves, the new leader takes the lease from the old holder at once
// (the holder releases it) instead of waiting for it to expire. Method: cut the holder off
// until another node leads, then heal it; the new leader's lease must start before the old
// lease's expiration (impossible without the release), with a higher sequence. (Asking a
// follower to campaign is no way to move leadership here: with openraft's leader lease and
// no pre-vote, a campaigner whose log is one entry behind can lose election after election
// for many seconds while it keeps unseating the leader.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_leader_takes_the_lease_released_by_the_old_holder() {
    let c = TestCluster::must_start_with(
        3,
        KvConfig {
            // Long, so that waiting for the expiration would be visible.
            range_lease_duration: Duration::from_secs(20),
            ..config()
        },
    )
    .await;
    let holder = wait_for_leaseholder(&c).await;
    let old = c
        .node(holder)
        .replica(R)
        .expect("the range")
        .lease()
        .expect("a lease");
    c.node(holder).set_isolated(true);
    // The isolated node still believes it leads: look for another node that does.
    let others: Vec<u64> = (1..=3).filter(|&id| id != holder).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let next = loop {
        let leader = others.iter().copied().find(|&id| {
            let s = c.node(id).status();
            s.leader == Some(s.node_id)
        });
        if let Some(id) = leader {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "no other node led within 30 s of cutting node {holder} off"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    c.node(holder).set_isolated(false);
    let candidate = c.node(next);
    must_put(&candidate, "k", "v").await;
    // The new leader's lease request is applied on every replica; wait for the one
    // serving the read to see a holder other than the old one.
    let mut new = None;
    poll(
        "the lease moves off the old holder",
        Duration::from_secs(30),
        || {
            new = candidate
                .replica(R)
                .ok()
                .and_then(|r| r.lease())
                .filter(|l| l.holder != holder);
            new.is_some()
        },
    )
    .await;
    let new = new.expect("a new lease");
    // Every change of holder adds one; leadership may have moved more than once.
    assert!(new.sequence > old.sequence, "{new:?} after {old:?}");
    assert!(
        new.start < old.expiration,
        "the new lease ({new:?}) waited for the old one ({old:?}) to expire"
    );
    assert_eq!(
        read(&candidate, "k").await.expect("read").as_deref(),
        Some(&b"v"[..])
    );
}

//! Waiting until every member has applied a timestamp (issue 15 item 7: a catalog change
//! returns only once every node applied it, so every node's SQL caches have dropped the old
//! version).

mod common;

use common::{TestCluster, must_put};
use hlc::Timestamp;
use kv::KvError;
use std::time::Duration;

// Goal (issue 15 item 7): `wait_applied_everywhere` returns only once every member has
// applied the timestamp, with each member's clock forwarded past it; a member that is down
// is skipped (it applies the write before it serves again); a timestamp no member reaches in
// time is a `NotApplied` error naming a node. Method: 3 in-process nodes; after a write and
// the wait, every node's closed timestamp must already be at or above the write (no
// polling) and its clock past it; then stop node 3 and wait for a second write (node 3
// reported skipped); then wait for a timestamp an hour ahead with a short deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_for_every_member_and_skips_unreachable_ones() {
    let mut cluster = TestCluster::must_start(3).await;
    let leader = cluster.node(cluster.leader().expect("a leader"));
    let ts = must_put(&leader, "a", "1").await;
    let gateway = cluster.node(1);
    let skipped = gateway
        .wait_applied_everywhere(ts, Duration::from_secs(10))
        .await
        .expect("every node applies the write");
    assert!(skipped.is_empty(), "live members skipped: {skipped:?}");
    for id in 1..=3 {
        let n = cluster.node(id);
        assert!(n.closed_ts() >= ts, "node {id} has not applied {ts}");
        assert!(
            n.now() > ts,
            "node {id}'s clock was not forwarded past {ts}"
        );
    }

    cluster.stop(3).await;
    let ts = must_put(&gateway, "b", "2").await;
    let skipped = gateway
        .wait_applied_everywhere(ts, Duration::from_secs(10))
        .await
        .expect("a stopped member is skipped");
    assert_eq!(skipped, [kv::NodeId(3)]);

    let future = Timestamp::new(gateway.now().wall_time_ns + 3_600_000_000_000, 0);
    let e = gateway
        .wait_applied_everywhere(future, Duration::from_millis(300))
        .await
        .expect_err("nobody applies an hour ahead");
    assert!(matches!(e, KvError::NotApplied { .. }), "{e}");
}

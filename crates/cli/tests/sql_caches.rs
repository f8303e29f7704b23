//! The SQL caches across nodes (issue 15 item 7): a schema change, GRANT/REVOKE or user
//! change made through one node is seen at once by a session on another node whose catalog
//! cache held the previous version, on a real 3-node cluster.

mod common;

use common::{ProcCluster, connect};
use tokio_postgres::{Client, SimpleQueryMessage};

/// The value of an unlabelled metric in a Prometheus text exposition.
fn metric(vars: &str, name: &str) -> f64 {
    vars.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// The columns of the first row `sql` returns.
async fn first_row(c: &Client, sql: &str) -> Result<Vec<String>, tokio_postgres::Error> {
    let msgs = c.simple_query(sql).await?;
    Ok(msgs
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default())
}

// Goal (issue 15 item 7): caches are invalidated cluster-wide. A session on node 1 whose
// catalog cache holds a table's descriptor, a user's grants and its user record sees, in its
// very next statement, an ALTER TABLE, REVOKE, GRANT, GRANT admin and DROP TABLE that a
// session on node 2 ran (each returns only once every node applied it). Method: 3 real
// nodes; warm node 1 (its catalog-cache hit counter must grow), then alternate a change
// through node 2 and an immediate check through node 1, without polling.
#[test]
fn catalog_changes_on_one_node_are_seen_at_once_on_another() {
    let cluster =
        ProcCluster::must_start_with(3, false, &["--config-profile", "replication-source"]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let on_node2 = connect(&cluster, 1, "application", "root", None).await;
        on_node2
            .batch_execute(
                "CREATE TABLE t (k INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 10);
                 CREATE USER alice; GRANT SELECT ON TABLE t TO alice",
            )
            .await
            .expect("setup");
        let alice = connect(&cluster, 0, "application", "alice", None).await;
        let read = "SELECT * FROM t WHERE k = 1";
        for _ in 0..3 {
            assert_eq!(first_row(&alice, read).await.expect("warm"), ["1", "10"]);
        }
        let (_, vars) = cluster.nodes[0].http_get("/_status/vars");
        let hits = metric(&vars, "sql_catalog_cache_hits_total");
        assert!(hits > 0.0, "node 1 served no catalog read from its cache");
        let e = alice
            .batch_execute("CREATE TABLE mine (k INT PRIMARY KEY)")
            .await
            .expect_err("a non-admin created a table");
        assert_eq!(code(&e), "42501", "{e}");

        on_node2
            .batch_execute("ALTER TABLE t ADD COLUMN w INT DEFAULT 7")
            .await
            .expect("alter");
        assert_eq!(
            first_row(&alice, read).await.expect("read after ALTER"),
            ["1", "10", "7"],
            "node 1 used the descriptor from before ALTER TABLE"
        );

        on_node2
            .batch_execute("REVOKE SELECT ON TABLE t FROM alice")
            .await
            .expect("revoke");
        let e = first_row(&alice, read)
            .await
            .expect_err("node 1 used the grant from before REVOKE");
        assert_eq!(code(&e), "42501", "{e}");

        on_node2
            .batch_execute("GRANT SELECT ON TABLE t TO alice")
            .await
            .expect("grant");
        assert_eq!(
            first_row(&alice, read).await.expect("read after GRANT"),
            ["1", "10", "7"]
        );

        on_node2
            .batch_execute("GRANT admin TO alice")
            .await
            .expect("grant admin");
        alice
            .batch_execute("CREATE TABLE mine (k INT PRIMARY KEY)")
            .await
            .expect("node 1 used alice's user record from before GRANT admin");

        on_node2.batch_execute("DROP TABLE t").await.expect("drop");
        let e = first_row(&alice, read)
            .await
            .expect_err("node 1 used the descriptor of a dropped table");
        assert_eq!(code(&e), "42P01", "{e}");

        let (_, vars) = cluster.nodes[0].http_get("/_status/vars");
        assert!(
            metric(&vars, "sql_catalog_cache_invalidations_total") > 0.0,
            "node 1 dropped no cached value"
        );
    });
}

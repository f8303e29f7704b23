//! The SQL caches of one node (issue 15 item 7): catalog reads served from the node's catalog
//! cache, prepared statements reusing their plan until the catalog changes, and the cases
//! where a cache must not serve (a transaction's own uncommitted change, historical reads).
//! The cross-node invalidation is tested with real processes in
//! `crates/cli/tests/sql_caches.rs`.

mod common;

use common::{SqlTestServer, sqlstate};
use tokio_postgres::Client;

async fn must_connect(server: &SqlTestServer, user: &str) -> Client {
    server.connect(user, None).await.expect("connect")
}

async fn ints(c: &Client, sql: &str) -> Vec<i64> {
    c.query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect()
}

// Goal (issue 15 item 7): a point select repeated on one node reads its descriptors, the
// session's database and the user's grants from the catalog cache, not from KV, once warm.
// Method: a non-admin user (so its grants are read too) runs the same point select ten times;
// the cache's miss counter must not move after the first run, and its hit counter must.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_statements_read_the_catalog_from_the_cache() {
    let server = SqlTestServer::must_start("replication-source").await;
    let root = must_connect(&server, "root").await;
    root.batch_execute(
        "CREATE TABLE kv (k INT PRIMARY KEY, v INT); INSERT INTO kv VALUES (1, 10), (2, 20);
         CREATE USER reader; GRANT SELECT ON TABLE kv TO reader",
    )
    .await
    .expect("setup");
    let reader = must_connect(&server, "reader").await;
    assert_eq!(ints(&reader, "SELECT v FROM kv WHERE k = 2").await, [20]);
    let m = server.sql.metrics();
    let (hits, misses) = (m.catalog_cache_hits.get(), m.catalog_cache_misses.get());
    for _ in 0..10 {
        assert_eq!(ints(&reader, "SELECT v FROM kv WHERE k = 2").await, [20]);
    }
    assert_eq!(
        m.catalog_cache_misses.get(),
        misses,
        "a warm statement read the catalog from KV"
    );
    assert!(
        m.catalog_cache_hits.get() >= hits + 10 * 4,
        "expected at least 4 catalog hits per statement (database, table, user, grant): {} -> {}",
        hits,
        m.catalog_cache_hits.get()
    );
}

// Goal (issue 15 item 7): a prepared statement is planned once (at Parse) and each Execute
// reuses the plan; after ALTER TABLE it is planned again and returns the right rows. Method:
// prepare a point select on `t`; execute it three times (plan-cache hits, no new plans); then
// rename `t` away and create a new `t` with other rows (a stale plan would still read the
// renamed table) and execute again: the new rows, and one new plan; a further execution
// reuses that plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_statement_reuses_its_plan_until_a_schema_change() {
    let server = SqlTestServer::must_start("replication-source").await;
    let c = must_connect(&server, "root").await;
    c.batch_execute("CREATE TABLE t (k INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 100)")
        .await
        .expect("setup");
    let m = server.sql.metrics();
    let stmt = c
        .prepare("SELECT v FROM t WHERE k = $1")
        .await
        .expect("prepare");
    let (hits, plans) = (m.plan_cache_hits.get(), m.plan_cache_misses.get());
    for _ in 0..3 {
        let rows = c.query(&stmt, &[&1i64]).await.expect("execute");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, i64>(0), 100);
    }
    assert_eq!(
        m.plan_cache_hits.get(),
        hits + 3,
        "executions did not reuse the plan"
    );
    assert_eq!(
        m.plan_cache_misses.get(),
        plans,
        "an execution planned again"
    );

    let other = must_connect(&server, "root").await;
    other
        .batch_execute(
            "ALTER TABLE t RENAME TO t_old; CREATE TABLE t (k INT PRIMARY KEY, v INT);
             INSERT INTO t VALUES (1, 200)",
        )
        .await
        .expect("schema change");
    let rows = c
        .query(&stmt, &[&1i64])
        .await
        .expect("execute after change");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].get::<_, i64>(0),
        200,
        "the prepared statement used its plan from before ALTER TABLE"
    );
    assert_eq!(
        m.plan_cache_misses.get(),
        plans + 1,
        "expected exactly one new plan"
    );
    let hits_after = m.plan_cache_hits.get();
    let rows = c.query(&stmt, &[&1i64]).await.expect("execute again");
    assert_eq!(rows[0].get::<_, i64>(0), 200);
    assert_eq!(
        m.plan_cache_hits.get(),
        hits_after + 1,
        "the new plan was not kept"
    );
}

// Goal (issue 15 item 7): a prepared `SELECT *` whose table gains a column is planned again
// and, as in PostgreSQL, refused rather than sending rows that do not match the columns its
// Describe announced. Method: prepare, add a column, execute: 0A000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replanned_select_star_does_not_change_its_result_type() {
    let server = SqlTestServer::must_start("replication-source").await;
    let c = must_connect(&server, "root").await;
    c.batch_execute("CREATE TABLE s (k INT PRIMARY KEY, v INT); INSERT INTO s VALUES (1, 1)")
        .await
        .expect("setup");
    let stmt = c
        .prepare("SELECT * FROM s WHERE k = $1")
        .await
        .expect("prepare");
    assert_eq!(c.query(&stmt, &[&1i64]).await.expect("execute").len(), 1);
    c.batch_execute("ALTER TABLE s ADD COLUMN w INT DEFAULT 7")
        .await
        .expect("alter");
    let e = c
        .query(&stmt, &[&1i64])
        .await
        .expect_err("a result type changed under a prepared statement");
    assert_eq!(sqlstate(&e), "0A000", "{e}");
}

// Goal (issue 15 item 7): a transaction that changed a descriptor reads its own uncommitted
// version, not the cached one, and other sessions keep reading the committed one until it
// commits. Method: warm the cache with `t`'s descriptor; in an explicit transaction add a
// column and read `SELECT *` (three columns); meanwhile another session sees two; after
// COMMIT it sees three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_sees_its_own_schema_change_and_others_do_not() {
    let server = SqlTestServer::must_start("replication-source").await;
    let a = must_connect(&server, "root").await;
    let b = must_connect(&server, "root").await;
    a.batch_execute("CREATE TABLE t (k INT PRIMARY KEY, v INT); INSERT INTO t VALUES (1, 1)")
        .await
        .expect("setup");
    let width = |rows: Vec<tokio_postgres::SimpleQueryMessage>| {
        rows.into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.len()),
                _ => None,
            })
            .expect("a row")
    };
    assert_eq!(
        width(a.simple_query("SELECT * FROM t").await.expect("warm a")),
        2
    );
    assert_eq!(
        width(b.simple_query("SELECT * FROM t").await.expect("warm b")),
        2
    );
    a.batch_execute("BEGIN; ALTER TABLE t ADD COLUMN w INT DEFAULT 5")
        .await
        .expect("alter in a transaction");
    assert_eq!(
        width(
            a.simple_query("SELECT * FROM t")
                .await
                .expect("read own change")
        ),
        3,
        "the transaction did not see its own schema change"
    );
    assert_eq!(
        width(
            b.simple_query("SELECT * FROM t")
                .await
                .expect("read beside")
        ),
        2,
        "another session saw an uncommitted schema change"
    );
    a.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(
        width(b.simple_query("SELECT * FROM t").await.expect("read after")),
        3,
        "another session did not see the committed schema change"
    );
}

// Goal (issue 15 item 7): an AS OF SYSTEM TIME read resolves the descriptors of its time,
// not those the cache holds now. Method: note an HLC time, drop and re-create `h` with other
// rows, warm the cache with the new descriptor, then read `h` as of the noted time: the old
// rows (a cached descriptor would name the new table and find nothing at that time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn historical_reads_do_not_use_the_cache() {
    let server = SqlTestServer::must_start("replication-source").await;
    let c = must_connect(&server, "root").await;
    c.batch_execute("CREATE TABLE h (k INT PRIMARY KEY); INSERT INTO h VALUES (1), (2)")
        .await
        .expect("setup");
    let before = server.node.now();
    c.batch_execute("DROP TABLE h; CREATE TABLE h (k INT PRIMARY KEY); INSERT INTO h VALUES (7)")
        .await
        .expect("re-create");
    assert_eq!(ints(&c, "SELECT k FROM h").await, [7]);
    assert_eq!(ints(&c, "SELECT k FROM h").await, [7]);
    let old = ints(
        &c,
        &format!("SELECT k FROM h AS OF SYSTEM TIME '{}' ORDER BY k", before),
    )
    .await;
    assert_eq!(old, [1, 2], "the historical read used today's descriptor");
}

//! Application SQL as an application meets it: tokio-postgres with `$n` parameters on a
//! 3-node TLS cluster's `application` virtual cluster, and psql's `\dt` / `\d`.

mod common;

use common::ProcCluster;
use std::process::Command;
use tokio_postgres::Client;

const ROWS: i64 = 100_000;
const BATCH: i64 = 500;

fn psql(url: &str, statements: &[&str]) -> String {
    let mut cmd = Command::new("psql");
    cmd.arg(url).args(["-X", "-v", "ON_ERROR_STOP=1"]);
    for s in statements {
        cmd.args(["-c", s]);
    }
    let out = cmd
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD")
        .output()
        .expect("psql is installed (Debian package postgresql-client)");
    assert!(
        out.status.success(),
        "psql {statements:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn root_url(cluster: &ProcCluster, node: usize) -> String {
    let certs = cluster
        .certs
        .as_ref()
        .expect("secure")
        .display()
        .to_string();
    format!(
        "postgresql://root@{}/defaultdb?sslmode=verify-full&sslrootcert={certs}/ca.crt&sslcert={certs}/client.root.crt&sslkey={certs}/client.root.key&options=-ccluster%3Dapplication",
        cluster.nodes[node].rpc_addr
    )
}

async fn connect(cluster: &ProcCluster, node: usize) -> Client {
    connect_as(cluster, node, "app", "app-secret").await
}

async fn connect_as(cluster: &ProcCluster, node: usize, user: &str, password: &str) -> Client {
    common::connect(cluster, node, "application", user, Some(password)).await
}

/// Creates the application's admin user `app` (password `app-secret`) as root.
fn create_app_user(cluster: &ProcCluster) {
    psql(
        &root_url(cluster, 0),
        &[
            "CREATE USER app WITH PASSWORD 'app-secret'",
            "GRANT admin TO app",
        ],
    );
}

fn sku(i: i64) -> String {
    format!("sku-{:06}", (i * 7919) % ROWS)
}

// Goal: the acceptance path of application SQL. Through tokio-postgres with parameters on a
// 3-node cluster's application virtual cluster: a table with a secondary index, 100,000 rows
// inserted through node 1, read back in full through node 2, a lookup through the index on
// node 3 (EXPLAIN shows the index, not a scan), an UPDATE and a DELETE by predicate whose
// effects every node sees; then psql \dt and \d describe the table.
#[test]
fn application_sql_through_a_driver_on_three_nodes() {
    let cluster =
        ProcCluster::must_start_with(3, true, &["--config-profile", "replication-source"]);
    create_app_user(&cluster);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let c1 = connect(&cluster, 0).await;
        c1.batch_execute(
            "CREATE TABLE items (id INT PRIMARY KEY, sku STRING NOT NULL, qty INT NOT NULL, price FLOAT, note STRING);
             CREATE INDEX items_sku_idx ON items (sku)",
        )
        .await
        .expect("schema");
        // Multi-row INSERTs with 4 parameters per row.
        let placeholders: Vec<String> = (0..BATCH)
            .map(|r| format!("(${}, ${}, ${}, ${})", 4 * r + 1, 4 * r + 2, 4 * r + 3, 4 * r + 4))
            .collect();
        let insert = c1
            .prepare(&format!(
                "INSERT INTO items (id, sku, qty, price) VALUES {}",
                placeholders.join(", ")
            ))
            .await
            .expect("prepare insert");
        for batch in 0..ROWS / BATCH {
            let ids: Vec<i64> = (batch * BATCH..(batch + 1) * BATCH).collect();
            let skus: Vec<String> = ids.iter().map(|i| sku(*i)).collect();
            let qtys: Vec<i64> = ids.iter().map(|i| i % 100).collect();
            let prices: Vec<f64> = ids.iter().map(|i| *i as f64 / 4.0).collect();
            let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
            for k in 0..ids.len() {
                params.push(&ids[k]);
                params.push(&skus[k]);
                params.push(&qtys[k]);
                params.push(&prices[k]);
            }
            let n = c1.execute(&insert, &params).await.expect("insert batch");
            assert_eq!(n, BATCH as u64);
        }

        // Read everything back through another node.
        let c2 = connect(&cluster, 1).await;
        let rows = c2
            .query("SELECT id, sku, qty, price FROM items ORDER BY id", &[])
            .await
            .expect("read back");
        assert_eq!(rows.len() as i64, ROWS);
        for (i, r) in rows.iter().enumerate() {
            let id: i64 = r.get(0);
            assert_eq!(id, i as i64);
            assert_eq!(r.get::<_, String>(1), sku(id));
            assert_eq!(r.get::<_, i64>(2), id % 100);
            assert_eq!(r.get::<_, f64>(3), id as f64 / 4.0);
        }
        let total: i64 = c2
            .query_one("SELECT sum(qty)::INT8 FROM items", &[])
            .await
            .expect("sum")
            .get(0);
        assert_eq!(total, (0..ROWS).map(|i| i % 100).sum::<i64>());

        // A lookup through the secondary index on a third node.
        let c3 = connect(&cluster, 2).await;
        let wanted = 4242;
        let found = c3
            .query("SELECT id, qty FROM items WHERE sku = $1", &[&sku(wanted)])
            .await
            .expect("index lookup");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].get::<_, i64>(0), wanted);
        let plan: Vec<String> = c3
            .query("EXPLAIN SELECT id FROM items WHERE sku = 'sku-000001'", &[])
            .await
            .expect("explain")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            plan.iter().any(|l| l.contains("items@items_sku_idx: 1 span(s)")),
            "{plan:?}"
        );
        let plan: Vec<String> = c3
            .query("EXPLAIN SELECT sku FROM items WHERE id = 99999", &[])
            .await
            .expect("explain")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(
            plan.iter().any(|l| l.contains("items@items_pkey: 1 point lookup(s)")),
            "{plan:?}"
        );

        // UPDATE and DELETE by predicate, seen from the other nodes.
        let updated = c3
            .execute(
                "UPDATE items SET qty = qty + $1, note = $2 WHERE id < $3",
                &[&1000i64, &"restocked", &1000i64],
            )
            .await
            .expect("update");
        assert_eq!(updated, 1000);
        let deleted = c1
            .execute("DELETE FROM items WHERE qty >= $1 AND id >= $2", &[&90i64, &1000i64])
            .await
            .expect("delete");
        let expected_deleted = (1000..ROWS).filter(|i| i % 100 >= 90).count() as u64;
        assert_eq!(deleted, expected_deleted);
        let remaining: i64 = c2
            .query_one("SELECT count(*) FROM items", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(remaining as u64, ROWS as u64 - expected_deleted);
        let notes: i64 = c1
            .query_one("SELECT count(*) FROM items WHERE note = $1", &[&"restocked"])
            .await
            .expect("count notes")
            .get(0);
        assert_eq!(notes, 1000);
        let gone = c3
            .query("SELECT id FROM items WHERE sku = $1", &[&sku(1099)])
            .await
            .expect("lookup deleted");
        assert!(gone.is_empty(), "row 1099 (qty 99) was deleted");
    });

    // psql's \dt and \d, through the catalog tables.
    let dt = psql(&root_url(&cluster, 1), &["\\dt"]);
    assert!(dt.contains("items") && dt.contains("table"), "{dt}");
    let d = psql(&root_url(&cluster, 2), &["\\d items"]);
    for want in [
        "Table \"public.items\"",
        "sku",
        "not null",
        "\"items_pkey\" PRIMARY KEY, btree (id)",
        "\"items_sku_idx\" btree (sku)",
    ] {
        assert!(d.contains(want), "missing {want:?} in:\n{d}");
    }
}

async fn query_text(c: &Client, sql: &str) -> Vec<String> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                (0..r.len())
                    .map(|i| r.get(i).unwrap_or("NULL"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        })
        .collect()
}

// Goal: `AS OF SYSTEM TIME '-5s'` returns rows as they were five seconds earlier, after they
// changed; and a user of the application virtual cluster sees none of the system virtual
// cluster's users or settings.
#[test]
fn historical_reads_and_isolation_from_the_system_cluster() {
    let cluster =
        ProcCluster::must_start_with(1, true, &["--config-profile", "replication-source"]);
    let certs = cluster
        .certs
        .as_ref()
        .expect("secure")
        .display()
        .to_string();
    let system_url = format!(
        "postgresql://root@{}/defaultdb?sslmode=verify-full&sslrootcert={certs}/ca.crt&sslcert={certs}/client.root.crt&sslkey={certs}/client.root.key&options=-ccluster%3Dsystem",
        cluster.nodes[0].rpc_addr
    );
    psql(&system_url, &["CREATE USER system_only WITH PASSWORD 'x'"]);
    create_app_user(&cluster);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let c = connect(&cluster, 0).await;
        c.batch_execute(
            "CREATE TABLE h (k INT PRIMARY KEY, v STRING); INSERT INTO h VALUES (1, 'before')",
        )
        .await
        .expect("setup");
        let written: String = c
            .query_one("SELECT now()::STRING", &[])
            .await
            .expect("now")
            .get(0);
        // Wait (polling the server's clock) until five and a half seconds have passed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let passed: bool = c
                .query_one(
                    "SELECT now() > $1::STRING::TIMESTAMPTZ + '5500ms'::INTERVAL",
                    &[&written],
                )
                .await
                .expect("clock")
                .get(0);
            if passed {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server clock did not advance"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        c.execute("UPDATE h SET v = 'after' WHERE k = 1", &[])
            .await
            .expect("update");
        c.execute("INSERT INTO h VALUES (2, 'new')", &[])
            .await
            .expect("insert");
        assert_eq!(
            query_text(&c, "SELECT k, v FROM h ORDER BY k").await,
            ["1 after", "2 new"]
        );
        assert_eq!(
            query_text(&c, "SELECT k, v FROM h AS OF SYSTEM TIME '-5s' ORDER BY k").await,
            ["1 before"]
        );
        c.batch_execute("BEGIN AS OF SYSTEM TIME '-5s'")
            .await
            .expect("begin");
        assert_eq!(query_text(&c, "SELECT v FROM h").await, ["before"]);
        c.batch_execute("COMMIT").await.expect("commit");

        // Isolation: the application's users are its own; settings are the system's.
        let users = query_text(&c, "SHOW USERS").await;
        assert!(users.iter().any(|u| u.starts_with("app ")), "{users:?}");
        assert!(
            !users.iter().any(|u| u.contains("system_only")),
            "{users:?}"
        );
        let roles = query_text(&c, "SELECT rolname FROM pg_catalog.pg_roles").await;
        assert!(!roles.iter().any(|u| u == "system_only"), "{roles:?}");
        // A user without grants cannot read the table; GRANT SELECT lets it.
        c.batch_execute("CREATE USER viewer WITH PASSWORD 'viewer-secret'")
            .await
            .expect("create viewer");
        let viewer = connect_as(&cluster, 0, "viewer", "viewer-secret").await;
        let denied = viewer
            .simple_query("SELECT v FROM h")
            .await
            .expect_err("no grant");
        assert_eq!(denied.as_db_error().map(|d| d.code().code()), Some("42501"));
        c.batch_execute("GRANT SELECT ON TABLE h TO viewer")
            .await
            .expect("grant");
        assert_eq!(
            query_text(&viewer, "SELECT v FROM h WHERE k = 2").await,
            ["new"]
        );
        let write = viewer
            .simple_query("DELETE FROM h")
            .await
            .expect_err("SELECT does not allow DELETE");
        assert_eq!(write.as_db_error().map(|d| d.code().code()), Some("42501"));
        let err = c
            .simple_query("SHOW CLUSTER SETTINGS")
            .await
            .expect_err("settings are the system's");
        assert_eq!(err.as_db_error().map(|d| d.code().code()), Some("42501"));
    });
}

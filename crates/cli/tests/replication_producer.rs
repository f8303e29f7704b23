//! The source side of replication, driven the way a standby drives it: the producer's
//! `crdb_internal` functions over a SQL connection to a primary's system virtual cluster
//! (one insecure node). Privileges, the stream spec, heartbeats that never move the
//! protection back, completion, expiry, and the rangefeed setting.

mod common;

use common::ProcCluster;
use std::time::Duration;
use tokio_postgres::{Client, SimpleQueryMessage};

async fn connect(cluster: &ProcCluster, user: &str, password: Option<&str>) -> Client {
    common::connect(cluster, 0, "system", user, password).await
}

/// The first column of the first row of `sql`.
async fn one(client: &Client, sql: &str) -> Result<String, tokio_postgres::Error> {
    for m in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(r) = m {
            return Ok(r.get(0).unwrap_or_default().to_string());
        }
    }
    panic!("{sql}: no row");
}

async fn json(client: &Client, sql: &str) -> serde_json::Value {
    let text = one(client, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{sql}: {e}: {text}"))
}

/// `SHOW JOBS` rows of the producer jobs: (id, status, error).
async fn producer_jobs(client: &Client) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for m in client.simple_query("SHOW JOBS").await.expect("show jobs") {
        if let SimpleQueryMessage::Row(r) = m
            && r.get(1) == Some("REPLICATION STREAM PRODUCER")
        {
            out.push((
                r.get(0).unwrap_or_default().to_string(),
                r.get(3).unwrap_or_default().to_string(),
                r.get(8).unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| format!("{} {}", d.code().code(), d.message()))
        .unwrap_or_else(|| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_functions() {
    let cluster =
        ProcCluster::must_start_with(1, false, &["--config-profile", "replication-source"]);
    let root = connect(&cluster, "root", None).await;
    root.batch_execute("CREATE USER repl WITH PASSWORD 'pw'; CREATE USER plain WITH PASSWORD 'pw'")
        .await
        .expect("users");

    // Without REPLICATION: 42501, and no job is created.
    let plain = connect(&cluster, "plain", Some("pw")).await;
    let e = one(
        &plain,
        "SELECT crdb_internal.start_replication_stream('application')",
    )
    .await
    .expect_err("needs REPLICATION");
    assert!(sqlstate(&e).starts_with("42501"), "{}", sqlstate(&e));
    assert!(producer_jobs(&root).await.is_empty());

    root.batch_execute("GRANT SYSTEM REPLICATION TO repl")
        .await
        .expect("grant");
    let repl = connect(&cluster, "repl", Some("pw")).await;

    // Unknown and system virtual clusters are refused.
    let e = one(
        &repl,
        "SELECT crdb_internal.start_replication_stream('nosuch')",
    )
    .await
    .expect_err("unknown");
    assert!(sqlstate(&e).starts_with("42704"), "{}", sqlstate(&e));
    let e = one(
        &repl,
        "SELECT crdb_internal.start_replication_stream('system')",
    )
    .await
    .expect_err("system");
    assert!(sqlstate(&e).starts_with("0A000"), "{}", sqlstate(&e));

    // Start: a handle with a token, a producer job, a spec covering the keyspace.
    let h = json(
        &repl,
        "SELECT crdb_internal.start_replication_stream('application')",
    )
    .await;
    let id = h["stream_id"].as_u64().expect("stream id");
    assert_eq!(h["source_tenant_name"], "application");
    assert_eq!(h["token"].as_str().expect("token").len(), 64);
    let jobs = producer_jobs(&root).await;
    assert_eq!(
        jobs,
        vec![(id.to_string(), "running".into(), String::new())]
    );
    let spec = json(
        &repl,
        &format!("SELECT crdb_internal.replication_stream_spec({id})"),
    )
    .await;
    let parts = spec["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), 1, "one live node, one partition: {spec}");
    assert_eq!(parts[0]["spans"][0], spec["tenant_span"], "{spec}");
    assert_eq!(parts[0]["addr"], cluster.nodes[0].rpc_addr.as_str());

    // Heartbeats move the protection forward, never back.
    let start = h["start_time"].clone();
    let wall = start["wall_time_ns"].as_u64().expect("wall");
    let later = format!("{}.0000000000", wall + 5_000_000_000);
    let st = json(
        &repl,
        &format!("SELECT crdb_internal.replication_stream_progress({id}, '{later}')"),
    )
    .await;
    assert_eq!(st["status"], "active");
    assert_eq!(
        st["protected_ts"]["wall_time_ns"].as_u64(),
        Some(wall + 5_000_000_000)
    );
    let earlier = format!("{}.0000000000", wall + 1_000_000_000);
    let st = json(
        &repl,
        &format!("SELECT crdb_internal.replication_stream_progress({id}, '{earlier}')"),
    )
    .await;
    assert_eq!(
        st["protected_ts"]["wall_time_ns"].as_u64(),
        Some(wall + 5_000_000_000)
    );

    // Complete: the job succeeds; later heartbeats say so.
    one(
        &repl,
        &format!("SELECT crdb_internal.complete_replication_stream({id}, true)"),
    )
    .await
    .expect("complete");
    assert_eq!(producer_jobs(&root).await[0].1, "succeeded");
    let st = json(
        &repl,
        &format!("SELECT crdb_internal.replication_stream_progress({id}, '{later}')"),
    )
    .await;
    assert_eq!(st["status"], "succeeded");

    // Expiry: without heartbeats within the window the stream fails and says why.
    root.batch_execute(
        "SET CLUSTER SETTING physical_replication.producer.expiration_window = '1s'",
    )
    .await
    .expect("setting");
    let h2 = json(
        &repl,
        "SELECT crdb_internal.start_replication_stream('application')",
    )
    .await;
    let id2 = h2["stream_id"].as_u64().expect("stream id").to_string();
    let started = std::time::Instant::now();
    let job = common::poll_async("the stream to expire", Duration::from_secs(60), || async {
        // Heartbeats would keep the stream alive; only once the 1 s window has passed without
        // one does a heartbeat find the stream expired (the periodic sweep would too).
        if started.elapsed() < Duration::from_millis(1500) {
            return None;
        }
        let _ = one(
            &repl,
            &format!("SELECT crdb_internal.replication_stream_progress({id2}, '{later}')"),
        )
        .await;
        producer_jobs(&root)
            .await
            .into_iter()
            .find(|j| j.0 == id2 && j.1 == "failed")
    })
    .await;
    assert!(job.2.contains("expired"), "{job:?}");

    // A primary with rangefeeds disabled refuses to start streams.
    root.batch_execute("SET CLUSTER SETTING kv.rangefeed.enabled = false")
        .await
        .expect("setting");
    let e = one(
        &repl,
        "SELECT crdb_internal.start_replication_stream('application')",
    )
    .await
    .expect_err("rangefeeds off");
    assert!(
        sqlstate(&e).contains("kv.rangefeed.enabled"),
        "{}",
        sqlstate(&e)
    );
}

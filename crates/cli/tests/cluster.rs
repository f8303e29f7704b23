//! Multi-process clusters of the `roach` binary on 127.0.0.1: start, init, replication,
//! kill -9 and restart, leader failover, security boundaries and metrics.

mod common;

use common::{ProcCluster, ProcNode, must_make_certs, poll_async, roach};
use hlc::Timestamp;
use std::time::{Duration, Instant};
use storage::Span;

// Goal: a 3-node TLS cluster replicates a write to every node; with one node killed -9 writes
// still commit; the node restarts from its store, catches up, and its fingerprint equals the
// others'. A second `roach init` fails with a clear message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_cluster_replicates_survives_kill_and_catches_up() {
    let mut cluster = ProcCluster::must_start(3, true);
    let certs = cluster.certs.clone().expect("secure");
    let out = roach(&[
        "init",
        "--host",
        &cluster.nodes[1].rpc_addr,
        "--certs-dir",
        certs.to_str().expect("utf8"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster has already been initialized"));

    let ts = cluster.nodes[0]
        .client()
        .await
        .put(b"greeting", b"hello")
        .await
        .expect("put");
    for n in &cluster.nodes[1..] {
        let got = n.client().await.get(b"greeting", ts).await.expect("get");
        assert_eq!(got.as_deref(), Some(&b"hello"[..]));
    }

    let leader = cluster.leader().await.expect("leader");
    let victim = (leader + 1) % 3;
    let writer = (leader + 2) % 3;
    cluster.nodes[victim].kill9();
    let mut last = ts;
    for i in 0..20 {
        last = cluster.nodes[writer]
            .client()
            .await
            .put(format!("k{i}").as_bytes(), b"v")
            .await
            .expect("write with one node down");
    }
    cluster.nodes[victim].must_restart();
    cluster.nodes[victim].must_be_ready(Duration::from_secs(30));
    let restarted = cluster.nodes[victim].client().await;
    assert_eq!(
        restarted.get(b"k19", last).await.expect("get").as_deref(),
        Some(&b"v"[..])
    );
    let fp_restarted = restarted
        .fingerprint(&Span::all(), Timestamp::ZERO, last)
        .await
        .expect("fp");
    let fp_writer = cluster.nodes[writer]
        .client()
        .await
        .fingerprint(&Span::all(), Timestamp::ZERO, last)
        .await
        .expect("fp");
    assert_eq!(fp_restarted, fp_writer);
}

// Goal: after kill -9 of the leader, a new leader is elected and writes commit within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_elects_new_leader_within_5s() {
    let mut cluster = ProcCluster::must_start(3, true);
    cluster.nodes[0]
        .client()
        .await
        .put(b"before", b"1")
        .await
        .expect("put");
    let leader = cluster.leader().await.expect("leader");
    let survivor = (leader + 1) % 3;
    let client = cluster.nodes[survivor].client().await;
    cluster.nodes[leader].kill9();
    let start = Instant::now();
    poll_async(
        "a commit after the leader died",
        Duration::from_secs(5),
        || {
            let client = client.clone();
            async move { client.put(b"after", b"2").await.ok() }
        },
    )
    .await;
    println!(
        "commit resumed {} ms after killing the leader",
        start.elapsed().as_millis()
    );
    let new_leader = cluster.leader().await.expect("a new leader");
    assert_ne!(new_leader, leader);
}

// Goal: a node whose certificate comes from another CA cannot join (its log says why), and an
// insecure node cannot join a TLS cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_wrong_security_cannot_join() {
    let cluster = ProcCluster::must_start(1, true);
    let other_certs = must_make_certs(cluster.dir.path(), "other-ca");
    let join = vec![cluster.nodes[0].rpc_addr.clone()];
    let foreign = ProcNode::must_spawn(
        &cluster.dir.path().join("foreign"),
        "127.0.0.1:0",
        &join,
        Some(&other_certs),
    );
    let insecure = ProcNode::must_spawn(
        &cluster.dir.path().join("insecure"),
        "127.0.0.1:0",
        &join,
        None,
    );
    poll_async("the foreign-CA node to log its TLS failure", Duration::from_secs(20), || {
        let log = foreign.log();
        async move { (log.contains("certificate") || log.contains("UnknownIssuer")).then_some(()) }
    })
    .await;
    poll_async(
        "the insecure node to log its failure",
        Duration::from_secs(20),
        || {
            let log = insecure.log();
            async move { log.contains("cannot reach join target").then_some(()) }
        },
    )
    .await;
    let status = cluster.nodes[0]
        .client()
        .await
        .status()
        .await
        .expect("status");
    assert_eq!(status.voters.len(), 1, "nobody joined");
    assert!(status.learners.is_empty());
    let (code, body) = foreign.http_get("/health?ready=1");
    assert_eq!(code, 503, "{body}");
}

// Goal: `/_status/vars` serves the documented metrics in a format promtool accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_vars_pass_promtool() {
    let cluster = ProcCluster::must_start(1, false);
    cluster.nodes[0]
        .client()
        .await
        .put(b"k", b"v")
        .await
        .expect("put");
    let (code, body) = cluster.nodes[0].http_get("/_status/vars");
    assert_eq!(code, 200);
    for name in [
        "raft_is_leader",
        "raft_term",
        "raft_applied_index",
        "kv_closed_timestamp_lag_seconds",
        "kv_txn_commits_total",
        "kv_txn_aborts_total",
        "rpc_requests_total",
        "rangefeed_active",
    ] {
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "missing metric {name}"
        );
    }
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match promtool {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_none() => {
            println!(
                "promtool not installed ({e}); .ci/run installs it (Debian package prometheus)"
            );
            return;
        }
        Err(e) => panic!("promtool is required in CI: {e}"),
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// Goal: a client certificate from the cluster's own CA can use neither the Raft nor the KV
// service, which reach every virtual cluster's keys: only certificates with CN `node` may
// (regression test for any CA-signed certificate reaching the internal services); and the
// admin service refuses a connection without a client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_cannot_use_internal_services() {
    let cluster = ProcCluster::must_start(1, true);
    let certs = cluster.certs.clone().expect("secure");
    // cli_client_tls presents client.root when it exists.
    let tls = server::node::cli_client_tls(&certs).expect("tls");
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://{}", cluster.nodes[0].rpc_addr))
            .expect("endpoint")
            .tls_config(tls)
            .expect("tls config")
            .connect()
            .await
            .expect("connect");
    let mut raft = proto::kv::raft_client::RaftClient::new(channel);
    let err = raft
        .vote(proto::kv::RaftRequest {
            range_id: 1,
            payload: vec![],
        })
        .await
        .expect_err("a client certificate may not vote");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(
        err.message().contains("may not use this service"),
        "{err:?}"
    );

    // Nor may it use the KV service, which reaches every virtual cluster's keys.
    let tls = server::node::cli_client_tls(&certs).expect("tls");
    let kv = kv::KvClient::connect(&cluster.nodes[0].rpc_addr, Some(tls))
        .await
        .expect("connect");
    let err = kv
        .put(b"stolen", b"x")
        .await
        .expect_err("a client certificate may not write KV");
    assert!(err.to_string().contains("PermissionDenied"), "{err}");

    // The admin service (`roach init`) needs a certificate too: client certificates are
    // optional at the TLS level because other clusters' nodes reach the replication service.
    let ca = std::fs::read(certs.join("ca.crt")).expect("ca.crt");
    let anonymous = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca));
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://{}", cluster.nodes[0].rpc_addr))
            .expect("endpoint")
            .tls_config(anonymous)
            .expect("tls config")
            .connect()
            .await
            .expect("connect");
    let err = proto::server::admin_client::AdminClient::new(channel)
        .init(proto::server::InitRequest {})
        .await
        .expect_err("init without a client certificate");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
}

//! Tenant-scoped client certificates and node identity against a real secure node
//! (issue 14 item 2).

mod common;

use common::{Login, ProcCluster, roach, try_connect};
use std::path::{Path, PathBuf};

/// Connects to virtual cluster `vc` of node 0 as `user`, presenting `client.<user>.crt` from
/// `certs` (no password).
async fn connect_with_cert(
    cluster: &ProcCluster,
    certs: &Path,
    vc: &str,
    user: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    try_connect(cluster, 0, vc, user, Login::Certificate(certs)).await
}

/// The SQLSTATE and message of a failed connection attempt.
fn db_error(result: Result<tokio_postgres::Client, tokio_postgres::Error>) -> (String, String) {
    let err = match result {
        Ok(_) => panic!("the login must be refused"),
        Err(e) => e,
    };
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("a server error, not {err:?}"));
    (db.code().code().to_string(), db.message().to_string())
}

/// A certificates directory holding the cluster's `ca.crt`, for certificates signed by the
/// same CA but kept apart from the cluster's own `client.root.crt`.
fn must_make_dir_with_ca(cluster: &ProcCluster, name: &str) -> PathBuf {
    let certs = cluster.certs.as_ref().expect("secure");
    let dir = cluster.dir.path().join(name);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(certs.join("ca.crt"), dir.join("ca.crt")).expect("copy ca.crt");
    dir
}

fn must_roach_ok(args: &[&str]) {
    let out = roach(args);
    assert!(
        out.status.success(),
        "roach {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// Goal (issue 14 item 2): a client certificate scoped to `application` logs in there and is
// refused (28000, naming its scope) by the system virtual cluster, for root as for an ordinary
// user; the unscoped client.root.crt keeps working in both (today's behaviour).
// Method: one secure node with the replication-source profile (system + application); scoped
// certificates made by `roach cert create-client --tenant-scope` with the cluster's CA in a
// separate directory; logins through tokio-postgres presenting them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_client_certificates_log_in_only_to_their_virtual_clusters() {
    let cluster =
        ProcCluster::must_start_with(1, true, &["--config-profile", "replication-source"]);
    let certs = cluster.certs.clone().expect("secure");
    let ca_key = cluster.dir.path().join("certs.ca.key");
    let ca_key = ca_key.to_str().expect("utf8");

    // The unscoped root certificate: both virtual clusters.
    for vc in ["system", "application"] {
        let root = connect_with_cert(&cluster, &certs, vc, "root")
            .await
            .unwrap_or_else(|e| panic!("unscoped root into {vc}: {e}"));
        root.batch_execute("CREATE USER alice")
            .await
            .unwrap_or_else(|e| panic!("create alice in {vc}: {e}"));
    }

    let scoped = must_make_dir_with_ca(&cluster, "scoped");
    let scoped_str = scoped.to_str().expect("utf8");
    for user in ["root", "alice"] {
        must_roach_ok(&[
            "cert",
            "create-client",
            user,
            "--tenant-scope",
            "application",
            "--certs-dir",
            scoped_str,
            "--ca-key",
            ca_key,
        ]);
        let app = connect_with_cert(&cluster, &scoped, "application", user)
            .await
            .unwrap_or_else(|e| panic!("{user} scoped to application into application: {e}"));
        let row = app.query_one("SELECT 1", &[]).await.expect("query");
        assert_eq!(row.get::<_, i64>(0), 1);
        let (code, message) = db_error(connect_with_cert(&cluster, &scoped, "system", user).await);
        assert_eq!(code, "28000", "{user}: {message}");
        assert!(
            message.contains(&format!("scoped to virtual cluster 3 as user {user}")),
            "{user}: {message}"
        );
        assert!(message.contains("\"system\""), "{user}: {message}");
    }
}

/// Writes `client.node.crt`/`.key` into `dir`: CN `node`, signed by the cluster's CA, but a
/// client certificate (clientAuth only, no host names), as anyone holding the CA key could
/// have made with `create-client` before `node` was reserved.
fn must_craft_client_cert_with_cn_node(dir: &Path, ca_cert: &Path, ca_key: &Path) {
    let ca_pem = std::fs::read_to_string(ca_cert).expect("ca.crt");
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca_key).expect("ca key"))
        .expect("ca key pem");
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("issuer");
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "node");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("sign");
    std::fs::write(dir.join("client.node.crt"), cert.pem()).expect("write cert");
    std::fs::write(dir.join("client.node.key"), key.serialize_pem()).expect("write key");
}

// Goal (issue 14 item 2): a client certificate with CN `node` signed by the cluster's CA is not
// a node: the Raft service refuses it (PermissionDenied), and it cannot log in over SQL as user
// `node` even when such a user exists (28000); the real node certificate is no SQL login either.
// Method: one secure node; the certificate is crafted with rcgen in the test; a tonic client
// presenting it calls Raft `vote`; tokio-postgres presents it for user `node`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_with_cn_node_is_not_a_node() {
    let cluster = ProcCluster::must_start(1, true);
    let certs = cluster.certs.clone().expect("secure");
    let crafted = must_make_dir_with_ca(&cluster, "crafted");
    must_craft_client_cert_with_cn_node(
        &crafted,
        &certs.join("ca.crt"),
        &cluster.dir.path().join("certs.ca.key"),
    );

    // gRPC: the crafted certificate completes TLS (same CA) but is refused as a node.
    let read = |p: PathBuf| std::fs::read(p).expect("read");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read(
            certs.join("ca.crt"),
        )))
        .identity(tonic::transport::Identity::from_pem(
            read(crafted.join("client.node.crt")),
            read(crafted.join("client.node.key")),
        ));
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://{}", cluster.nodes[0].rpc_addr))
            .expect("endpoint")
            .tls_config(tls)
            .expect("tls config")
            .connect()
            .await
            .expect("connect");
    let err = proto::kv::raft_client::RaftClient::new(channel)
        .vote(proto::kv::RaftRequest {
            range_id: 1,
            payload: vec![],
        })
        .await
        .expect_err("a client certificate with CN node may not vote");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("node certificate"), "{err:?}");

    // SQL: even with a user named `node`, neither the crafted certificate nor the real node
    // certificate logs in as it. (CREATE USER node may itself be refused; then the login is
    // refused all the more.)
    let root = connect_with_cert(&cluster, &certs, "system", "root")
        .await
        .expect("root");
    let _ = root.batch_execute("CREATE USER node").await;
    let (code, message) = db_error(connect_with_cert(&cluster, &crafted, "system", "node").await);
    assert_eq!(code, "28000", "{message}");
    assert!(message.contains("reserved"), "{message}");

    let real = must_make_dir_with_ca(&cluster, "real-node");
    std::fs::copy(certs.join("node.crt"), real.join("client.node.crt")).expect("copy");
    std::fs::copy(certs.join("node.key"), real.join("client.node.key")).expect("copy");
    let (code, message) = db_error(connect_with_cert(&cluster, &real, "system", "node").await);
    assert_eq!(code, "28000", "{message}");

    // The node's own traffic is unaffected: a node-identity KV client still writes.
    cluster.nodes[0]
        .client()
        .await
        .put(b"item2", b"ok")
        .await
        .expect("a node certificate may use KV");
}

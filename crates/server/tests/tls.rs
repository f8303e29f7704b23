//! TLS configurations from a certificates directory, exercised by real handshakes over
//! 127.0.0.1 with certificates created by `server::certs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use server::certs::{self, Overwrite, Validity};
use server::tls::{self, ALPN_H2, CertFile, CertsDir, ClientCertMode, TlsError};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A deadline for one handshake, so a bug shows as a failure rather than a hang.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(20);

/// A CA with a node certificate (for 127.0.0.1 and localhost) and client certificates, in a
/// temporary directory.
struct Pki {
    tmp: TempDir,
    dir: CertsDir,
}

impl Pki {
    /// A path inside the temporary directory but outside the certificates directory.
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

fn must_create_pki(users: &[&str]) -> Pki {
    let tmp = TempDir::new().expect("create temp dir");
    let dir = CertsDir::new(tmp.path().join("certs"));
    let ca_key = tmp.path().join("safe").join("ca.key");
    certs::create_ca(
        &dir,
        &ca_key,
        Validity::starting_now(certs::CA_LIFETIME_DEFAULT),
        Overwrite::Refuse,
    )
    .expect("create CA");
    certs::create_node(
        &dir,
        &ca_key,
        &["127.0.0.1".to_string(), "localhost".to_string()],
        Validity::starting_now(certs::NODE_LIFETIME_DEFAULT),
        Overwrite::Refuse,
    )
    .expect("create node cert");
    for user in users {
        certs::create_client(
            &dir,
            &ca_key,
            user,
            Validity::starting_now(certs::CLIENT_LIFETIME_DEFAULT),
            Overwrite::Refuse,
        )
        .expect("create client cert");
    }
    Pki { tmp, dir }
}

/// What each side of one handshake saw.
#[derive(Debug)]
struct Outcome {
    /// The server: the Common Name of the client's certificate, if it sent one.
    server: anyhow::Result<Option<String>>,
    /// The client: the server certificate's Common Name and the negotiated ALPN protocol.
    client: anyhow::Result<(String, Option<Vec<u8>>)>,
}

/// Runs one TLS connection over 127.0.0.1: the server accepts, reports the client's CN and
/// writes `ok`; the client connects to `server_name`, reads `ok` and reports the server's CN.
/// A client certificate rejected by the server in TLS 1.3 surfaces on the client at that read.
async fn handshake(server: ServerConfig, client: ClientConfig, server_name: &str) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("listener address");
    let acceptor = TlsAcceptor::from(Arc::new(server));
    let server_side = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.context("accept tcp")?;
        let mut tls = acceptor.accept(tcp).await.context("server handshake")?;
        let cn = match tls.get_ref().1.peer_certificates() {
            Some(chain) => Some(tls::common_name(&chain[0])?),
            None => None,
        };
        tls.write_all(b"ok").await.context("server write")?;
        tls.shutdown().await.context("server shutdown")?;
        anyhow::Ok(cn)
    });
    let server_name = ServerName::try_from(server_name.to_string()).expect("valid server name");
    let client_side = async move {
        let tcp = TcpStream::connect(addr).await.context("connect tcp")?;
        let connector = TlsConnector::from(Arc::new(client));
        let mut tls = connector
            .connect(server_name, tcp)
            .await
            .context("client handshake")?;
        let mut reply = [0u8; 2];
        tls.read_exact(&mut reply).await.context("client read")?;
        anyhow::ensure!(&reply == b"ok", "unexpected reply {reply:?}");
        let (_, conn) = tls.get_ref();
        let chain = conn
            .peer_certificates()
            .context("server sent no certificate")?;
        let cn = tls::common_name(&chain[0])?;
        anyhow::Ok((cn, conn.alpn_protocol().map(<[u8]>::to_vec)))
    };
    let run = async {
        let client = client_side.await;
        let server = match server_side.await {
            Ok(result) => result,
            Err(e) => Err(anyhow::anyhow!("server task failed: {e}")),
        };
        Outcome { server, client }
    };
    tokio::time::timeout(HANDSHAKE_DEADLINE, run)
        .await
        .expect("handshake finished before the deadline")
}

#[tokio::test]
async fn node_to_node_mutual_tls_succeeds_and_both_sides_see_cn_node() {
    // Goal: a node dialling another node with the node client config completes mutual TLS in
    // "required" mode; each side sees CN "node"; the IP SAN and the DNS SAN both verify; ALPN
    // h2 is negotiated when both sides offer it.
    // Method: one CA, one node cert; handshakes to "localhost" and to "127.0.0.1".
    let pki = must_create_pki(&[]);
    for server_name in ["localhost", "127.0.0.1"] {
        let server = tls::node_server_config(&pki.dir, ClientCertMode::Required, &[ALPN_H2])
            .expect("server config");
        let client = tls::node_client_config(&pki.dir, &[ALPN_H2]).expect("client config");
        let outcome = handshake(server, client, server_name).await;
        let server_cn = outcome.server.expect("server accepted the node");
        assert_eq!(server_cn.as_deref(), Some(tls::NODE_COMMON_NAME));
        let (client_cn, alpn) = outcome.client.expect("client verified the node");
        assert_eq!(client_cn, tls::NODE_COMMON_NAME);
        assert_eq!(alpn.as_deref(), Some(ALPN_H2));
    }
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_rejected_in_both_modes() {
    // Goal: a client presenting a certificate signed by a different CA is refused, whether
    // client certificates are required or optional (optional never means "unverified").
    // Method: two CAs A and B; the client trusts A's CA (so it verifies the server) but
    // presents B's node certificate.
    let a = must_create_pki(&[]);
    let b = must_create_pki(&[]);
    let mixed = CertsDir::new(a.path("mixed"));
    std::fs::create_dir(mixed.path()).expect("create mixed dir");
    std::fs::copy(a.dir.ca_cert(), mixed.ca_cert()).expect("copy ca.crt");
    std::fs::copy(b.dir.node_cert(), mixed.node_cert()).expect("copy node.crt");
    std::fs::copy(b.dir.node_key(), mixed.node_key()).expect("copy node.key");

    for mode in [ClientCertMode::Required, ClientCertMode::Optional] {
        let server = tls::node_server_config(&a.dir, mode, &[]).expect("server config");
        let client = tls::node_client_config(&mixed, &[]).expect("client config");
        let outcome = handshake(server, client, "localhost").await;
        let server_error = outcome
            .server
            .expect_err("server must reject a foreign client cert");
        assert!(
            format!("{server_error:#}").contains("UnknownIssuer"),
            "{mode:?}: {server_error:#}"
        );
        assert!(
            outcome.client.is_err(),
            "{mode:?}: the client must not get a reply"
        );
    }
}

#[tokio::test]
async fn client_without_certificate_is_rejected_when_required_and_accepted_when_optional() {
    // Goal: "required" mode refuses a client that presents no certificate, "optional" mode
    // accepts it (the server sees no CN), and a user's own client certificate is accepted in
    // "optional" mode with CN = the user.
    // Method: user_client_config for a user without certificate files ("nocert") and for one
    // with them ("alice").
    let pki = must_create_pki(&["alice"]);

    let server = tls::node_server_config(&pki.dir, ClientCertMode::Required, &[]).expect("server");
    let client = tls::user_client_config(&pki.dir, "nocert", &[]).expect("client");
    let outcome = handshake(server, client, "localhost").await;
    let server_error = outcome
        .server
        .expect_err("required mode needs a client cert");
    assert!(
        format!("{server_error:#}").contains("peer sent no certificates"),
        "{server_error:#}"
    );
    assert!(outcome.client.is_err());

    let server = tls::node_server_config(&pki.dir, ClientCertMode::Optional, &[]).expect("server");
    let client = tls::user_client_config(&pki.dir, "nocert", &[]).expect("client");
    let outcome = handshake(server, client, "localhost").await;
    assert_eq!(outcome.server.expect("optional mode accepts"), None);
    outcome.client.expect("client verified the server");

    let server = tls::node_server_config(&pki.dir, ClientCertMode::Optional, &[]).expect("server");
    let client = tls::user_client_config(&pki.dir, "alice", &[]).expect("client");
    let outcome = handshake(server, client, "localhost").await;
    assert_eq!(
        outcome
            .server
            .expect("optional mode accepts alice")
            .as_deref(),
        Some("alice")
    );
    outcome.client.expect("client verified the server");
}

#[tokio::test]
async fn client_that_does_not_trust_the_ca_fails_to_verify_the_server() {
    // Goal: a client whose ca.crt is a different CA refuses the server's certificate.
    // Method: server from CA A; a user client config from CA B's directory.
    let a = must_create_pki(&[]);
    let b = must_create_pki(&[]);
    let server = tls::node_server_config(&a.dir, ClientCertMode::Optional, &[]).expect("server");
    let client = tls::user_client_config(&b.dir, "root", &[]).expect("client");
    let outcome = handshake(server, client, "localhost").await;
    let client_error = outcome.client.expect_err("client must reject the server");
    assert!(
        format!("{client_error:#}").contains("UnknownIssuer"),
        "{client_error:#}"
    );
    assert!(outcome.server.is_err());
}

#[test]
fn missing_files_give_typed_errors_naming_the_file() {
    // Goal: each loader reports a missing file as TlsError::Read naming that file's kind and
    // path, with the `roach cert` command that creates it.
    // Method: load from an empty directory, then from full directories with one file removed.
    let empty = TempDir::new().expect("temp dir");
    let dir = CertsDir::new(empty.path());
    let error =
        tls::node_server_config(&dir, ClientCertMode::Required, &[]).expect_err("must fail");
    assert_read_error(
        &error,
        &CertFile::CaCert,
        &dir.ca_cert(),
        "roach cert create-ca",
    );

    let pki = must_create_pki(&["alice"]);
    std::fs::remove_file(pki.dir.node_key()).expect("remove node.key");
    let error = tls::node_client_config(&pki.dir, &[]).expect_err("must fail");
    assert_read_error(
        &error,
        &CertFile::NodeKey,
        &pki.dir.node_key(),
        "roach cert create-node",
    );
    std::fs::remove_file(pki.dir.node_cert()).expect("remove node.crt");
    let error = tls::node_pem(&pki.dir).expect_err("must fail");
    assert_read_error(
        &error,
        &CertFile::NodeCert,
        &pki.dir.node_cert(),
        "roach cert create-node",
    );

    std::fs::remove_file(pki.dir.client_cert("alice")).expect("remove client cert");
    let error = tls::user_client_config(&pki.dir, "alice", &[]).expect_err("must fail");
    assert_read_error(
        &error,
        &CertFile::ClientCert {
            user: "alice".into(),
        },
        &pki.dir.client_cert("alice"),
        "roach cert create-client alice",
    );
}

fn assert_read_error(error: &TlsError, want_file: &CertFile, want_path: &PathBuf, hint: &str) {
    match error {
        TlsError::Read { file, path, .. } => {
            assert_eq!(file, want_file);
            assert_eq!(path, want_path);
        }
        other => panic!("want a read error for {want_file}, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "cannot read {want_file} {}: ",
            want_path.display()
        )),
        "{message}"
    );
    assert!(message.contains(hint), "{message}");
}

#[test]
fn node_pem_returns_the_files_and_a_mismatched_key_is_a_typed_error() {
    // Goal: node_pem returns the three files' bytes unchanged; a node key that does not belong
    // to node.crt is reported as TlsError::CertKey naming both files.
    // Method: read back from a fresh PKI; then replace node.key with another CA's node key.
    let a = must_create_pki(&[]);
    let pem = tls::node_pem(&a.dir).expect("node pem");
    assert_eq!(
        pem.ca_cert,
        std::fs::read(a.dir.ca_cert()).expect("read ca")
    );
    assert_eq!(
        pem.node_cert,
        std::fs::read(a.dir.node_cert()).expect("read cert")
    );
    assert_eq!(
        pem.node_key,
        std::fs::read(a.dir.node_key()).expect("read key")
    );
    assert!(
        !format!("{pem:?}").contains("PRIVATE KEY"),
        "Debug must redact the key"
    );

    let b = must_create_pki(&[]);
    std::fs::copy(b.dir.node_key(), a.dir.node_key()).expect("copy foreign key");
    let error =
        tls::node_server_config(&a.dir, ClientCertMode::Required, &[]).expect_err("must fail");
    assert!(
        matches!(
            &error,
            TlsError::CertKey {
                cert_file: CertFile::NodeCert,
                key_file: CertFile::NodeKey,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains(&a.dir.node_key().display().to_string())
    );
}

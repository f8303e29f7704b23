//! `roach cert ...`, run as the built binary in a temporary directory.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use server::tls::{self, CertsDir, ClientCertMode};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Runs `roach <args>` in `cwd` with the ROACH_* variables cleared, then `env` set.
fn roach(cwd: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roach"));
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("ROACH_CERTS_DIR")
        .env_remove("ROACH_CA_KEY");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run roach")
}

/// Runs `roach <args>` and fails the test unless it succeeds; returns stdout.
fn must_roach(cwd: &Path, args: &[&str]) -> String {
    let output = roach(cwd, args, &[]);
    assert!(
        output.status.success(),
        "roach {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

/// Runs `roach <args>`, expects exit code 1, returns stderr.
fn must_fail(cwd: &Path, args: &[&str]) -> String {
    let output = roach(cwd, args, &[]);
    assert_eq!(output.status.code(), Some(1), "roach {args:?} must fail");
    String::from_utf8(output.stderr).expect("utf-8 stderr")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Creates a CA, a node cert for 127.0.0.1 and localhost, and a client cert for root.
fn must_create_all(cwd: &Path) {
    must_roach(
        cwd,
        &[
            "cert",
            "create-ca",
            "--certs-dir",
            "certs",
            "--ca-key",
            "safe/ca.key",
        ],
    );
    must_roach(
        cwd,
        &[
            "cert",
            "create-node",
            "127.0.0.1",
            "localhost",
            "--certs-dir",
            "certs",
            "--ca-key",
            "safe/ca.key",
        ],
    );
    must_roach(
        cwd,
        &[
            "cert",
            "create-client",
            "root",
            "--certs-dir",
            "certs",
            "--ca-key",
            "safe/ca.key",
        ],
    );
}

#[test]
fn creates_ca_node_and_client_files_with_private_keys_0600() {
    // Goal: the three commands write the documented files, print one `wrote` line per file,
    // create missing directories, and create every private key with mode 0600.
    // Method: run them in an empty temp dir; inspect stdout, files and modes.
    let tmp = TempDir::new().expect("temp dir");
    let cwd = tmp.path();
    let out = must_roach(
        cwd,
        &[
            "cert",
            "create-ca",
            "--certs-dir",
            "certs",
            "--ca-key",
            "safe/ca.key",
        ],
    );
    assert_eq!(out, "wrote safe/ca.key\nwrote certs/ca.crt\n");
    let out = must_roach(
        cwd,
        &[
            "cert",
            "create-node",
            "127.0.0.1",
            "localhost",
            "--certs-dir",
            "certs",
            "--ca-key",
            "safe/ca.key",
        ],
    );
    assert_eq!(out, "wrote certs/node.key\nwrote certs/node.crt\n");
    let out = must_roach(
        cwd,
        &[
            "cert",
            "create-client",
            "root",
            "--certs-dir",
            "certs",
            "--ca-key",
            "safe/ca.key",
        ],
    );
    assert_eq!(
        out,
        "wrote certs/client.root.key\nwrote certs/client.root.crt\n"
    );

    for key in ["safe/ca.key", "certs/node.key", "certs/client.root.key"] {
        let path = cwd.join(key);
        assert_eq!(mode(&path), 0o600, "{key}");
        let pem = std::fs::read_to_string(&path).expect("read key");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    }
    for cert in ["certs/ca.crt", "certs/node.crt", "certs/client.root.crt"] {
        let pem = std::fs::read_to_string(cwd.join(cert)).expect("read cert");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
    }
    assert!(
        !cwd.join("certs/ca.key").exists(),
        "the CA key stays out of certs/"
    );
}

#[test]
fn existing_files_are_kept_unless_overwrite() {
    // Goal: rerunning a command refuses with an error naming the existing file and leaves it
    // unchanged; `--overwrite` replaces it, and a replaced key is 0600 even if the old file
    // had wider permissions.
    // Method: create everything, rerun create-node with and without --overwrite after making
    // node.key world-readable.
    let tmp = TempDir::new().expect("temp dir");
    let cwd = tmp.path();
    must_create_all(cwd);
    let node_key = cwd.join("certs/node.key");
    let before = std::fs::read(&node_key).expect("read key");
    std::fs::set_permissions(&node_key, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    let args = [
        "cert",
        "create-node",
        "localhost",
        "--certs-dir",
        "certs",
        "--ca-key",
        "safe/ca.key",
    ];
    let stderr = must_fail(cwd, &args);
    assert!(
        stderr.contains("node key certs/node.key already exists; pass --overwrite"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&node_key).expect("read key"), before);

    let mut with_overwrite = args.to_vec();
    with_overwrite.push("--overwrite");
    must_roach(cwd, &with_overwrite);
    assert_ne!(std::fs::read(&node_key).expect("read key"), before);
    assert_eq!(mode(&node_key), 0o600);

    let stderr = must_fail(
        cwd,
        &[
            "cert",
            "create-ca",
            "--certs-dir",
            "certs",
            "--ca-key",
            "safe/ca.key",
        ],
    );
    assert!(
        stderr.contains("CA key safe/ca.key already exists"),
        "{stderr}"
    );
}

#[test]
fn bad_input_and_missing_ca_give_clear_errors() {
    // Goal: an invalid user name, a node cert without hosts and a missing CA each fail with a
    // message saying what is wrong (and, for the CA, what to run), writing nothing.
    // Method: run the commands in an empty directory, then with a CA.
    let tmp = TempDir::new().expect("temp dir");
    let cwd = tmp.path();
    let stderr = must_fail(
        cwd,
        &[
            "cert",
            "create-client",
            "root",
            "--certs-dir",
            "certs",
            "--ca-key",
            "safe/ca.key",
        ],
    );
    assert!(
        stderr.contains("cannot read CA certificate certs/ca.crt"),
        "{stderr}"
    );
    assert!(stderr.contains("roach cert create-ca"), "{stderr}");

    must_roach(
        cwd,
        &[
            "cert",
            "create-ca",
            "--certs-dir",
            "certs",
            "--ca-key",
            "safe/ca.key",
        ],
    );
    let stderr = must_fail(
        cwd,
        &[
            "cert",
            "create-node",
            "localhost",
            "--certs-dir",
            "certs",
            "--ca-key",
            "other.key",
        ],
    );
    assert!(stderr.contains("cannot read CA key other.key"), "{stderr}");
    assert!(stderr.contains("roach cert create-ca"), "{stderr}");

    for user in ["Root", "../evil", "a b", ""] {
        let stderr = must_fail(
            cwd,
            &[
                "cert",
                "create-client",
                user,
                "--certs-dir",
                "certs",
                "--ca-key",
                "safe/ca.key",
            ],
        );
        assert!(stderr.contains("invalid user name"), "{user:?}: {stderr}");
    }
    let entries: Vec<_> = std::fs::read_dir(cwd.join("certs"))
        .expect("list certs")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(entries, ["ca.crt"], "nothing but the CA was written");

    let output = roach(
        cwd,
        &[
            "cert",
            "create-node",
            "--certs-dir",
            "certs",
            "--ca-key",
            "safe/ca.key",
        ],
        &[],
    );
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap usage error without hosts"
    );
    let output = roach(
        cwd,
        &[
            "cert",
            "create-ca",
            "--ca-key",
            "x.key",
            "--lifetime",
            "forever",
        ],
        &[],
    );
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap usage error for a bad lifetime"
    );
}

#[test]
fn certs_dir_and_ca_key_come_from_the_environment_and_certs_is_the_default() {
    // Goal: ROACH_CERTS_DIR and ROACH_CA_KEY stand in for the flags, and without either the
    // certificates directory is ./certs.
    // Method: create a CA via the environment, then a node cert with only ROACH_CA_KEY.
    let tmp = TempDir::new().expect("temp dir");
    let cwd = tmp.path();
    let ca_key = cwd.join("safe/ca.key");
    let env_dir = cwd.join("env-certs");
    let output = roach(
        cwd,
        &["cert", "create-ca"],
        &[("ROACH_CERTS_DIR", &env_dir), ("ROACH_CA_KEY", &ca_key)],
    );
    assert!(output.status.success(), "{output:?}");
    assert!(env_dir.join("ca.crt").exists());
    assert!(ca_key.exists());

    std::fs::create_dir(cwd.join("certs")).expect("mkdir certs");
    std::fs::copy(env_dir.join("ca.crt"), cwd.join("certs/ca.crt")).expect("copy ca.crt");
    let output = roach(
        cwd,
        &["cert", "create-node", "localhost"],
        &[("ROACH_CA_KEY", &ca_key)],
    );
    assert!(output.status.success(), "{output:?}");
    assert!(cwd.join("certs/node.crt").exists());
    assert!(cwd.join("certs/node.key").exists());
}

#[tokio::test]
async fn created_certificates_work_in_a_real_tls_handshake() {
    // Goal: the node certificate verifies against ca.crt for 127.0.0.1 and the client.root
    // certificate is accepted by a node that requires client certificates, which sees CN root.
    // Method: certs from the binary; a tokio-rustls server and client on 127.0.0.1:0 using
    // server::tls configurations.
    let tmp = TempDir::new().expect("temp dir");
    must_create_all(tmp.path());
    let dir = CertsDir::new(tmp.path().join("certs"));

    let server_config =
        tls::node_server_config(&dir, ClientCertMode::Required, &[]).expect("server config");
    let client_config = tls::user_client_config(&dir, "root", &[]).expect("client config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let acceptor = TlsAcceptor::from(Arc::new(server_config));
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut conn = acceptor.accept(tcp).await.expect("server handshake");
        let chain = conn
            .get_ref()
            .1
            .peer_certificates()
            .expect("client certificate")
            .to_vec();
        conn.write_all(b"ok").await.expect("write");
        conn.shutdown().await.expect("shutdown");
        tls::common_name(&chain[0]).expect("client CN")
    });
    let client = async {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("127.0.0.1").expect("server name");
        let mut conn = TlsConnector::from(Arc::new(client_config))
            .connect(name, tcp)
            .await
            .expect("client handshake");
        let mut reply = [0u8; 2];
        conn.read_exact(&mut reply).await.expect("read");
        assert_eq!(&reply, b"ok");
        let chain = conn.get_ref().1.peer_certificates().expect("server cert");
        tls::common_name(&chain[0]).expect("server CN")
    };
    let deadline = Duration::from_secs(20);
    let server_cn_seen_by_client = tokio::time::timeout(deadline, client)
        .await
        .expect("client finished before the deadline");
    let client_cn_seen_by_server = tokio::time::timeout(deadline, server)
        .await
        .expect("server finished before the deadline")
        .expect("server task");
    assert_eq!(server_cn_seen_by_client, "node");
    assert_eq!(client_cn_seen_by_server, "root");
}

#[test]
fn a_ca_key_inside_the_certs_dir_draws_a_warning() {
    // Goal: create-ca still succeeds but warns on stderr when the CA key would sit in the
    // certificates directory that gets copied to nodes; a key elsewhere draws no warning.
    // Method: run create-ca both ways and read stderr.
    let tmp = TempDir::new().expect("temp dir");
    let cwd = tmp.path();
    let inside = roach(
        cwd,
        &[
            "cert",
            "create-ca",
            "--certs-dir",
            "certs",
            "--ca-key",
            "certs/ca.key",
        ],
        &[],
    );
    assert!(inside.status.success(), "{inside:?}");
    let stderr = String::from_utf8_lossy(&inside.stderr);
    assert!(
        stderr.contains("warning: the CA key certs/ca.key is inside"),
        "{stderr}"
    );

    let outside = roach(
        cwd,
        &[
            "cert",
            "create-ca",
            "--certs-dir",
            "other",
            "--ca-key",
            "safe/ca.key",
        ],
        &[],
    );
    assert!(outside.status.success(), "{outside:?}");
    assert!(outside.stderr.is_empty(), "{outside:?}");
}

#[test]
fn create_client_writes_the_tenant_scope_and_refuses_node() {
    // Goal (issue 14 item 2): `create-client USER --tenant-scope ...` writes one SAN URI
    // `roach://tenant/<id>/user/USER` per virtual cluster (`system` = 1, `application` = 3,
    // numeric ids as given, duplicates dropped); an unknown name or 0 is refused with a hint
    // and writes nothing; `create-client node` is refused because `node` names node
    // certificates; a certificate without --tenant-scope has no scope.
    // Method: the binary in a temporary directory; the written certificates are read back with
    // server::tls::peer_identity (the parser login uses).
    let tmp = TempDir::new().expect("temp dir");
    let cwd = tmp.path();
    must_create_all(cwd);
    fn with<'a>(head: &[&'a str]) -> Vec<&'a str> {
        [head, &["--certs-dir", "certs", "--ca-key", "safe/ca.key"]].concat()
    }
    must_roach(
        cwd,
        &with(&[
            "cert",
            "create-client",
            "alice",
            "--tenant-scope",
            "application,7,system,3",
        ]),
    );
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    let identity = |user: &str| {
        let pem = std::fs::read(cwd.join(format!("certs/client.{user}.crt"))).expect("cert");
        let der = tokio_rustls::rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
            .next()
            .expect("one certificate")
            .expect("pem");
        tls::peer_identity(&der).expect("identity")
    };
    let alice = identity("alice");
    assert_eq!(alice.common_name, "alice");
    assert!(!alice.is_node);
    let scope: Vec<(u64, String)> = alice.scope.iter().map(|(t, u)| (t.0, u.clone())).collect();
    assert_eq!(
        scope,
        vec![
            (3, "alice".to_string()),
            (7, "alice".to_string()),
            (1, "alice".to_string())
        ]
    );
    assert!(identity("root").scope.is_empty(), "no flag, no scope");

    let err = must_fail(
        cwd,
        &with(&["cert", "create-client", "bob", "--tenant-scope", "payroll"]),
    );
    assert!(err.contains("invalid tenant scope"), "{err}");
    assert!(err.contains("SHOW VIRTUAL CLUSTERS"), "{err}");
    let err = must_fail(
        cwd,
        &with(&["cert", "create-client", "bob", "--tenant-scope", "0"]),
    );
    assert!(err.contains("0 is not a virtual cluster id"), "{err}");
    assert!(!cwd.join("certs/client.bob.crt").exists());

    let err = must_fail(cwd, &with(&["cert", "create-client", "node"]));
    assert!(err.contains("reserved for node certificates"), "{err}");
    assert!(err.contains("create-node"), "{err}");
    assert!(!cwd.join("certs/client.node.crt").exists());
}

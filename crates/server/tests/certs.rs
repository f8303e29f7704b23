//! Certificate creation (`server::certs`): contents, validity, file safety and input checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use server::certs::{self, Overwrite, Validity};
use server::tls::{CertFile, CertsDir, TlsError};
use tempfile::TempDir;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// 2030-01-01T00:00:00Z: a fixed creation time, so validity bounds are exact.
const NOW_UNIX_SECS: u64 = 1_893_456_000;

fn fixed(lifetime: Duration) -> Validity {
    Validity {
        now: UNIX_EPOCH + Duration::from_secs(NOW_UNIX_SECS),
        lifetime,
    }
}

fn must_create_ca(tmp: &TempDir) -> (CertsDir, PathBuf) {
    let dir = CertsDir::new(tmp.path().join("certs"));
    let ca_key = tmp.path().join("ca.key");
    certs::create_ca(
        &dir,
        &ca_key,
        fixed(certs::CA_LIFETIME_DEFAULT),
        Overwrite::Refuse,
    )
    .expect("create CA");
    (dir, ca_key)
}

/// Reads the first certificate of a PEM file as DER.
fn must_read_der(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).expect("read PEM certificate")
}

fn cn(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .expect("a common name")
        .to_string()
}

#[test]
fn certificates_carry_the_expected_names_usages_and_validity() {
    // Goal: the CA is a CA; the node cert has CN node, the given hosts as IP/DNS SANs and both
    // serverAuth and clientAuth; the client cert has CN = user and clientAuth only; validity is
    // [now - 1h, now + lifetime]; every leaf is issued by the CA.
    // Method: create with a fixed creation time, then parse the PEM files with x509-parser.
    let tmp = TempDir::new().expect("temp dir");
    let (dir, ca_key) = must_create_ca(&tmp);
    let hosts = [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "node1.example.com",
        "localhost",
    ];
    let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    certs::create_node(
        &dir,
        &ca_key,
        &hosts,
        fixed(certs::NODE_LIFETIME_DEFAULT),
        Overwrite::Refuse,
    )
    .expect("create node");
    certs::create_client(
        &dir,
        &ca_key,
        "app_user-1.x",
        fixed(certs::CLIENT_LIFETIME_DEFAULT),
        Overwrite::Refuse,
    )
    .expect("create client");

    let ca_der = must_read_der(&dir.ca_cert());
    let (_, ca) = X509Certificate::from_der(&ca_der).expect("parse ca");
    assert!(ca.is_ca());
    assert!(cn(&ca).starts_with("Roach CA "), "{}", cn(&ca));
    assert_eq!(
        ca.validity().not_after.timestamp(),
        (NOW_UNIX_SECS + certs::CA_LIFETIME_DEFAULT.as_secs()) as i64
    );

    let node_der = must_read_der(&dir.node_cert());
    let (_, node) = X509Certificate::from_der(&node_der).expect("parse node");
    assert_eq!(cn(&node), "node");
    assert!(!node.is_ca());
    assert_eq!(node.issuer(), ca.subject());
    assert_eq!(
        node.validity().not_before.timestamp(),
        (NOW_UNIX_SECS - 3600) as i64
    );
    assert_eq!(
        node.validity().not_after.timestamp(),
        (NOW_UNIX_SECS + certs::NODE_LIFETIME_DEFAULT.as_secs()) as i64
    );
    let san = node
        .subject_alternative_name()
        .expect("valid SAN extension")
        .expect("a SAN extension");
    let mut ips = Vec::new();
    let mut dns = Vec::new();
    for name in &san.value.general_names {
        match name {
            GeneralName::IPAddress(bytes) => ips.push(match bytes.len() {
                4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes")),
                _ => IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("16 bytes")),
            }),
            GeneralName::DNSName(name) => dns.push(name.to_string()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    assert_eq!(
        ips,
        [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        ]
    );
    assert_eq!(
        dns,
        ["localhost", "node1.example.com"],
        "duplicates dropped"
    );
    let eku = node
        .extended_key_usage()
        .expect("valid EKU")
        .expect("an EKU extension");
    assert!(eku.value.server_auth && eku.value.client_auth);

    let client_der = must_read_der(&dir.client_cert("app_user-1.x"));
    let (_, client) = X509Certificate::from_der(&client_der).expect("parse client");
    assert_eq!(cn(&client), "app_user-1.x");
    assert_eq!(client.issuer(), ca.subject());
    let eku = client
        .extended_key_usage()
        .expect("valid EKU")
        .expect("an EKU extension");
    assert!(eku.value.client_auth && !eku.value.server_auth);
    assert_eq!(
        server::tls::common_name(&client_der).expect("cn"),
        "app_user-1.x"
    );
}

#[test]
fn a_refused_command_writes_nothing() {
    // Goal: without Overwrite::Replace, an existing target file is a typed error naming it,
    // and no other file of the command is written; with Replace both files are replaced.
    // Method: pre-create node.key only, then create the node cert both ways.
    let tmp = TempDir::new().expect("temp dir");
    let (dir, ca_key) = must_create_ca(&tmp);
    std::fs::write(dir.node_key(), "old").expect("write stale key");
    let hosts = ["localhost".to_string()];
    let error = certs::create_node(
        &dir,
        &ca_key,
        &hosts,
        fixed(certs::NODE_LIFETIME_DEFAULT),
        Overwrite::Refuse,
    )
    .expect_err("must refuse");
    assert!(
        matches!(&error, TlsError::Exists { file: CertFile::NodeKey, path } if *path == dir.node_key()),
        "{error:?}"
    );
    assert!(error.to_string().contains("--overwrite"), "{error}");
    assert!(!dir.node_cert().exists());

    let written = certs::create_node(
        &dir,
        &ca_key,
        &hosts,
        fixed(certs::NODE_LIFETIME_DEFAULT),
        Overwrite::Replace,
    )
    .expect("replace");
    assert_eq!(written, [dir.node_key(), dir.node_cert()]);
    let key = std::fs::read_to_string(dir.node_key()).expect("read key");
    assert!(key.contains("PRIVATE KEY"));
}

#[test]
fn signing_needs_the_matching_unexpired_ca() {
    // Goal: a missing CA says to run `roach cert create-ca`; a CA key that does not belong to
    // ca.crt is refused; a leaf that would outlive its CA is refused.
    // Method: sign with no CA, with another CA's key, and with a CA that lives two days.
    let tmp = TempDir::new().expect("temp dir");
    let dir = CertsDir::new(tmp.path().join("certs"));
    let ca_key = tmp.path().join("ca.key");
    let error = certs::create_client(
        &dir,
        &ca_key,
        "root",
        fixed(certs::CLIENT_LIFETIME_DEFAULT),
        Overwrite::Refuse,
    )
    .expect_err("no CA yet");
    assert!(
        matches!(
            &error,
            TlsError::Read {
                file: CertFile::CaCert,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("roach cert create-ca"),
        "{error}"
    );

    let (dir, ca_key) = must_create_ca(&tmp);
    let other = TempDir::new().expect("temp dir");
    let (_, other_key) = must_create_ca(&other);
    let error = certs::create_client(
        &dir,
        &other_key,
        "root",
        fixed(certs::CLIENT_LIFETIME_DEFAULT),
        Overwrite::Refuse,
    )
    .expect_err("foreign CA key");
    assert!(
        matches!(
            &error,
            TlsError::CertKey {
                key_file: CertFile::CaKey,
                ..
            }
        ),
        "{error:?}"
    );

    certs::create_ca(
        &dir,
        &ca_key,
        fixed(Duration::from_secs(2 * 24 * 3600)),
        Overwrite::Replace,
    )
    .expect("short-lived CA");
    let error = certs::create_client(
        &dir,
        &ca_key,
        "root",
        fixed(certs::CLIENT_LIFETIME_DEFAULT),
        Overwrite::Refuse,
    )
    .expect_err("outlives CA");
    assert!(matches!(&error, TlsError::OutlivesCa { .. }), "{error:?}");
    certs::create_client(
        &dir,
        &ca_key,
        "root",
        fixed(Duration::from_secs(24 * 3600)),
        Overwrite::Refuse,
    )
    .expect("a one-day client cert fits inside the CA");
}

#[test]
fn bad_user_names_hosts_and_lifetimes_are_rejected() {
    // Goal: user names outside [a-z0-9_][a-z0-9_.-]{0,62}, hosts that are neither IPs nor DNS
    // names, an empty host list and out-of-range lifetimes are typed errors.
    // Method: table of inputs against validate_user_name, create_node and create_ca.
    for good in ["root", "a", "_x", "0user", "app.user-1", &"a".repeat(63)] {
        certs::validate_user_name(good).expect(good);
    }
    for bad in [
        "",
        "Root",
        "-x",
        ".x",
        "..",
        "a/b",
        "a b",
        "ä",
        "x\n",
        &"a".repeat(64),
    ] {
        let error = certs::validate_user_name(bad).expect_err(bad);
        assert!(
            matches!(&error, TlsError::InvalidUser { user, .. } if user == bad),
            "{error:?}"
        );
    }

    let tmp = TempDir::new().expect("temp dir");
    let (dir, ca_key) = must_create_ca(&tmp);
    let node = |hosts: &[&str]| {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        certs::create_node(
            &dir,
            &ca_key,
            &hosts,
            fixed(certs::NODE_LIFETIME_DEFAULT),
            Overwrite::Replace,
        )
    };
    assert!(matches!(node(&[]), Err(TlsError::NoHosts)));
    for bad in ["", "bad host", "under/score", "näme"] {
        let error = node(&["localhost", bad]).expect_err(bad);
        assert!(
            matches!(&error, TlsError::InvalidHost { host, .. } if host == bad),
            "{error:?}"
        );
    }

    let other = TempDir::new().expect("temp dir");
    let other_dir = CertsDir::new(other.path());
    let other_key = other.path().join("ca.key");
    for lifetime in [
        Duration::ZERO,
        Duration::from_secs(3600),
        Duration::from_secs(101 * 365 * 24 * 3600),
    ] {
        let error = certs::create_ca(&other_dir, &other_key, fixed(lifetime), Overwrite::Refuse)
            .expect_err("lifetime out of range");
        assert!(
            matches!(&error, TlsError::InvalidLifetime { .. }),
            "{error:?}"
        );
    }
    let far_future = Validity {
        now: SystemTime::UNIX_EPOCH + Duration::from_secs(8000 * 365 * 24 * 3600),
        lifetime: certs::CA_LIFETIME_DEFAULT,
    };
    let error = certs::create_ca(&other_dir, &other_key, far_future, Overwrite::Refuse)
        .expect_err("clock out of range");
    assert!(
        matches!(&error, TlsError::InvalidLifetime { .. }),
        "{error:?}"
    );
    assert!(!other_key.exists(), "nothing written on a refused command");
}

#[test]
fn node_identity_needs_the_node_key_usages_and_host_names() {
    // Goal (issue 14 item 2): `peer_identity` calls a certificate a node only when it is what
    // `create_node` issues (CN node, serverAuth and clientAuth, host SANs, no scope); a client
    // certificate crafted with CN node (clientAuth only, no SAN) is not a node, nor is a
    // node-like certificate carrying a tenant scope; scoped client certificates list their
    // scope.
    // Method: certificates from `server::certs` and crafted with rcgen, signed by the same CA.
    let tmp = TempDir::new().expect("temp dir");
    let (dir, ca_key) = must_create_ca(&tmp);
    certs::create_node(
        &dir,
        &ca_key,
        &["127.0.0.1".to_string()],
        fixed(certs::NODE_LIFETIME_DEFAULT),
        Overwrite::Refuse,
    )
    .expect("node cert");
    let node = server::tls::peer_identity(&must_read_der(&dir.node_cert())).expect("node");
    assert!(node.is_node, "{node:?}");

    certs::create_scoped_client(
        &dir,
        &ca_key,
        "alice",
        &certs::parse_tenant_scope("application,system").expect("scope"),
        fixed(certs::CLIENT_LIFETIME_DEFAULT),
        Overwrite::Refuse,
    )
    .expect("scoped client cert");
    let alice =
        server::tls::peer_identity(&must_read_der(&dir.client_cert("alice"))).expect("alice");
    assert!(!alice.is_node);
    assert_eq!(
        alice.describe_scope(),
        "virtual cluster 3 as user alice, virtual cluster 1 as user alice"
    );

    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(dir.ca_cert()).expect("ca.crt"),
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(&ca_key).expect("ca key"))
            .expect("ca key pem"),
    )
    .expect("issuer");
    let craft = |ekus: Vec<rcgen::ExtendedKeyUsagePurpose>, sans: Vec<rcgen::SanType>| {
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "node");
        params.extended_key_usages = ekus;
        params.subject_alt_names = sans;
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &issuer).expect("sign");
        server::tls::peer_identity(cert.der()).expect("identity")
    };
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let ip = rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert!(
        !craft(vec![ClientAuth], vec![]).is_node,
        "client cert with CN node"
    );
    assert!(
        !craft(vec![ClientAuth], vec![ip.clone()]).is_node,
        "no serverAuth"
    );
    assert!(
        !craft(vec![ServerAuth, ClientAuth], vec![]).is_node,
        "no host SAN"
    );
    let scope = rcgen::SanType::URI("roach://tenant/1/user/node".try_into().expect("uri"));
    assert!(
        !craft(vec![ServerAuth, ClientAuth], vec![ip.clone(), scope]).is_node,
        "scoped"
    );
    assert!(craft(vec![ServerAuth, ClientAuth], vec![ip]).is_node);

    // `node` is not a client certificate name.
    let error = certs::create_client(
        &dir,
        &ca_key,
        "node",
        fixed(certs::CLIENT_LIFETIME_DEFAULT),
        Overwrite::Refuse,
    )
    .expect_err("node is reserved");
    assert!(
        error.to_string().contains("reserved for node certificates"),
        "{error}"
    );
}

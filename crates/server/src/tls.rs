//! TLS configuration loaded from a certificates directory.
//!
//! A certificates directory ([`CertsDir`]) holds the files `roach cert ...` writes:
//!
//! | file | what |
//! |---|---|
//! | `ca.crt` | the cluster CA certificate(s); every peer is verified against it |
//! | `node.crt`, `node.key` | the node certificate (CN `node`), used as server and as client |
//! | `client.<user>.crt`, `client.<user>.key` | a SQL user's client certificate (CN `<user>`) |
//!
//! Every configuration here is built with the ring provider passed explicitly
//! ([`rustls::crypto::ring::default_provider`]), never the process-wide default provider, so
//! it works whatever else the process installed. ALPN is the caller's choice (gRPC needs
//! [`ALPN_H2`]).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::certs::validate_user_name;

/// The Common Name every node certificate carries (a peer is a node only if its certificate
/// also has the node's key usages and host names: see [`peer_identity`]).
pub use sql::certauth::NODE_COMMON_NAME;

/// The ALPN protocol id of HTTP/2, which gRPC requires.
pub const ALPN_H2: &[u8] = b"h2";

/// A certificate-related file, named in errors. (`Box<str>` keeps [`TlsError`] small.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertFile {
    /// `ca.crt`.
    CaCert,
    /// The CA private key (kept outside the certificates directory).
    CaKey,
    /// `node.crt`.
    NodeCert,
    /// `node.key`.
    NodeKey,
    /// `client.<user>.crt`.
    ClientCert {
        /// The SQL user the certificate is for.
        user: Box<str>,
    },
    /// `client.<user>.key`.
    ClientKey {
        /// The SQL user the key is for.
        user: Box<str>,
    },
}

impl CertFile {
    /// What a person should run to create this file.
    fn create_hint(&self) -> String {
        match self {
            CertFile::CaCert | CertFile::CaKey => "create it with `roach cert create-ca`".into(),
            CertFile::NodeCert | CertFile::NodeKey => {
                "create it with `roach cert create-node`".into()
            }
            CertFile::ClientCert { user } | CertFile::ClientKey { user } => {
                format!("create it with `roach cert create-client {user}`")
            }
        }
    }
}

impl fmt::Display for CertFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertFile::CaCert => f.write_str("CA certificate"),
            CertFile::CaKey => f.write_str("CA key"),
            CertFile::NodeCert => f.write_str("node certificate"),
            CertFile::NodeKey => f.write_str("node key"),
            CertFile::ClientCert { user } => write!(f, "client certificate for user {user}"),
            CertFile::ClientKey { user } => write!(f, "client key for user {user}"),
        }
    }
}

/// Errors of this crate's certificate and TLS code.
///
/// Each message names the file involved and, where a person can act on it, says what to do.
/// The underlying cause (an I/O, rustls or rcgen error) is part of the message rather than a
/// `source()`, so an error chain prints it exactly once.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read (missing, unreadable).
    #[error("cannot read {file} {}: {error}{}", .path.display(), read_hint(.file, .error))]
    Read {
        /// Which file.
        file: CertFile,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
    /// A file was read but does not hold what it should.
    #[error("cannot parse {file} {}: {reason}", .path.display())]
    Parse {
        /// Which file.
        file: CertFile,
        /// Its path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate and key cannot be used together (most often: the key does not match).
    #[error("cannot use {cert_file} {} with {key_file} {}: {error}", .cert_path.display(), .key_path.display())]
    CertKey {
        /// The certificate file.
        cert_file: CertFile,
        /// Its path.
        cert_path: PathBuf,
        /// The key file.
        key_file: CertFile,
        /// Its path.
        key_path: PathBuf,
        /// Why they cannot be used.
        error: String,
    },
    /// The client certificate verifier could not be built from the CA certificate.
    #[error("cannot verify client certificates against {}: {error}", .path.display())]
    Verifier {
        /// The CA certificate file.
        path: PathBuf,
        /// The rustls error.
        error: rustls::server::VerifierBuilderError,
    },
    /// A file that would be written already exists.
    #[error("{file} {} already exists; pass --overwrite to replace it", .path.display())]
    Exists {
        /// Which file.
        file: CertFile,
        /// Its path.
        path: PathBuf,
    },
    /// A file could not be written.
    #[error("cannot write {file} {}: {error}", .path.display())]
    Write {
        /// Which file.
        file: CertFile,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
    /// A directory could not be created.
    #[error("cannot create directory {}: {error}", .path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
    /// Certificate or key generation failed.
    #[error("cannot generate {file}: {error}")]
    Generate {
        /// What was being generated.
        file: CertFile,
        /// The rcgen error.
        error: rcgen::Error,
    },
    /// A certificate would expire after the CA certificate that signs it.
    #[error(
        "{file} would expire at {not_after}, after the CA certificate {} (expires {ca_not_after}); \
         pass a shorter --lifetime or create a new CA"
    , .ca_path.display())]
    OutlivesCa {
        /// The certificate being created.
        file: CertFile,
        /// Its requested expiry (UTC).
        not_after: String,
        /// The CA certificate file.
        ca_path: PathBuf,
        /// The CA certificate's expiry.
        ca_not_after: String,
    },
    /// A SQL user name cannot be used in a client certificate.
    #[error("invalid user name {user:?}: {reason}")]
    InvalidUser {
        /// The name given.
        user: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A host cannot be put in a node certificate.
    #[error("invalid host {host:?} for a node certificate: {reason}")]
    InvalidHost {
        /// The host given.
        host: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A `--tenant-scope` list cannot be parsed.
    #[error("invalid tenant scope {scope:?}: {reason}")]
    InvalidTenantScope {
        /// The list given.
        scope: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A node certificate was requested without hosts.
    #[error("a node certificate needs at least one host (an IP address or a DNS name)")]
    NoHosts,
    /// A certificate lifetime is out of range.
    #[error("invalid certificate lifetime {}s: {reason}", .lifetime.as_secs())]
    InvalidLifetime {
        /// The lifetime given.
        lifetime: Duration,
        /// Which bound it breaks.
        reason: &'static str,
    },
    /// A peer's certificate could not be parsed or has no Common Name.
    #[error("cannot read the peer certificate: {reason}")]
    PeerCertificate {
        /// What is wrong.
        reason: String,
    },
}

/// The hint appended to a read error: how to create a missing file.
fn read_hint(file: &CertFile, error: &io::Error) -> String {
    if error.kind() == io::ErrorKind::NotFound {
        format!("; {}", file.create_hint())
    } else {
        String::new()
    }
}

/// A directory holding `ca.crt`, `node.crt`, `node.key` and `client.<user>.{crt,key}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertsDir(PathBuf);

impl CertsDir {
    /// A certificates directory at `path` (which need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CertsDir(path.into())
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `ca.crt`: the CA certificate(s) peers are verified against.
    pub fn ca_cert(&self) -> PathBuf {
        self.0.join("ca.crt")
    }

    /// `node.crt`: the node certificate.
    pub fn node_cert(&self) -> PathBuf {
        self.0.join("node.crt")
    }

    /// `node.key`: the node private key.
    pub fn node_key(&self) -> PathBuf {
        self.0.join("node.key")
    }

    /// `client.<user>.crt`. `user` must already be validated (see
    /// [`crate::certs::validate_user_name`]) so the path stays inside the directory.
    pub fn client_cert(&self, user: &str) -> PathBuf {
        self.0.join(format!("client.{user}.crt"))
    }

    /// `client.<user>.key`. Same precondition as [`CertsDir::client_cert`].
    pub fn client_key(&self, user: &str) -> PathBuf {
        self.0.join(format!("client.{user}.key"))
    }
}

/// Whether a node's server asks connecting clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertMode {
    /// A client must present a certificate signed by the CA (node-to-node RPC).
    Required,
    /// A client may present a certificate signed by the CA; one that presents none is accepted
    /// (the SQL port, which also takes password logins). A certificate that is presented must
    /// still verify.
    Optional,
}

/// The PEM bytes of a node's TLS files, for APIs that take PEM (tonic's TLS configs).
#[derive(Clone)]
pub struct NodePem {
    /// `ca.crt`.
    pub ca_cert: Vec<u8>,
    /// `node.crt`.
    pub node_cert: Vec<u8>,
    /// `node.key`.
    pub node_key: Vec<u8>,
}

impl fmt::Debug for NodePem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodePem")
            .field("ca_cert", &format_args!("{} bytes", self.ca_cert.len()))
            .field("node_cert", &format_args!("{} bytes", self.node_cert.len()))
            .field("node_key", &format_args!("<redacted>"))
            .finish()
    }
}

/// The crypto provider of every configuration built here.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(file: &CertFile, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        file: file.clone(),
        path: path.to_owned(),
        error,
    })
}

/// Parses every certificate in a PEM file; there must be at least one.
pub(crate) fn parse_certs(
    file: &CertFile,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let parse_error = |reason: String| TlsError::Parse {
        file: file.clone(),
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(parse_error("no PEM certificate found".into()));
    }
    Ok(certs)
}

/// Parses the private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn parse_key(
    file: &CertFile,
    path: &Path,
    pem: &[u8],
) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Parse {
        file: file.clone(),
        path: path.to_owned(),
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no PEM private key found".into(),
            e => e.to_string(),
        },
    })
}

/// Loads `ca.crt` into a root store.
fn load_roots(dir: &CertsDir) -> Result<RootCertStore, TlsError> {
    let path = dir.ca_cert();
    let pem = read_file(&CertFile::CaCert, &path)?;
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(&CertFile::CaCert, &path, &pem)? {
        roots.add(cert).map_err(|e| TlsError::Parse {
            file: CertFile::CaCert,
            path: path.clone(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// A certificate chain and its key, loaded and parsed, with the files they came from.
struct CertAndKey {
    cert_file: CertFile,
    cert_path: PathBuf,
    certs: Vec<CertificateDer<'static>>,
    key_file: CertFile,
    key_path: PathBuf,
    key: PrivateKeyDer<'static>,
}

impl CertAndKey {
    fn load(
        cert_file: CertFile,
        cert_path: PathBuf,
        key_file: CertFile,
        key_path: PathBuf,
    ) -> Result<Self, TlsError> {
        let certs = parse_certs(&cert_file, &cert_path, &read_file(&cert_file, &cert_path)?)?;
        let key = parse_key(&key_file, &key_path, &read_file(&key_file, &key_path)?)?;
        Ok(CertAndKey {
            cert_file,
            cert_path,
            certs,
            key_file,
            key_path,
            key,
        })
    }

    fn node(dir: &CertsDir) -> Result<Self, TlsError> {
        Self::load(
            CertFile::NodeCert,
            dir.node_cert(),
            CertFile::NodeKey,
            dir.node_key(),
        )
    }

    /// The error for a certificate and key rustls refused to pair.
    fn error(&self, error: rustls::Error) -> TlsError {
        TlsError::CertKey {
            cert_file: self.cert_file.clone(),
            cert_path: self.cert_path.clone(),
            key_file: self.key_file.clone(),
            key_path: self.key_path.clone(),
            error: error.to_string(),
        }
    }
}

fn alpn(protocols: &[&[u8]]) -> Vec<Vec<u8>> {
    protocols.iter().map(|p| p.to_vec()).collect()
}

/// The server configuration of a node: presents `node.crt`/`node.key` and verifies client
/// certificates against `ca.crt` (required or optional per `mode`). `alpn_protocols` is offered
/// in that order of preference (`&[ALPN_H2]` for gRPC, `&[]` for none).
pub fn node_server_config(
    dir: &CertsDir,
    mode: ClientCertMode,
    alpn_protocols: &[&[u8]],
) -> Result<ServerConfig, TlsError> {
    let roots = load_roots(dir)?;
    let node = CertAndKey::node(dir)?;
    let provider = provider();
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = match mode {
        ClientCertMode::Required => builder,
        ClientCertMode::Optional => builder.allow_unauthenticated(),
    };
    let verifier = builder.build().map_err(|error| TlsError::Verifier {
        path: dir.ca_cert(),
        error,
    })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the safe default protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(node.certs.clone(), node.key.clone_key())
        .map_err(|e| node.error(e))?;
    config.alpn_protocols = alpn(alpn_protocols);
    tracing::debug!(certs_dir = %dir.path().display(), ?mode, "loaded node server tls config");
    Ok(config)
}

/// The client configuration a node uses to dial other nodes: presents `node.crt`/`node.key` as
/// its client certificate and verifies the server against `ca.crt`.
pub fn node_client_config(
    dir: &CertsDir,
    alpn_protocols: &[&[u8]],
) -> Result<ClientConfig, TlsError> {
    let roots = load_roots(dir)?;
    let node = CertAndKey::node(dir)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the safe default protocol versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(node.certs.clone(), node.key.clone_key())
        .map_err(|e| node.error(e))?;
    config.alpn_protocols = alpn(alpn_protocols);
    tracing::debug!(certs_dir = %dir.path().display(), "loaded node client tls config");
    Ok(config)
}

/// The client configuration of SQL user `user`: verifies the server against `ca.crt` and
/// presents `client.<user>.crt`/`.key` if the certificate exists (otherwise no client
/// certificate, for password logins). A certificate without its key, or a key without its
/// certificate, is an error naming the missing file.
pub fn user_client_config(
    dir: &CertsDir,
    user: &str,
    alpn_protocols: &[&[u8]],
) -> Result<ClientConfig, TlsError> {
    validate_user_name(user)?;
    let roots = load_roots(dir)?;
    let cert_path = dir.client_cert(user);
    let key_path = dir.client_key(user);
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the safe default protocol versions")
        .with_root_certificates(roots);
    let has_client_cert = cert_path.exists() || key_path.exists();
    let mut config = if has_client_cert {
        let client = CertAndKey::load(
            CertFile::ClientCert { user: user.into() },
            cert_path,
            CertFile::ClientKey { user: user.into() },
            key_path,
        )?;
        builder
            .with_client_auth_cert(client.certs.clone(), client.key.clone_key())
            .map_err(|e| client.error(e))?
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = alpn(alpn_protocols);
    tracing::debug!(
        certs_dir = %dir.path().display(),
        user,
        has_client_cert,
        "loaded user client tls config"
    );
    Ok(config)
}

/// Reads `ca.crt`, `node.crt` and `node.key` as PEM, checking that each parses.
pub fn node_pem(dir: &CertsDir) -> Result<NodePem, TlsError> {
    let ca_path = dir.ca_cert();
    let ca_cert = read_file(&CertFile::CaCert, &ca_path)?;
    parse_certs(&CertFile::CaCert, &ca_path, &ca_cert)?;
    let cert_path = dir.node_cert();
    let node_cert = read_file(&CertFile::NodeCert, &cert_path)?;
    parse_certs(&CertFile::NodeCert, &cert_path, &node_cert)?;
    let key_path = dir.node_key();
    let node_key = read_file(&CertFile::NodeKey, &key_path)?;
    parse_key(&CertFile::NodeKey, &key_path, &node_key)?;
    Ok(NodePem {
        ca_cert,
        node_cert,
        node_key,
    })
}

/// The Common Name of a certificate's subject (for a peer's leaf certificate: `node` for a
/// node, the user name for a SQL client). Does not verify the certificate; call it only on a
/// certificate the TLS handshake already verified.
pub fn common_name(cert: &CertificateDer<'_>) -> Result<String, TlsError> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert).map_err(|e| TlsError::PeerCertificate {
            reason: e.to_string(),
        })?;
    let cn =
        parsed
            .subject()
            .iter_common_name()
            .next()
            .ok_or_else(|| TlsError::PeerCertificate {
                reason: "the subject has no common name".into(),
            })?;
    let cn = cn.as_str().map_err(|e| TlsError::PeerCertificate {
        reason: format!("the common name is not a string: {e}"),
    })?;
    Ok(cn.to_owned())
}

/// The identity of a verified peer certificate: a node (CN `node`, serverAuth and clientAuth,
/// host SANs, no tenant scope) or a SQL user, possibly tenant-scoped. Call it only on a
/// certificate the TLS handshake already verified.
pub fn peer_identity(cert: &CertificateDer<'_>) -> Result<sql::certauth::CertIdentity, TlsError> {
    sql::certauth::CertIdentity::parse(cert).map_err(|reason| TlsError::PeerCertificate { reason })
}

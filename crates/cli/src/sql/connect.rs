//! Opening a session: the rustls client configuration (ring provider only) for each `sslmode`,
//! the tokio-postgres connection, and connection errors a person can act on.

use super::params::{ConnParams, SslMode};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why a session could not be opened. Messages never contain the password.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read {what} {}: {source}", path.display())]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {what} {}: {reason}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("sslmode={mode} needs a root certificate: pass --certs-dir or sslrootcert in --url")]
    NoRootCert { mode: SslMode },
    #[error("the server at {target} asked for a password for user {user} and none was given")]
    PasswordNeeded { target: String, user: String },
    #[error("cannot connect to {target} as {user} ({url}): {cause}")]
    Connect {
        target: String,
        user: String,
        url: String,
        cause: String,
        hint: Option<String>,
    },
}

impl ConnectError {
    /// Advice to print after the error.
    pub fn hint(&self) -> Option<String> {
        match self {
            ConnectError::ReadFile { .. } | ConnectError::NoRootCert { .. } => Some(
                "for a secure cluster pass the --certs-dir made with `roach cert`; for an insecure cluster pass --insecure".into(),
            ),
            ConnectError::Pem { .. } | ConnectError::Tls(_) => {
                Some("check the files in --certs-dir (or sslrootcert, sslcert, sslkey)".into())
            }
            ConnectError::PasswordNeeded { .. } => Some(
                "put the password in the URL (postgresql://USER:PASSWORD@HOST:PORT/DB), run from a terminal to be prompted, or use a client certificate".into(),
            ),
            ConnectError::Connect { hint, .. } => hint.clone(),
        }
    }
}

/// The TLS connector, kept to cancel queries over a new connection.
#[derive(Clone)]
pub enum Tls {
    None,
    Rustls(MakeRustlsConnect),
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Tls::None => "Tls::None",
            Tls::Rustls(_) => "Tls::Rustls",
        })
    }
}

/// An open session.
#[derive(Debug)]
pub struct Session {
    pub client: Client,
    tls: Tls,
    connection: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Asks the server to cancel the running statement (Ctrl-C), over a separate connection.
    pub async fn cancel(&self) -> Result<(), tokio_postgres::Error> {
        let token = self.client.cancel_token();
        match &self.tls {
            Tls::None => token.cancel_query(NoTls).await,
            Tls::Rustls(tls) => token.cancel_query(tls.clone()).await,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// Opens a session with `params`. Must run inside a tokio runtime; the connection is driven by
/// a spawned task that prints server notices to stderr.
pub async fn connect(params: &ConnParams) -> Result<Session, ConnectError> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(&params.host)
        .port(params.port)
        .user(&params.user)
        .dbname(&params.database)
        .application_name(&params.application_name)
        .connect_timeout(params.connect_timeout)
        .ssl_mode(match params.ssl_mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
    if let Some(password) = &params.password {
        config.password(password);
    }
    if let Some(options) = &params.options {
        config.options(options);
    }
    let tls = match client_tls_config(params)? {
        None => Tls::None,
        Some(tls) => Tls::Rustls(MakeRustlsConnect::new(tls)),
    };
    // The socket-level timeout does not cover TLS and authentication: bound the whole thing.
    let overall = params.connect_timeout * 2;
    let result = match &tls {
        Tls::None => tokio::time::timeout(overall, open(&config, NoTls))
            .await
            .map_err(|_| timeout_error(params))?,
        Tls::Rustls(make) => tokio::time::timeout(overall, open(&config, make.clone()))
            .await
            .map_err(|_| timeout_error(params))?,
    };
    match result {
        Ok((client, connection)) => Ok(Session {
            client,
            tls,
            connection,
        }),
        Err(e) => Err(connect_error(params, &e)),
    }
}

async fn open<T>(
    config: &tokio_postgres::Config,
    tls: T,
) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = config.connect(tls).await?;
    Ok((client, tokio::spawn(drive(connection))))
}

/// Drives a connection until it ends, printing notices (`NOTICE: ...`) to stderr. A connection
/// error shows up as a closed client on the next statement.
async fn drive<S, T>(mut connection: Connection<S, T>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
        if let AsyncMessage::Notice(notice) = message {
            eprintln!("{}: {}", notice.severity(), notice.message());
            if let Some(detail) = notice.detail() {
                eprintln!("DETAIL: {detail}");
            }
            if let Some(hint) = notice.hint() {
                eprintln!("HINT: {hint}");
            }
        }
    }
}

fn timeout_error(params: &ConnParams) -> ConnectError {
    ConnectError::Connect {
        target: params.host_port(),
        user: params.user.clone(),
        url: params.redacted_url(),
        cause: format!(
            "timed out after {}s",
            (params.connect_timeout * 2).as_secs()
        ),
        hint: Some(format!(
            "is the node running and reachable at {}? for an insecure cluster pass --insecure",
            params.host_port()
        )),
    }
}

/// Turns a tokio-postgres connection error into one with the target, a cause and a hint.
fn connect_error(params: &ConnParams, e: &tokio_postgres::Error) -> ConnectError {
    use std::error::Error as _;
    let target = params.host_port();
    let source = e.source().map(ToString::to_string).unwrap_or_default();
    if e.to_string() == "invalid configuration" && source == "password missing" {
        return ConnectError::PasswordNeeded {
            target,
            user: params.user.clone(),
        };
    }
    let (cause, hint) = if let Some(db) = e.as_db_error() {
        let hint = db.hint().map(str::to_string).or_else(|| {
            db.code().code().starts_with("28").then(|| {
                "check the user name and password, or the client certificate in --certs-dir".into()
            })
        });
        (format!("{}: {}", db.severity(), db.message()), hint)
    } else {
        let cause = super::exec::error_chain(e);
        let hint = if cause.contains("server does not support TLS") {
            "the server does not use TLS: for an insecure cluster pass --insecure (or sslmode=disable in --url)".to_string()
        } else if cause.contains("TLS handshake") {
            "check that the CA in --certs-dir (or sslrootcert) signed the node's certificate, and that the certificate names the host you connect to".to_string()
        } else if params.ssl_mode == SslMode::Disable {
            format!("is the node running and listening on {target}?")
        } else {
            format!(
                "is the node running and listening on {target}? for an insecure cluster pass --insecure"
            )
        };
        (cause, Some(hint))
    };
    ConnectError::Connect {
        target,
        user: params.user.clone(),
        url: params.redacted_url(),
        cause,
        hint,
    }
}

/// The rustls client configuration for `params`, or `None` for `sslmode=disable`. Built with the
/// ring provider explicitly, never the process default.
pub fn client_tls_config(
    params: &ConnParams,
) -> Result<Option<rustls::ClientConfig>, ConnectError> {
    if params.ssl_mode == SslMode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = params
        .ssl_root_cert
        .as_deref()
        .map(load_roots)
        .transpose()?
        .map(Arc::new);
    let verifier: Arc<dyn ServerCertVerifier> = match (params.ssl_mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => {
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?
        }
        // libpq: `require` (and weaker) with a root certificate verifies like `verify-ca`.
        (_, Some(roots)) => Arc::new(NoHostnameVerifier {
            inner: WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?,
        }),
        (mode @ (SslMode::VerifyCa | SslMode::VerifyFull), None) => {
            return Err(ConnectError::NoRootCert { mode });
        }
        (_, None) => Arc::new(NoVerifier {
            algorithms: provider.signature_verification_algorithms,
        }),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &params.ssl_client_cert {
        Some((cert, key)) => {
            let certs = load_certs(cert, "client certificate")?;
            let key_pem = read(key, "client key")?;
            let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| ConnectError::Pem {
                what: "client key",
                path: key.clone(),
                reason: e.to_string(),
            })?;
            builder.with_client_auth_cert(certs, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Some(config))
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, ConnectError> {
    std::fs::read(path).map_err(|source| ConnectError::ReadFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ConnectError> {
    let pem = read(path, what)?;
    let bad = |reason: String| ConnectError::Pem {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate found".into()));
    }
    Ok(certs)
}

fn load_roots(path: &Path) -> Result<RootCertStore, ConnectError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, "root certificate")? {
        roots.add(cert).map_err(|e| ConnectError::Pem {
            what: "root certificate",
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// `verify-ca`: the chain must lead to the root, but the certificate need not name the host.
#[derive(Debug)]
struct NoHostnameVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for NoHostnameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `require`/`prefer` without a root certificate: encrypt, but accept any server certificate
/// (libpq's behaviour). Handshake signatures are still checked against the presented key.
#[derive(Debug)]
struct NoVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::params::Given;
    use server::certs::{self, Overwrite, Validity};
    use server::tls::CertsDir;
    use std::time::Duration;
    use tokio::net::{TcpListener, TcpStream};

    /// A certificates directory with a CA, a node certificate for `localhost` and 127.0.0.1,
    /// and a client certificate for `root`.
    fn must_make_certs(dir: &Path) -> CertsDir {
        let certs_dir = CertsDir::new(dir);
        let ca_key = dir.join("ca.key");
        let validity = Validity::starting_now(Duration::from_secs(2 * 24 * 3600));
        certs::create_ca(&certs_dir, &ca_key, validity, Overwrite::Refuse).expect("create ca");
        certs::create_node(
            &certs_dir,
            &ca_key,
            &["localhost".into(), "127.0.0.1".into()],
            validity,
            Overwrite::Refuse,
        )
        .expect("create node");
        certs::create_client(&certs_dir, &ca_key, "root", validity, Overwrite::Refuse)
            .expect("create client");
        certs_dir
    }

    fn must_params(url: &str, certs_dir: Option<&Path>) -> ConnParams {
        ConnParams::resolve(&Given {
            url: Some(url),
            certs_dir,
            ..Given::default()
        })
        .expect("resolve")
    }

    /// Runs one TLS handshake between `client` (connecting to `server_name`) and a node
    /// serving the certificates of `node_dir`; returns the client's error, if any.
    async fn handshake(
        client: rustls::ClientConfig,
        node_dir: &CertsDir,
        server_name: &str,
    ) -> Result<(), String> {
        let server =
            server::tls::node_server_config(node_dir, server::tls::ClientCertMode::Optional, &[])
                .expect("server config");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let accept = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            // The server side may fail when the client rejects the certificate; ignore it.
            let _ = acceptor.accept(socket).await;
        });
        let socket = TcpStream::connect(addr).await.expect("connect");
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let name = ServerName::try_from(server_name.to_string()).expect("server name");
        let result = connector
            .connect(name, socket)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        let _ = accept.await;
        result
    }

    #[test]
    fn disable_means_no_tls() {
        // Goal: sslmode=disable builds no TLS configuration and reads no files.
        let p = must_params("postgresql://h?sslmode=disable", Some(Path::new("/none")));
        assert!(client_tls_config(&p).expect("config").is_none());
    }

    #[test]
    fn verify_without_root_is_an_error() {
        // Goal: verify-ca/verify-full without any root certificate fail with a hint, and a
        // missing ca.crt in --certs-dir names the file.
        let p = must_params("postgresql://h?sslmode=verify-ca", None);
        assert!(matches!(
            client_tls_config(&p),
            Err(ConnectError::NoRootCert {
                mode: SslMode::VerifyCa
            })
        ));
        let dir = tempfile::tempdir().expect("temp dir");
        let p = must_params("postgresql://h", Some(dir.path()));
        let err = client_tls_config(&p).expect_err("no ca.crt");
        assert!(err.to_string().contains("ca.crt"), "{err}");
        assert!(err.hint().is_some());
    }

    #[tokio::test]
    async fn verify_modes_against_a_node_certificate() {
        // Goal: against a node whose certificate names localhost: verify-full accepts
        // `localhost` and refuses another name; verify-ca accepts another name; require
        // without a root accepts a certificate from an unknown CA, verify-ca does not; and a
        // client certificate from --certs-dir is loaded. Method: real TLS handshakes on
        // 127.0.0.1 with certificates made by `server::certs`.
        let node = tempfile::tempdir().expect("temp dir");
        let node_dir = must_make_certs(node.path());
        let other = tempfile::tempdir().expect("temp dir");
        let other_dir = must_make_certs(other.path());

        let full = must_params("postgresql://root@localhost", Some(node.path()));
        assert_eq!(full.ssl_mode, SslMode::VerifyFull);
        assert!(full.ssl_client_cert.is_some(), "client.root.crt is used");
        let config = || client_tls_config(&full).expect("config").expect("tls");
        handshake(config(), &node_dir, "localhost")
            .await
            .expect("verify-full, right name");
        let err = handshake(config(), &node_dir, "db.example.com")
            .await
            .expect_err("verify-full, wrong name");
        assert!(err.contains("not valid for name"), "{err}");

        let ca = must_params("postgresql://root@h?sslmode=verify-ca", Some(node.path()));
        let ca_config = || client_tls_config(&ca).expect("config").expect("tls");
        handshake(ca_config(), &node_dir, "db.example.com")
            .await
            .expect("verify-ca ignores the name");
        handshake(ca_config(), &other_dir, "localhost")
            .await
            .expect_err("verify-ca refuses an unknown CA");

        let require = must_params("postgresql://bob@h?sslmode=require", None);
        let require = client_tls_config(&require).expect("config").expect("tls");
        handshake(require, &other_dir, "db.example.com")
            .await
            .expect("require does not verify");
    }

    #[tokio::test]
    async fn refused_connection_names_target_and_hints() {
        // Goal: a refused connection gives host, port, cause and a hint, and never the
        // password. Method: connect to a port nobody listens on (bound, then closed).
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let p = must_params(
            &format!("postgresql://bob:s3cret@127.0.0.1:{port}/db?sslmode=disable"),
            None,
        );
        let err = connect(&p).await.expect_err("nothing listens");
        let shown = err.to_string();
        assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
        assert!(shown.contains("bob:****@"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            err.hint()
                .is_some_and(|h| h.contains("is the node running"))
        );
    }
}

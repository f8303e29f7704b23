//! The consumer's view of a producer: the [`StreamClient`] trait, and its implementation over
//! the primary's SQL interface (control: start, plan, heartbeat, complete) and gRPC (partition
//! streams, [`subscribe`]).

use crate::spec::{StreamHandle, StreamSpec, StreamStatus};
use crate::uri::{SourceUri, SslMode, StandbySecurity};
use crate::{ReplError, ReplResult};
use async_trait::async_trait;
use hlc::Timestamp;
use proto::replication as pb;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// How long connecting to the primary (TCP, TLS and authentication) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one control statement may take.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a consumer asks of a producer.
#[async_trait]
pub trait StreamClient: Send + Sync + std::fmt::Debug {
    /// Starts a stream of the virtual cluster `tenant`.
    async fn start_stream(&self, tenant: &str) -> ReplResult<StreamHandle>;
    /// The partitions of a stream over the source's live nodes.
    async fn plan(&self, stream_id: u64) -> ReplResult<StreamSpec>;
    /// Moves the stream's protected timestamp to `retained` and extends its expiration.
    async fn heartbeat(&self, stream_id: u64, retained: Timestamp) -> ReplResult<StreamStatus>;
    /// Ends the stream (its producer job and protection).
    async fn complete(&self, stream_id: u64, successful: bool) -> ReplResult<()>;
}

/// How to reach a primary cluster: its URI, the CA certificate that signed its nodes (read
/// from `sslrootcert` when replication is created, so every standby node has it), and further
/// node addresses to try when the URI's host is down.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceConn {
    /// The URI as given, without its password.
    pub uri: String,
    pub ca_pem: Option<String>,
    #[serde(default)]
    pub fallback_addrs: Vec<String>,
    /// The URI's password: never serialized with the rest (a job keeps it in its secret
    /// record, see [`crate::secrets`]) and never shown by `Debug`.
    #[serde(skip)]
    pub password: Option<String>,
}

impl std::fmt::Debug for SourceConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceConn")
            .field("uri", &crate::uri::redact(&self.uri))
            .field("fallback_addrs", &self.fallback_addrs)
            .finish_non_exhaustive()
    }
}

impl SourceConn {
    /// Parses `uri`, checks that a secure standby would reach the source over TLS, and reads
    /// the CA it names; the errors say what is wrong.
    pub fn from_uri(uri: &str, standby: StandbySecurity) -> ReplResult<SourceConn> {
        let parsed = SourceUri::parse(uri)?;
        parsed.check_transport(standby)?;
        let ca_pem = match (&parsed.sslmode, &parsed.sslrootcert) {
            (SslMode::Disable, _) => None,
            (_, Some(path)) => {
                Some(
                    std::fs::read_to_string(path).map_err(|e| ReplError::BadUri {
                        uri: parsed.redacted(),
                        reason: format!("cannot read sslrootcert {path:?}: {e}"),
                    })?,
                )
            }
            (_, None) => None,
        };
        if let Some(pem) = &ca_pem {
            root_store(pem).map_err(|reason| ReplError::BadUri {
                uri: parsed.redacted(),
                reason,
            })?;
        }
        Ok(SourceConn {
            uri: crate::uri::without_password(uri),
            ca_pem,
            fallback_addrs: Vec::new(),
            password: parsed.password,
        })
    }

    /// This connection with the password from the job's secret record.
    pub fn with_password(mut self, password: Option<String>) -> SourceConn {
        self.password = password;
        self
    }

    /// The URI, with the password this connection holds.
    pub fn parsed(&self) -> ReplResult<SourceUri> {
        let mut uri = SourceUri::parse(&self.uri)?;
        if self.password.is_some() {
            uri.password = self.password.clone();
        }
        Ok(uri)
    }
}

fn root_store(pem: &str) -> Result<rustls::RootCertStore, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("sslrootcert is not a PEM certificate: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert is not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("sslrootcert holds no certificate".into());
    }
    Ok(roots)
}

fn tls_config(pem: &str) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(root_store(pem)?)
        .with_no_client_auth())
}

/// The real client: SQL over pgwire to the primary's system virtual cluster.
#[derive(Debug)]
pub struct PgStreamClient {
    conn: SourceConn,
    /// Further node addresses learnt from stream specs.
    fallback_addrs: std::sync::Mutex<Vec<String>>,
    client: Mutex<Option<tokio_postgres::Client>>,
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

fn pg_error(target: &str, e: &tokio_postgres::Error) -> ReplError {
    if let Some(db) = e.as_db_error() {
        return ReplError::Source {
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            hint: db.hint().map(str::to_string),
        };
    }
    let reason = error_chain(e);
    let hint = if reason.contains("UnknownIssuer") || reason.contains("certificate") {
        Some("the primary's certificate is not signed by the CA in sslrootcert: copy the primary's ca.crt (for example as certs/ca_primary.crt) and name it in sslrootcert".to_string())
    } else if reason.contains("server does not support TLS") {
        Some("the primary runs without TLS (--insecure): use sslmode=disable".to_string())
    } else if reason.contains("refused") || reason.contains("timed out") {
        Some("check the host and port, and that the primary's nodes are running".to_string())
    } else {
        None
    };
    ReplError::Connect {
        target: target.to_string(),
        reason,
        hint,
    }
}

impl PgStreamClient {
    pub fn new(conn: SourceConn) -> Self {
        PgStreamClient {
            fallback_addrs: std::sync::Mutex::new(conn.fallback_addrs.clone()),
            conn,
            client: Mutex::new(None),
        }
    }

    /// Other source nodes to try when the URI's host does not answer.
    pub fn set_fallback_addrs(&self, addrs: Vec<String>) {
        *self
            .fallback_addrs
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = addrs;
    }

    async fn connect_to(&self, uri: &SourceUri, addr: &str) -> ReplResult<tokio_postgres::Client> {
        let dial = dial_addr(addr);
        let (host, port) = dial
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
            .ok_or_else(|| ReplError::Stream(format!("bad address {addr:?}")))?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port)
            .user(&uri.user)
            .dbname("defaultdb")
            .options("-ccluster=system")
            .application_name("roach replication")
            .connect_timeout(CONNECT_TIMEOUT);
        if let Some(p) = &uri.password {
            config.password(p);
        }
        let connect = async {
            match &self.conn.ca_pem {
                None => {
                    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                    let (client, connection) =
                        config.connect(tokio_postgres::NoTls).await.map_err(Ok)?;
                    tokio::spawn(connection);
                    Ok(client)
                }
                Some(pem) => {
                    config.ssl_mode(tokio_postgres::config::SslMode::Require);
                    let tls = tls_config(pem).map_err(|reason| ReplError::BadUri {
                        uri: uri.redacted(),
                        reason,
                    });
                    let tls = match tls {
                        Ok(t) => t,
                        Err(e) => return Err(Err(e)),
                    };
                    let (client, connection) = config
                        .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                        .await
                        .map_err(Ok)?;
                    tokio::spawn(connection);
                    Ok(client)
                }
            }
        };
        let flat = async {
            match connect.await {
                Ok(c) => Ok(c),
                Err(Ok(e)) => Err(pg_error(addr, &e)),
                Err(Err(e)) => Err(e),
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT * 2, flat).await {
            Ok(r) => r,
            Err(_) => Err(ReplError::Connect {
                target: addr.to_string(),
                reason: "timed out".into(),
                hint: Some(
                    "check the host and port, and that the primary's nodes are running".into(),
                ),
            }),
        }
    }

    /// Connects to the URI's host, else to each fallback address; the first error is kept.
    async fn connect(&self) -> ReplResult<tokio_postgres::Client> {
        let uri = self.conn.parsed()?;
        let mut first_err = None;
        let mut addrs = vec![uri.addr()];
        addrs.extend(
            self.fallback_addrs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
        let mut seen = std::collections::HashSet::new();
        addrs.retain(|a| seen.insert(a.clone()));
        for addr in addrs {
            match self.connect_to(&uri, &addr).await {
                Ok(c) => return Ok(c),
                // A node that is starting, draining or full: another node may answer.
                Err(e @ ReplError::Source { .. }) if e.is_node_local() => {
                    first_err.get_or_insert(e);
                }
                // Authentication and privilege errors are the same on every node: stop.
                Err(e @ ReplError::Source { .. }) | Err(e @ ReplError::BadUri { .. }) => {
                    return Err(e);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(|| ReplError::Stream("no address to connect to".into())))
    }

    /// Runs one control statement and returns its single text value.
    async fn query_one(&self, sql: &str) -> ReplResult<String> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = Some(self.connect().await?);
        }
        let client = guard.as_ref().expect("connected above");
        let uri_target = self.conn.parsed().map(|u| u.addr()).unwrap_or_default();
        let result = tokio::time::timeout(STATEMENT_TIMEOUT, client.simple_query(sql)).await;
        let msgs = match result {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                let err = pg_error(&uri_target, &e);
                if !matches!(err, ReplError::Source { .. }) {
                    *guard = None;
                }
                return Err(err);
            }
            Err(_) => {
                *guard = None;
                return Err(ReplError::Connect {
                    target: uri_target,
                    reason: "the primary did not answer within 30 s".into(),
                    hint: None,
                });
            }
        };
        for m in msgs {
            if let tokio_postgres::SimpleQueryMessage::Row(row) = m {
                return Ok(row.get(0).unwrap_or_default().to_string());
            }
        }
        Err(ReplError::Stream(format!("no result from {sql:?}")))
    }
}

fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> ReplResult<T> {
    serde_json::from_str(text)
        .map_err(|e| ReplError::Stream(format!("bad {what} from the primary: {e}")))
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[async_trait]
impl StreamClient for PgStreamClient {
    async fn start_stream(&self, tenant: &str) -> ReplResult<StreamHandle> {
        let text = self
            .query_one(&format!(
                "SELECT crdb_internal.start_replication_stream({})",
                quote(tenant)
            ))
            .await?;
        json("stream handle", &text)
    }

    async fn plan(&self, stream_id: u64) -> ReplResult<StreamSpec> {
        let text = self
            .query_one(&format!(
                "SELECT crdb_internal.replication_stream_spec({stream_id})"
            ))
            .await?;
        json("stream spec", &text)
    }

    async fn heartbeat(&self, stream_id: u64, retained: Timestamp) -> ReplResult<StreamStatus> {
        let text = self
            .query_one(&format!(
                "SELECT crdb_internal.replication_stream_progress({stream_id}, '{}')",
                retained
            ))
            .await?;
        json("stream status", &text)
    }

    async fn complete(&self, stream_id: u64, successful: bool) -> ReplResult<()> {
        self.query_one(&format!(
            "SELECT crdb_internal.complete_replication_stream({stream_id}, {successful})"
        ))
        .await?;
        Ok(())
    }
}

/// The environment variable of the testing-only dial map (see [`dial_addr`]).
pub const DIAL_MAP_ENV: &str = "ROACH_TESTING_DIAL_MAP";

/// The address this node dials for the source address `addr`: itself, unless the testing-only
/// environment variable `ROACH_TESTING_DIAL_MAP=from=to,from=to` names it (the roachtests put
/// a fault-injecting TCP proxy in front of each source node this way). Errors and job details
/// keep naming the source address.
pub fn dial_addr(addr: &str) -> String {
    static MAP: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    let map = MAP.get_or_init(|| {
        std::env::var(DIAL_MAP_ENV)
            .unwrap_or_default()
            .split(',')
            .filter_map(|pair| {
                let (from, to) = pair.trim().split_once('=')?;
                Some((from.to_string(), to.to_string()))
            })
            .collect()
    });
    map.iter()
        .find(|(from, _)| from == addr)
        .map_or_else(|| addr.to_string(), |(_, to)| to.clone())
}

/// Opens the partition stream `req` on the source node at `addr`.
pub async fn subscribe(
    conn: &SourceConn,
    addr: &str,
    req: pb::StreamPartitionRequest,
) -> ReplResult<tonic::Streaming<pb::StreamEvent>> {
    let dial = dial_addr(addr);
    let scheme = if conn.ca_pem.is_some() {
        "https"
    } else {
        "http"
    };
    let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{dial}"))
        .map_err(|e| ReplError::Stream(format!("bad source address {addr:?}: {e}")))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    if let Some(pem) = &conn.ca_pem {
        let host = addr
            .rsplit_once(':')
            .map_or(addr, |(h, _)| h)
            .trim_matches(['[', ']']);
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(pem))
            .domain_name(host);
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| ReplError::Stream(format!("TLS configuration for {addr}: {e}")))?;
    }
    let channel = endpoint.connect().await.map_err(|e| ReplError::Connect {
        target: addr.to_string(),
        reason: error_chain(&e),
        hint: None,
    })?;
    let mut client = pb::replication_source_client::ReplicationSourceClient::new(channel)
        .max_decoding_message_size(crate::spec::STREAM_MESSAGE_BYTES_MAX);
    Ok(client.stream_partition(req).await?.into_inner())
}

//! A running node: its store, RPC and HTTP listeners, and how it comes to belong to a
//! cluster (`init`, `--join`, or restarting with a store that already has a node id).

use crate::config::NodeConfig;
use crate::tls::{ALPN_H2, CertsDir, ClientCertMode, node_pem, node_server_config, peer_identity};
use crate::{ServerError, http, logging};
use hlc::Clock;
use kv::{KvClient, KvMetrics, KvService, NodeId, NodeSlot, RaftService, Store};
use proto::server as spb;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use storage::{Durability, Engine, FjallEngine, StoreOptions, WriteBatch};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// Local metadata key of the node id, written once the node has one.
const NODE_ID_KEY: &[u8] = b"node/id";
/// Pause between rounds of join attempts.
const JOIN_RETRY: Duration = Duration::from_millis(500);
/// A node is ready when its closed timestamp trails its clock by less than this.
const READY_CLOSED_LAG: Duration = Duration::from_secs(2);

/// State shared by the node's listeners and tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: NodeConfig,
    pub engine: Arc<FjallEngine>,
    pub clock: Arc<Clock>,
    pub registry: prometheus::Registry,
    pub metrics: KvMetrics,
    pub slot: NodeSlot,
    pub client_tls: Option<ClientTlsConfig>,
    pub advertise_addr: String,
    /// Held while the node acquires an id and starts its replica (init or join).
    pub membership: Mutex<()>,
}

impl Shared {
    /// Why the node is not ready to serve, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<String> {
        let Some(node) = self.slot.get() else {
            return Some("the node has not joined a cluster (run `roach init`)".into());
        };
        let status = node.status();
        if status.leader.is_none() {
            return Some("the range has no leader".into());
        }
        let lag_ns = self
            .clock
            .physical_now_ns()
            .saturating_sub(status.closed_ts.wall_time_ns);
        if lag_ns > READY_CLOSED_LAG.as_nanos() as u64 {
            return Some(format!(
                "catching up: closed timestamp {} ms behind",
                lag_ns / 1_000_000
            ));
        }
        None
    }

    fn stored_node_id(&self) -> Result<Option<NodeId>, ServerError> {
        let store_err = |source| ServerError::Store {
            path: self.config.store.display().to_string(),
            source,
        };
        match self.engine.get_local(NODE_ID_KEY).map_err(store_err)? {
            None => Ok(None),
            Some(b) => {
                let arr: [u8; 8] = b.as_slice().try_into().map_err(|_| {
                    ServerError::Config(format!(
                        "store {}: corrupt node id record",
                        self.config.store.display()
                    ))
                })?;
                Ok(Some(NodeId(u64::from_be_bytes(arr))))
            }
        }
    }

    fn store_node_id(&self, id: NodeId) -> Result<(), ServerError> {
        let mut batch = WriteBatch::new();
        batch.put_local(NODE_ID_KEY, id.0.to_be_bytes());
        self.engine
            .write(batch, Durability::Sync)
            .map_err(|source| ServerError::Store {
                path: self.config.store.display().to_string(),
                source,
            })
    }

    /// Starts the replica of node `id` and makes the RPC services serve it.
    async fn start_replica(&self, id: NodeId) -> Result<Arc<Store>, ServerError> {
        let node = Store::start(
            id,
            self.advertise_addr.clone(),
            self.engine.clone(),
            self.clock.clone(),
            self.config.kv.clone(),
            self.client_tls.clone(),
            self.metrics.clone(),
        )
        .await?;
        logging::set_node_id(id.0);
        // The membership lock makes this the only start; the slot is empty here.
        let _ = self.slot.set(node.clone());
        // Cluster settings the KV layer honours (kv.raft.command.max_size); the task ends
        // with the node.
        drop(sql::kv_settings::watch(&node));
        Ok(node)
    }

    /// Initialises a new cluster with this node as node 1.
    pub async fn init_cluster(&self) -> Result<NodeId, ServerError> {
        let _guard = self.membership.lock().await;
        if self.slot.get().is_some() || self.stored_node_id()?.is_some() {
            return Err(ServerError::AlreadyInitialized);
        }
        // A peer that already serves a range means the cluster exists and this node is about
        // to join it: bootstrapping here would split it in two.
        for addr in self.join_targets() {
            if let Ok(Ok(client)) = tokio::time::timeout(
                Duration::from_secs(2),
                KvClient::connect(&addr, self.client_tls.clone()),
            )
            .await
                && let Ok(Ok(status)) =
                    tokio::time::timeout(Duration::from_secs(2), client.status()).await
                && !status.voters.is_empty()
            {
                tracing::warn!(peer = %addr, "refusing init: a peer already belongs to a cluster");
                return Err(ServerError::AlreadyInitialized);
            }
        }
        let id = NodeId(1);
        self.store_node_id(id)?;
        let node = self.start_replica(id).await?;
        match node.bootstrap().await {
            Ok(()) | Err(kv::KvError::AlreadyInitialized) => {}
            Err(e) => return Err(e.into()),
        }
        sql::bootstrap::apply(&node, &self.config.profile).await?;
        tracing::info!(node_id = id.0, profile = %self.config.profile.name, "initialized a new cluster");
        Ok(id)
    }

    /// Gets an id from the cluster through the `--join` addresses, starts the replica, and
    /// asks to become a member; retries until it succeeds or another path (init) won.
    async fn join_loop(self: Arc<Self>) {
        loop {
            match self.try_join().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "joining the cluster failed; retrying"),
            }
            tokio::time::sleep(JOIN_RETRY).await;
        }
    }

    /// One round over the join addresses; `Ok(true)` once this node is a member.
    async fn try_join(&self) -> Result<bool, ServerError> {
        let guard = self.membership.lock().await;
        let (id, node) = match (self.stored_node_id()?, self.slot.get()) {
            (Some(id), Some(node)) => {
                if node.is_initialized().await {
                    return Ok(true);
                }
                (id, node.clone())
            }
            (Some(id), None) => (id, self.start_replica(id).await?),
            (None, _) => {
                let Some((client, id)) = self.allocate_id().await else {
                    return Ok(false);
                };
                tracing::info!(node_id = id.0, via = client.addr(), "allocated node id");
                self.store_node_id(id)?;
                (id, self.start_replica(id).await?)
            }
        };
        drop(guard);
        for addr in self.join_targets() {
            let client = match KvClient::connect(&addr, self.client_tls.clone()).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(target_addr = %addr, error = %e, "join target unreachable");
                    continue;
                }
            };
            match client.join(id, &self.advertise_addr).await {
                Ok(()) => {
                    tracing::info!(node_id = id.0, via = %addr, "joined the cluster");
                    return Ok(node.is_initialized().await || self.wait_initialized(&node).await);
                }
                Err(e) => tracing::debug!(target_addr = %addr, error = %e, "join request failed"),
            }
        }
        Ok(false)
    }

    async fn wait_initialized(&self, node: &Store) -> bool {
        for _ in 0..50 {
            if node.is_initialized().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn join_targets(&self) -> Vec<String> {
        self.config
            .join
            .iter()
            .filter(|a| **a != self.advertise_addr)
            .cloned()
            .collect()
    }

    async fn allocate_id(&self) -> Option<(KvClient, NodeId)> {
        for addr in self.join_targets() {
            match KvClient::connect(&addr, self.client_tls.clone()).await {
                Ok(client) => match client.allocate_node_id().await {
                    Ok(id) => return Some((client, id)),
                    // Expected until someone runs `roach init`.
                    Err(e) if e.to_string().contains("has not joined a cluster yet") => {
                        tracing::info!(target_addr = %addr, "join target is not initialized yet; waiting for `roach init`")
                    }
                    Err(e) => tracing::warn!(
                        target_addr = %addr,
                        error = %e,
                        "cannot reach join target; check that it is running with the same --insecure setting and a certificate from the same CA"
                    ),
                },
                Err(e) => tracing::warn!(
                    target_addr = %addr,
                    error = %e,
                    "cannot reach join target; check that it is running with the same --insecure setting and a certificate from the same CA"
                ),
            }
        }
        None
    }
}

/// The admin RPC service (cluster initialisation).
#[derive(Debug, Clone)]
struct AdminService {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl spb::admin_server::Admin for AdminService {
    async fn init(
        &self,
        _req: tonic::Request<spb::InitRequest>,
    ) -> Result<tonic::Response<spb::InitResponse>, tonic::Status> {
        match self.shared.init_cluster().await {
            Ok(id) => Ok(tonic::Response::new(spb::InitResponse { node_id: id.0 })),
            Err(ServerError::AlreadyInitialized) => Err(tonic::Status::already_exists(
                "cluster has already been initialized",
            )),
            Err(e) => Err(tonic::Status::internal(e.to_string())),
        }
    }
}

/// A started node.
#[derive(Debug)]
pub struct Node {
    shared: Arc<Shared>,
    rpc_addr: SocketAddr,
    http_addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Where the shared port hands gRPC connections: to tonic as they are (insecure), or after a
/// TLS handshake done here, under the handshake deadline (secure; tonic's own TLS accept has
/// no timeout, so a peer stalling mid-handshake would hold a task forever).
#[derive(Clone)]
enum GrpcIncoming {
    Plain(tokio::sync::mpsc::Sender<Result<TcpStream, std::io::Error>>),
    Tls {
        acceptor: TlsAcceptor,
        tx: tokio::sync::mpsc::Sender<Result<TlsStream<TcpStream>, std::io::Error>>,
    },
}

/// Accepts connections on the shared port and hands each to gRPC or pgwire. Every connection
/// must send its first byte and finish its TLS handshake (SQL: also startup and
/// authentication) within `server.handshake_timeout` of being accepted, or it is closed.
async fn accept_loop(
    listener: TcpListener,
    grpc: GrpcIncoming,
    pg: Arc<sql::PgHandlers>,
    pg_tls: Option<TlsAcceptor>,
    admission: Arc<sql::admission::Admission>,
) {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let deadline = Instant::now() + admission.handshake_timeout();
        let _ = socket.set_nodelay(true);
        let grpc = grpc.clone();
        let pg = pg.clone();
        let pg_tls = pg_tls.clone();
        let admission = admission.clone();
        tokio::spawn(async move {
            let mut first = [0u8; 1];
            let peeked = tokio::time::timeout_at(deadline, socket.peek(&mut first)).await;
            let first = match peeked {
                Ok(Ok(1)) => first[0],
                Ok(_) => {
                    tracing::debug!(%peer, "connection closed before sending anything");
                    return;
                }
                Err(_) => {
                    admission.count_handshake_timeout();
                    tracing::info!(%peer, "closed a connection that sent nothing within server.handshake_timeout");
                    return;
                }
            };
            match (first, &grpc) {
                (0x16, GrpcIncoming::Tls { acceptor, tx }) => {
                    match tokio::time::timeout_at(deadline, acceptor.accept(socket)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send(Ok(tls)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "RPC TLS handshake failed")
                        }
                        Err(_) => {
                            admission.count_handshake_timeout();
                            tracing::info!(
                                %peer,
                                "closed an RPC connection whose TLS handshake did not finish within server.handshake_timeout"
                            )
                        }
                    }
                }
                (b'P', GrpcIncoming::Plain(tx)) => {
                    let _ = tx.send(Ok(socket)).await;
                }
                (0x16 | b'P', _) => tracing::debug!(
                    %peer,
                    "closed an RPC connection that does not match this node's --insecure setting"
                ),
                _ => {
                    if let Err(e) =
                        sql::admission::serve_connection(pg, socket, pg_tls, deadline).await
                    {
                        tracing::debug!(%peer, error = %e, "SQL connection ended with an error");
                    }
                }
            }
        });
    }
}

/// Which peers a gRPC service admits on a secure cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerRule {
    /// Nodes of this cluster only (see [`crate::tls::peer_identity`]).
    Node,
    /// Nodes, or the operator: user `root` with an unscoped certificate or one scoped to the
    /// system virtual cluster.
    NodeOrRoot,
}

/// On a secure cluster, admits only requests whose verified client certificate fits `rule`:
/// client certificates are optional at the TLS level (other clusters' nodes reach the
/// replication source service with a stream token), so each service that is not for other
/// clusters checks here. A node is recognised by its certificate's key usages and host names,
/// not by its Common Name alone: a client certificate with CN `node` is not a node.
fn require_peer(
    req: tonic::Request<()>,
    secure: bool,
    rule: PeerRule,
) -> Result<tonic::Request<()>, tonic::Status> {
    if !secure {
        return Ok(req);
    }
    let wanted = match rule {
        PeerRule::Node => "a node certificate",
        PeerRule::NodeOrRoot => "a node certificate or root's client certificate",
    };
    let Some(certs) = req.peer_certs() else {
        return Err(tonic::Status::unauthenticated(format!(
            "no verified client certificate; this service needs {wanted} signed by this cluster's CA"
        )));
    };
    let identity = match certs.first().map(peer_identity) {
        Some(Ok(identity)) => identity,
        Some(Err(e)) => return Err(tonic::Status::unauthenticated(e.to_string())),
        None => {
            return Err(tonic::Status::unauthenticated(
                "empty peer certificate chain",
            ));
        }
    };
    let is_root = identity.common_name == "root"
        && (!identity.is_scoped()
            || identity
                .scope
                .iter()
                .any(|(t, u)| t.is_system() && u == "root"));
    let allowed = identity.is_node || (rule == PeerRule::NodeOrRoot && is_root);
    if allowed {
        return Ok(req);
    }
    tracing::warn!(
        common_name = %identity.common_name,
        "refused an RPC from a certificate that is not {wanted}"
    );
    Err(tonic::Status::permission_denied(format!(
        "certificate CN {:?} may not use this service: it needs {wanted} (a node certificate \
         has CN node, the key usages serverAuth and clientAuth and the node's host names, as \
         `roach cert create-node` issues it)",
        identity.common_name
    )))
}

/// Lets only nodes use the internal services (Raft, KV, ingestion): a client certificate from
/// the same CA (say `client.root`, an application user's, or one crafted with CN `node`) must
/// not be able to vote, append entries, or read and write keys outside its virtual cluster.
fn require_node_peer(
    req: tonic::Request<()>,
    secure: bool,
) -> Result<tonic::Request<()>, tonic::Status> {
    require_peer(req, secure, PeerRule::Node)
}

/// TLS settings for a node-identity client of the internal services (this node dialling
/// others, and tools and tests that talk KV directly): the CA and the node certificate.
pub fn node_client_tls(dir: &Path) -> Result<ClientTlsConfig, ServerError> {
    let pem = node_pem(&CertsDir::new(dir))?;
    let identity = Identity::from_pem(&pem.node_cert, &pem.node_key);
    let ca = Certificate::from_pem(&pem.ca_cert);
    Ok(ClientTlsConfig::new().ca_certificate(ca).identity(identity))
}

/// TLS settings for a command-line client (`roach init`, tools): the CA, and `client.root` if
/// present, else the node certificate, as the client identity.
pub fn cli_client_tls(dir: &Path) -> Result<ClientTlsConfig, ServerError> {
    let certs = CertsDir::new(dir);
    let read = |p: std::path::PathBuf| {
        std::fs::read(&p).map_err(|source| ServerError::Io {
            path: p.display().to_string(),
            source,
        })
    };
    let ca = read(certs.ca_cert())?;
    let (cert, key) = if certs.client_cert("root").exists() {
        (
            read(certs.client_cert("root"))?,
            read(certs.client_key("root"))?,
        )
    } else {
        (read(certs.node_cert())?, read(certs.node_key())?)
    };
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key)))
}

impl Node {
    /// Opens the store, binds the listeners and starts serving; the node then joins a cluster
    /// (`--join`), restarts its replica (a store with a node id), or waits for `init`.
    pub async fn start(config: NodeConfig) -> Result<Node, ServerError> {
        let store_path = config.store.clone();
        std::fs::create_dir_all(&store_path).map_err(|source| ServerError::Io {
            path: store_path.display().to_string(),
            source,
        })?;
        let data_dir = store_path.join("data");
        let engine = FjallEngine::open_with(
            &data_dir,
            &StoreOptions {
                cache_bytes: config.cache_bytes,
            },
        )
        .map_err(|source| ServerError::Store {
            path: data_dir.display().to_string(),
            source,
        })?;
        let client_tls = match &config.certs_dir {
            Some(dir) => Some(node_client_tls(dir)?),
            None => None,
        };
        let listen_err = |what, addr: &str| {
            let addr = addr.to_string();
            move |source| ServerError::Listen { what, addr, source }
        };
        let rpc_listener = TcpListener::bind(&config.listen_addr)
            .await
            .map_err(listen_err("cannot listen for RPC on", &config.listen_addr))?;
        let rpc_addr = rpc_listener.local_addr().map_err(listen_err(
            "cannot read the address of",
            &config.listen_addr,
        ))?;
        let http_listener = TcpListener::bind(&config.http_addr)
            .await
            .map_err(listen_err("cannot listen for HTTP on", &config.http_addr))?;
        let http_addr = http_listener
            .local_addr()
            .map_err(listen_err("cannot read the address of", &config.http_addr))?;
        let advertise_addr = config
            .advertise_addr
            .clone()
            .unwrap_or_else(|| rpc_addr.to_string());

        let registry = prometheus::Registry::new();
        let metrics = KvMetrics::new(&registry)
            .map_err(|e| ServerError::Config(format!("registering metrics: {e}")))?;
        let repl_metrics = replication::ReplicationMetrics::new(&registry)
            .map_err(|e| ServerError::Config(format!("registering metrics: {e}")))?;
        let slot = NodeSlot::default();
        let sql_metrics = sql::SqlMetrics::new(&registry)
            .map_err(|e| ServerError::Config(format!("registering metrics: {e}")))?;
        let sql_server = Arc::new(
            sql::SqlServer::new(slot.clone(), config.certs_dir.is_none()).with_metrics(sql_metrics),
        );
        let ingestion = replication::IngestionService::new(slot.clone(), repl_metrics.clone());
        let job_runner = replication::consumer::JobRunner::start(
            slot.clone(),
            ingestion.clone(),
            repl_metrics.clone(),
        );
        sql_server.set_replication(Arc::new(replication::Replication::new(
            job_runner,
            ingestion.clone(),
        )));
        let pg_tls = match &config.certs_dir {
            Some(dir) => Some(TlsAcceptor::from(Arc::new(node_server_config(
                &CertsDir::new(dir),
                ClientCertMode::Optional,
                &[],
            )?))),
            None => None,
        };
        // gRPC: client certificates are optional at the TLS level; the internal services
        // check for a node certificate themselves (`require_node_peer`), while a standby
        // cluster's nodes, whose certificates come from another CA, reach the replication
        // source service with a stream token instead.
        let grpc_tls = match &config.certs_dir {
            Some(dir) => Some(TlsAcceptor::from(Arc::new(node_server_config(
                &CertsDir::new(dir),
                ClientCertMode::Optional,
                &[ALPN_H2],
            )?))),
            None => None,
        };
        let shared = Arc::new(Shared {
            config,
            engine: Arc::new(engine),
            clock: Arc::new(Clock::system()),
            registry,
            metrics,
            slot,
            client_tls,
            advertise_addr,
            membership: Mutex::new(()),
        });

        let mut builder = tonic::transport::Server::builder();
        let secure = shared.config.certs_dir.is_some();
        let router = builder
            .add_service(InterceptedService::new(
                RaftService::server(shared.slot.clone()),
                move |req| require_node_peer(req, secure),
            ))
            // The KV service reaches every tenant's keys: nodes only. SQL clients go through
            // pgwire, where sessions are confined to their virtual cluster.
            .add_service(InterceptedService::new(
                KvService::server(shared.slot.clone()),
                move |req| require_node_peer(req, secure),
            ))
            // `roach init` presents the root client certificate (or a node's).
            .add_service(InterceptedService::new(
                spb::admin_server::AdminServer::new(AdminService {
                    shared: shared.clone(),
                }),
                move |req| require_peer(req, secure, PeerRule::NodeOrRoot),
            ))
            // A standby's ingestion coordinator drives this node's ingestion: nodes only.
            .add_service(InterceptedService::new(ingestion.server(), move |req| {
                require_node_peer(req, secure)
            }))
            // Served to another cluster's nodes; each request carries its stream's token.
            .add_service(
                replication::SourceService::new(shared.slot.clone(), repl_metrics.clone()).server(),
            );
        // One port for gRPC and pgwire: gRPC connections start with a TLS ClientHello (0x16)
        // or, insecure, with the HTTP/2 preface ("PRI"); pgwire ones with a length whose first
        // byte is 0 (a startup or SSLRequest message).
        let (grpc, rpc_task) = match grpc_tls {
            Some(acceptor) => {
                let (tx, rx) = tokio::sync::mpsc::channel(256);
                let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
                let task = tokio::spawn(async move {
                    if let Err(e) = router.serve_with_incoming(incoming).await {
                        tracing::error!(error = %e, "RPC server stopped");
                    }
                });
                (GrpcIncoming::Tls { acceptor, tx }, task)
            }
            None => {
                let (tx, rx) = tokio::sync::mpsc::channel(256);
                let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
                let task = tokio::spawn(async move {
                    if let Err(e) = router.serve_with_incoming(incoming).await {
                        tracing::error!(error = %e, "RPC server stopped");
                    }
                });
                (GrpcIncoming::Plain(tx), task)
            }
        };
        let admission = sql_server.admission().clone();
        crate::metrics::register_admission(&shared.registry, admission.clone())
            .map_err(|e| ServerError::Config(format!("registering metrics: {e}")))?;
        let mut tasks = vec![rpc_task, sql_server.clone().spawn_admission_refresh()];
        let pg_handlers = Arc::new(sql::PgHandlers::new(sql_server));
        tasks.push(tokio::spawn(accept_loop(
            rpc_listener,
            grpc,
            pg_handlers,
            pg_tls,
            admission.clone(),
        )));
        tasks.push(tokio::spawn(http::serve(
            http_listener,
            shared.clone(),
            admission,
        )));

        if let Some(id) = shared.stored_node_id()? {
            let node = {
                let _guard = shared.membership.lock().await;
                shared.start_replica(id).await?
            };
            tracing::info!(node_id = id.0, "restarted with the store's node id");
            if !node.is_initialized().await && !shared.config.join.is_empty() {
                tasks.push(tokio::spawn(shared.clone().join_loop()));
            }
        } else if !shared.config.join.is_empty() {
            tasks.push(tokio::spawn(shared.clone().join_loop()));
        }

        Ok(Node {
            shared,
            rpc_addr,
            http_addr,
            tasks,
        })
    }

    /// Writes the bound addresses to the configured listening file (if any), atomically. The
    /// caller decides when: `roach start` does it once the node is ready, or waiting for
    /// `init`, so `--background` returns at the right moment.
    pub fn write_listening_file(&self) -> Result<(), ServerError> {
        let Some(path) = &self.shared.config.listening_file else {
            return Ok(());
        };
        let io = |source| ServerError::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let text = format!(
            "rpc_addr={}\nadvertise_addr={}\nhttp_addr={}\n",
            self.rpc_addr, self.shared.advertise_addr, self.http_addr
        );
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The bound RPC address.
    pub fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    /// The address other nodes use.
    pub fn advertise_addr(&self) -> &str {
        &self.shared.advertise_addr
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The node id, once known.
    pub fn node_id(&self) -> Option<NodeId> {
        self.shared.slot.get().map(|n| n.id())
    }

    /// Initialises a new cluster with this node (`roach start-single-node`, `roach init`).
    pub async fn init_cluster(&self) -> Result<NodeId, ServerError> {
        self.shared.init_cluster().await
    }

    /// Why the node is not ready, or `None`.
    pub fn not_ready_reason(&self) -> Option<String> {
        self.shared.not_ready_reason()
    }

    /// Stops serving and stops the replica.
    pub async fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(node) = self.shared.slot.get() {
            node.shutdown().await;
        }
    }
}

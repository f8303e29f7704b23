//! The in-process cluster harness shared by the KV integration tests and benchmarks: real
//! nodes talking tonic over 127.0.0.1 with OS-assigned ports.
#![allow(dead_code)]

use hlc::{Clock, Timestamp};
use kv::{KvConfig, KvMetrics, KvService, NodeId, RaftService, RangeId, Store, filled_slot};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::FjallEngine;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const R: RangeId = RangeId::FIRST;

pub struct TestNode {
    pub node: Arc<Store>,
    pub server: JoinHandle<()>,
    pub addr: String,
    /// Asks the RPC server to stop gracefully (closing its connections, which hold the node).
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub struct TestCluster {
    pub dirs: Vec<TempDir>,
    pub nodes: Vec<Option<TestNode>>,
    pub config: KvConfig,
}

pub fn config() -> KvConfig {
    KvConfig {
        raft_heartbeat_interval: Duration::from_millis(50),
        raft_election_timeout: Duration::from_millis(300),
        ..KvConfig::default()
    }
}

pub async fn must_start_node(id: u64, dir: &TempDir, listener: TcpListener) -> TestNode {
    must_start_node_with(id, dir, listener, config()).await
}

pub async fn must_start_node_with(
    id: u64,
    dir: &TempDir,
    listener: TcpListener,
    config: KvConfig,
) -> TestNode {
    let addr = listener.local_addr().expect("local addr").to_string();
    // After a stop, the previous replica's tasks release the store asynchronously: poll.
    let deadline = Instant::now() + Duration::from_secs(10);
    let engine = loop {
        match FjallEngine::open(dir.path()) {
            Ok(e) => break Arc::new(e),
            Err(storage::StorageError::Fjall(fjall::Error::Locked))
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("open store: {e}"),
        }
    };
    let node = Store::start(
        NodeId(id),
        addr.clone(),
        engine,
        Arc::new(Clock::system()),
        config,
        None,
        KvMetrics::unregistered(),
    )
    .await
    .expect("start node");
    let router = tonic::transport::Server::builder()
        .add_service(RaftService::server(filled_slot(node.clone())))
        .add_service(KvService::server(filled_slot(node.clone())));
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = router
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            })
            .await;
    });
    TestNode {
        node,
        server,
        addr,
        stop: Some(stop_tx),
    }
}

impl TestCluster {
    /// Starts node 1, bootstraps it, then starts and admits the others one by one.
    pub async fn must_start(n: u64) -> TestCluster {
        Self::must_start_with(n, config()).await
    }

    /// [`TestCluster::must_start`] with KV settings of the test's choosing.
    pub async fn must_start_with(n: u64, config: KvConfig) -> TestCluster {
        let mut dirs = Vec::new();
        let mut nodes: Vec<Option<TestNode>> = Vec::new();
        for i in 1..=n {
            let dir = tempfile::tempdir().expect("temp dir");
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let id = if i == 1 {
                1
            } else {
                let first: &TestNode = nodes[0].as_ref().expect("node 1");
                first
                    .node
                    .allocate_node_id()
                    .await
                    .expect("allocate node id")
                    .0
            };
            assert_eq!(id, i, "node ids are allocated in order");
            let node = must_start_node_with(id, &dir, listener, config.clone()).await;
            if i == 1 {
                node.node.bootstrap().await.expect("bootstrap");
            } else {
                let first: &TestNode = nodes[0].as_ref().expect("node 1");
                first
                    .node
                    .add_member(NodeId(id), &node.addr)
                    .await
                    .expect("add member");
            }
            nodes.push(Some(node));
            dirs.push(dir);
        }
        TestCluster {
            dirs,
            nodes,
            config,
        }
    }

    pub fn node(&self, id: u64) -> Arc<Store> {
        self.nodes[(id - 1) as usize]
            .as_ref()
            .expect("node is running")
            .node
            .clone()
    }

    pub async fn stop(&mut self, id: u64) -> String {
        let mut n = self.nodes[(id - 1) as usize]
            .take()
            .expect("node is running");
        if let Some(stop) = n.stop.take() {
            let _ = stop.send(());
        }
        // Connections carrying long streams may not finish by themselves: bound the wait.
        if tokio::time::timeout(Duration::from_secs(5), &mut n.server)
            .await
            .is_err()
        {
            n.server.abort();
        }
        n.node.shutdown().await;
        n.addr
    }

    pub async fn restart(&mut self, id: u64, addr: &str) {
        // Reopening needs the old store closed; poll until its handles are released.
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("rebind {addr}: {e}"),
            }
        };
        let node = must_start_node_with(
            id,
            &self.dirs[(id - 1) as usize],
            listener,
            self.config.clone(),
        )
        .await;
        self.nodes[(id - 1) as usize] = Some(node);
    }

    pub fn leader(&self) -> Option<u64> {
        self.nodes.iter().flatten().find_map(|n| {
            let s = n.node.status();
            (s.leader == Some(s.node_id)).then_some(s.node_id.0)
        })
    }
}

pub async fn must_put(node: &Arc<Store>, key: &str, value: &str) -> Timestamp {
    let mut txn = node.begin().expect("begin");
    txn.put(key, value);
    txn.commit().await.expect("commit")
}

pub async fn poll<F: FnMut() -> bool>(what: &str, timeout: Duration, mut f: F) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

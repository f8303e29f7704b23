//! Multi-process test harness: real `roach` processes on 127.0.0.1 with OS-assigned ports,
//! each killed by PID when the harness is dropped (also when a test fails).
#![allow(dead_code)]

use kv::KvClient;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub const ROACH: &str = env!("CARGO_BIN_EXE_roach");

/// Runs a `roach` command to completion.
pub fn roach(args: &[&str]) -> Output {
    Command::new(ROACH)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run roach")
}

/// Creates a CA and node/root certificates in `dir/<name>` (key in `dir/<name>.ca.key`).
pub fn must_make_certs(dir: &Path, name: &str) -> PathBuf {
    let certs = dir.join(name);
    let ca_key = dir.join(format!("{name}.ca.key"));
    let (c, k) = (
        certs.to_str().expect("utf8"),
        ca_key.to_str().expect("utf8"),
    );
    for args in [
        vec!["cert", "create-ca", "--certs-dir", c, "--ca-key", k],
        vec![
            "cert",
            "create-node",
            "127.0.0.1",
            "localhost",
            "--certs-dir",
            c,
            "--ca-key",
            k,
        ],
        vec![
            "cert",
            "create-client",
            "root",
            "--certs-dir",
            c,
            "--ca-key",
            k,
        ],
    ] {
        let out = roach(&args);
        assert!(
            out.status.success(),
            "roach {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    certs
}

/// One `roach start` process.
pub struct ProcNode {
    pub child: Option<Child>,
    pub store: PathBuf,
    pub rpc_addr: String,
    pub http_addr: String,
    pub certs: Option<PathBuf>,
    pub join: Vec<String>,
}

impl ProcNode {
    /// Starts `roach start` with the given listen address (port 0 for a free one) and waits
    /// until it listens.
    pub fn must_spawn(
        store: &Path,
        listen: &str,
        join: &[String],
        certs: Option<&Path>,
    ) -> ProcNode {
        Self::must_spawn_with(store, listen, join, certs, &[])
    }

    /// [`ProcNode::must_spawn`] with extra `roach start` flags.
    pub fn must_spawn_with(
        store: &Path,
        listen: &str,
        join: &[String],
        certs: Option<&Path>,
        extra: &[&str],
    ) -> ProcNode {
        std::fs::create_dir_all(store).expect("store dir");
        let listening = store.join("test-listening");
        let _ = std::fs::remove_file(&listening);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(store.join("test-output.log"))
            .expect("output file");
        let mut cmd = Command::new(ROACH);
        cmd.arg("start")
            .arg("--store")
            .arg(store)
            .args(["--listen-addr", listen, "--http-addr", "127.0.0.1:0"])
            .arg("--listening-addr-file")
            .arg(&listening);
        if !join.is_empty() {
            cmd.args(["--join", &join.join(",")]);
        }
        cmd.args(extra);
        match certs {
            Some(c) => cmd.arg("--certs-dir").arg(c),
            None => cmd.arg("--insecure"),
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn roach start");
        let deadline = Instant::now() + Duration::from_secs(30);
        let text = loop {
            if let Ok(t) = std::fs::read_to_string(&listening) {
                break t;
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "roach start exited with {status}: {}",
                    std::fs::read_to_string(store.join("test-output.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "node did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .expect("address in listening file")
                .to_string()
        };
        ProcNode {
            child: Some(child),
            store: store.to_path_buf(),
            rpc_addr: field("rpc_addr"),
            http_addr: field("http_addr"),
            certs: certs.map(Path::to_path_buf),
            join: join.to_vec(),
        }
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts a killed node with the same store and RPC address.
    pub fn must_restart(&mut self) {
        assert!(self.child.is_none(), "node is still running");
        let n = ProcNode::must_spawn(
            &self.store,
            &self.rpc_addr.clone(),
            &self.join.clone(),
            self.certs.as_deref(),
        );
        *self = n;
    }

    /// `GET path` on the node's HTTP port: (status code, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.http_addr).expect("connect http");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.http_addr).expect("write");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read");
        roachtests::launcher::parse_http_response(&resp)
    }

    /// Polls `/health?ready=1` until it answers 200.
    pub fn must_be_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let (code, body) = self.http_get("/health?ready=1");
            if code == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} not ready: {code} {body}",
                self.rpc_addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The node's log file.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.store.join("logs").join("roach.log")).unwrap_or_default()
    }

    /// A KV client through this node.
    pub async fn client(&self) -> KvClient {
        let tls = self
            .certs
            .as_deref()
            .map(|c| server::node::node_client_tls(c).expect("node client tls"));
        KvClient::connect(&self.rpc_addr, tls)
            .await
            .expect("connect kv client")
    }
}

impl Drop for ProcNode {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A cluster of `roach` processes in a temporary directory.
pub struct ProcCluster {
    pub dir: TempDir,
    pub certs: Option<PathBuf>,
    pub nodes: Vec<ProcNode>,
}

impl ProcCluster {
    /// Starts `n` nodes (node 1 first, the others joining it), runs `roach init` on node 1
    /// and waits until every node is ready.
    pub fn must_start(n: usize, secure: bool) -> ProcCluster {
        Self::must_start_with(n, secure, &[])
    }

    /// [`ProcCluster::must_start`] with extra `roach start` flags on every node.
    pub fn must_start_with(n: usize, secure: bool, extra: &[&str]) -> ProcCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = secure.then(|| must_make_certs(dir.path(), "certs"));
        let first = ProcNode::must_spawn_with(
            &dir.path().join("n1"),
            "127.0.0.1:0",
            &[],
            certs.as_deref(),
            extra,
        );
        let join = vec![first.rpc_addr.clone()];
        let mut nodes = vec![first];
        for i in 2..=n {
            nodes.push(ProcNode::must_spawn_with(
                &dir.path().join(format!("n{i}")),
                "127.0.0.1:0",
                &join,
                certs.as_deref(),
                extra,
            ));
        }
        let mut init = vec!["init", "--host", &nodes[0].rpc_addr];
        let c;
        match &certs {
            Some(p) => {
                c = p.to_str().expect("utf8").to_string();
                init.extend(["--certs-dir", &c]);
            }
            None => init.push("--insecure"),
        }
        let out = roach(&init);
        assert!(
            out.status.success(),
            "roach init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for node in &nodes {
            node.must_be_ready(Duration::from_secs(30));
        }
        ProcCluster { dir, certs, nodes }
    }

    /// The index of the node that reports itself leader.
    pub async fn leader(&self) -> Option<usize> {
        for (i, n) in self.nodes.iter().enumerate() {
            if n.child.is_none() {
                continue;
            }
            if let Ok(s) = n.client().await.status().await
                && s.leader == Some(s.node_id)
            {
                return Some(i);
            }
        }
        None
    }
}

/// Polls `f` until it returns `Some`, failing after `within`.
pub async fn poll_async<T, F, Fut>(what: &str, within: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    roachtests::pair::poll(what, within, f)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A rustls client configuration trusting the CA in `ca` (a driver's TLS, without a client
/// certificate).
pub fn driver_tls(ca: &Path) -> rustls::ClientConfig {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).expect("ca.crt") {
        roots.add(cert.expect("certificate")).expect("root");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// How a test's SQL login authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Login<'a> {
    /// A password, or none: over TLS verified against the cluster's CA (no client
    /// certificate) on a secure cluster, without TLS on an insecure one.
    Password(Option<&'a str>),
    /// `client.<user>.crt` from the certificates directory `certs`, no password.
    Certificate(&'a Path),
}

/// A tokio-postgres connection attempt to virtual cluster `vc` through node `node` as `user`,
/// authenticated as `login` says.
pub async fn try_connect(
    cluster: &ProcCluster,
    node: usize,
    vc: &str,
    user: &str,
    login: Login<'_>,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (host, port) = cluster.nodes[node]
        .rpc_addr
        .rsplit_once(':')
        .expect("host:port");
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port.parse().expect("port"))
        .user(user)
        .dbname("defaultdb")
        .options(format!("-ccluster={vc}"))
        .connect_timeout(Duration::from_secs(10));
    let tls = match (login, &cluster.certs) {
        (Login::Password(password), certs) => {
            if let Some(p) = password {
                config.password(p);
            }
            certs.as_ref().map(|c| driver_tls(&c.join("ca.crt")))
        }
        (Login::Certificate(certs), _) => Some(
            server::tls::user_client_config(&server::tls::CertsDir::new(certs), user, &[])
                .expect("client certificate configuration"),
        ),
    };
    let client = match tls {
        Some(tls) => {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let (client, conn) = config
                .connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
                .await?;
            tokio::spawn(conn);
            client
        }
        None => {
            let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client
        }
    };
    Ok(client)
}

/// A tokio-postgres connection to virtual cluster `vc` through node `node` as `user` (with
/// `password` when given): over TLS verified against the cluster's CA on a secure cluster,
/// without TLS on an insecure one. Panics when it fails.
pub async fn connect(
    cluster: &ProcCluster,
    node: usize,
    vc: &str,
    user: &str,
    password: Option<&str>,
) -> tokio_postgres::Client {
    try_connect(cluster, node, vc, user, Login::Password(password))
        .await
        .unwrap_or_else(|e| panic!("connect to {vc} as {user}: {e}"))
}

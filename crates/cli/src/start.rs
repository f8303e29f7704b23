//! `roach start` and `roach start-single-node`.

use crate::security::SecurityArgs;
use anyhow::{Context, bail};
use server::config::{NodeConfig, parse_size};
use server::node::Node;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the environment of the process `--background` starts.
const BACKGROUND_CHILD_ENV: &str = "ROACH_BACKGROUND_CHILD";
/// How long `--background` waits for the node to listen.
const BACKGROUND_WAIT: Duration = Duration::from_secs(60);
/// How long a node with an id waits to be ready before announcing itself anyway.
const READY_WAIT: Duration = Duration::from_secs(30);

/// Flags of `roach start` (and `start-single-node`, without `--join`).
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// The store directory (`path=DIR` is accepted too).
    #[arg(long, default_value = "roach-data")]
    pub store: String,
    /// Address to listen on for RPC connections (port 0 picks a free port).
    #[arg(long, default_value = "localhost:26257")]
    pub listen_addr: String,
    /// Address other nodes use to reach this one (default: the bound listen address).
    #[arg(long)]
    pub advertise_addr: Option<String>,
    /// Comma-separated addresses of nodes to join.
    #[arg(long, value_delimiter = ',')]
    pub join: Vec<String>,
    /// Address of the HTTP endpoint (health, `/_status/vars`; port 0 picks a free port).
    #[arg(long, default_value = "localhost:8080")]
    pub http_addr: String,
    #[command(flatten)]
    pub security: SecurityArgs,
    /// Start in the background: return once the node is listening.
    #[arg(long)]
    pub background: bool,
    /// Block cache size (e.g. 256MiB, .25 of memory).
    #[arg(long)]
    pub cache: Option<String>,
    /// Memory for SQL sessions (e.g. 256MiB, .25 of memory).
    #[arg(long)]
    pub max_sql_memory: Option<String>,
    /// Write the bound addresses to this file once listening (for scripts and tests).
    #[arg(long)]
    pub listening_addr_file: Option<PathBuf>,
    /// The configuration profile applied when this node initialises the cluster.
    #[arg(long, default_value = "default", value_parser = clap::builder::PossibleValuesParser::new(server::profiles::names()))]
    pub config_profile: String,
}

impl StartArgs {
    fn store_path(&self) -> PathBuf {
        PathBuf::from(self.store.strip_prefix("path=").unwrap_or(&self.store))
    }

    fn node_config(&self) -> anyhow::Result<NodeConfig> {
        let size = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<u64>> {
            v.as_deref()
                .map(parse_size)
                .transpose()
                .with_context(|| format!("--{flag}"))
        };
        Ok(NodeConfig {
            store: self.store_path(),
            listen_addr: self.listen_addr.clone(),
            advertise_addr: self.advertise_addr.clone(),
            join: self
                .join
                .iter()
                .filter(|j| !j.is_empty())
                .cloned()
                .collect(),
            http_addr: self.http_addr.clone(),
            certs_dir: self.security.certs_dir(),
            cache_bytes: size("cache", &self.cache)?,
            max_sql_memory_bytes: size("max-sql-memory", &self.max_sql_memory)?,
            listening_file: self.listening_addr_file.clone(),
            kv: kv::KvConfig::default(),
            profile: server::profiles::load(&self.config_profile)?,
        })
    }
}

/// Runs `roach start`; `single_node` initialises a one-node cluster if the store is new.
pub fn run(args: StartArgs, single_node: bool) -> anyhow::Result<()> {
    if args.background && std::env::var_os(BACKGROUND_CHILD_ENV).is_none() {
        return start_in_background(&args);
    }
    let config = args.node_config()?;
    if config.certs_dir.is_none() {
        eprintln!(
            "warning: running insecure: no TLS, anyone who can reach the port can read and write all data"
        );
    }
    server::logging::init(&config.store).with_context(|| {
        format!(
            "cannot open the log directory under {}",
            config.store.display()
        )
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let node = Node::start(config.clone()).await?;
        if single_node && node.node_id().is_none() {
            node.init_cluster().await?;
        }
        // A node with an id (restarted, or just initialised) is announced once it is ready; a
        // new node waiting for `roach init` or for its join as soon as it listens.
        if node.node_id().is_some() {
            wait_ready(&node).await;
        }
        node.write_listening_file()?;
        print_summary(&node, &config);
        wait_for_shutdown_signal().await;
        tracing::info!("shutting down");
        node.shutdown().await;
        Ok(())
    })
}

fn print_summary(node: &Node, config: &NodeConfig) {
    let security = match &config.certs_dir {
        Some(dir) => format!("secure (certificates in {})", dir.display()),
        None => "insecure".to_string(),
    };
    let node_id = match node.node_id() {
        Some(id) => id.0.to_string(),
        None if config.join.is_empty() => "none yet: waiting for `roach init`".to_string(),
        None => format!("none yet: joining via {}", config.join.join(",")),
    };
    println!("roach node started");
    println!("  rpc address:       {}", node.rpc_addr());
    println!("  advertise address: {}", node.advertise_addr());
    println!("  http:              http://{}", node.http_addr());
    println!("  store:             {}", config.store.display());
    println!("  security:          {security}");
    println!("  node id:           {node_id}");
}

/// Waits (bounded) for the node to be ready; logs why not if it takes too long.
async fn wait_ready(node: &Node) {
    let deadline = Instant::now() + READY_WAIT;
    loop {
        match node.not_ready_reason() {
            None => return,
            Some(reason) if Instant::now() > deadline => {
                tracing::warn!(%reason, "node not ready after {} s; continuing", READY_WAIT.as_secs());
                return;
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn wait_for_shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Re-runs this command without `--background` as a detached process and returns once it
/// listens (or reports why it did not).
fn start_in_background(args: &StartArgs) -> anyhow::Result<()> {
    let store = args.store_path();
    let logs = store.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let listening = args
        .listening_addr_file
        .clone()
        .unwrap_or_else(|| store.join("listening-addrs"));
    let _ = std::fs::remove_file(&listening);
    let out_path = logs.join("roach.stdout");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out_path)
        .with_context(|| format!("cannot open {}", out_path.display()))?;
    let mut argv: Vec<OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--background")
        .collect();
    if args.listening_addr_file.is_none() {
        argv.push("--listening-addr-file".into());
        argv.push(listening.clone().into_os_string());
    }
    let exe = std::env::current_exe().context("cannot find the roach executable")?;
    let mut command = Command::new(exe);
    command
        .args(argv)
        .env(BACKGROUND_CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().context("duplicating the output file")?)
        .stderr(out);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command.spawn().context("cannot start the node process")?;
    let deadline = Instant::now() + BACKGROUND_WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(&listening) {
            println!("roach node started in the background (pid {})", child.id());
            for line in text.lines() {
                println!("  {line}");
            }
            println!("  logs: {}", logs.join("roach.log").display());
            return Ok(());
        }
        if let Some(status) = child.try_wait().context("checking the node process")? {
            bail!(
                "the node exited during start-up ({status}); its output:\n{}",
                tail(&out_path, 20)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the node (pid {}) did not start listening within {} s; see {}",
                child.id(),
                BACKGROUND_WAIT.as_secs(),
                out_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

//! `roach demo`: a primary and a standby cluster replicating on this machine, and a SQL shell.
//!
//! Everything lives in one temporary directory: each cluster's certificates (its own CA, plus
//! the other cluster's CA certificate as `ca_primary.crt` / `ca_standby.crt`), the CA keys, the
//! node stores and the output of every child process. The nodes are `roach start` processes of
//! this same binary on 127.0.0.1 with OS-assigned ports, each in its own process group so that
//! a Ctrl-C typed at the shell reaches only the demo. The demo initialises both clusters,
//! creates the replication user on the primary, loads a small movr dataset into the primary's
//! `application` virtual cluster, starts replicating it into the standby, waits until it
//! replicates, and opens `roach sql` on the standby's system virtual cluster.
//!
//! Cleanup: [`Processes`] owns every child process and the directory, and is stopped (every
//! child killed by PID and reaped, then the directory removed) exactly once: by the
//! [`StopOnDrop`] guard when the demo returns, fails or panics, or by the signal thread on
//! SIGINT, SIGTERM or SIGHUP. While the interactive shell runs, SIGINT belongs to the shell (it
//! cancels the running statement) and Ctrl-D ends the demo.
//!
//! The replication user's password is generated at start and never printed: it appears only in
//! the two statements sent to the clusters, and every URI shown says `redacted` instead.

use crate::security::SecurityArgs;
use crate::sql::connect::{self, Session};
use crate::sql::params::{ConnParams, Given};
use crate::sql::{Format, SqlArgs};
use anyhow::{Context, anyhow, bail};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::distr::{Alphanumeric, SampleString};
use server::certs::{self, Overwrite, Validity};
use server::tls::CertsDir;
use std::io::{IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio_postgres::SimpleQueryMessage;

/// How long a node may take to listen after it is spawned.
const LISTEN_WAIT: Duration = Duration::from_secs(60);
/// How long `roach init` may take.
const INIT_WAIT: Duration = Duration::from_secs(60);
/// How long the nodes may take to answer `/health?ready=1` with 200 after `roach init`.
const READY_WAIT: Duration = Duration::from_secs(60);
/// How long loading the movr dataset may take.
const WORKLOAD_WAIT: Duration = Duration::from_secs(180);
/// How long the standby's virtual cluster may take to reach `replicating`.
const REPLICATING_WAIT: Duration = Duration::from_secs(60);
/// How often a child process, a file or a health endpoint is checked while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How often the replication status is read while waiting for `replicating`.
const STATUS_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Bounds on one health-check request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
const HTTP_RESPONSE_BYTES_MAX: u64 = 64 * 1024;

/// The user the standby connects to the primary as.
const REPL_USER: &str = "repl";
const REPL_PASSWORD_LEN: usize = 16;
/// The virtual cluster that is loaded and replicated.
const VIRTUAL_CLUSTER: &str = "application";
/// A movr dataset that loads in a few seconds.
const MOVR_FLAGS: &[&str] = &[
    "--num-users",
    "50",
    "--num-vehicles",
    "15",
    "--num-rides",
    "100",
    "--num-promo-codes",
    "20",
];
/// What the shell runs first, with and without replication.
const FIRST_STATEMENT_REPLICATING: &str =
    "SHOW VIRTUAL CLUSTER application WITH REPLICATION STATUS";
const FIRST_STATEMENT_PRIMARY_ONLY: &str = "SHOW VIRTUAL CLUSTERS";
/// The lines of the output of a start-up step shown when it fails.
const TAIL_LINES: usize = 20;

/// Characters of a file path left as they are in a URL's query value; the rest is
/// percent-encoded (`roach sql` and the replication URI parser decode every part).
const PATH_IN_QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

/// `roach demo --help`.
pub const LONG_HELP: &str = "\
Start a primary and a standby cluster on this machine, replicate the primary's `application`
virtual cluster into the standby, and open a SQL shell on the standby.

Step by step, with a progress line on stderr for each:
  1. a temporary directory with certificates for both clusters, each with its own CA; the
     primary's CA certificate is copied into the standby's certs directory as ca_primary.crt,
     and the standby's into the primary's as ca_standby.crt;
  2. a primary (roach start --config-profile replication-source) and a standby
     (--config-profile replication-target) of --nodes nodes each: child processes on
     127.0.0.1 with OS-assigned ports, initialised, and ready (/health?ready=1);
  3. on the primary's system virtual cluster: the user repl with a random password (never
     shown) and GRANT SYSTEM REPLICATION TO repl;
  4. a small movr dataset (roach workload init movr) in the primary's application virtual
     cluster;
  5. on the standby's system virtual cluster: CREATE VIRTUAL CLUSTER application LIKE template
     FROM REPLICATION OF application ON 'postgresql://repl:...@<primary node 1>', then waiting
     (up to 60 s) until SHOW VIRTUAL CLUSTER application WITH REPLICATION STATUS says
     replicating.

It then prints the connection URLs of the system and application virtual clusters of both
clusters (client certificates for root, absolute paths), the replication URI with its
password redacted, the temporary directory, and how to fail over; and opens `roach sql` on
the standby's system virtual cluster with SHOW VIRTUAL CLUSTER application WITH REPLICATION
STATUS already run. With --no-replication only the primary starts (no repl user), and the
shell opens on the primary's system virtual cluster after SHOW VIRTUAL CLUSTERS.

To fail over to the standby, in the shell:
  ALTER VIRTUAL CLUSTER application COMPLETE REPLICATION TO LATEST;
  ALTER VIRTUAL CLUSTER application START SERVICE SHARED;
then connect to the standby's application virtual cluster with its URL.

The shell: from a terminal, Ctrl-C clears the line being typed or cancels the running
statement, and Ctrl-D or \\q ends the demo; with piped stdin it runs the statements and the
demo ends at EOF.

Ending the demo (the end of the shell, SIGINT outside the interactive shell, SIGTERM, SIGHUP,
or an error after start-up) kills every node, waits for them, and removes the temporary
directory: nothing is kept. Exit code: the shell's (0, or 1 when a piped statement failed), 1
when start-up fails, 128 + the signal number after a signal.";

/// Flags of `roach demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Nodes per cluster, 1 to 9.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub nodes: u8,
    /// Start only the primary cluster: no standby, no replication.
    #[arg(long)]
    pub no_replication: bool,
}

/// Runs `roach demo`; exits the process with the shell's exit code when it is not 0.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let code = run_to_exit_code(&args)?;
    if code != 0 {
        let _ = std::io::stdout().flush();
        std::process::exit(code);
    }
    Ok(())
}

/// Everything up to the end of the shell; every child process is stopped and the directory
/// removed before this returns (also on error or panic).
fn run_to_exit_code(args: &DemoArgs) -> anyhow::Result<i32> {
    let dir = tempfile::Builder::new()
        .prefix("roach-demo-")
        .tempdir()
        .context("cannot create the temporary directory")?;
    // Absolute and free of symlinks: the paths go into URLs read by other processes.
    let dir_path = dir
        .path()
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.path().display()))?;
    if dir_path.to_str().is_none() {
        bail!(
            "the temporary directory {} is not valid UTF-8; set TMPDIR to another directory",
            dir_path.display()
        );
    }
    let processes: Shared = Arc::new(Mutex::new(Processes {
        children: Vec::new(),
        dir: Some(dir),
        stopped: false,
    }));
    let stop_on_drop = StopOnDrop(processes.clone());
    let shell_owns_sigint = Arc::new(AtomicBool::new(false));
    spawn_signal_thread(processes.clone(), shell_owns_sigint.clone())?;

    let demo = Demo {
        exe: std::env::current_exe().context("cannot find the roach binary")?,
        dir: dir_path,
        nodes: usize::from(args.nodes),
        replication: !args.no_replication,
        processes,
    };
    let password = Alphanumeric.sample_string(&mut rand::rng(), REPL_PASSWORD_LEN);
    let clusters = match demo.start(&password) {
        Ok(clusters) => clusters,
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            drop(stop_on_drop);
            return Ok(1);
        }
    };
    demo.print_summary(&clusters);

    let (shell_cluster, first) = match &clusters.standby {
        Some(standby) => (standby, FIRST_STATEMENT_REPLICATING),
        None => (&clusters.primary, FIRST_STATEMENT_PRIMARY_ONLY),
    };
    println!("{} system> {first};", shell_cluster.role.dir_name());
    let sql_args = SqlArgs {
        url: Some(shell_cluster.url("system")),
        host: None,
        user: None,
        database: None,
        security: SecurityArgs {
            certs_dir: shell_cluster.certs.clone(),
            insecure: false,
        },
        execute: Vec::new(),
        format: Format::Table,
    };
    // From a terminal the shell cancels the running statement on Ctrl-C; with piped input a
    // SIGINT stops the demo.
    let interactive = std::io::stdin().is_terminal();
    shell_owns_sigint.store(interactive, Ordering::SeqCst);
    let code = crate::sql::run_after(sql_args, &[first.to_string()]);
    shell_owns_sigint.store(false, Ordering::SeqCst);
    if interactive {
        // Ctrl-D leaves the cursor after the prompt.
        println!();
    }
    let _ = std::io::stdout().flush();
    drop(stop_on_drop);
    code
}

/// The demo's child processes and temporary directory, shared with the signal thread.
type Shared = Arc<Mutex<Processes>>;

/// Locks the processes. A panic while the lock was held left them as they were, and stopping
/// them is still the right thing to do, so a poisoned lock is used as is.
fn lock(processes: &Shared) -> MutexGuard<'_, Processes> {
    processes.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Which child of [`Processes`].
#[derive(Debug, Clone, Copy)]
struct ChildId(usize);

/// Every child process of the demo and the temporary directory; stopped exactly once.
#[derive(Debug)]
struct Processes {
    /// What each child is (for messages) and the child; never shrinks, so a [`ChildId`] stays
    /// valid.
    children: Vec<(String, Child)>,
    dir: Option<TempDir>,
    stopped: bool,
}

impl Processes {
    /// Spawns `command`; refused once the demo is stopping.
    fn spawn(&mut self, what: String, command: &mut Command) -> anyhow::Result<ChildId> {
        if self.stopped {
            bail!("the demo is stopping; not starting {what}");
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {what}"))?;
        self.children.push((what, child));
        Ok(ChildId(self.children.len() - 1))
    }

    /// The child's exit status if it has exited.
    fn try_wait(&mut self, id: ChildId) -> anyhow::Result<Option<ExitStatus>> {
        let (what, child) = &mut self.children[id.0];
        child
            .try_wait()
            .with_context(|| format!("cannot check on {what}"))
    }

    /// Kills every child (SIGKILL: the data is thrown away anyway), reaps them, and removes
    /// the directory. Only the first call does anything.
    fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let mut running = 0;
        for (_, child) in &mut self.children {
            if matches!(child.try_wait(), Ok(None)) {
                running += 1;
            }
        }
        match running {
            0 => {}
            1 => eprintln!("stopping 1 process ..."),
            n => eprintln!("stopping {n} processes ..."),
        }
        for (_, child) in &mut self.children {
            // Fails only for a child that was already reaped.
            let _ = child.kill();
        }
        for (what, child) in &mut self.children {
            if let Err(e) = child.wait() {
                eprintln!("warning: cannot wait for {what}: {e}");
            }
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().display().to_string();
            match dir.close() {
                Ok(()) => eprintln!("removed {path}"),
                Err(e) => eprintln!("warning: cannot remove {path}: {e}"),
            }
        }
    }
}

/// Stops the demo's processes when dropped: on return, on error and on panic.
struct StopOnDrop(Shared);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        lock(&self.0).stop();
    }
}

/// Starts a thread that, on SIGINT (unless the interactive shell owns it), SIGTERM or SIGHUP,
/// stops the demo and exits with 128 + the signal number. The handlers are installed before
/// this returns.
fn spawn_signal_thread(
    processes: Shared,
    shell_owns_sigint: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime for signals")?;
    let mut signals = {
        let _context = runtime.enter();
        Signals::install().context("cannot install the signal handlers")?
    };
    std::thread::Builder::new()
        .name("roach-demo-signals".into())
        .spawn(move || {
            let received = runtime.block_on(signals.next(&shell_owns_sigint));
            let Some((name, code)) = received else {
                return;
            };
            eprintln!("\n{name} received: stopping the demo");
            // Held until the process exits, so the main thread cannot start anything new.
            let mut processes = lock(&processes);
            processes.stop();
            std::process::exit(code);
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// The signals that stop the demo.
#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal that stops the demo, as (name, exit code); `None` if signals can no
    /// longer be received.
    async fn next(&mut self, shell_owns_sigint: &AtomicBool) -> Option<(&'static str, i32)> {
        loop {
            tokio::select! {
                Some(()) = self.interrupt.recv() => {
                    if !shell_owns_sigint.load(Ordering::SeqCst) {
                        return Some(("SIGINT", 130));
                    }
                }
                Some(()) = self.terminate.recv() => return Some(("SIGTERM", 143)),
                Some(()) = self.hangup.recv() => return Some(("SIGHUP", 129)),
                else => return None,
            }
        }
    }
}

/// The signals that stop the demo: Ctrl-C only.
#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals)
    }

    async fn next(&mut self, shell_owns_sigint: &AtomicBool) -> Option<(&'static str, i32)> {
        loop {
            tokio::signal::ctrl_c().await.ok()?;
            if !shell_owns_sigint.load(Ordering::SeqCst) {
                return Some(("Ctrl-C", 130));
            }
        }
    }
}

/// Which of the two clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Primary,
    Standby,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Primary => "Primary",
            Role::Standby => "Standby",
        }
    }

    fn dir_name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Standby => "standby",
        }
    }

    fn profile(self) -> &'static str {
        match self {
            Role::Primary => "replication-source",
            Role::Standby => "replication-target",
        }
    }
}

/// A started node.
#[derive(Debug)]
struct Node {
    number: usize,
    store: PathBuf,
    child: ChildId,
    rpc_addr: String,
    http_addr: String,
}

/// A node spawned but not yet known to listen.
#[derive(Debug)]
struct SpawnedNode {
    number: usize,
    store: PathBuf,
    listening_file: PathBuf,
    child: ChildId,
}

/// One cluster: its certificates and its nodes (node 1 first).
#[derive(Debug)]
struct Cluster {
    role: Role,
    certs: PathBuf,
    nodes: Vec<Node>,
}

impl Cluster {
    /// The client-certificate URL of virtual cluster `vc` through node 1.
    fn url(&self, vc: &str) -> String {
        client_url(&self.nodes[0].rpc_addr, vc, &self.certs)
    }
}

/// The started clusters.
#[derive(Debug)]
struct Clusters {
    primary: Cluster,
    standby: Option<Cluster>,
}

/// `path`, percent-encoded for a URL's query value.
fn query_path(path: &Path) -> String {
    utf8_percent_encode(&path.to_string_lossy(), PATH_IN_QUERY).to_string()
}

/// A URL to virtual cluster `vc` at `addr` as root, authenticated by root's client certificate
/// in `certs` and verifying the node against `certs/ca.crt`.
fn client_url(addr: &str, vc: &str, certs: &Path) -> String {
    format!(
        "postgresql://root@{addr}/defaultdb?options=-ccluster%3D{vc}&sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        query_path(&certs.join("ca.crt")),
        query_path(&certs.join("client.root.crt")),
        query_path(&certs.join("client.root.key")),
    )
}

/// The URI the standby connects to the primary with. Pass `"redacted"` as the password for a
/// URI to show.
fn replication_uri(primary_addr: &str, password: &str, standby_certs: &Path) -> String {
    format!(
        "postgresql://{REPL_USER}:{password}@{primary_addr}?options=-ccluster=system&sslmode=verify-full&sslrootcert={}",
        query_path(&standby_certs.join("ca_primary.crt")),
    )
}

/// What to try when the demo's processes are too slow to start.
const BUSY_HINT: &str = "the machine may be busy or short of memory: try `roach demo --nodes 1`, or `roach demo --no-replication`";

/// The last [`TAIL_LINES`] lines of a log file, indented, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // The demo's directory is removed on the way out, so the lines are shown, not the path.
    let mut out = format!("\nlast lines of its {name}:");
    for line in &lines[start..] {
        out.push_str("\n  ");
        out.push_str(line);
    }
    out
}

/// An append-only log file for a child's stdout and stderr.
fn log_file(path: &Path) -> anyhow::Result<(Stdio, Stdio)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let second = file
        .try_clone()
        .with_context(|| format!("cannot reopen {}", path.display()))?;
    Ok((Stdio::from(file), Stdio::from(second)))
}

/// `GET path` on `addr` over plain HTTP/1.0; the status code.
fn http_status(addr: &str, path: &str) -> anyhow::Result<u16> {
    let socket: SocketAddr = addr
        .parse()
        .with_context(|| format!("invalid HTTP address {addr}"))?;
    let mut stream = TcpStream::connect_timeout(&socket, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = Vec::new();
    stream
        .take(HTTP_RESPONSE_BYTES_MAX)
        .read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("no HTTP status line from {addr}"))
}

/// What the demo starts, and where.
#[derive(Debug)]
struct Demo {
    exe: PathBuf,
    /// The temporary directory (absolute, UTF-8).
    dir: PathBuf,
    nodes: usize,
    replication: bool,
    processes: Shared,
}

impl Demo {
    /// Certificates, nodes, init, the replication user, the dataset and replication: everything
    /// before the shell.
    fn start(&self, password: &str) -> anyhow::Result<Clusters> {
        let roles: &[Role] = if self.replication {
            &[Role::Primary, Role::Standby]
        } else {
            &[Role::Primary]
        };
        let mut certs = Vec::new();
        for &role in roles {
            certs.push(self.make_certs(role)?);
        }
        if self.replication {
            self.exchange_cas()?;
        }

        // Node 1 of each cluster first: the others join it.
        let mut firsts = Vec::new();
        for &role in roles {
            firsts.push(self.spawn_node(role, 1, None)?);
        }
        let mut clusters = Vec::new();
        for ((&role, certs), first) in roles.iter().zip(certs).zip(firsts) {
            let first = self.wait_listening(role, first)?;
            clusters.push(Cluster {
                role,
                certs,
                nodes: vec![first],
            });
        }
        let mut joining = Vec::new();
        for cluster in &clusters {
            let join = cluster.nodes[0].rpc_addr.clone();
            for number in 2..=self.nodes {
                joining.push((
                    cluster.role,
                    self.spawn_node(cluster.role, number, Some(&join))?,
                ));
            }
        }
        for (role, spawned) in joining {
            let node = self.wait_listening(role, spawned)?;
            let cluster = clusters
                .iter_mut()
                .find(|c| c.role == role)
                .expect("every spawned node belongs to a started cluster");
            cluster.nodes.push(node);
        }

        let inits: Vec<_> = clusters
            .iter()
            .map(|cluster| self.spawn_init(cluster))
            .collect::<anyhow::Result<_>>()?;
        for (cluster, (init, log)) in clusters.iter().zip(inits) {
            let what = format!("roach init of the {} cluster", cluster.role.dir_name());
            self.wait_exit(&what, init, &log, INIT_WAIT)?;
        }
        let total: usize = clusters.iter().map(|c| c.nodes.len()).sum();
        match total {
            1 => eprintln!("waiting for the node to be ready ..."),
            n => eprintln!("waiting for the {n} nodes to be ready ..."),
        }
        for cluster in &clusters {
            for node in &cluster.nodes {
                self.wait_ready(cluster.role, node)?;
            }
        }

        let mut clusters = clusters.into_iter();
        let primary = clusters
            .next()
            .expect("the primary cluster is always started");
        let standby = clusters.next();

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        if standby.is_some() {
            runtime.block_on(create_replication_user(&primary, password))?;
        }
        self.load_movr(&primary)?;
        if let Some(standby) = &standby {
            runtime.block_on(replicate(&primary, standby, password))?;
        }
        Ok(Clusters { primary, standby })
    }

    /// A CA (its key outside the certs directory), a node certificate for 127.0.0.1 and
    /// localhost, and a client certificate for root, like `roach cert create-ca`,
    /// `create-node 127.0.0.1 localhost` and `create-client root`. Returns the certs directory.
    fn make_certs(&self, role: Role) -> anyhow::Result<PathBuf> {
        eprintln!(
            "creating the {} cluster's CA and certificates ...",
            role.dir_name()
        );
        let cluster_dir = self.dir.join(role.dir_name());
        let certs_dir = CertsDir::new(cluster_dir.join("certs"));
        let ca_key = cluster_dir.join("ca.key");
        certs::create_ca(
            &certs_dir,
            &ca_key,
            Validity::starting_now(certs::CA_LIFETIME_DEFAULT),
            Overwrite::Refuse,
        )
        .with_context(|| format!("cannot create the {} CA", role.dir_name()))?;
        certs::create_node(
            &certs_dir,
            &ca_key,
            &["127.0.0.1".to_string(), "localhost".to_string()],
            Validity::starting_now(certs::NODE_LIFETIME_DEFAULT),
            Overwrite::Refuse,
        )
        .with_context(|| format!("cannot create the {} node certificate", role.dir_name()))?;
        certs::create_client(
            &certs_dir,
            &ca_key,
            "root",
            Validity::starting_now(certs::CLIENT_LIFETIME_DEFAULT),
            Overwrite::Refuse,
        )
        .with_context(|| format!("cannot create the {} client certificate", role.dir_name()))?;
        Ok(certs_dir.path().to_path_buf())
    }

    /// Copies each cluster's CA certificate into the other's certs directory, as
    /// docs/physical-replication.md does.
    fn exchange_cas(&self) -> anyhow::Result<()> {
        eprintln!(
            "copying the primary's ca.crt to the standby as ca_primary.crt, the standby's to the primary as ca_standby.crt"
        );
        let certs = |role: Role| self.dir.join(role.dir_name()).join("certs");
        for (from, to, name) in [
            (Role::Primary, Role::Standby, "ca_primary.crt"),
            (Role::Standby, Role::Primary, "ca_standby.crt"),
        ] {
            let source = certs(from).join("ca.crt");
            let target = certs(to).join(name);
            std::fs::copy(&source, &target).with_context(|| {
                format!("cannot copy {} to {}", source.display(), target.display())
            })?;
        }
        Ok(())
    }

    /// Spawns `roach start` for node `number` of `role`'s cluster, joining `join` if given.
    fn spawn_node(
        &self,
        role: Role,
        number: usize,
        join: Option<&str>,
    ) -> anyhow::Result<SpawnedNode> {
        eprintln!(
            "starting {} node {number} of {} ...",
            role.dir_name(),
            self.nodes
        );
        let cluster_dir = self.dir.join(role.dir_name());
        let store = cluster_dir.join(format!("n{number}"));
        std::fs::create_dir_all(&store)
            .with_context(|| format!("cannot create {}", store.display()))?;
        let listening_file = store.join("listening-addrs");
        let (stdout, stderr) = log_file(&store.join("output.log"))?;
        let mut command = Command::new(&self.exe);
        command
            .arg("start")
            .arg("--store")
            .arg(&store)
            .args(["--listen-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
            .arg("--listening-addr-file")
            .arg(&listening_file)
            .arg("--certs-dir")
            .arg(cluster_dir.join("certs"))
            .args(["--config-profile", role.profile()]);
        if let Some(join) = join {
            command.args(["--join", join]);
        }
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        // Its own process group: a Ctrl-C typed at the terminal goes to the demo only, which
        // decides what it means.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let what = format!("{} node {number}", role.dir_name());
        let child = lock(&self.processes).spawn(what, &mut command)?;
        Ok(SpawnedNode {
            number,
            store,
            listening_file,
            child,
        })
    }

    /// Waits until the node wrote its listening file; its addresses.
    fn wait_listening(&self, role: Role, spawned: SpawnedNode) -> anyhow::Result<Node> {
        let deadline = Instant::now() + LISTEN_WAIT;
        let what = format!("{} node {}", role.dir_name(), spawned.number);
        let output = spawned.store.join("output.log");
        let text = loop {
            // The node writes the file atomically (write, then rename).
            if let Ok(text) = std::fs::read_to_string(&spawned.listening_file) {
                break text;
            }
            if let Some(status) = lock(&self.processes).try_wait(spawned.child)? {
                bail!("{what} exited with {status}{}", tail(&output));
            }
            if Instant::now() > deadline {
                bail!(
                    "{what} did not listen within {} s{}\nHINT: {BUSY_HINT}",
                    LISTEN_WAIT.as_secs(),
                    tail(&output)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
                .ok_or_else(|| {
                    anyhow!(
                        "{what}: no {name}= line in {}",
                        spawned.listening_file.display()
                    )
                })
        };
        Ok(Node {
            number: spawned.number,
            store: spawned.store.clone(),
            child: spawned.child,
            rpc_addr: field("rpc_addr")?,
            http_addr: field("http_addr")?,
        })
    }

    /// Spawns `roach init` through node 1; the child and its log file.
    fn spawn_init(&self, cluster: &Cluster) -> anyhow::Result<(ChildId, PathBuf)> {
        eprintln!("initializing the {} cluster ...", cluster.role.dir_name());
        let log = self
            .dir
            .join(cluster.role.dir_name())
            .join("init-output.log");
        let (stdout, stderr) = log_file(&log)?;
        let mut command = Command::new(&self.exe);
        command
            .args(["init", "--host", &cluster.nodes[0].rpc_addr])
            .arg("--certs-dir")
            .arg(&cluster.certs)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let what = format!("roach init of the {} cluster", cluster.role.dir_name());
        let child = lock(&self.processes).spawn(what, &mut command)?;
        Ok((child, log))
    }

    /// Waits for a short-lived child to exit successfully.
    fn wait_exit(
        &self,
        what: &str,
        child: ChildId,
        log: &Path,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = lock(&self.processes).try_wait(child)? {
                if status.success() {
                    return Ok(());
                }
                bail!("{what} failed ({status}){}", tail(log));
            }
            if Instant::now() > deadline {
                bail!(
                    "{what} did not finish within {} s{}\nHINT: {BUSY_HINT}",
                    within.as_secs(),
                    tail(log)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Polls the node's `/health?ready=1` until it answers 200.
    fn wait_ready(&self, role: Role, node: &Node) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_WAIT;
        let what = format!("{} node {}", role.dir_name(), node.number);
        let output = node.store.join("output.log");
        loop {
            let last = match http_status(&node.http_addr, "/health?ready=1") {
                Ok(200) => return Ok(()),
                Ok(code) => format!("HTTP {code}"),
                Err(e) => format!("{e:#}"),
            };
            if let Some(status) = lock(&self.processes).try_wait(node.child)? {
                bail!("{what} exited with {status}{}", tail(&output));
            }
            if Instant::now() > deadline {
                bail!(
                    "{what} was not ready within {} s (last answer: {last}){}\nHINT: {BUSY_HINT}",
                    READY_WAIT.as_secs(),
                    tail(&output)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// `roach workload init movr` (small) into the primary's application virtual cluster.
    fn load_movr(&self, primary: &Cluster) -> anyhow::Result<()> {
        eprintln!(
            "loading the movr dataset into the primary's {VIRTUAL_CLUSTER} virtual cluster ..."
        );
        let log = self.dir.join("workload-output.log");
        let (stdout, stderr) = log_file(&log)?;
        let mut command = Command::new(&self.exe);
        command
            .args(["workload", "init", "movr"])
            .args(MOVR_FLAGS)
            .arg("--certs-dir")
            .arg(&primary.certs)
            .arg(primary.url(VIRTUAL_CLUSTER))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let what = "roach workload init movr";
        let child = lock(&self.processes).spawn(what.to_string(), &mut command)?;
        self.wait_exit(what, child, &log, WORKLOAD_WAIT)
    }

    /// The URLs, the temporary directory and how to fail over, on stdout.
    fn print_summary(&self, clusters: &Clusters) {
        let nodes = self.nodes;
        let mut out = match &clusters.standby {
            Some(_) => format!(
                "\nroach demo is running: a {nodes}-node primary cluster replicating its {VIRTUAL_CLUSTER} virtual cluster (with the movr dataset) into a {nodes}-node standby cluster.\n"
            ),
            None => format!(
                "\nroach demo is running: a {nodes}-node primary cluster with the movr dataset in its {VIRTUAL_CLUSTER} virtual cluster (no replication).\n"
            ),
        };
        for cluster in std::iter::once(&clusters.primary).chain(&clusters.standby) {
            let addrs: Vec<String> = cluster
                .nodes
                .iter()
                .map(|n| format!("{} (http {})", n.rpc_addr, n.http_addr))
                .collect();
            out.push_str(&format!(
                "\n{} cluster, nodes {}\n",
                cluster.role.name(),
                addrs.join(", ")
            ));
            out.push_str(&format!(
                "  system virtual cluster:      {}\n",
                cluster.url("system")
            ));
            out.push_str(&format!(
                "  {VIRTUAL_CLUSTER} virtual cluster: {}\n",
                cluster.url(VIRTUAL_CLUSTER)
            ));
            if cluster.role == Role::Standby {
                out.push_str(&format!(
                    "  (the standby's {VIRTUAL_CLUSTER} virtual cluster serves SQL once failed over)\n"
                ));
            }
        }
        if let Some(standby) = &clusters.standby {
            out.push_str(&format!(
                "\nReplication, started on the standby: CREATE VIRTUAL CLUSTER {VIRTUAL_CLUSTER} LIKE template FROM REPLICATION OF {VIRTUAL_CLUSTER} ON '{}'\n",
                replication_uri(
                    &clusters.primary.nodes[0].rpc_addr,
                    "redacted",
                    &standby.certs
                )
            ));
            out.push_str(&format!(
                "\nTo fail over, in this shell (the standby's system virtual cluster):\n  \
                 ALTER VIRTUAL CLUSTER {VIRTUAL_CLUSTER} COMPLETE REPLICATION TO LATEST;\n  \
                 ALTER VIRTUAL CLUSTER {VIRTUAL_CLUSTER} START SERVICE SHARED;   -- once SHOW VIRTUAL CLUSTERS says ready\n\
                 then connect to the standby's {VIRTUAL_CLUSTER} virtual cluster with its URL above.\n"
            ));
        }
        out.push_str(&format!(
            "\ntemporary directory: {}\n\
             (certificates, stores and logs; removed, and every node stopped, when the shell ends with Ctrl-D or \\q, on SIGINT or SIGTERM, or on an error)\n\n",
            self.dir.display()
        ));
        print!("{out}");
        let _ = std::io::stdout().flush();
    }
}

/// Connects to `url` (a client-certificate URL).
async fn connect_to(url: &str) -> anyhow::Result<Session> {
    let mut params = ConnParams::resolve(&Given {
        url: Some(url),
        ..Given::default()
    })
    .map_err(|e| anyhow!("{e}"))?;
    params.application_name = "roach demo".to_string();
    connect::connect(&params).await.map_err(|e| match e.hint() {
        Some(hint) => anyhow!("{e}\nHINT: {hint}"),
        None => anyhow!("{e}"),
    })
}

/// Runs `statement`; the error says `what` failed, never the statement (it may hold the
/// password).
async fn execute(session: &Session, what: &str, statement: &str) -> anyhow::Result<()> {
    session
        .client
        .batch_execute(statement)
        .await
        .map_err(|e| anyhow!("cannot {what}: {}", crate::workload::describe(&e)))
}

/// `CREATE USER repl WITH PASSWORD ...` and `GRANT SYSTEM REPLICATION TO repl` on the
/// primary's system virtual cluster.
async fn create_replication_user(primary: &Cluster, password: &str) -> anyhow::Result<()> {
    eprintln!(
        "creating the user {REPL_USER} with the REPLICATION privilege on the primary (its password is random and not shown) ..."
    );
    // An invariant of the generator, and what makes the literal below safe to build by hand.
    assert!(
        password.chars().all(|c| c.is_ascii_alphanumeric()),
        "the replication password is alphanumeric"
    );
    let session = connect_to(&primary.url("system")).await?;
    execute(
        &session,
        &format!("create the user {REPL_USER}"),
        &format!("CREATE USER {REPL_USER} WITH PASSWORD '{password}'"),
    )
    .await?;
    execute(
        &session,
        &format!("grant REPLICATION to {REPL_USER}"),
        &format!("GRANT SYSTEM REPLICATION TO {REPL_USER}"),
    )
    .await
}

/// Starts replicating the primary's application virtual cluster into the standby and waits
/// until its status is `replicating`.
async fn replicate(primary: &Cluster, standby: &Cluster, password: &str) -> anyhow::Result<()> {
    eprintln!(
        "starting replication of the primary's {VIRTUAL_CLUSTER} virtual cluster into the standby ..."
    );
    let session = connect_to(&standby.url("system")).await?;
    let uri = replication_uri(&primary.nodes[0].rpc_addr, password, &standby.certs);
    execute(
        &session,
        "start replication",
        &format!(
            "CREATE VIRTUAL CLUSTER {VIRTUAL_CLUSTER} LIKE template FROM REPLICATION OF {VIRTUAL_CLUSTER} ON '{uri}'"
        ),
    )
    .await?;
    eprintln!("waiting for the standby's {VIRTUAL_CLUSTER} virtual cluster to be replicating ...");
    let deadline = Instant::now() + REPLICATING_WAIT;
    let query = format!("SHOW VIRTUAL CLUSTER {VIRTUAL_CLUSTER} WITH REPLICATION STATUS");
    let mut last = String::from("none yet");
    loop {
        match session.client.simple_query(&query).await {
            Ok(messages) => {
                let row = messages.iter().find_map(|m| match m {
                    SimpleQueryMessage::Row(row) => Some(row),
                    _ => None,
                });
                let column = |name: &str| {
                    row.and_then(|r| r.try_get(name).ok().flatten())
                        .map(str::to_string)
                };
                if let Some(status) = column("status") {
                    if status == "replicating" {
                        let lag = column("replication_lag").unwrap_or_default();
                        eprintln!("replicating (replication lag {lag})");
                        return Ok(());
                    }
                    last = status;
                }
            }
            Err(e) => last = crate::workload::describe(&e),
        }
        if Instant::now() > deadline {
            let job_error = job_error(&session).await;
            bail!(
                "the standby's {VIRTUAL_CLUSTER} virtual cluster was not replicating within {} s (last status: {last}){job_error}\nHINT: {BUSY_HINT}",
                REPLICATING_WAIT.as_secs()
            );
        }
        tokio::time::sleep(STATUS_POLL_INTERVAL).await;
    }
}

/// The replication job's error from `SHOW JOBS`, if it has one, for an error message.
async fn job_error(session: &Session) -> String {
    let Ok(messages) = session.client.simple_query("SHOW JOBS").await else {
        return String::new();
    };
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.try_get("error").ok().flatten(),
            _ => None,
        })
        .find(|error| !error.is_empty() && *error != "NULL")
        .map(|error| format!("; the replication job's error: {error}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_paths_and_never_hold_the_password_when_shown() {
        // Goal: client URLs carry the certificate paths (percent-encoded where needed) and the
        // cluster option; the shown replication URI says `redacted`. Method: build them for a
        // path with a space and compare.
        let certs = Path::new("/tmp/demo dir/primary/certs");
        let url = client_url("127.0.0.1:1234", "application", certs);
        assert_eq!(
            url,
            "postgresql://root@127.0.0.1:1234/defaultdb?options=-ccluster%3Dapplication&sslmode=verify-full\
             &sslrootcert=/tmp/demo%20dir/primary/certs/ca.crt\
             &sslcert=/tmp/demo%20dir/primary/certs/client.root.crt\
             &sslkey=/tmp/demo%20dir/primary/certs/client.root.key"
        );
        let params = ConnParams::resolve(&Given {
            url: Some(&url),
            ..Given::default()
        })
        .expect("the demo's URL resolves");
        assert_eq!(
            params.ssl_root_cert.as_deref(),
            Some(Path::new("/tmp/demo dir/primary/certs/ca.crt"))
        );
        assert_eq!(params.cluster_option().as_deref(), Some("application"));
        let shown = replication_uri("127.0.0.1:1", "redacted", Path::new("/s/certs"));
        assert_eq!(
            shown,
            "postgresql://repl:redacted@127.0.0.1:1?options=-ccluster=system&sslmode=verify-full&sslrootcert=/s/certs/ca_primary.crt"
        );
    }
}

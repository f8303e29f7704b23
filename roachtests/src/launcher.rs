//! Starting clusters the way an operator does: `roach cert` for each cluster's own CA,
//! `roach start` processes on 127.0.0.1 with OS-assigned ports, `roach init`, and readiness
//! over HTTP. Every process is killed by PID when its [`Node`] is dropped, also when a
//! scenario fails.

use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs `roach args...` to completion; its stderr is the error.
pub fn roach(bin: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "roach {}: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Sends `signal` (`KILL`, `STOP`, `CONT`, `INT`, ...) to `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) -> Result<()> {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .context("run kill")?;
    if !status.success() {
        bail!("kill -s {signal} {pid} failed");
    }
    Ok(())
}

/// `GET path` over HTTP/1.0 at `addr`, within 5 s: (status code, body).
pub async fn http_get(addr: &str, path: &str) -> Result<(u16, String)> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await?;
        anyhow::Ok(String::from_utf8_lossy(&resp).to_string())
    };
    let resp = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .map_err(|_| anyhow!("GET {path} at {addr} timed out"))??;
    Ok(parse_http_response(&resp))
}

/// An HTTP/1.0 response's status code (0 if there is none) and body.
pub fn parse_http_response(resp: &str) -> (u16, String) {
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// One `roach start` process.
#[derive(Debug)]
pub struct Node {
    /// 1-based, as the cluster numbers its nodes.
    pub id: usize,
    pub store: PathBuf,
    pub rpc_addr: String,
    pub http_addr: String,
    /// Whether the scenario wants this node running when it validates.
    pub expect_alive: bool,
    child: Option<Child>,
    bin: PathBuf,
    certs: PathBuf,
    join: Vec<String>,
    extra: Vec<String>,
    env: Vec<(String, String)>,
}

impl Node {
    #[allow(clippy::too_many_arguments)]
    async fn spawn(
        bin: &Path,
        id: usize,
        store: &Path,
        listen: &str,
        http_listen: &str,
        join: &[String],
        certs: &Path,
        extra: &[String],
        env: &[(String, String)],
    ) -> Result<Node> {
        std::fs::create_dir_all(store)?;
        let listening = store.join("listening");
        let _ = std::fs::remove_file(&listening);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(store.join("output.log"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("start")
            .arg("--store")
            .arg(store)
            .args(["--listen-addr", listen, "--http-addr", http_listen])
            .arg("--listening-addr-file")
            .arg(&listening)
            .arg("--certs-dir")
            .arg(certs)
            .args(extra);
        if !join.is_empty() {
            cmd.args(["--join", &join.join(",")]);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("spawn roach start")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let text = loop {
            if let Ok(t) = std::fs::read_to_string(&listening)
                && t.contains("http_addr=")
            {
                break t;
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "roach start (node {id}) exited with {status}: {}",
                    std::fs::read_to_string(store.join("output.log")).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("node {id} did not listen within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let field = |name: &str| -> Result<String> {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
                .ok_or_else(|| anyhow!("no {name} in {}", listening.display()))
        };
        Ok(Node {
            id,
            store: store.to_path_buf(),
            rpc_addr: field("rpc_addr")?,
            http_addr: field("http_addr")?,
            expect_alive: true,
            child: Some(child),
            bin: bin.to_path_buf(),
            certs: certs.to_path_buf(),
            join: join.to_vec(),
            extra: extra.to_vec(),
            env: env.to_vec(),
        })
    }

    /// The process id while the node runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.expect_alive = false;
    }

    /// Restarts a killed node with its store, RPC and HTTP addresses, flags and environment.
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("node {} is still running", self.id);
        }
        let n = Node::spawn(
            &self.bin,
            self.id,
            &self.store,
            &self.rpc_addr,
            &self.http_addr,
            &self.join,
            &self.certs,
            &self.extra,
            &self.env,
        )
        .await?;
        self.child = n.into_child();
        self.expect_alive = true;
        Ok(())
    }

    fn into_child(mut self) -> Option<Child> {
        self.child.take()
    }

    /// Sends a signal to the running process.
    pub fn signal(&self, sig: &str) -> Result<()> {
        signal(
            self.pid()
                .ok_or_else(|| anyhow!("node {} is not running", self.id))?,
            sig,
        )
    }

    /// `GET path` on the node's HTTP port: (status code, body).
    pub async fn http_get(&self, path: &str) -> Result<(u16, String)> {
        http_get(&self.http_addr, path).await
    }

    /// Whether `/health?ready=1` answers 200.
    pub async fn ready(&self) -> bool {
        matches!(self.http_get("/health?ready=1").await, Ok((200, _)))
    }

    /// Polls readiness until `within`.
    pub async fn wait_ready(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while !self.ready().await {
            if Instant::now() > deadline {
                bail!(
                    "node {} ({}) not ready after {within:?}",
                    self.id,
                    self.rpc_addr
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// The node's log file.
    pub fn log_path(&self) -> PathBuf {
        self.store.join("logs").join("roach.log")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A stopped process must be continued to die promptly.
            let _ = signal(c.id(), "CONT");
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A cluster of `roach` processes with its own CA.
#[derive(Debug)]
pub struct Cluster {
    pub name: String,
    pub certs: PathBuf,
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// Creates `dir/<name>-certs` (CA key beside it), starts `n` nodes with `profile` and
    /// `env`, runs `roach init` and waits until every node is ready.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        n: usize,
        profile: &str,
        env: &[(String, String)],
    ) -> Result<Cluster> {
        let certs = dir.join(format!("{name}-certs"));
        let ca_key = dir.join(format!("{name}-ca.key"));
        let (c, k) = (path_str(&certs)?, path_str(&ca_key)?);
        roach(bin, &["cert", "create-ca", "--certs-dir", c, "--ca-key", k])?;
        roach(
            bin,
            &[
                "cert",
                "create-node",
                "127.0.0.1",
                "localhost",
                "--certs-dir",
                c,
                "--ca-key",
                k,
            ],
        )?;
        roach(
            bin,
            &[
                "cert",
                "create-client",
                "root",
                "--certs-dir",
                c,
                "--ca-key",
                k,
            ],
        )?;
        let extra = vec!["--config-profile".to_string(), profile.to_string()];
        let mut nodes: Vec<Node> = Vec::new();
        for id in 1..=n {
            let join: Vec<String> = nodes
                .first()
                .map(|f| f.rpc_addr.clone())
                .into_iter()
                .collect();
            nodes.push(
                Node::spawn(
                    bin,
                    id,
                    &dir.join(format!("{name}{id}")),
                    "127.0.0.1:0",
                    "127.0.0.1:0",
                    &join,
                    &certs,
                    &extra,
                    env,
                )
                .await?,
            );
        }
        roach(
            bin,
            &["init", "--host", &nodes[0].rpc_addr, "--certs-dir", c],
        )?;
        for node in &nodes {
            node.wait_ready(Duration::from_secs(60)).await?;
        }
        Ok(Cluster {
            name: name.to_string(),
            certs,
            nodes,
        })
    }

    /// The URL of `vc` through node `i` (0-based) as root with the client certificate.
    pub fn url(&self, i: usize, vc: &str) -> String {
        let c = self.certs.display();
        format!(
            "postgresql://root@{}/defaultdb?options=-ccluster%3D{vc}&sslmode=verify-full&sslrootcert={c}/ca.crt&sslcert={c}/client.root.crt&sslkey={c}/client.root.key",
            self.nodes[i].rpc_addr
        )
    }

    /// A SQL connection to `vc` through node `i` (0-based) as root.
    pub async fn connect(&self, i: usize, vc: &str) -> Result<tokio_postgres::Client> {
        crate::sql::connect(&self.nodes[i].rpc_addr, vc, &self.certs).await
    }

    /// A SQL connection to `vc` through the first node that answers.
    pub async fn connect_any(&self, vc: &str) -> Result<tokio_postgres::Client> {
        let mut last = None;
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.expect_alive {
                continue;
            }
            match self.connect(i, vc).await {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no node of {} is up", self.name)))
    }
}

pub fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| anyhow!("{} is not UTF-8", p.display()))
}

/// A size-limited filesystem (a tmpfs) mounted over a node's store directory, so that a
/// scenario can run the store out of disk. Mounting needs root (or `CAP_SYS_ADMIN`). On drop,
/// the node's logs are copied beside the mount point (as `<dir>-logs`) and it is unmounted:
/// drop it after the node's process is gone.
#[derive(Debug)]
pub struct SmallDisk {
    pub path: PathBuf,
    pub size_bytes: u64,
}

impl SmallDisk {
    /// The name of the file that fills the disk.
    const FILLER: &str = "roachtests-filler";

    /// Mounts a tmpfs of `size_bytes` at `path` (created if needed).
    pub fn mount(path: &Path, size_bytes: u64) -> Result<SmallDisk> {
        std::fs::create_dir_all(path)?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_bytes},mode=0700"))
            .arg("roachtests-small-disk")
            .arg(path)
            .stdin(Stdio::null())
            .output()
            .context("run mount(8)")?;
        if !out.status.success() {
            bail!(
                "cannot mount a {} MiB tmpfs at {} (this scenario needs root or CAP_SYS_ADMIN): {}",
                size_bytes >> 20,
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(SmallDisk {
            path: path.to_path_buf(),
            size_bytes,
        })
    }

    /// Bytes still free on the filesystem.
    pub fn available(&self) -> Result<u64> {
        let st = rustix::fs::statvfs(&self.path)
            .with_context(|| format!("statvfs {}", self.path.display()))?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Writes a filler file until about `leave` bytes are free; returns the filler's size.
    pub fn fill_leaving(&self, leave: u64) -> Result<u64> {
        use std::io::Write as _;
        let want = self.available()?.saturating_sub(leave);
        let mut f = std::fs::File::create(self.path.join(Self::FILLER))?;
        let chunk = vec![0xa5u8; 1 << 20];
        let mut written = 0u64;
        while written < want {
            let n = chunk.len().min((want - written) as usize);
            f.write_all(&chunk[..n])
                .with_context(|| format!("writing the filler after {written} bytes"))?;
            written += n as u64;
        }
        f.sync_all()?;
        Ok(written)
    }

    /// Deletes the filler file.
    pub fn free_filler(&self) -> Result<()> {
        std::fs::remove_file(self.path.join(Self::FILLER)).context("remove the filler")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let mut keep = self.path.clone().into_os_string();
        keep.push("-logs");
        let keep = PathBuf::from(keep);
        if std::fs::create_dir_all(&keep).is_ok() {
            for name in ["output.log", "logs/roach.log"] {
                let from = self.path.join(name);
                if from.exists() {
                    let to = keep.join(name.replace('/', "-"));
                    let _ = std::fs::copy(&from, &to);
                }
            }
        }
        let umount = |lazy: bool| {
            let mut cmd = Command::new("umount");
            if lazy {
                cmd.arg("-l");
            }
            cmd.arg(&self.path)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !umount(false) && !umount(true) {
            eprintln!(
                "roachtests: could not unmount {}; run `umount {}`",
                self.path.display(),
                self.path.display()
            );
        }
    }
}

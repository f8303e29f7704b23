//! `roach workload` as separate processes: `init`, a timed `run` whose ops/s is read from its
//! summary line, and a background `run` stopped with SIGINT (it then prints its summary).

use crate::launcher::{roach, signal};
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which workload a scenario drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    None,
    /// `kv` with this many initial rows of this many bytes each.
    Kv {
        rows: u64,
        block_bytes: u64,
    },
    /// `bank` with this many accounts.
    Bank {
        rows: u64,
    },
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::None => "none",
            Workload::Kv { .. } => "kv",
            Workload::Bank { .. } => "bank",
        }
    }

    fn init_flags(self) -> Vec<String> {
        match self {
            Workload::None => vec![],
            Workload::Kv { rows, block_bytes } => vec![
                format!("--insert-count={rows}"),
                format!("--min-block-bytes={block_bytes}"),
                format!("--max-block-bytes={block_bytes}"),
            ],
            Workload::Bank { rows } => vec![format!("--rows={rows}")],
        }
    }

    fn run_flags(self) -> Vec<String> {
        match self {
            Workload::Kv { .. } => vec![
                "--read-percent=50".into(),
                "--min-block-bytes=64".into(),
                "--max-block-bytes=256".into(),
            ],
            _ => vec![],
        }
    }

    /// `roach workload init`.
    pub fn init(self, bin: &Path, url: &str) -> Result<()> {
        if self == Workload::None {
            return Ok(());
        }
        let mut args = vec!["workload".to_string(), "init".into(), self.name().into()];
        args.extend(self.init_flags());
        args.push(url.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        roach(bin, &args).map(drop)
    }

    /// Starts `roach workload run` in the background (until stopped), logging to `log`.
    pub fn start(self, bin: &Path, url: &str, concurrency: u32, log: &Path) -> Result<Running> {
        let out = std::fs::File::create(log)?;
        let mut cmd = Command::new(bin);
        cmd.args(["workload", "run", self.name()])
            .arg(format!("--concurrency={concurrency}"))
            .args(["--duration=0", "--tolerate-errors"])
            .args(self.run_flags())
            .arg(url)
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd.spawn().context("spawn roach workload run")?;
        Ok(Running {
            child: Some(child),
            log: log.to_path_buf(),
        })
    }
}

/// A background workload run.
#[derive(Debug)]
pub struct Running {
    child: Option<Child>,
    log: PathBuf,
}

impl Running {
    /// Stops the run with SIGINT and returns the ops/s of its summary.
    pub async fn stop(&mut self) -> Result<f64> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| anyhow!("workload already stopped"))?;
        signal(child.id(), "INT")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if child.try_wait()?.is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the workload did not stop within 30 s of SIGINT");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        summary_ops_per_s(&std::fs::read_to_string(&self.log)?)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The ops/s of a run's `summary: ops=N ops/s=X ...` line.
pub fn summary_ops_per_s(output: &str) -> Result<f64> {
    output
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("summary: "))
        .and_then(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("ops/s="))
                .and_then(|v| v.parse().ok())
        })
        .ok_or_else(|| anyhow!("no summary line in the workload's output:\n{output}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_line() {
        let out = "1s ...\nsummary: ops=45354 ops/s=1511.7 p50=10.0ms p95=13.8ms p99=27.1ms errors=0\nkv_ops_per_s: 1511.7 ops/s\n";
        assert_eq!(summary_ops_per_s(out).expect("parsed"), 1511.7);
        assert!(summary_ops_per_s("nothing").is_err());
    }
}

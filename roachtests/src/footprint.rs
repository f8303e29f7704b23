//! What a node costs the machine: its store's bytes on disk and its peak resident memory
//! (issue 15's goals: store <= 1.3x the logical bytes per replica, RSS < 1 GiB per node).
//! Read from outside the process, as an operator would: the store directory and
//! `/proc/<pid>/status`.

use crate::launcher::Node;
use anyhow::{Context, Result, anyhow};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// Entries of a store directory that are not the store: the node's logs and the harness's
/// own files beside them.
const NOT_STORE: &[&str] = &["logs", "output.log", "listening"];

/// One node's footprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes allocated on disk under the store directory, logs excluded.
    pub store_bytes: u64,
    /// The process's peak resident set (`VmHWM`), in bytes.
    pub peak_rss_bytes: u64,
}

impl Footprint {
    /// Measures a running node.
    pub fn of(node: &Node) -> Result<Footprint> {
        let pid = node
            .pid()
            .ok_or_else(|| anyhow!("node {} is not running", node.id))?;
        Ok(Footprint {
            store_bytes: store_bytes(&node.store)?,
            peak_rss_bytes: peak_rss_bytes(pid)?,
        })
    }
}

/// Bytes allocated on disk (blocks, as `du` counts them) by the files under `store`,
/// leaving out the logs ([`NOT_STORE`] at its top level).
pub fn store_bytes(store: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(store).with_context(|| format!("read {}", store.display()))? {
        let entry = entry?;
        if NOT_STORE.iter().any(|n| entry.file_name() == *n) {
            continue;
        }
        total += allocated_bytes(&entry.path())?;
    }
    Ok(total)
}

/// Allocated bytes of `path`, recursively; symlinks are not followed. A file that vanishes
/// while it is walked (the engine compacts as we go) counts as zero.
fn allocated_bytes(path: &Path) -> Result<u64> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("stat {}", path.display())),
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return Ok(own);
    }
    let entries = match std::fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let mut total = own;
    for entry in entries {
        match entry {
            Ok(entry) => total += allocated_bytes(&entry.path())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
        }
    }
    Ok(total)
}

/// The peak resident set of process `pid` in bytes (`VmHWM` of `/proc/<pid>/status`).
pub fn peak_rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    vm_hwm_bytes(&status).ok_or_else(|| anyhow!("no VmHWM line in {path}"))
}

/// `VmHWM` of a `/proc/<pid>/status` text, in bytes (the kernel prints it in kB = KiB).
pub fn vm_hwm_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    let mut words = line.split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next()? == "kB").then_some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 15 "Benchmarks" (c2c/bench footprint): the peak RSS is VmHWM, not VmRSS or VmPeak,
    // read in KiB. Method: a real /proc status text with all three lines, and malformed ones.
    #[test]
    fn peak_rss_is_vm_hwm_in_kib() {
        let status = "Name:\troach\nVmPeak:\t 9000000 kB\nVmSize:\t 8000000 kB\nVmHWM:\t  524288 kB\nVmRSS:\t  100000 kB\n";
        assert_eq!(vm_hwm_bytes(status), Some(512 << 20));
        assert_eq!(vm_hwm_bytes("VmRSS:\t 100 kB\n"), None);
        assert_eq!(vm_hwm_bytes("VmHWM:\t x kB\n"), None);
        assert_eq!(vm_hwm_bytes("VmHWM:\t 100 MB\n"), None);
    }

    // issue 15 "Benchmarks" (c2c/bench footprint): the peak RSS of a live process is read from
    // /proc and is at least what it has touched. Method: this test process touches 64 MiB, then
    // its VmHWM must be at least that.
    #[test]
    fn peak_rss_of_this_process() -> Result<()> {
        let touched = std::hint::black_box(vec![1u8; 64 << 20]);
        let peak = peak_rss_bytes(std::process::id())?;
        assert!(
            peak >= touched.len() as u64,
            "peak {peak} below the {} bytes touched",
            touched.len()
        );
        Ok(())
    }

    // issue 15 "Benchmarks" (c2c/bench footprint): a store's size counts every file under the
    // store directory, nested ones too, and leaves the logs out. Method: a temporary store with
    // 1 MiB of data in a nested directory and 4 MiB of logs; the size is at least 1 MiB and
    // below the logs' size.
    #[test]
    fn store_bytes_count_data_and_leave_logs_out() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data").join("partitions");
        std::fs::create_dir_all(&data)?;
        std::fs::write(data.join("segment"), vec![7u8; 1 << 20])?;
        std::fs::create_dir_all(dir.path().join("logs"))?;
        std::fs::write(
            dir.path().join("logs").join("roach.log"),
            vec![b'x'; 4 << 20],
        )?;
        std::fs::write(dir.path().join("output.log"), vec![b'x'; 4 << 20])?;
        let bytes = store_bytes(dir.path())?;
        assert!(bytes >= 1 << 20, "{bytes} bytes: the data file is missing");
        assert!(bytes < 4 << 20, "{bytes} bytes: the logs were counted");
        Ok(())
    }
}

//! A node's settings, as given by `roach start` flags.

use crate::ServerError;
use kv::KvConfig;
use std::path::PathBuf;

/// Everything a node needs to start.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The store directory: data, logs and local node metadata.
    pub store: PathBuf,
    /// Where to listen for RPC (and, later, SQL) connections; port 0 picks a free port.
    pub listen_addr: String,
    /// The address other nodes use to reach this one; the bound listen address if `None`.
    pub advertise_addr: Option<String>,
    /// Addresses of nodes of the cluster to join.
    pub join: Vec<String>,
    /// Where to serve HTTP (health, metrics); port 0 picks a free port.
    pub http_addr: String,
    /// The certificates directory; `None` runs insecure (no TLS), only when asked for.
    pub certs_dir: Option<PathBuf>,
    /// Block cache bytes of the store.
    pub cache_bytes: Option<u64>,
    /// Memory budget of SQL sessions (used by the SQL layer once it exists).
    pub max_sql_memory_bytes: Option<u64>,
    /// If set, the node writes its bound addresses here once it listens.
    pub listening_file: Option<PathBuf>,
    /// KV layer settings.
    pub kv: KvConfig,
    /// The configuration profile applied if this node initialises the cluster.
    pub profile: sql::bootstrap::Profile,
}

/// Reads a size: bytes with an optional unit (`B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`,
/// `TB`, `TiB`), or a fraction (`.25`) or percentage (`25%`) of the machine's memory.
pub fn parse_size(input: &str) -> Result<u64, ServerError> {
    let bad = || {
        ServerError::Config(format!(
            "invalid size {input:?}: use bytes with a unit (e.g. 512MiB, 2GB) or a fraction of memory (e.g. .25 or 25%)"
        ))
    };
    let s = input.trim();
    if let Some(pct) = s.strip_suffix('%') {
        let f: f64 = pct.trim().parse().map_err(|_| bad())?;
        return fraction_of_memory(f / 100.0).ok_or_else(bad);
    }
    if let Ok(f) = s.parse::<f64>()
        && f > 0.0
        && f < 1.0
    {
        return fraction_of_memory(f).ok_or_else(bad);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "kib" => 1024.0,
        "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tb" => 1e12,
        "tib" => 1024.0_f64.powi(4),
        _ => return Err(bad()),
    };
    let bytes = num * mult;
    if !(bytes.is_finite() && bytes >= 1.0) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

fn fraction_of_memory(f: f64) -> Option<u64> {
    if !(f > 0.0 && f < 1.0) {
        return None;
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((kib * 1024.0 * f) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: sizes with units, fractions and percentages parse; nonsense is refused.
    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB").expect("size"), 512 << 20);
        assert_eq!(parse_size("2GB").expect("size"), 2_000_000_000);
        assert_eq!(parse_size("4096").expect("size"), 4096);
        let quarter = parse_size(".25").expect("fraction");
        let pct = parse_size("25%").expect("percent");
        assert!(quarter > 0);
        assert_eq!(quarter, pct);
        for bad in ["", "abc", "12XB", "-5MiB", "150%", "0"] {
            assert!(parse_size(bad).is_err(), "accepted {bad:?}");
        }
    }
}

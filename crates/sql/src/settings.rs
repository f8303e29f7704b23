//! Cluster settings: one typed registry with defaults; values set with `SET CLUSTER SETTING`
//! are stored in the system virtual cluster's keyspace.

use crate::error::{SqlError, SqlResult, code};
use std::time::Duration;

/// The type of a setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingType {
    Bool,
    String,
    Duration,
    Int,
    /// A size in bytes: `268435456`, `256MiB`, `1 GB` (units as in CockroachDB: KB, MB, GB,
    /// TB are powers of 1000; KiB, MiB, GiB, TiB of 1024).
    ByteSize,
}

impl SettingType {
    /// The name `SHOW CLUSTER SETTINGS` prints (as CockroachDB's one-letter codes spelled out).
    pub fn name(self) -> &'static str {
        match self {
            SettingType::Bool => "b",
            SettingType::String => "s",
            SettingType::Duration => "d",
            SettingType::Int => "i",
            SettingType::ByteSize => "z",
        }
    }
}

/// A setting's definition.
#[derive(Debug, Clone, Copy)]
pub struct SettingDef {
    pub name: &'static str,
    pub typ: SettingType,
    pub default: &'static str,
    pub description: &'static str,
}

/// Every setting roach knows.
pub const SETTINGS: &[SettingDef] = &[
    SettingDef {
        name: "kv.rangefeed.enabled",
        typ: SettingType::Bool,
        default: "false",
        description: "if set, rangefeeds (and so replication streams) may be served",
    },
    SettingDef {
        name: "kv.closed_timestamp.target_interval",
        typ: SettingType::Duration,
        default: "200ms",
        description: "how far closed timestamps may trail real time while idle",
    },
    SettingDef {
        name: "kv.rangefeed.checkpoint_interval",
        typ: SettingType::Duration,
        default: "200ms",
        description: "the longest gap between rangefeed checkpoints",
    },
    SettingDef {
        name: "server.controller.default_target_cluster",
        typ: SettingType::String,
        default: "system",
        description: "the virtual cluster a SQL connection lands on when it names none",
    },
    SettingDef {
        name: "server.auth.failed_login_limit",
        typ: SettingType::Int,
        default: "5",
        description: "failed password logins in a row, per user name and per client address, before further attempts from that address are refused and attempts for that user are delayed; 0 turns the throttle off",
    },
    SettingDef {
        name: "server.auth.failed_login_backoff",
        typ: SettingType::Duration,
        default: "1s",
        description: "the wait after the failed-login limit is reached; it doubles with every further failure",
    },
    SettingDef {
        name: "server.auth.failed_login_max_backoff",
        typ: SettingType::Duration,
        default: "30s",
        description: "the longest failed-login wait (and how long after its wait a quiet user or address is forgotten)",
    },
    SettingDef {
        name: "server.max_connections_per_gateway",
        typ: SettingType::Int,
        default: "-1",
        description: "the most SQL connections one node admits at a time (admins are admitted beyond it); negative means unlimited",
    },
    SettingDef {
        name: "server.handshake_timeout",
        typ: SettingType::Duration,
        default: "10s",
        description: "how long a new connection may take to send its first byte and finish its TLS handshake (SQL: also startup and authentication; HTTP: the request headers) before it is closed; at least 500ms",
    },
    SettingDef {
        name: "sql.catalog.schema_change_wait_timeout",
        typ: SettingType::Duration,
        default: "10s",
        description: "how long a schema change, GRANT/REVOKE or user change waits, after it commits, for every reachable node to apply it before it returns (it fails with XXA00 if one does not)",
    },
    SettingDef {
        name: "sql.drop_virtual_cluster.enabled",
        typ: SettingType::Bool,
        default: "true",
        description: "if false, DROP VIRTUAL CLUSTER is refused",
    },
    SettingDef {
        name: "physical_replication.enabled",
        typ: SettingType::Bool,
        default: "true",
        description: "if set, physical cluster replication may be started",
    },
    SettingDef {
        name: "physical_replication.producer.min_checkpoint_interval",
        typ: SettingType::Duration,
        default: "200ms",
        description: "the longest a replication partition stream goes without a checkpoint",
    },
    SettingDef {
        name: "physical_replication.producer.expiration_window",
        typ: SettingType::Duration,
        default: "24h",
        description: "how long a replication stream stays alive without a heartbeat",
    },
    SettingDef {
        name: "physical_replication.consumer.heartbeat_frequency",
        typ: SettingType::Duration,
        default: "1s",
        description: "how often the standby heartbeats the source",
    },
    SettingDef {
        name: "physical_replication.consumer.minimum_flush_interval",
        typ: SettingType::Duration,
        default: "200ms",
        description: "how often the standby persists replication progress",
    },
    SettingDef {
        name: "physical_replication.consumer.min_free_disk_bytes",
        typ: SettingType::ByteSize,
        default: "256 MiB",
        description: "a standby node stops ingesting (and the job pauses) while its store's filesystem has less free space than this; 0 turns the check off",
    },
    SettingDef {
        name: "physical_replication.consumer.retention",
        typ: SettingType::Duration,
        default: "4h",
        description: "the default retention window of replicated history on the standby",
    },
    SettingDef {
        name: GC_TTL,
        typ: SettingType::Duration,
        default: "4h",
        description: "how long MVCC history is kept before garbage collection (a virtual cluster may override it: ALTER VIRTUAL CLUSTER name SET CLUSTER SETTING gc.ttl = ...); protected timestamps hold it back",
    },
    SettingDef {
        name: GC_INTERVAL,
        typ: SettingType::Duration,
        default: "10m",
        description: "how often each range's leader runs the GC queue",
    },
    SettingDef {
        name: COMMAND_MAX_SIZE,
        typ: SettingType::ByteSize,
        default: "64 MiB",
        description: "the largest Raft command (one transaction's writes, encoded) a node proposes; larger statements fail with 54000 (from 64 KiB to 128 MiB)",
    },
    SettingDef {
        name: RAFT_LOG_TRUNCATION_MAX_ENTRIES,
        typ: SettingType::Int,
        default: "10000",
        description: "the most entries a replica's Raft log keeps; a follower further behind catches up from a snapshot (at least 10)",
    },
    SettingDef {
        name: RAFT_LOG_TRUNCATION_MAX_BYTES,
        typ: SettingType::ByteSize,
        default: "16 MiB",
        description: "the most bytes a replica's Raft log keeps; a follower further behind catches up from a snapshot (from 64 KiB to 1 TiB)",
    },
];

/// `gc.ttl`, honoured by the KV layer's GC queue, per virtual cluster (see
/// [`crate::kv_settings`]).
pub const GC_TTL: &str = "gc.ttl";
/// `kv.gc.interval`, honoured by the KV layer's GC queue.
pub const GC_INTERVAL: &str = "kv.gc.interval";
/// `kv.raft_log.truncation_max_entries`, honoured by the KV layer (see [`crate::kv_settings`]).
pub const RAFT_LOG_TRUNCATION_MAX_ENTRIES: &str = "kv.raft_log.truncation_max_entries";
/// `kv.raft_log.truncation_max_bytes`, honoured by the KV layer (see [`crate::kv_settings`]).
pub const RAFT_LOG_TRUNCATION_MAX_BYTES: &str = "kv.raft_log.truncation_max_bytes";

/// `kv.raft.command.max_size`, honoured by the KV layer (see [`crate::kv_settings`]).
pub const COMMAND_MAX_SIZE: &str = "kv.raft.command.max_size";

/// The accepted range of a byte-size setting that has one.
fn byte_size_bounds(name: &str) -> Option<(u64, u64)> {
    match name {
        COMMAND_MAX_SIZE => Some((
            kv::limits::COMMAND_BYTES_FLOOR as u64,
            kv::limits::COMMAND_BYTES_CEILING as u64,
        )),
        RAFT_LOG_TRUNCATION_MAX_BYTES => Some((kv::TRUNCATION_MAX_BYTES_FLOOR, 1 << 40)),
        _ => None,
    }
}

/// The definition of `name`, or an error naming it.
pub fn lookup(name: &str) -> SqlResult<&'static SettingDef> {
    SETTINGS.iter().find(|s| s.name == name).ok_or_else(|| {
        SqlError::new(
            code::UNDEFINED_OBJECT,
            format!("unknown cluster setting {name:?}"),
        )
        .with_hint("SHOW ALL CLUSTER SETTINGS lists them")
    })
}

/// Parses a duration like `200ms`, `10s`, `4h`, `1h30m`, `2d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() || n == 'µ' {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let value: f64 = num.parse().ok()?;
        num.clear();
        let secs = match unit.as_str() {
            "ns" => value / 1e9,
            "us" | "µs" => value / 1e6,
            "ms" => value / 1e3,
            "s" => value,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            "d" => value * 86400.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(secs);
    }
    if !num.is_empty() {
        return None;
    }
    Some(total)
}

/// Parses a byte size like `268435456`, `256MiB`, `1.5 GB` (see [`SettingType::ByteSize`]).
pub fn parse_byte_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return None;
    }
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        _ => return None,
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(scale);
    }
    let bytes = num.parse::<f64>().ok()? * scale as f64;
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes.round() as u64)
}

/// Validates and normalises `value` for the setting.
pub fn normalize(def: &SettingDef, value: &str) -> SqlResult<String> {
    let bad = |expect: &str| {
        SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            format!(
                "invalid value {value:?} for cluster setting {}: expected {expect}",
                def.name
            ),
        )
    };
    match def.typ {
        SettingType::Bool => match value.to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => Ok("true".into()),
            "false" | "off" | "no" | "0" => Ok("false".into()),
            _ => Err(bad("true or false")),
        },
        SettingType::Int => value
            .parse::<i64>()
            .map(|v| v.to_string())
            .map_err(|_| bad("an integer")),
        SettingType::Duration => parse_duration(value)
            .map(|_| value.trim().to_string())
            .ok_or_else(|| bad("a duration such as 200ms, 10s or 4h")),
        SettingType::ByteSize => {
            let bytes = parse_byte_size(value)
                .ok_or_else(|| bad("a size such as 268435456, 256MiB or 1GB"))?;
            if let Some((min, max)) = byte_size_bounds(def.name)
                && !(min..=max).contains(&bytes)
            {
                return Err(bad(&format!("a size from {min} to {max} bytes")));
            }
            Ok(value.trim().to_string())
        }
        SettingType::String => Ok(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: defaults are valid for their own type, names are unique, and bad values are refused.
    #[test]
    fn registry_is_consistent() {
        for def in SETTINGS {
            assert!(normalize(def, def.default).is_ok(), "{}", def.name);
            assert_eq!(SETTINGS.iter().filter(|d| d.name == def.name).count(), 1);
        }
        let b = lookup("kv.rangefeed.enabled").expect("known");
        assert_eq!(normalize(b, "ON").expect("bool"), "true");
        assert!(normalize(b, "maybe").is_err());
        assert!(lookup("no.such.setting").is_err());
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("200ms"), Some(Duration::from_millis(200)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("3x"), None);
    }

    // Goal: byte sizes parse with and without units, decimal and binary, and nonsense is refused.
    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("268435456"), Some(268_435_456));
        assert_eq!(parse_byte_size("256 MiB"), Some(256 << 20));
        assert_eq!(parse_byte_size("256mib"), Some(256 << 20));
        assert_eq!(parse_byte_size("1GB"), Some(1_000_000_000));
        assert_eq!(parse_byte_size("1.5 GiB"), Some(3 << 29));
        assert_eq!(parse_byte_size("0"), Some(0));
        for bad in ["", "MiB", "-1", "1 MB MB", "1 XB", "99999999999 TiB"] {
            assert_eq!(parse_byte_size(bad), None, "{bad:?}");
        }
        let z = lookup("physical_replication.consumer.min_free_disk_bytes").expect("known");
        assert_eq!(normalize(z, " 1GiB ").expect("size"), "1GiB");
        assert!(normalize(z, "lots").is_err());
    }
}

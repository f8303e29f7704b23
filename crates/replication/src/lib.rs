//! Physical cluster replication (PCR): a standby cluster continuously copies one virtual
//! cluster of a primary, version by version with the original MVCC timestamps, so that it can
//! take over at a consistent point in time.
//!
//! - [`producer`]: the source side. Starting a stream (a `REPLICATION STREAM PRODUCER` job and
//!   a protected timestamp), planning partitions over the live source nodes, serving partition
//!   streams (initial scan, catch-up, then the applied log, with checkpoints), heartbeats and
//!   completion.
//! - [`consumer`]: the standby side. The `REPLICATION STREAM INGESTION` job: partition
//!   assignment to standby nodes, ingestion through the standby's Raft log with the tenant
//!   prefix rewritten, the frontier (`replicated_time`), `retained_time`, pause/resume,
//!   cutover, and the statements that drive it.
//! - [`client`]: what the consumer needs of a producer, as a trait, with the real
//!   implementation (SQL over pgwire for control, gRPC for partition streams).
//!
//! Owns: the stream protocol, the replication jobs. Does not own: the SQL grammar
//! (`sql::parser`), the Raft commands it uses, protected timestamps and GC (`kv`: the jobs'
//! records live in `kv::protectedts`).

pub mod client;
pub mod consumer;
pub mod frontier;
pub mod metrics;
pub mod producer;
pub mod secrets;
pub mod spec;
pub mod sql;
pub mod uri;

pub use consumer::IngestionService;
pub use metrics::ReplicationMetrics;
pub use producer::SourceService;
pub use sql::Replication;

use ::sql::error::{SqlError, SqlResult, code};
use std::time::Duration;

/// A replication error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReplError {
    #[error("invalid source URI {uri}: {reason}")]
    BadUri { uri: String, reason: String },
    /// A secure standby was given a source URI that would not use TLS.
    #[error(
        "a secure standby replicates only over TLS, but source URI {uri} does not use it: pass sslmode=verify-full&sslrootcert=<path of the primary's CA certificate>"
    )]
    PlaintextSource { uri: String },
    #[error("cannot connect to the primary cluster at {target}: {reason}")]
    Connect {
        target: String,
        reason: String,
        hint: Option<String>,
    },
    /// An error the primary returned (its SQLSTATE kept).
    #[error("the primary cluster refused: {message}")]
    Source {
        code: String,
        message: String,
        hint: Option<String>,
    },
    #[error("{0}")]
    Sql(SqlError),
    #[error("replication stream: {0}")]
    Stream(String),
}

/// The result of a replication operation.
pub type ReplResult<T> = Result<T, ReplError>;

/// Retries `f` while its transaction conflicts with another (job updates race with the
/// coordinator's progress writes).
pub(crate) async fn with_retries<T, F, Fut>(f: F) -> SqlResult<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = SqlResult<T>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(e) if e.code == code::SERIALIZATION_FAILURE && attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            other => return other,
        }
    }
}

impl ReplError {
    /// Whether the source refused for a reason of the node answering (starting up, shutting
    /// down, out of connections: SQLSTATE classes 57P and 53), so another node may do better.
    pub fn is_node_local(&self) -> bool {
        matches!(self, ReplError::Source { code, .. } if code.starts_with("57P") || code.starts_with("53"))
    }
}

impl From<SqlError> for ReplError {
    fn from(e: SqlError) -> Self {
        ReplError::Sql(e)
    }
}

impl From<kv::KvError> for ReplError {
    fn from(e: kv::KvError) -> Self {
        ReplError::Sql(e.into())
    }
}

impl From<tenant::TenantError> for ReplError {
    fn from(e: tenant::TenantError) -> Self {
        ReplError::Sql(e.into())
    }
}

impl From<tonic::Status> for ReplError {
    fn from(s: tonic::Status) -> Self {
        ReplError::Stream(format!("{:?}: {}", s.code(), s.message()))
    }
}

fn static_code(c: &str) -> &'static str {
    [
        code::INSUFFICIENT_PRIVILEGE,
        code::UNDEFINED_OBJECT,
        code::INVALID_PASSWORD,
        code::INVALID_AUTHORIZATION,
        code::INVALID_PARAMETER_VALUE,
        code::OBJECT_IN_USE,
        code::FEATURE_NOT_SUPPORTED,
        code::CANNOT_CONNECT_NOW,
        // kv.rangefeed.enabled is off on the primary.
        code::OBJECT_NOT_IN_PREREQUISITE_STATE,
    ]
    .into_iter()
    .find(|k| *k == c)
    .unwrap_or(code::CONNECTION_REJECTED)
}

impl From<ReplError> for SqlError {
    fn from(e: ReplError) -> Self {
        match e {
            ReplError::Sql(e) => e,
            ReplError::BadUri { .. } => SqlError::new(code::INVALID_PARAMETER_VALUE, e.to_string())
                .with_hint("the form is postgresql://user:password@host:port?options=-ccluster=system&sslmode=verify-full&sslrootcert=certs/ca_primary.crt"),
            ReplError::PlaintextSource { .. } => {
                SqlError::new(code::INVALID_PARAMETER_VALUE, e.to_string())
                    .with_hint(crate::uri::TLS_REQUIRED_HINT)
            }
            ReplError::Connect { ref hint, .. } => {
                let hint = hint.clone();
                let err = SqlError::new("08001", e.to_string());
                match hint {
                    Some(h) => err.with_hint(h),
                    None => err,
                }
            }
            ReplError::Source {
                ref code,
                ref hint,
                ..
            } => {
                let (c, hint) = (static_code(code), hint.clone());
                let err = SqlError::new(c, e.to_string());
                match hint {
                    Some(h) => err.with_hint(h),
                    None => err,
                }
            }
            ReplError::Stream(_) => SqlError::internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_local_source_errors() {
        // Goal: a node that cannot serve now sends the client to the next node; a refusal
        // every node would repeat does not.
        let source = |code: &str| ReplError::Source {
            code: code.into(),
            message: "m".into(),
            hint: None,
        };
        for code in ["57P03", "57P01", "53300"] {
            assert!(source(code).is_node_local(), "{code}");
        }
        for code in ["28P01", "42501", "42704", "22023"] {
            assert!(!source(code).is_node_local(), "{code}");
        }
        assert!(!ReplError::Stream("x".into()).is_node_local());
    }
}

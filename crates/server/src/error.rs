use crate::TlsError;

/// Errors of starting and running a node.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Certificates could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A flag or setting is invalid.
    #[error("{0}")]
    Config(String),
    /// The store could not be opened or used.
    #[error("store {path}: {source}")]
    Store {
        path: String,
        source: storage::StorageError,
    },
    /// The KV layer failed.
    #[error(transparent)]
    Kv(#[from] kv::KvError),
    /// A listener could not be bound or served.
    #[error("{what} {addr}: {source}")]
    Listen {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    /// A file of the node could not be written or read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The SQL layer failed (for example applying the profile).
    #[error("{0}")]
    Sql(#[from] sql::SqlError),
    /// `init` on a node that already belongs to a cluster.
    #[error("cluster has already been initialized")]
    AlreadyInitialized,
}

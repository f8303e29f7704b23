use crate::TenantId;

/// The result of a tenant operation.
pub type TenantResult<T> = Result<T, TenantError>;

/// Errors of the tenant layer.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The KV layer failed (a conflict here is retryable).
    #[error(transparent)]
    Kv(#[from] kv::KvError),
    /// A key or span reaches outside the tenant's keyspace.
    #[error("{what} is outside the keyspace of virtual cluster {tenant}")]
    OutsideTenant { tenant: TenantId, what: String },
    /// No virtual cluster has this name.
    #[error("virtual cluster {0:?} does not exist")]
    NotFound(String),
    /// No virtual cluster has this id.
    #[error("virtual cluster with id {0} does not exist")]
    IdNotFound(TenantId),
    /// A virtual cluster with this name exists already.
    #[error("virtual cluster {0:?} already exists")]
    AlreadyExists(String),
    /// The id is taken or not allowed.
    #[error("virtual cluster id {0} is already in use or was used before")]
    IdInUse(TenantId),
    /// The name is not a valid virtual cluster name.
    #[error("invalid virtual cluster name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// A stored record does not decode.
    #[error("corrupt virtual cluster record: {0}")]
    Corrupt(String),
}

//! Tenant records: what the registry stores about each virtual cluster.

use crate::{TenantError, TenantId, TenantResult};
use hlc::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a virtual cluster's data stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataState {
    /// Being created (or filled by replication); not servable.
    Add,
    /// Complete; servable.
    Ready,
    /// Being dropped.
    Dropping,
}

impl fmt::Display for DataState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DataState::Add => "add",
            DataState::Ready => "ready",
            DataState::Dropping => "dropping",
        })
    }
}

/// Whether nodes serve a virtual cluster's SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceMode {
    /// Not served.
    None,
    /// Served by every node of the cluster, in-process.
    Shared,
}

impl fmt::Display for ServiceMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceMode::None => "none",
            ServiceMode::Shared => "shared",
        })
    }
}

/// A virtual cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: TenantId,
    pub name: String,
    pub data_state: DataState,
    pub service_mode: ServiceMode,
    /// When it was created.
    pub created_at: Timestamp,
    /// The replication job filling it, if any.
    pub replication_job_id: Option<u64>,
}

impl TenantRecord {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("a tenant record always serializes")
    }

    pub(crate) fn decode(bytes: &[u8]) -> TenantResult<Self> {
        postcard::from_bytes(bytes).map_err(|e| TenantError::Corrupt(e.to_string()))
    }
}

/// Checks a virtual cluster name: 1 to 63 characters, lowercase letters, digits, `-` and `_`,
/// starting with a letter.
pub fn validate_name(name: &str) -> TenantResult<()> {
    let invalid = |reason| TenantError::InvalidName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > 63 {
        return Err(invalid("must be 1 to 63 characters long"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(invalid("must start with a lowercase letter"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(invalid(
            "may contain only lowercase letters, digits, '-' and '_'",
        ));
    }
    Ok(())
}

//! Cluster initialisation: the system virtual cluster, and a configuration profile's virtual
//! clusters and cluster settings. Idempotent, so a retried `init` does no harm.

use crate::catalog;
use crate::error::{SqlError, SqlResult};
use kv::Store;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use tenant::{DataState, ServiceMode, TenantId, TenantKv, registry};

/// A virtual cluster a profile creates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileVirtualCluster {
    pub id: u64,
    pub name: String,
    /// `none` or `shared`.
    pub service_mode: String,
}

/// A configuration profile (`profiles/*.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// Virtual clusters besides `system` (which every cluster has).
    #[serde(default)]
    pub virtual_clusters: Vec<ProfileVirtualCluster>,
    /// Cluster settings to apply.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

impl Profile {
    /// Checks names, modes and settings before anything is applied.
    pub fn validate(&self) -> SqlResult<()> {
        for vc in &self.virtual_clusters {
            tenant::validate_name(&vc.name)?;
            if vc.id < 2 {
                return Err(SqlError::internal(format!(
                    "profile {}: virtual cluster id {} is reserved",
                    self.name, vc.id
                )));
            }
            parse_mode(&vc.service_mode)?;
        }
        for (name, value) in &self.settings {
            crate::settings::normalize(crate::settings::lookup(name)?, value)?;
        }
        Ok(())
    }
}

fn parse_mode(mode: &str) -> SqlResult<ServiceMode> {
    match mode {
        "none" => Ok(ServiceMode::None),
        "shared" => Ok(ServiceMode::Shared),
        other => Err(SqlError::internal(format!(
            "unknown service mode {other:?}: expected none or shared"
        ))),
    }
}

/// Creates the system virtual cluster and applies `profile`.
pub async fn apply(node: &Arc<Store>, profile: &Profile) -> SqlResult<()> {
    profile.validate()?;
    let mut txn = node.begin()?;
    let now = node.now();
    if registry::get(&mut txn, TenantId::SYSTEM).await?.is_none() {
        registry::create_with_id(
            &mut txn,
            TenantId::SYSTEM,
            "system",
            DataState::Ready,
            ServiceMode::Shared,
            now,
        )
        .await?;
    }
    for vc in &profile.virtual_clusters {
        match registry::get_by_name(&mut txn, &vc.name).await? {
            Some(existing) if existing.id == TenantId(vc.id) => {}
            Some(existing) => {
                return Err(SqlError::internal(format!(
                    "profile {}: virtual cluster {} exists with id {}, not {}",
                    profile.name, vc.name, existing.id, vc.id
                )));
            }
            None => {
                registry::create_with_id(
                    &mut txn,
                    TenantId(vc.id),
                    &vc.name,
                    DataState::Ready,
                    parse_mode(&vc.service_mode)?,
                    now,
                )
                .await?;
            }
        }
    }
    txn.commit().await?;
    let mut txn = TenantKv::new(node.clone(), TenantId::SYSTEM).begin()?;
    for (name, value) in &profile.settings {
        catalog::put_setting(&mut txn, name, Some(value))?;
    }
    crate::descriptors::ensure_default_database(&mut txn).await?;
    txn.commit().await?;
    for vc in &profile.virtual_clusters {
        let mut txn = TenantKv::new(node.clone(), TenantId(vc.id)).begin()?;
        crate::descriptors::ensure_default_database(&mut txn).await?;
        txn.commit().await?;
    }
    Ok(())
}

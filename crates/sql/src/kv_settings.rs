//! The cluster settings the KV layer honours, pushed into each node's [`KvNode`]: the KV layer
//! sits below the catalog and cannot read settings itself.
//!
//! Today those are `kv.raft.command.max_size`, `kv.raft_log.truncation_max_entries` and
//! `kv.raft_log.truncation_max_bytes`. A node applies them when it starts
//! ([`watch`]), whenever an entry that writes the setting applies on its replica (so every
//! node follows a change within one Raft round trip), and at once on the node that ran
//! `SET CLUSTER SETTING` ([`apply`]).

use crate::catalog;
use crate::error::{SqlError, SqlResult};
use crate::settings::{
    self, COMMAND_MAX_SIZE, RAFT_LOG_TRUNCATION_MAX_BYTES, RAFT_LOG_TRUNCATION_MAX_ENTRIES,
};
use kv::{Applied, KvNode};
use std::sync::Arc;
use std::time::Duration;
use tenant::{TenantId, TenantKv};
use tokio::sync::broadcast::error::RecvError;

/// Pause before re-reading after a failed read.
const RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// Reads the KV settings from the system virtual cluster and applies them to `node`.
pub async fn apply(node: &Arc<KvNode>) -> SqlResult<()> {
    let mut txn = TenantKv::new(node.clone(), TenantId::SYSTEM).begin()?;
    let text = catalog::get_setting(&mut txn, COMMAND_MAX_SIZE).await?;
    let bytes = settings::parse_byte_size(&text).ok_or_else(|| {
        SqlError::internal(format!(
            "cluster setting {COMMAND_MAX_SIZE}: bad size {text:?}"
        ))
    })?;
    let in_effect = node.set_command_bytes_max(bytes);
    tracing::debug!(
        setting = COMMAND_MAX_SIZE,
        bytes = in_effect,
        "applied to the KV layer"
    );
    let text = catalog::get_setting(&mut txn, RAFT_LOG_TRUNCATION_MAX_ENTRIES).await?;
    let entries = text.trim().parse::<i64>().map_err(|_| {
        SqlError::internal(format!(
            "cluster setting {RAFT_LOG_TRUNCATION_MAX_ENTRIES}: bad integer {text:?}"
        ))
    })?;
    let text = catalog::get_setting(&mut txn, RAFT_LOG_TRUNCATION_MAX_BYTES).await?;
    let bytes = settings::parse_byte_size(&text).ok_or_else(|| {
        SqlError::internal(format!(
            "cluster setting {RAFT_LOG_TRUNCATION_MAX_BYTES}: bad size {text:?}"
        ))
    })?;
    // Below the floor (a negative count too) the node raises it.
    let (entries, bytes) =
        node.set_raft_log_truncation_caps(u64::try_from(entries).unwrap_or(0), bytes);
    tracing::debug!(
        entries,
        bytes,
        "raft log truncation caps applied to the KV layer"
    );
    Ok(())
}

/// The KV settings this module pushes into the node.
const KV_SETTINGS: [&str; 3] = [
    COMMAND_MAX_SIZE,
    RAFT_LOG_TRUNCATION_MAX_ENTRIES,
    RAFT_LOG_TRUNCATION_MAX_BYTES,
];

/// Whether `name` is one of the settings this module pushes into the KV layer.
pub fn is_kv_setting(name: &str) -> bool {
    KV_SETTINGS.contains(&name)
}

/// Whether an applied entry wrote a KV setting.
fn writes_kv_setting(applied: &Applied, key_suffixes: &[Vec<u8>]) -> bool {
    match applied {
        Applied::Entry { versions, .. } => versions.iter().any(|v| {
            tenant::tenant_of_key(&v.key) == TenantId::SYSTEM
                && key_suffixes.iter().any(|suffix| v.key.ends_with(suffix))
        }),
        // Replaced by a snapshot: anything may have changed.
        Applied::Reset => true,
    }
}

/// Keeps `node`'s KV settings in line with the cluster settings until the node stops.
pub fn watch(node: &Arc<KvNode>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(node);
    let mut applied = node.subscribe_applied();
    tokio::spawn(async move {
        let key_suffixes: Vec<Vec<u8>> = KV_SETTINGS
            .iter()
            .map(|s| catalog::setting_key(s))
            .collect();
        loop {
            let Some(node) = weak.upgrade() else { return };
            let result = apply(&node).await;
            drop(node);
            if let Err(e) = result {
                tracing::debug!(error = %e, "cannot read the KV cluster settings; retrying");
                tokio::time::sleep(RETRY_BACKOFF).await;
                continue;
            }
            loop {
                match applied.recv().await {
                    Ok(a) if writes_kv_setting(&a, &key_suffixes) => break,
                    Ok(_) => {}
                    // Missed entries may have changed it: re-read.
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                }
            }
        }
    })
}

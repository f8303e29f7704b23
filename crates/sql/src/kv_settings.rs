//! The cluster settings the KV layer honours, pushed into each node's [`KvNode`]: the KV layer
//! sits below the catalog and cannot read settings itself.
//!
//! Today that is `kv.raft.command.max_size`. A node applies it when it starts
//! ([`watch`]), whenever an entry that writes the setting applies on its replica (so every
//! node follows a change within one Raft round trip), and at once on the node that ran
//! `SET CLUSTER SETTING` ([`apply`]).

use crate::catalog;
use crate::error::{SqlError, SqlResult};
use crate::settings::{self, COMMAND_MAX_SIZE};
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
    Ok(())
}

/// Whether an applied entry wrote a KV setting.
fn writes_kv_setting(applied: &Applied, key_suffix: &[u8]) -> bool {
    match applied {
        Applied::Entry { versions, .. } => versions.iter().any(|v| {
            tenant::tenant_of_key(&v.key) == TenantId::SYSTEM && v.key.ends_with(key_suffix)
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
        let key_suffix = catalog::setting_key(COMMAND_MAX_SIZE);
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
                    Ok(a) if writes_kv_setting(&a, &key_suffix) => break,
                    Ok(_) => {}
                    // Missed entries may have changed it: re-read.
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                }
            }
        }
    })
}

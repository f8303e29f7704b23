//! The cluster settings the KV layer honours, pushed into each node's [`Store`]: the KV layer
//! sits below the catalog and cannot read settings itself.
//!
//! Today those are `kv.raft.command.max_size`, `kv.raft_log.truncation_max_entries`,
//! `kv.raft_log.truncation_max_bytes`, and the GC policy: `gc.ttl` (with each virtual
//! cluster's override, `ALTER VIRTUAL CLUSTER name SET CLUSTER SETTING gc.ttl = ...`) over
//! the system keyspace and each virtual cluster's keyspace, and `kv.gc.interval`. A node
//! applies them when it starts ([`watch`]), whenever an entry that writes one of them (or a
//! virtual cluster's record) applies on its replica (so every node follows a change within
//! one Raft round trip), and at once on the node that ran `SET CLUSTER SETTING` ([`apply`]).

use crate::catalog;
use crate::error::{SqlError, SqlResult};
use crate::settings::{
    self, COMMAND_MAX_SIZE, GC_INTERVAL, GC_TTL, RAFT_LOG_TRUNCATION_MAX_BYTES,
    RAFT_LOG_TRUNCATION_MAX_ENTRIES,
};
use kv::{Applied, GcPolicy, GcSpan, Store};
use std::sync::Arc;
use std::time::Duration;
use tenant::{TenantId, TenantKv};
use tokio::sync::broadcast::error::RecvError;

/// Pause before re-reading after a failed read.
const RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// Reads the KV settings from the system virtual cluster and applies them to `node`.
pub async fn apply(node: &Arc<Store>) -> SqlResult<()> {
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
    let policy = gc_policy(node, &mut txn).await?;
    tracing::debug!(spans = policy.spans.len(), interval = ?policy.interval, "gc policy applied to the KV layer");
    node.set_gc_policy(policy);
    Ok(())
}

fn duration(name: &str, text: &str) -> SqlResult<Duration> {
    settings::parse_duration(text)
        .ok_or_else(|| SqlError::internal(format!("cluster setting {name}: bad duration {text:?}")))
}

/// The GC policy: the system keyspace at `gc.ttl`, each virtual cluster's keyspace at its
/// override of `gc.ttl` or the cluster's.
async fn gc_policy(node: &Arc<Store>, txn: &mut tenant::TenantTxn) -> SqlResult<GcPolicy> {
    let ttl = duration(GC_TTL, &catalog::get_setting(txn, GC_TTL).await?)?;
    let interval = duration(GC_INTERVAL, &catalog::get_setting(txn, GC_INTERVAL).await?)?;
    let mut spans = vec![
        GcSpan {
            span: storage::Span::new(Vec::new(), tenant::TENANT_KEYSPACE_START.to_vec()),
            ttl,
        },
        GcSpan {
            span: storage::Span::from_key(tenant::TENANT_KEYSPACE_END.to_vec()),
            ttl,
        },
    ];
    let mut kv_txn = node.begin()?;
    for rec in tenant::registry::list(&mut kv_txn).await? {
        if rec.id.is_system() {
            continue;
        }
        let ttl = match catalog::get_tenant_setting(txn, rec.id, GC_TTL).await? {
            Some(text) => duration(GC_TTL, &text)?,
            None => ttl,
        };
        spans.push(GcSpan {
            span: rec.id.span(),
            ttl,
        });
    }
    Ok(GcPolicy { interval, spans })
}

/// The KV settings this module pushes into the node.
const KV_SETTINGS: [&str; 5] = [
    COMMAND_MAX_SIZE,
    RAFT_LOG_TRUNCATION_MAX_ENTRIES,
    RAFT_LOG_TRUNCATION_MAX_BYTES,
    GC_TTL,
    GC_INTERVAL,
];

/// Whether `name` is one of the settings this module pushes into the KV layer.
pub fn is_kv_setting(name: &str) -> bool {
    KV_SETTINGS.contains(&name)
}

/// Whether an applied entry wrote a KV setting (or a virtual cluster's record: the GC policy
/// has a span per virtual cluster).
fn writes_kv_setting(applied: &Applied) -> bool {
    match applied {
        Applied::Entry { versions, .. } => versions.iter().any(|v| {
            tenant::tenant_of_key(&v.key) == TenantId::SYSTEM
                && (KV_SETTINGS
                    .iter()
                    .any(|name| catalog::is_setting_key(&v.key, name))
                    || tenant::registry::is_record_key(&v.key))
        }),
        // Replaced by a snapshot: anything may have changed.
        Applied::Reset => true,
    }
}

/// Keeps `node`'s KV settings in line with the cluster settings until the node stops.
pub fn watch(node: &Arc<Store>) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(node);
    let mut applied = node.subscribe_applied();
    tokio::spawn(async move {
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
                    Ok(a) if writes_kv_setting(&a) => break,
                    Ok(_) => {}
                    // Missed entries may have changed it: re-read.
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                }
            }
        }
    })
}

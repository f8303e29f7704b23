//! Tenant-scoped KV: a client that maps a tenant's own keys into its keyspace and refuses
//! anything that would land outside it.

use crate::keys::{TENANT_KEYSPACE_END, TENANT_KEYSPACE_START};
use crate::{TenantError, TenantId, TenantResult, pretty_key};
use hlc::Timestamp;
use kv::{Store, Txn};
use std::any::Any;
use std::sync::Arc;
use storage::{KeyValue, ScanResult, Span};

/// What a layer above attaches to a client and its transactions (the SQL layer: its node's
/// catalog cache), opaque here.
pub type Extension = Arc<dyn Any + Send + Sync>;

/// A KV client confined to one virtual cluster's keyspace. Keys given to it are the tenant's
/// own (without the `/Tenant/<id>/` prefix), and keys it returns are too.
#[derive(Debug, Clone)]
pub struct TenantKv {
    node: Arc<Store>,
    tenant: TenantId,
    extension: Option<Extension>,
}

impl TenantKv {
    /// A client of `tenant` through `node`.
    pub fn new(node: Arc<Store>, tenant: TenantId) -> Self {
        TenantKv {
            node,
            tenant,
            extension: None,
        }
    }

    /// The same client, handing `extension` to every transaction it begins.
    pub fn with_extension(mut self, extension: Extension) -> Self {
        self.extension = Some(extension);
        self
    }

    /// The tenant.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Begins a transaction on the tenant's keyspace.
    pub fn begin(&self) -> TenantResult<TenantTxn> {
        Ok(TenantTxn {
            txn: self.node.begin()?,
            tenant: self.tenant,
            node: self.node.clone(),
            clear_after_commit: Vec::new(),
            extension: self.extension.clone(),
            historical: false,
            cached_keys_written: false,
        })
    }
}

impl TenantKv {
    /// Begins a transaction reading the tenant's keyspace as of `read_ts`.
    pub fn begin_at(&self, read_ts: Timestamp) -> TenantResult<TenantTxn> {
        Ok(TenantTxn {
            txn: self.node.begin_at(read_ts)?,
            tenant: self.tenant,
            node: self.node.clone(),
            clear_after_commit: Vec::new(),
            extension: self.extension.clone(),
            historical: true,
            cached_keys_written: false,
        })
    }
}

/// A transaction confined to one virtual cluster's keyspace.
#[derive(Debug)]
pub struct TenantTxn {
    txn: Txn,
    tenant: TenantId,
    node: Arc<Store>,
    /// Global spans whose keys are deleted once this transaction commits (see
    /// [`TenantTxn::clear_span_after_commit`]).
    clear_after_commit: Vec<Span>,
    /// Handed down from the [`TenantKv`] that began it.
    extension: Option<Extension>,
    /// Begun at a given timestamp ([`TenantKv::begin_at`]): it may read the past.
    historical: bool,
    /// It wrote keys that a layer above caches (see [`TenantTxn::note_cached_write`]).
    cached_keys_written: bool,
}

impl TenantTxn {
    /// The tenant.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// What the layer above attached to the client that began this transaction.
    pub fn extension(&self) -> Option<&Extension> {
        self.extension.as_ref()
    }

    /// Whether this transaction was begun at a given timestamp ([`TenantKv::begin_at`]),
    /// which may lie in the past: a cache of present values does not serve it.
    pub fn is_historical(&self) -> bool {
        self.historical
    }

    /// Records that this transaction wrote keys a layer above caches (the SQL catalog):
    /// its own reads of them must see its writes, not the cache, and its commit must reach
    /// every node before it is reported (see [`TenantTxn::wrote_cached_keys`]).
    pub fn note_cached_write(&mut self) {
        self.cached_keys_written = true;
    }

    /// Whether [`TenantTxn::note_cached_write`] was called.
    pub fn wrote_cached_keys(&self) -> bool {
        self.cached_keys_written
    }

    /// Adds the tenant's `key` to the read set without reading it, for a value the caller
    /// holds from a cache: the commit still fails if `key` changed after the read timestamp.
    pub fn record_read(&mut self, key: &[u8]) -> TenantResult<()> {
        let global = self.global_key(key)?;
        self.txn.record_read(&global);
        Ok(())
    }

    /// The snapshot every read sees.
    pub fn read_ts(&self) -> Timestamp {
        self.txn.read_ts()
    }

    fn outside(&self, what: String) -> TenantError {
        TenantError::OutsideTenant {
            tenant: self.tenant,
            what,
        }
    }

    /// The global key of the tenant's `key`.
    fn global_key(&self, key: &[u8]) -> TenantResult<Vec<u8>> {
        let global = if self.tenant.is_system() {
            // The system tenant owns everything outside [0xfe, 0xff).
            if key >= TENANT_KEYSPACE_START && key < TENANT_KEYSPACE_END {
                return Err(self.outside(format!("key {}", pretty_key(key))));
            }
            key.to_vec()
        } else {
            let mut g = self.tenant.prefix();
            g.extend_from_slice(key);
            g
        };
        self.assert_inside(&global);
        Ok(global)
    }

    /// The global span of the tenant's `span`.
    fn global_span(&self, span: &Span) -> TenantResult<Span> {
        span.validate()
            .map_err(|_| self.outside("an empty span".into()))?;
        let global = if self.tenant.is_system() {
            let start_inside = span.start.as_slice() < TENANT_KEYSPACE_END;
            let end_after = span
                .end
                .as_deref()
                .is_none_or(|e| e > TENANT_KEYSPACE_START);
            if start_inside && end_after {
                return Err(self.outside(format!(
                    "span [{}, {}) overlaps the tenants' keyspace",
                    pretty_key(&span.start),
                    span.end.as_deref().map_or("∞".to_string(), pretty_key)
                )));
            }
            span.clone()
        } else {
            let tenant_span = self.tenant.span();
            let start = self.global_key(&span.start)?;
            let end = match &span.end {
                Some(e) => self.global_key(e)?,
                None => tenant_span.end.clone().expect("a tenant span has an end"),
            };
            Span::new(start, end)
        };
        Ok(global)
    }

    /// Panics if a global key is outside the tenant: that would be a bug here, and writing it
    /// would corrupt another tenant.
    fn assert_inside(&self, global: &[u8]) {
        if self.tenant.is_system() {
            assert!(
                !(global >= TENANT_KEYSPACE_START && global < TENANT_KEYSPACE_END),
                "tenant: system key {} inside the tenants' keyspace",
                pretty_key(global)
            );
        } else {
            assert!(
                self.tenant.span().contains(global),
                "tenant: key {} outside virtual cluster {}",
                pretty_key(global),
                self.tenant
            );
        }
    }

    /// The tenant key of a global key read back.
    fn local_key(&self, global: Vec<u8>) -> Vec<u8> {
        self.assert_inside(&global);
        if self.tenant.is_system() {
            global
        } else {
            global[self.tenant.prefix().len()..].to_vec()
        }
    }

    /// Reads `key`.
    pub async fn get(&mut self, key: &[u8]) -> TenantResult<Option<Vec<u8>>> {
        let global = self.global_key(key)?;
        Ok(self.txn.get(&global).await?)
    }

    /// Scans `span` (of the tenant's keys), at most `limit` rows.
    pub async fn scan(&mut self, span: &Span, limit: usize) -> TenantResult<ScanResult> {
        let global = self.global_span(span)?;
        let page = self.txn.scan(&global, limit).await?;
        Ok(ScanResult {
            rows: page
                .rows
                .into_iter()
                .map(|kv| KeyValue {
                    key: self.local_key(kv.key),
                    ts: kv.ts,
                    value: kv.value,
                })
                .collect(),
            resume_key: page.resume_key.map(|k| self.local_key(k)),
        })
    }

    /// Buffers `key = value`.
    pub fn put(&mut self, key: &[u8], value: impl Into<Vec<u8>>) -> TenantResult<()> {
        let global = self.global_key(key)?;
        self.txn.put(global, value);
        Ok(())
    }

    /// Buffers a delete of `key`.
    pub fn delete(&mut self, key: &[u8]) -> TenantResult<()> {
        let global = self.global_key(key)?;
        self.txn.delete(global);
        Ok(())
    }

    /// Deletes every key of `span` once this transaction commits, in transactions of their
    /// own of bounded size (see [`Store::clear_span`]), rather than as writes of this one:
    /// one transaction must stay below `kv.raft.command.max_size`, and a table can be far
    /// larger. Nothing is deleted if this transaction does not commit. For spans nothing can
    /// write to once this transaction commits (a dropped table's, a truncated table's old
    /// indexes'): their keys become unreachable at the commit, and are gone shortly after.
    pub fn clear_span_after_commit(&mut self, span: &Span) -> TenantResult<()> {
        let global = self.global_span(span)?;
        self.clear_after_commit.push(global);
        Ok(())
    }

    /// Commits; returns the commit timestamp. Then clears the spans given to
    /// [`TenantTxn::clear_span_after_commit`]; a failure there is logged, not returned (the
    /// transaction committed, and what is left is unreachable).
    pub async fn commit(self) -> TenantResult<Timestamp> {
        let ts = self.txn.commit().await?;
        for span in &self.clear_after_commit {
            match self.node.clear_span(span).await {
                Ok(keys) => tracing::debug!(
                    tenant_id = self.tenant.0,
                    keys,
                    span = %pretty_key(&span.start),
                    "cleared a span after commit"
                ),
                Err(e) => tracing::warn!(
                    tenant_id = self.tenant.0,
                    span = %pretty_key(&span.start),
                    error = %e,
                    "clearing a span after commit failed; its keys stay behind, unreachable"
                ),
            }
        }
        Ok(ts)
    }
}

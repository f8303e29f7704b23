//! Virtual clusters (tenants): the registry, keyspace prefixes, and tenant-scoped KV clients.
//!
//! Owns: [`TenantId`] and the keyspace each tenant owns (`/Tenant/<id>/`, encoded as `0xfe`
//! followed by the id as 8 big-endian bytes; the system virtual cluster, id 1, owns every key
//! outside `[0xfe, 0xff)`), the registry of tenant records stored in the system keyspace, and
//! [`TenantKv`], a KV client that can only reach its own tenant's keys.
//!
//! Does not own: SQL (users, settings, catalogs live in each tenant's keyspace, written by
//! `sql` through a [`TenantKv`]), or replication (`replication` moves whole tenant spans).
//!
//! Invariants:
//! - A [`TenantKv`] never reads or writes a key outside its tenant's keyspace: every key and
//!   span is checked when it is mapped, and every key read back is asserted to be inside.
//! - Tenant ids are never reused: they come from a counter that only moves forward.
//! - A tenant name maps to at most one record.
//! - Nothing ingests into a virtual cluster whose ingestion fence is closed (past cutover,
//!   canceled, removed) or under an epoch other than the fence's ([`ingest_fence`]).

mod error;
pub mod ingest_fence;
mod keys;
mod record;
pub mod registry;
mod scoped;

pub use error::{TenantError, TenantResult};
pub use ingest_fence::IngestionEpoch;
pub use keys::{
    PREFIX_LEN, TENANT_KEYSPACE_END, TENANT_KEYSPACE_START, TenantId, pretty_key, rekey,
    tenant_of_key,
};
pub use record::{DataState, ServiceMode, TenantRecord, validate_name};
pub use scoped::{Extension, TenantKv, TenantTxn};

//! The registry of virtual clusters, stored in the system keyspace and read and written
//! inside a KV transaction of the caller's.
//!
//! Layout (system keyspace): `\x03tenant/record/<id: 8 bytes BE>` → record,
//! `\x03tenant/name/<name>` → id, `\x03tenant/next-id` → the next id to allocate.

use crate::{
    DataState, ServiceMode, TenantError, TenantId, TenantRecord, TenantResult, validate_name,
};
use hlc::Timestamp;
use kv::Txn;
use storage::Span;

const RECORD_PREFIX: &[u8] = b"\x03tenant/record/";
const NAME_PREFIX: &[u8] = b"\x03tenant/name/";
const NEXT_ID_KEY: &[u8] = b"\x03tenant/next-id";
/// Ids below this are reserved for the profiles' fixed tenants (system, template, application).
/// Whether `key` is a virtual cluster's registry record (a write to one adds, changes or
/// removes a virtual cluster).
pub fn is_record_key(key: &[u8]) -> bool {
    key.starts_with(RECORD_PREFIX)
}

const FIRST_ALLOCATED_ID: u64 = 2;
/// More tenants than a registry scan returns in one page.
const LIST_LIMIT: usize = 100_000;

fn record_key(id: TenantId) -> Vec<u8> {
    let mut k = RECORD_PREFIX.to_vec();
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

fn name_key(name: &str) -> Vec<u8> {
    let mut k = NAME_PREFIX.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

fn decode_id(bytes: &[u8]) -> TenantResult<u64> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| TenantError::Corrupt("tenant id is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(arr))
}

async fn next_id(txn: &mut Txn) -> TenantResult<u64> {
    Ok(match txn.get(NEXT_ID_KEY).await? {
        Some(b) => decode_id(&b)?,
        None => FIRST_ALLOCATED_ID,
    })
}

/// Creates a virtual cluster with a fresh id.
pub async fn create(
    txn: &mut Txn,
    name: &str,
    data_state: DataState,
    service_mode: ServiceMode,
    now: Timestamp,
) -> TenantResult<TenantRecord> {
    let id = TenantId(next_id(txn).await?);
    create_with_id(txn, id, name, data_state, service_mode, now).await
}

/// Creates a virtual cluster with the given id (profiles create system=1, template=2,
/// application=3). The id must never have been used.
pub async fn create_with_id(
    txn: &mut Txn,
    id: TenantId,
    name: &str,
    data_state: DataState,
    service_mode: ServiceMode,
    now: Timestamp,
) -> TenantResult<TenantRecord> {
    validate_name(name)?;
    if get_by_name(txn, name).await?.is_some() {
        return Err(TenantError::AlreadyExists(name.to_string()));
    }
    let next = next_id(txn).await?;
    // Every id below the counter was handed out (or skipped) before: never reuse one.
    if get(txn, id).await?.is_some() || (!id.is_system() && id.0 < next) {
        return Err(TenantError::IdInUse(id));
    }
    let record = TenantRecord {
        id,
        name: name.to_string(),
        data_state,
        service_mode,
        created_at: now,
        replication_job_id: None,
    };
    txn.put(record_key(id), record.encode());
    txn.put(name_key(name), id.0.to_be_bytes().to_vec());
    let new_next = next.max(id.0 + 1);
    txn.put(NEXT_ID_KEY, new_next.to_be_bytes().to_vec());
    Ok(record)
}

/// The record of `id`.
pub async fn get(txn: &mut Txn, id: TenantId) -> TenantResult<Option<TenantRecord>> {
    match txn.get(&record_key(id)).await? {
        Some(b) => Ok(Some(TenantRecord::decode(&b)?)),
        None => Ok(None),
    }
}

/// The record named `name`.
pub async fn get_by_name(txn: &mut Txn, name: &str) -> TenantResult<Option<TenantRecord>> {
    match txn.get(&name_key(name)).await? {
        Some(b) => get(txn, TenantId(decode_id(&b)?)).await,
        None => Ok(None),
    }
}

/// The record named `name`, or [`TenantError::NotFound`].
pub async fn must_get_by_name(txn: &mut Txn, name: &str) -> TenantResult<TenantRecord> {
    get_by_name(txn, name)
        .await?
        .ok_or_else(|| TenantError::NotFound(name.to_string()))
}

/// Every record, by id.
pub async fn list(txn: &mut Txn) -> TenantResult<Vec<TenantRecord>> {
    let page = txn.scan(&Span::prefix(RECORD_PREFIX), LIST_LIMIT).await?;
    page.rows
        .iter()
        .map(|kv| TenantRecord::decode(&kv.value))
        .collect()
}

/// Writes an updated record (same id and name).
pub async fn update(txn: &mut Txn, record: &TenantRecord) -> TenantResult<()> {
    let current = get(txn, record.id)
        .await?
        .ok_or(TenantError::IdNotFound(record.id))?;
    if current.name != record.name {
        return Err(TenantError::Corrupt(
            "update must not change the name; use rename".into(),
        ));
    }
    txn.put(record_key(record.id), record.encode());
    Ok(())
}

/// Renames a virtual cluster.
pub async fn rename(txn: &mut Txn, from: &str, to: &str) -> TenantResult<TenantRecord> {
    validate_name(to)?;
    let mut record = must_get_by_name(txn, from).await?;
    if get_by_name(txn, to).await?.is_some() {
        return Err(TenantError::AlreadyExists(to.to_string()));
    }
    txn.delete(name_key(from));
    txn.put(name_key(to), record.id.0.to_be_bytes().to_vec());
    record.name = to.to_string();
    txn.put(record_key(record.id), record.encode());
    Ok(record)
}

/// Removes a virtual cluster's record (its data must already be cleared). Its id is never
/// handed out again.
pub async fn remove(txn: &mut Txn, id: TenantId) -> TenantResult<()> {
    let record = get(txn, id).await?.ok_or(TenantError::IdNotFound(id))?;
    txn.delete(record_key(id));
    txn.delete(name_key(&record.name));
    crate::ingest_fence::close(txn, id);
    Ok(())
}

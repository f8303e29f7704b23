//! Protected timestamp records, replicated in the system keyspace (`/sys/pts/<id>`): a
//! record keeps every version of a virtual cluster's keyspace newer than its timestamp from
//! garbage collection. Replication streams hold one on the source (from the stream's start,
//! moved forward by heartbeats) and one on the standby (at `retained_time`).

use ::sql::error::{SqlError, SqlResult};
use hlc::Timestamp;
use kv::Txn;
use serde::{Deserialize, Serialize};
use storage::Span;

const PREFIX: &[u8] = b"/sys/pts/";
const ID_KEY: &[u8] = b"/sys/pts_id_seq";

/// One protection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtsRecord {
    pub id: u64,
    /// The protected virtual cluster.
    pub tenant_id: u64,
    pub ts: Timestamp,
    /// The job that owns it.
    pub job_id: u64,
}

fn key(id: u64) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(format!("{id:020}").as_bytes());
    k
}

fn corrupt(e: impl std::fmt::Display) -> SqlError {
    SqlError::internal(format!("corrupt protected timestamp record: {e}"))
}

/// Protects `tenant_id`'s history above `ts` for `job_id`; returns the record id.
pub async fn protect(txn: &mut Txn, tenant_id: u64, ts: Timestamp, job_id: u64) -> SqlResult<u64> {
    let last = match txn.get(ID_KEY).await? {
        Some(b) => u64::from_be_bytes(b.as_slice().try_into().map_err(corrupt)?),
        None => 0,
    };
    let id = last + 1;
    txn.put(ID_KEY.to_vec(), id.to_be_bytes().to_vec());
    let rec = PtsRecord {
        id,
        tenant_id,
        ts,
        job_id,
    };
    txn.put(key(id), postcard::to_allocvec(&rec).expect("serializes"));
    Ok(id)
}

/// The record `id`, if it still exists.
pub async fn get(txn: &mut Txn, id: u64) -> SqlResult<Option<PtsRecord>> {
    match txn.get(&key(id)).await? {
        Some(b) => Ok(Some(postcard::from_bytes(&b).map_err(corrupt)?)),
        None => Ok(None),
    }
}

/// Moves record `id` forward to `ts` (never back). Returns the record's timestamp after.
pub async fn advance(txn: &mut Txn, id: u64, ts: Timestamp) -> SqlResult<Option<Timestamp>> {
    let Some(mut rec) = get(txn, id).await? else {
        return Ok(None);
    };
    if ts > rec.ts {
        rec.ts = ts;
        txn.put(key(id), postcard::to_allocvec(&rec).expect("serializes"));
    }
    Ok(Some(rec.ts))
}

/// Removes record `id` (no error if it is gone).
pub fn release(txn: &mut Txn, id: u64) {
    txn.delete(key(id));
}

/// Every record.
pub async fn list(txn: &mut Txn) -> SqlResult<Vec<PtsRecord>> {
    let page = txn.scan(&Span::prefix(PREFIX), 1_000_000).await?;
    page.rows
        .iter()
        .map(|kv| postcard::from_bytes(&kv.value).map_err(corrupt))
        .collect()
}

//! Protected timestamps: the cluster's one store of records that hold garbage collection back
//! on a span, so that history a reader still needs (a replication stream, a standby's
//! retention window) survives `gc.ttl`.
//!
//! Records are ordinary MVCC keys in the system keyspace (`/sys/pts/<id>`), written by
//! transactions, so they are replicated, carried by snapshots, and read by every replica at
//! the same place in the log: a GC step reads them when it applies ([`protected_floor`]) and
//! never collects a version newer than the oldest record on an overlapping span. A record is
//! refused below the span's GC threshold (that history may be gone already); the check reads
//! the threshold records in the same transaction, so a GC step that raises a threshold before
//! the record commits aborts the transaction instead of racing it.

use crate::command::WireSpan;
use crate::gc;
use crate::{KvError, KvResult, Txn};
use hlc::Timestamp;
use serde::{Deserialize, Serialize};
use storage::{Engine, Span, StorageResult};

/// The first key of the records.
pub const PTS_PREFIX: &[u8] = b"/sys/pts/";
/// The record id counter.
const ID_KEY: &[u8] = b"/sys/pts_id_seq";
/// The most records read at once (a cluster holds a handful: one per replication stream).
const RECORDS_MAX: usize = 100_000;

/// One protection: no version of `span` newer than `ts` is garbage collected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtsRecord {
    pub id: u64,
    /// The protected keys, `[start, end)`.
    pub span: WireSpan,
    pub ts: Timestamp,
    /// The job that owns it.
    pub job_id: u64,
}

impl PtsRecord {
    /// The protected span.
    pub fn span(&self) -> Span {
        Span {
            start: self.span.0.clone(),
            end: self.span.1.clone(),
        }
    }
}

fn key(id: u64) -> Vec<u8> {
    let mut k = PTS_PREFIX.to_vec();
    k.extend_from_slice(format!("{id:020}").as_bytes());
    k
}

fn corrupt(e: impl std::fmt::Display) -> KvError {
    KvError::Codec(format!("corrupt protected timestamp record: {e}"))
}

fn encode(rec: &PtsRecord) -> KvResult<Vec<u8>> {
    postcard::to_allocvec(rec).map_err(|e| KvError::Codec(e.to_string()))
}

/// Protects `span`'s history above `ts` for `job_id`; returns the record id. Fails with
/// [`KvError::BelowGcThreshold`] when `ts` is below the span's GC threshold.
pub async fn protect(txn: &mut Txn, span: &Span, ts: Timestamp, job_id: u64) -> KvResult<u64> {
    span.validate()?;
    gc::check_in_txn(txn, span, ts).await?;
    let last = match txn.get(ID_KEY).await? {
        Some(b) => u64::from_be_bytes(b.as_slice().try_into().map_err(corrupt)?),
        None => 0,
    };
    let id = last + 1;
    txn.put(ID_KEY.to_vec(), id.to_be_bytes().to_vec());
    let rec = PtsRecord {
        id,
        span: (span.start.clone(), span.end.clone()),
        ts,
        job_id,
    };
    txn.put(key(id), encode(&rec)?);
    Ok(id)
}

/// The record `id`, if it still exists.
pub async fn get(txn: &mut Txn, id: u64) -> KvResult<Option<PtsRecord>> {
    match txn.get(&key(id)).await? {
        Some(b) => Ok(Some(postcard::from_bytes(&b).map_err(corrupt)?)),
        None => Ok(None),
    }
}

/// Moves record `id` forward to `ts` (never back). Returns the record's timestamp after, or
/// `None` when the record is gone.
pub async fn advance(txn: &mut Txn, id: u64, ts: Timestamp) -> KvResult<Option<Timestamp>> {
    let Some(mut rec) = get(txn, id).await? else {
        return Ok(None);
    };
    if ts > rec.ts {
        rec.ts = ts;
        txn.put(key(id), encode(&rec)?);
    }
    Ok(Some(rec.ts))
}

/// Removes record `id` (no error if it is gone).
pub fn release(txn: &mut Txn, id: u64) {
    txn.delete(key(id));
}

/// Every record.
pub async fn list(txn: &mut Txn) -> KvResult<Vec<PtsRecord>> {
    let page = txn.scan(&Span::prefix(PTS_PREFIX), RECORDS_MAX).await?;
    page.rows
        .iter()
        .map(|kv| postcard::from_bytes(&kv.value).map_err(corrupt))
        .collect()
}

/// The oldest protected timestamp on a span overlapping `span`, read from the replica's own
/// state as applied so far (the same on every replica at the same log position). A record
/// that does not decode protects everything (`Timestamp::ZERO`): GC holds back rather than
/// guess.
pub(crate) fn protected_floor(
    engine: &dyn Engine,
    span: &Span,
) -> StorageResult<Option<Timestamp>> {
    let page = engine.scan(&Span::prefix(PTS_PREFIX), Timestamp::MAX, RECORDS_MAX)?;
    let mut floor: Option<Timestamp> = None;
    for row in page.rows {
        let ts = match postcard::from_bytes::<PtsRecord>(&row.value) {
            Ok(rec) if rec.span().overlaps(span) => rec.ts,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable protected timestamp record holds GC back");
                Timestamp::ZERO
            }
        };
        floor = Some(floor.map_or(ts, |f| f.min(ts)));
    }
    Ok(floor)
}

//! The secrets of replication jobs, kept apart from the job records: the source URI's
//! password (an ingestion job on the standby) and the stream token (both jobs).
//!
//! A job record is shown (`SHOW JOBS`, `SHOW VIRTUAL CLUSTER ... WITH REPLICATION STATUS`),
//! logged and kept after the job ends; its secret is not. The secret lives in its own record
//! of the system keyspace, `\x03repl/job-secret/<job id: 8 bytes BE>`, which only the job
//! machinery reads (no statement shows it). When the job ends (cutover, cancel or DROP,
//! completion or expiry of a stream) the transaction that ends it deletes the record, and
//! [`purge`] then removes every version of it from storage, history included.
//!
//! Not covered: the Raft log still holds the entry that wrote the secret until the log is
//! truncated (by size and count), like every other write.

use crate::spec::StreamToken;
use ::sql::error::{SqlError, SqlResult};
use hlc::Timestamp;
use kv::{KvResult, Store};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use storage::Span;

const PREFIX: &[u8] = b"\x03repl/job-secret/";
/// Versions [`purge`] removes per Raft entry (a secret has a handful).
const PURGE_BATCH: u64 = 1_000;

/// What a replication job needs but never shows. `Debug` prints `JobSecret(redacted)`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSecret {
    /// The password of the source URI (ingestion jobs whose URI has one).
    pub password: Option<String>,
    /// The token partition streams present.
    pub token: StreamToken,
}

impl std::fmt::Debug for JobSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobSecret(redacted)")
    }
}

fn key(job_id: u64) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(&job_id.to_be_bytes());
    k
}

/// Records job `job_id`'s secret (in the transaction that creates the job).
pub fn put(txn: &mut kv::Txn, job_id: u64, secret: &JobSecret) {
    let value = serde_json::to_vec(secret).expect("a job secret always serializes");
    txn.put(key(job_id), value);
}

/// Job `job_id`'s secret; `None` once the job has ended.
pub async fn get(txn: &mut kv::Txn, job_id: u64) -> SqlResult<Option<JobSecret>> {
    match txn.get(&key(job_id)).await? {
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| SqlError::internal(format!("job {job_id}: corrupt secret record: {e}"))),
        None => Ok(None),
    }
}

/// Deletes job `job_id`'s secret, in the transaction that ends the job.
pub fn remove(txn: &mut kv::Txn, job_id: u64) {
    txn.delete(key(job_id));
}

/// Removes every version of job `job_id`'s secret from storage (on every replica), after
/// the transaction that ended the job committed: no MVCC history of it is left to read.
pub async fn purge(node: &Arc<Store>, job_id: u64) -> KvResult<()> {
    let mut span = Span::key(&key(job_id));
    while let Some(resume) = node
        .revert_span(span.clone(), Timestamp::ZERO, PURGE_BATCH)
        .await?
    {
        span.start = resume;
    }
    Ok(())
}

/// [`purge`], logging instead of failing: the job has ended either way, and the deleted
/// record is no longer readable at the present time.
pub async fn purge_or_log(node: &Arc<Store>, job_id: u64) {
    if let Err(e) = purge(node, job_id).await {
        tracing::warn!(job_id, error = %e, "cannot purge the history of an ended job's secret");
    }
}

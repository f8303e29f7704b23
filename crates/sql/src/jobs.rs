//! The jobs table (`SHOW JOBS`): long-running work such as replication streams records
//! itself here, in the system virtual cluster's keyspace under `/sql/jobs/<id>`.
//!
//! A job is run by one node at a time: the node holding its lease (`coordinator` with
//! `lease_expires_ns` in the future). Any node may adopt a `running` job whose lease expired.

use crate::error::{SqlError, SqlResult};
use kv::Txn;
use serde::{Deserialize, Serialize};
use storage::Span;

/// Job states as `SHOW JOBS` prints them.
pub mod status {
    pub const RUNNING: &str = "running";
    pub const PAUSED: &str = "paused";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const CANCELED: &str = "canceled";
}

const PREFIX: &[u8] = b"/sql/jobs/";
const ID_KEY: &[u8] = b"/sql/job_id_seq";

/// A job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: u64,
    pub job_type: String,
    pub description: String,
    /// One of [`status`].
    pub status: String,
    /// What the job is doing now, in words.
    pub running_status: Option<String>,
    pub created: String,
    pub finished: Option<String>,
    pub error: Option<String>,
    /// The node running the job and until when (wall-clock ns) its lease holds.
    pub coordinator: Option<u64>,
    pub lease_expires_ns: u64,
    /// Job-type specific, JSON.
    pub details: String,
    /// Job-type specific, JSON.
    pub progress: String,
}

impl JobRecord {
    /// The `SHOW JOBS` columns, in order.
    pub const COLUMNS: &'static [&'static str] = &[
        "job_id",
        "job_type",
        "description",
        "status",
        "running_status",
        "created",
        "finished",
        "coordinator_id",
        "error",
    ];

    /// The job as a `SHOW JOBS` row.
    pub fn row(&self) -> Vec<Option<String>> {
        vec![
            Some(self.id.to_string()),
            Some(self.job_type.clone()),
            Some(self.description.clone()),
            Some(self.status.clone()),
            self.running_status.clone(),
            Some(self.created.clone()),
            self.finished.clone(),
            self.coordinator.map(|c| c.to_string()),
            self.error.clone(),
        ]
    }

    /// Whether the job has ended (it never runs again).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.status.as_str(),
            status::SUCCEEDED | status::FAILED | status::CANCELED
        )
    }
}

fn key(id: u64) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(format!("{id:020}").as_bytes());
    k
}

fn decode(bytes: &[u8]) -> SqlResult<JobRecord> {
    postcard::from_bytes(bytes).map_err(|e| SqlError::internal(format!("corrupt job record: {e}")))
}

/// Allocates a job id (never reused).
pub async fn next_id(txn: &mut Txn) -> SqlResult<u64> {
    let last = match txn.get(ID_KEY).await? {
        Some(b) => u64::from_be_bytes(
            b.as_slice()
                .try_into()
                .map_err(|_| SqlError::internal("corrupt job id sequence"))?,
        ),
        None => 0,
    };
    let id = last + 1;
    txn.put(ID_KEY.to_vec(), id.to_be_bytes().to_vec());
    Ok(id)
}

/// The job `id`.
pub async fn get(txn: &mut Txn, id: u64) -> SqlResult<Option<JobRecord>> {
    match txn.get(&key(id)).await? {
        Some(b) => Ok(Some(decode(&b)?)),
        None => Ok(None),
    }
}

/// Writes `job`.
pub fn put(txn: &mut Txn, job: &JobRecord) {
    let bytes = postcard::to_allocvec(job).expect("a job record always serializes");
    txn.put(key(job.id), bytes);
}

/// Every job, oldest first.
pub async fn list(txn: &mut Txn) -> SqlResult<Vec<JobRecord>> {
    let page = txn.scan(&Span::prefix(PREFIX), 1_000_000).await?;
    page.rows.iter().map(|kv| decode(&kv.value)).collect()
}

/// Now, as `SHOW JOBS` prints times.
pub fn now_text() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.6f+00")
        .to_string()
}

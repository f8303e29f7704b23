//! The standby side: the `REPLICATION STREAM INGESTION` job.
//!
//! - `mod.rs`: the job's records, and the operations the statements perform (create, pause,
//!   resume, cutover request, status, cancel).
//! - `runner.rs`: every node adopts running ingestion jobs whose coordinator lease expired.
//! - `coordinator.rs`: one job's coordinator: plans partitions over the live nodes of both
//!   clusters, runs the flows, keeps the frontier, persists `replicated_time` and
//!   `retained_time`, heartbeats the source, retries, and cuts over.
//! - `ingest.rs`: the `Ingestion` gRPC service every standby node serves: one partition's
//!   stream ingested through the Raft log with the tenant prefix rewritten.

mod coordinator;
mod ingest;
mod runner;

pub use ingest::{Assignment, IngestionService};
pub use runner::JobRunner;

pub(crate) use coordinator::LEASE;

use crate::client::SourceConn;
use crate::frontier::{KeySpan, SpanTs};
use crate::secrets::{self, JobSecret};
use ::sql::error::{SqlError, SqlResult, code};
use ::sql::jobs::{self, JobRecord, status};
use hlc::Timestamp;
use kv::Store;
use kv::protectedts as pts;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tenant::TenantId;

/// The ingestion job's type as `SHOW JOBS` prints it.
pub const JOB_TYPE: &str = "REPLICATION STREAM INGESTION";

/// Replication status strings (shown as `data_state` and `status`).
pub mod repl_status {
    pub const INITIALIZING: &str = "initializing replication";
    pub const REPLICATING: &str = "replicating";
    pub const PAUSED: &str = "replication paused";
    pub const PENDING_CUTOVER: &str = "replication pending cutover";
    pub const CUTTING_OVER: &str = "replication cutting over";
    pub const ERROR: &str = "replication error";
    pub const READY: &str = "ready";
}

/// What an ingestion job remembers (fixed at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestionDetails {
    pub source: SourceConn,
    pub source_tenant_name: String,
    pub source_tenant_id: u64,
    pub dest_tenant_id: u64,
    pub dest_name: String,
    pub stream_id: u64,
    pub start_time: Timestamp,
    pub retention_ns: u64,
}

impl IngestionDetails {
    pub fn source_span(&self) -> KeySpan {
        tenant_span(self.source_tenant_id)
    }

    pub fn dest_span(&self) -> KeySpan {
        tenant_span(self.dest_tenant_id)
    }
}

/// A virtual cluster's whole keyspace.
pub fn tenant_span(id: u64) -> KeySpan {
    let s = TenantId(id).span();
    KeySpan::new(s.start, s.end.expect("tenant spans are bounded"))
}

/// Where one partition ran in the last plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedPartition {
    pub id: u32,
    pub source_node: u64,
    pub source_addr: String,
    pub standby_node: u64,
}

/// Where an ingestion job is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IngestionProgress {
    /// One of [`repl_status`].
    pub status: String,
    /// Per-span resolved timestamps (source keys), for a precise resume.
    pub frontier: Vec<SpanTs>,
    pub replicated_time: Timestamp,
    pub retained_time: Timestamp,
    pub cutover_time: Option<Timestamp>,
    /// During a cutover: what of the standby's keyspace is left to revert.
    pub revert_remaining: Option<KeySpan>,
    /// The standby's protected timestamp record.
    pub pts_id: u64,
    pub partitions: Vec<PlacedPartition>,
    pub last_error: Option<String>,
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(job: &JobRecord, text: &str) -> SqlResult<T> {
    serde_json::from_str(text)
        .map_err(|e| SqlError::internal(format!("job {}: corrupt record: {e}", job.id)))
}

pub(crate) fn encode<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("job state always serializes")
}

/// An ingestion job with its decoded state.
#[derive(Debug, Clone)]
pub struct IngestionJob {
    pub record: JobRecord,
    pub details: IngestionDetails,
    pub progress: IngestionProgress,
}

impl IngestionJob {
    /// A client of the source cluster, with the password from the job's secret record, that
    /// falls back to the source nodes of the last plan.
    pub(crate) fn source_client(&self, secret: &JobSecret) -> crate::client::PgStreamClient {
        let client = crate::client::PgStreamClient::new(
            self.details
                .source
                .clone()
                .with_password(secret.password.clone()),
        );
        client.set_fallback_addrs(
            self.progress
                .partitions
                .iter()
                .map(|p| p.source_addr.clone())
                .collect(),
        );
        client
    }

    /// Writes the job back in `txn`.
    pub fn put(&mut self, txn: &mut kv::Txn) {
        self.record.progress = encode(&self.progress);
        jobs::put(txn, &self.record);
    }

    /// Whether the job still fills its virtual cluster (not cut over, not canceled).
    pub fn is_active(&self) -> bool {
        !self.record.is_terminal()
    }

    /// The status shown for the virtual cluster.
    pub fn shown_status(&self) -> String {
        if self.record.status == status::SUCCEEDED {
            return repl_status::READY.into();
        }
        if self.record.status == status::PAUSED && self.progress.status != repl_status::ERROR {
            return repl_status::PAUSED.into();
        }
        self.progress.status.clone()
    }
}

/// Loads ingestion job `id`.
pub async fn load(txn: &mut kv::Txn, id: u64) -> SqlResult<IngestionJob> {
    let record = jobs::get(txn, id)
        .await?
        .filter(|j| j.job_type == JOB_TYPE)
        .ok_or_else(|| SqlError::internal(format!("replication job {id} does not exist")))?;
    let details = decode(&record, &record.details)?;
    let progress = decode(&record, &record.progress)?;
    Ok(IngestionJob {
        record,
        details,
        progress,
    })
}

/// `retained_time` for a replicated time: the start time, or the retention window back.
pub fn retained_for(details: &IngestionDetails, replicated: Timestamp) -> Timestamp {
    let back = Timestamp::new(
        replicated.wall_time_ns.saturating_sub(details.retention_ns),
        0,
    );
    back.max(details.start_time)
}

/// Records the ingestion job (in `txn`, with the virtual cluster record created by the
/// caller), its secret (apart from the job record, see [`crate::secrets`]) and the standby's
/// protected timestamp.
pub async fn create_job(
    txn: &mut kv::Txn,
    details: IngestionDetails,
    secret: &JobSecret,
    description: String,
) -> SqlResult<u64> {
    let id = jobs::next_id(txn).await?;
    secrets::put(txn, id, secret);
    let pts_id = pts::protect(
        txn,
        &TenantId(details.dest_tenant_id).span(),
        details.start_time,
        id,
    )
    .await?;
    let progress = IngestionProgress {
        status: repl_status::INITIALIZING.into(),
        frontier: Vec::new(),
        replicated_time: Timestamp::ZERO,
        retained_time: details.start_time,
        cutover_time: None,
        revert_remaining: None,
        pts_id,
        partitions: Vec::new(),
        last_error: None,
    };
    jobs::put(
        txn,
        &JobRecord {
            id,
            job_type: JOB_TYPE.into(),
            description,
            status: status::RUNNING.into(),
            running_status: Some(repl_status::INITIALIZING.into()),
            created: jobs::now_text(),
            finished: None,
            error: None,
            coordinator: None,
            lease_expires_ns: 0,
            details: encode(&details),
            progress: encode(&progress),
        },
    );
    Ok(id)
}

fn not_active(name: &str, job: &IngestionJob) -> SqlError {
    SqlError::new(
        code::OBJECT_IN_USE,
        format!(
            "virtual cluster {name:?} is not replicating (its replication job {} is {})",
            job.record.id, job.record.status
        ),
    )
    .with_hint(if job.record.status == status::SUCCEEDED {
        "it was cut over: ALTER VIRTUAL CLUSTER ... START SERVICE SHARED serves it"
    } else {
        "to replicate it again, drop it and run CREATE VIRTUAL CLUSTER ... FROM REPLICATION OF ... anew"
    })
}

/// `ALTER VIRTUAL CLUSTER name PAUSE REPLICATION`.
pub async fn pause(node: &Arc<Store>, name: &str, job_id: u64) -> SqlResult<()> {
    let mut txn = node.begin()?;
    let mut job = load(&mut txn, job_id).await?;
    if !job.is_active() {
        return Err(not_active(name, &job));
    }
    if job.progress.status == repl_status::CUTTING_OVER {
        return Err(SqlError::new(
            code::OBJECT_IN_USE,
            format!("virtual cluster {name:?} is being cut over; it cannot be paused"),
        )
        .with_hint(
            "SHOW VIRTUAL CLUSTER ... WITH REPLICATION STATUS shows when the cutover is done",
        ));
    }
    job.record.status = status::PAUSED.into();
    job.record.running_status = Some("paused by ALTER VIRTUAL CLUSTER PAUSE REPLICATION".into());
    // The lease stays: the coordinator releases it once its processors have stopped (see
    // `release`), which is what DROP waits for.
    job.put(&mut txn);
    txn.commit().await?;
    Ok(())
}

/// Clears job `job_id`'s coordinator if it is still node `me`: called by a coordinator once
/// none of its processors writes any more.
pub(crate) async fn release(node: &Arc<Store>, job_id: u64, me: u64) -> SqlResult<()> {
    let mut txn = node.begin()?;
    let mut job = load(&mut txn, job_id).await?;
    if job.record.coordinator != Some(me) {
        return Ok(());
    }
    job.record.coordinator = None;
    job.record.lease_expires_ns = 0;
    job.put(&mut txn);
    txn.commit().await?;
    Ok(())
}

/// Waits until job `job_id` has no coordinator writing for it: released, or its lease expired
/// (its node died or lost contact). Gives up after `within`; returns whether it saw that.
pub(crate) async fn wait_released(node: &Arc<Store>, job_id: u64, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        let released = async {
            let mut txn = node.begin().ok()?;
            let job = load(&mut txn, job_id).await.ok()?;
            let now = node.clock().physical_now_ns();
            Some(job.record.coordinator.is_none() || job.record.lease_expires_ns < now)
        }
        .await;
        if released == Some(true) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `ALTER VIRTUAL CLUSTER name RESUME REPLICATION`.
pub async fn resume(node: &Arc<Store>, name: &str, job_id: u64) -> SqlResult<()> {
    let mut txn = node.begin()?;
    let mut job = load(&mut txn, job_id).await?;
    if !job.is_active() {
        return Err(not_active(name, &job));
    }
    job.record.status = status::RUNNING.into();
    job.record.error = None;
    job.record.lease_expires_ns = 0;
    job.record.coordinator = None;
    job.progress.last_error = None;
    if job.progress.status == repl_status::ERROR || job.progress.status == repl_status::PAUSED {
        job.progress.status = if job.progress.replicated_time.is_zero() {
            repl_status::INITIALIZING
        } else {
            repl_status::REPLICATING
        }
        .into();
    }
    job.record.running_status = Some(job.progress.status.clone());
    job.put(&mut txn);
    txn.commit().await?;
    Ok(())
}

/// `ALTER VIRTUAL CLUSTER name COMPLETE REPLICATION TO ...`: records the cutover time (`None`:
/// the latest replicated time) and lets the job carry it out. Returns the cutover time.
pub async fn request_cutover(
    node: &Arc<Store>,
    name: &str,
    job_id: u64,
    to: Option<Timestamp>,
) -> SqlResult<Timestamp> {
    let mut txn = node.begin()?;
    let mut job = load(&mut txn, job_id).await?;
    if !job.is_active() {
        return Err(not_active(name, &job));
    }
    if job.progress.status == repl_status::CUTTING_OVER {
        return Err(SqlError::new(
            code::OBJECT_IN_USE,
            format!(
                "virtual cluster {name:?} is already being cut over to {}",
                job.progress.cutover_time.unwrap_or_default()
            ),
        )
        .with_hint(
            "SHOW VIRTUAL CLUSTER ... WITH REPLICATION STATUS shows when the cutover is done",
        ));
    }
    let t = match to {
        Some(t) => t,
        None if job.progress.replicated_time.is_zero() => {
            return Err(SqlError::new(
                code::OBJECT_IN_USE,
                format!("virtual cluster {name:?} has not replicated anything yet (the initial scan is still running)"),
            )
            .with_hint("wait until SHOW VIRTUAL CLUSTER ... WITH REPLICATION STATUS shows a replicated_time"));
        }
        None => job.progress.replicated_time,
    };
    let earliest = job.progress.retained_time;
    if t < earliest {
        return Err(SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            format!(
                "cutover time {} ({}) is before the earliest time one can cut over to, the retained time {} ({})",
                t,
                t.to_timestamptz_string(),
                earliest,
                earliest.to_timestamptz_string()
            ),
        )
        .with_hint("choose a time at or after the retained time, or COMPLETE REPLICATION TO LATEST"));
    }
    job.progress.cutover_time = Some(t);
    job.progress.status = repl_status::PENDING_CUTOVER.into();
    job.record.running_status = Some(format!(
        "waiting for the replicated time to reach the cutover time {t}"
    ));
    if job.record.status == status::PAUSED {
        job.record.status = status::RUNNING.into();
        job.record.lease_expires_ns = 0;
        job.record.coordinator = None;
        job.record.error = None;
    }
    job.put(&mut txn);
    txn.commit().await?;
    Ok(t)
}

/// Cancels the job (before its virtual cluster is dropped) and deletes its secret, every
/// version of it; returns the job and the secret it had (to complete the source's stream).
pub async fn cancel(
    node: &Arc<Store>,
    job_id: u64,
) -> SqlResult<Option<(IngestionJob, Option<JobSecret>)>> {
    let mut txn = node.begin()?;
    let mut job = load(&mut txn, job_id).await?;
    if !job.is_active() {
        secrets::purge_or_log(node, job_id).await;
        return Ok(None);
    }
    let secret = secrets::get(&mut txn, job_id).await?;
    secrets::remove(&mut txn, job_id);
    job.record.status = status::CANCELED.into();
    job.record.finished = Some(jobs::now_text());
    job.record.running_status = None;
    pts::release(&mut txn, job.progress.pts_id);
    // A processor that has not heard of the cancel yet must not write any more.
    tenant::ingest_fence::close(&mut txn, TenantId(job.details.dest_tenant_id));
    job.put(&mut txn);
    txn.commit().await?;
    secrets::purge_or_log(node, job_id).await;
    Ok(Some((job, secret)))
}

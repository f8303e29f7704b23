//! The source side of a replication stream: starting it (a producer job and a protected
//! timestamp), planning partitions, heartbeats, completion and expiry. The partition streams
//! themselves are served by [`SourceService`] (`partition.rs`).

mod partition;

pub use partition::SourceService;

use crate::frontier::KeySpan;
use crate::secrets::{self, JobSecret};
use crate::spec::{Partition, StreamHandle, StreamSpec, StreamStatus, StreamToken};
use ::sql::error::{SqlError, SqlResult, code};
use ::sql::jobs::{self, JobRecord, status};
use hlc::Timestamp;
use kv::Store;
use kv::protectedts as pts;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use storage::{Engine, ExportMode};
use tenant::{DataState, TenantId, TenantKv, registry};

/// The producer job's type as `SHOW JOBS` prints it.
pub const JOB_TYPE: &str = "REPLICATION STREAM PRODUCER";
/// How long checking that a source node is alive may take.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(2);

/// What a producer job remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerDetails {
    pub tenant_id: u64,
    pub tenant_name: String,
    pub start_time: Timestamp,
    pub pts_id: u64,
    pub expiration_window_ns: u64,
}

/// Where a producer job is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProducerProgress {
    /// Wall-clock ns after which the stream expires without a heartbeat.
    pub expiration_ns: u64,
    pub protected_ts: Timestamp,
}

fn decode<T: serde::de::DeserializeOwned>(job: &JobRecord, text: &str) -> SqlResult<T> {
    serde_json::from_str(text)
        .map_err(|e| SqlError::internal(format!("job {}: corrupt record: {e}", job.id)))
}

fn encode<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("job state always serializes")
}

async fn setting(node: &Arc<Store>, name: &str) -> SqlResult<String> {
    let mut txn = TenantKv::new(node.clone(), TenantId::SYSTEM).begin()?;
    ::sql::catalog::get_setting(&mut txn, name).await
}

/// A duration cluster setting of the system virtual cluster.
pub(crate) async fn duration_setting(node: &Arc<Store>, name: &str) -> SqlResult<Duration> {
    let text = setting(node, name).await?;
    ::sql::settings::parse_duration(&text)
        .ok_or_else(|| SqlError::internal(format!("cluster setting {name}: bad duration {text:?}")))
}

/// A byte-size cluster setting of the system virtual cluster.
pub(crate) async fn byte_size_setting(node: &Arc<Store>, name: &str) -> SqlResult<u64> {
    let text = setting(node, name).await?;
    ::sql::settings::parse_byte_size(&text)
        .ok_or_else(|| SqlError::internal(format!("cluster setting {name}: bad size {text:?}")))
}

/// Starts a stream of the virtual cluster `tenant_name`: checks it can be replicated,
/// records a producer job and a protected timestamp at the start time.
pub async fn start_stream(node: &Arc<Store>, tenant_name: &str) -> SqlResult<StreamHandle> {
    if setting(node, "kv.rangefeed.enabled").await? != "true" {
        return Err(SqlError::new(
            code::OBJECT_NOT_IN_PREREQUISITE_STATE,
            "kv.rangefeed.enabled is false on the primary cluster, so it cannot serve replication streams",
        )
        .with_hint("on the primary's system virtual cluster run SET CLUSTER SETTING kv.rangefeed.enabled = true (the replication-source profile sets it)"));
    }
    let window = duration_setting(node, "physical_replication.producer.expiration_window").await?;
    let mut txn = node.begin()?;
    let Some(tenant) = registry::get_by_name(&mut txn, tenant_name).await? else {
        return Err(SqlError::new(
            code::UNDEFINED_OBJECT,
            format!("virtual cluster {tenant_name:?} does not exist on the primary cluster"),
        )
        .with_hint("SHOW VIRTUAL CLUSTERS on the primary lists the names"));
    };
    if tenant.id.is_system() {
        return Err(SqlError::new(
            code::FEATURE_NOT_SUPPORTED,
            "the system virtual cluster cannot be replicated; replicate an application virtual cluster",
        ));
    }
    if tenant.data_state != DataState::Ready {
        return Err(SqlError::new(
            code::OBJECT_IN_USE,
            format!(
                "virtual cluster {tenant_name:?} is not ready on the primary (data_state {})",
                tenant.data_state
            ),
        ));
    }
    let start_time = node.now();
    let id = jobs::next_id(&mut txn).await?;
    let pts_id = pts::protect(&mut txn, &tenant.id.span(), start_time, id).await?;
    let token = StreamToken::random();
    secrets::put(
        &mut txn,
        id,
        &JobSecret {
            password: None,
            token: token.clone(),
        },
    );
    let details = ProducerDetails {
        tenant_id: tenant.id.0,
        tenant_name: tenant.name.clone(),
        start_time,
        pts_id,
        expiration_window_ns: window.as_nanos() as u64,
    };
    let progress = ProducerProgress {
        expiration_ns: start_time.wall_time_ns + details.expiration_window_ns,
        protected_ts: start_time,
    };
    jobs::put(
        &mut txn,
        &JobRecord {
            id,
            job_type: JOB_TYPE.into(),
            description: format!("stream replication of virtual cluster {}", tenant.name),
            status: status::RUNNING.into(),
            running_status: Some(format!(
                "protecting history since {}",
                start_time.to_timestamptz_string()
            )),
            created: jobs::now_text(),
            finished: None,
            error: None,
            coordinator: None,
            lease_expires_ns: 0,
            details: encode(&details),
            progress: encode(&progress),
        },
    );
    txn.commit().await?;
    tracing::info!(stream_id = id, tenant = %tenant.name, %start_time, "started a replication stream");
    Ok(StreamHandle {
        stream_id: id,
        token,
        start_time,
        source_tenant_id: tenant.id.0,
        source_tenant_name: tenant.name,
    })
}

/// The producer job `stream_id` and its details; an error names what is wrong.
async fn load(
    txn: &mut kv::Txn,
    stream_id: u64,
) -> SqlResult<(JobRecord, ProducerDetails, ProducerProgress)> {
    let job = jobs::get(txn, stream_id)
        .await?
        .filter(|j| j.job_type == JOB_TYPE)
        .ok_or_else(|| {
            SqlError::new(
                code::UNDEFINED_OBJECT,
                format!("replication stream {stream_id} does not exist"),
            )
        })?;
    let details: ProducerDetails = decode(&job, &job.details)?;
    let progress: ProducerProgress = decode(&job, &job.progress)?;
    Ok((job, details, progress))
}

/// Checks a partition stream request's credentials; returns the stream's details.
pub async fn authorize(
    node: &Arc<Store>,
    stream_id: u64,
    token: &str,
) -> SqlResult<ProducerDetails> {
    let mut txn = node.begin()?;
    let (job, details, progress) = load(&mut txn, stream_id).await?;
    // An ended stream's secret is gone: it is refused for what it is, below.
    let secret = secrets::get(&mut txn, stream_id).await?;
    if !job.is_terminal() && !secret.is_some_and(|s| s.token.matches(token)) {
        return Err(SqlError::privilege(format!(
            "wrong token for replication stream {stream_id}"
        )));
    }
    if job.status != status::RUNNING {
        return Err(SqlError::new(
            code::OBJECT_IN_USE,
            format!(
                "replication stream {stream_id} is {}{}",
                job.status,
                job.error.map(|e| format!(": {e}")).unwrap_or_default()
            ),
        ));
    }
    if node.now().wall_time_ns > progress.expiration_ns {
        return Err(SqlError::new(
            code::OBJECT_IN_USE,
            format!("replication stream {stream_id} has expired"),
        )
        .with_hint(
            "drop the standby's virtual cluster and create it anew; a longer physical_replication.producer.expiration_window tolerates longer pauses",
        ));
    }
    Ok(details)
}

/// Split points of `span` so that each of `n` parts holds about as many keys.
fn split_span(node: &Store, span: &KeySpan, n: usize) -> SqlResult<Vec<KeySpan>> {
    if n <= 1 {
        return Ok(vec![span.clone()]);
    }
    // One pass over the live keys, keeping every `stride`-th (the stride doubles whenever the
    // sample grows too large, so memory stays bounded on big keyspaces).
    const SAMPLE_MAX: usize = 1 << 16;
    let mut sample: Vec<Vec<u8>> = Vec::new();
    let mut stride = 1usize;
    let iter = node
        .engine()
        .export(
            &span.to_storage(),
            Timestamp::ZERO,
            node.closed_ts(),
            ExportMode::Latest,
        )
        .map_err(|e| SqlError::internal(e.to_string()))?;
    for (seen, v) in iter.enumerate() {
        let v = v.map_err(|e| SqlError::internal(e.to_string()))?;
        if seen.is_multiple_of(stride) {
            sample.push(v.key);
            if sample.len() >= SAMPLE_MAX {
                sample = sample.into_iter().step_by(2).collect();
                stride *= 2;
            }
        }
    }
    let mut bounds = vec![span.start.clone()];
    for i in 1..n {
        if let Some(k) = sample.get(i * sample.len() / n)
            && k > bounds.last().expect("non-empty")
        {
            bounds.push(k.clone());
        }
    }
    bounds.push(span.end.clone());
    let mut parts: Vec<KeySpan> = bounds
        .windows(2)
        .map(|w| KeySpan::new(w[0].clone(), w[1].clone()))
        .collect();
    // Few keys: split what is left of the keyspace evenly among the remaining nodes by
    // appending single-byte boundaries, so that every node still serves a partition.
    while parts.len() < n {
        let last = parts.pop().expect("non-empty");
        let mut mid = last.start.clone();
        mid.push(0x80);
        if mid >= last.end {
            parts.push(last);
            break;
        }
        parts.push(KeySpan::new(last.start.clone(), mid.clone()));
        parts.push(KeySpan::new(mid, last.end));
    }
    Ok(parts)
}

/// The stream's partitions over the live source nodes: the virtual cluster's keyspace split
/// into one part per node, each served by that node.
pub async fn plan(node: &Arc<Store>, stream_id: u64) -> SqlResult<StreamSpec> {
    let mut txn = node.begin()?;
    let (job, details, _) = load(&mut txn, stream_id).await?;
    if job.status != status::RUNNING {
        return Err(SqlError::new(
            code::OBJECT_IN_USE,
            format!("replication stream {stream_id} is {}", job.status),
        ));
    }
    let tenant = TenantId(details.tenant_id);
    let tspan = tenant.span();
    let tenant_span = KeySpan::new(
        tspan.start.clone(),
        tspan.end.clone().expect("tenant spans are bounded"),
    );
    let live = node.live_members(LIVENESS_TIMEOUT).await;
    let parts = split_span(node, &tenant_span, live.len().max(1))?;
    let partitions = parts
        .into_iter()
        .zip(live.iter().cycle())
        .enumerate()
        .map(|(i, (span, (id, addr)))| Partition {
            id: i as u32,
            node_id: id.0,
            addr: addr.clone(),
            spans: vec![span],
        })
        .collect();
    Ok(StreamSpec {
        stream_id,
        source_tenant_id: details.tenant_id,
        tenant_span,
        partitions,
    })
}

/// A heartbeat from the standby: moves the protected timestamp forward to `retained` (never
/// back) and extends the expiration.
pub async fn heartbeat(
    node: &Arc<Store>,
    stream_id: u64,
    retained: Timestamp,
) -> SqlResult<StreamStatus> {
    if retained == Timestamp::MAX {
        return Err(SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            "a heartbeat cannot protect the maximum timestamp",
        ));
    }
    let mut txn = node.begin()?;
    let (mut job, details, mut progress) = load(&mut txn, stream_id).await?;
    if job.status != status::RUNNING {
        return Ok(StreamStatus {
            status: format!(
                "{}{}",
                job.status,
                job.error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
            protected_ts: progress.protected_ts,
        });
    }
    let now = node.now();
    if now.wall_time_ns > progress.expiration_ns {
        expire(&mut txn, &mut job, &details).await?;
        txn.commit().await?;
        secrets::purge_or_log(node, stream_id).await;
        return Ok(StreamStatus {
            status: "expired".into(),
            protected_ts: progress.protected_ts,
        });
    }
    if let Some(ts) = pts::advance(&mut txn, details.pts_id, retained).await? {
        progress.protected_ts = ts;
    }
    progress.expiration_ns = now.wall_time_ns + details.expiration_window_ns;
    job.progress = encode(&progress);
    job.running_status = Some(format!(
        "protecting history since {}",
        progress.protected_ts.to_timestamptz_string()
    ));
    jobs::put(&mut txn, &job);
    txn.commit().await?;
    Ok(StreamStatus {
        status: "active".into(),
        protected_ts: progress.protected_ts,
    })
}

async fn expire(
    txn: &mut kv::Txn,
    job: &mut JobRecord,
    details: &ProducerDetails,
) -> SqlResult<()> {
    pts::release(txn, details.pts_id);
    secrets::remove(txn, job.id);
    job.status = status::FAILED.into();
    job.finished = Some(jobs::now_text());
    job.running_status = None;
    job.error = Some(format!(
        "replication stream expired: no heartbeat from the standby for {}s; its protected timestamp was released. To replicate again, drop the standby's virtual cluster and create it anew; a longer physical_replication.producer.expiration_window tolerates longer pauses",
        details.expiration_window_ns / 1_000_000_000
    ));
    jobs::put(txn, job);
    tracing::warn!(
        stream_id = job.id,
        "replication stream expired; released its protected timestamp"
    );
    Ok(())
}

/// Ends the stream: the producer job finishes and its protection is released.
pub async fn complete(node: &Arc<Store>, stream_id: u64, successful: bool) -> SqlResult<()> {
    let mut txn = node.begin()?;
    let (mut job, details, _) = load(&mut txn, stream_id).await?;
    if job.is_terminal() {
        return Ok(());
    }
    pts::release(&mut txn, details.pts_id);
    secrets::remove(&mut txn, stream_id);
    job.status = if successful {
        status::SUCCEEDED
    } else {
        status::CANCELED
    }
    .into();
    job.running_status = None;
    job.finished = Some(jobs::now_text());
    jobs::put(&mut txn, &job);
    txn.commit().await?;
    secrets::purge_or_log(node, stream_id).await;
    tracing::info!(stream_id, successful, "replication stream completed");
    Ok(())
}

/// Expires every running producer job whose standby stopped heart-beating (run periodically
/// by every node; transactions make concurrent sweeps harmless).
pub async fn sweep_expired(node: &Arc<Store>) -> SqlResult<()> {
    let mut txn = node.begin()?;
    let candidates: Vec<u64> = jobs::list(&mut txn)
        .await?
        .into_iter()
        .filter(|j| j.job_type == JOB_TYPE && j.status == status::RUNNING)
        .map(|j| j.id)
        .collect();
    for stream_id in candidates {
        // Re-read inside the writing transaction, so that a heartbeat or a completion that
        // committed since the scan makes it conflict or see the stream alive.
        let mut txn = node.begin()?;
        let expired = match load(&mut txn, stream_id).await {
            Ok((mut job, details, progress))
                if job.status == status::RUNNING
                    && node.now().wall_time_ns > progress.expiration_ns =>
            {
                expire(&mut txn, &mut job, &details).await?;
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(stream_id, error = %e, "cannot read a replication stream's job; skipping it");
                false
            }
        };
        if expired {
            txn.commit().await?;
            secrets::purge_or_log(node, stream_id).await;
        }
    }
    Ok(())
}

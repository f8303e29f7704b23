//! Ingestion processors: on a standby node, one partition's stream from a source node,
//! rewritten into the standby virtual cluster's keyspace and written with the original
//! timestamps through the Raft log. Spans are reported back to the coordinator only once what
//! they cover is durable.

use crate::client::{SourceConn, subscribe};
use crate::frontier::SpanTs;
use crate::metrics::ReplicationMetrics;
use crate::spec::{decode_batch, span_ts_from_pb, span_ts_to_pb, ts_to_pb};
use hlc::Timestamp;
use kv::{NodeSlot, Store};
use proto::replication as pb;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use storage::MvccVersion;
use tenant::{IngestionEpoch, TenantId};
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status};

/// Largest flush (one Raft entry), in bytes of keys and values.
const FLUSH_BYTES: usize = 2 << 20;

/// Testing only: when set, each standby process drops the first replicated version newer than
/// its stream's start time, so that the roachtests can show their fingerprint check fails.
pub const SKIP_ONE_EVENT_ENV: &str = "ROACH_TESTING_SKIP_ONE_EVENT";

/// Whether to drop this version (see [`SKIP_ONE_EVENT_ENV`]); true at most once per process.
fn testing_skip(ts: Timestamp, start: Timestamp) -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    static SKIPPED: AtomicBool = AtomicBool::new(false);
    ts > start
        && *ENABLED.get_or_init(|| std::env::var_os(SKIP_ONE_EVENT_ENV).is_some())
        && !SKIPPED.swap(true, Ordering::SeqCst)
}
/// How long stopping a job's processors may take before giving up on one.
const STOP_WAIT: Duration = Duration::from_secs(30);
/// The setting that keeps a reserve of free disk space on every standby store.
const MIN_FREE_SETTING: &str = "physical_replication.consumer.min_free_disk_bytes";
/// How often a processor re-reads [`MIN_FREE_SETTING`].
const MIN_FREE_REFRESH: Duration = Duration::from_secs(10);

/// Why a processor stopped.
#[derive(Debug)]
enum ProcError {
    /// Retryable anywhere (the source, the network, a bad batch).
    Failed(String),
    /// This node's store is short of disk space: retrying elsewhere does not help (every
    /// standby node holds every replica), freeing space does.
    DiskFull(String),
    /// The processor's epoch is over (the job was cut over, canceled, or taken over by
    /// another coordinator): terminal for this processor, which never retries its writes.
    Fenced(String),
}

impl From<String> for ProcError {
    fn from(e: String) -> Self {
        ProcError::Failed(e)
    }
}

impl ProcError {
    fn into_status(self) -> Status {
        match self {
            ProcError::Failed(e) => Status::aborted(e),
            ProcError::DiskFull(e) => Status::resource_exhausted(e),
            ProcError::Fenced(e) => Status::failed_precondition(e),
        }
    }
}

/// One partition's work, sent by the coordinator to the standby node that does it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assignment {
    pub job_id: u64,
    pub partition_id: u32,
    pub source: SourceConn,
    pub source_addr: String,
    pub stream_id: u64,
    pub token: crate::spec::StreamToken,
    pub source_tenant_id: u64,
    pub dest_tenant_id: u64,
    /// The standby virtual cluster's name (the metrics label).
    pub dest_name: String,
    /// The ingestion epoch of the coordinator that made this assignment: every ingest carries
    /// it, and is refused at apply once the virtual cluster's fence has moved on.
    pub epoch: u64,
    pub frontier: Vec<SpanTs>,
    pub initial_scan_ts: Timestamp,
    pub standby_node: u64,
}

type Running = Arc<Mutex<HashMap<u64, Vec<(watch::Sender<bool>, tokio::task::JoinHandle<()>)>>>>;

/// The `Ingestion` gRPC service of a standby node.
#[derive(Debug, Clone)]
pub struct IngestionService {
    slot: NodeSlot,
    metrics: ReplicationMetrics,
    running: Running,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl IngestionService {
    pub fn new(slot: NodeSlot, metrics: ReplicationMetrics) -> Self {
        IngestionService {
            slot,
            metrics,
            running: Arc::default(),
        }
    }

    /// The tonic server.
    pub fn server(self) -> pb::ingestion_server::IngestionServer<Self> {
        pb::ingestion_server::IngestionServer::new(self).max_decoding_message_size(64 << 20)
    }

    /// Stops this node's processors of `job_id`; returns once none is writing any more.
    pub async fn stop_job(&self, job_id: u64) {
        let procs = lock(&self.running).remove(&job_id).unwrap_or_default();
        for (cancel, handle) in procs {
            let _ = cancel.send(true);
            if tokio::time::timeout(STOP_WAIT, handle).await.is_err() {
                tracing::warn!(job_id, "an ingestion processor did not stop in time");
            }
        }
    }

    /// Starts a processor for `a`; its durable progress arrives on the returned channel.
    pub fn start(
        &self,
        a: Assignment,
    ) -> Result<mpsc::Receiver<Result<pb::IngestProgress, Status>>, Status> {
        let node =
            self.slot.get().cloned().ok_or_else(|| {
                Status::unavailable("node is not part of an initialized cluster yet")
            })?;
        let (tx, rx) = mpsc::channel(64);
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let metrics = self.metrics.clone();
        let job_id = a.job_id;
        let handle = tokio::spawn(async move {
            let label = a.dest_name.clone();
            let part = a.partition_id;
            let mut p = Processor {
                fence: IngestionEpoch {
                    job_id: a.job_id,
                    epoch: a.epoch,
                }
                .fence(TenantId(a.dest_tenant_id)),
                node,
                metrics,
                label,
                src_prefix: TenantId(a.source_tenant_id).prefix(),
                dest_prefix: TenantId(a.dest_tenant_id).prefix(),
                buf: Vec::new(),
                buf_bytes: 0,
                oldest: None,
                min_free: None,
            };
            if let Err(e) = p.run(a, &tx, cancel_rx).await {
                let status = e.into_status();
                tracing::warn!(job_id, partition = part, error = %status.message(), "ingestion processor failed");
                let _ = tx.send(Err(status)).await;
            }
        });
        let mut running = lock(&self.running);
        let procs = running.entry(job_id).or_default();
        procs.retain(|(_, h)| !h.is_finished());
        procs.push((cancel_tx, handle));
        Ok(rx)
    }
}

struct Processor {
    /// What every ingest of this processor carries (its job and epoch).
    fence: kv::IngestFence,
    node: Arc<Store>,
    metrics: ReplicationMetrics,
    label: String,
    src_prefix: Vec<u8>,
    dest_prefix: Vec<u8>,
    buf: Vec<MvccVersion>,
    buf_bytes: usize,
    oldest: Option<Timestamp>,
    /// [`MIN_FREE_SETTING`] and when it was read.
    min_free: Option<(u64, Instant)>,
}

fn age_seconds(node: &Store, ts: Timestamp) -> f64 {
    node.clock()
        .physical_now_ns()
        .saturating_sub(ts.wall_time_ns) as f64
        / 1e9
}

/// Mebibytes, for messages.
fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
}

impl Processor {
    /// The reserve of free disk space, re-read from the cluster setting every
    /// [`MIN_FREE_REFRESH`]; its default when the setting cannot be read, so that a failed
    /// read never turns the check off.
    async fn min_free_bytes(&mut self) -> u64 {
        if let Some((v, at)) = self.min_free
            && at.elapsed() < MIN_FREE_REFRESH
        {
            return v;
        }
        let v = match crate::producer::byte_size_setting(&self.node, MIN_FREE_SETTING).await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read {MIN_FREE_SETTING}; using its default");
                ::sql::settings::lookup(MIN_FREE_SETTING)
                    .ok()
                    .and_then(|d| ::sql::settings::parse_byte_size(d.default))
                    .unwrap_or(0)
            }
        };
        self.min_free = Some((v, Instant::now()));
        v
    }

    /// Refuses to write while this node's store has less free space than the reserve.
    async fn check_disk(&mut self) -> Result<(), ProcError> {
        let min_free = self.min_free_bytes().await;
        if min_free == 0 {
            return Ok(());
        }
        let backend = self.node.engine().backend();
        let space = backend.disk_space().map_err(|e| {
            ProcError::Failed(format!(
                "cannot read the free space of the store at {}: {e}",
                backend.path().display()
            ))
        })?;
        self.metrics
            .store_available_bytes
            .set(space.available_bytes as f64);
        if space.available_bytes < min_free {
            return Err(ProcError::DiskFull(format!(
                "standby node {}'s store at {} is nearly out of disk: {} free of {}, below {MIN_FREE_SETTING} ({}); free disk space (or lower the setting), then RESUME REPLICATION",
                self.node.id().0,
                backend.path().display(),
                mib(space.available_bytes),
                mib(space.total_bytes),
                mib(min_free),
            )));
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ProcError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.check_disk().await?;
        let started = Instant::now();
        let versions = std::mem::take(&mut self.buf);
        let bytes = self.buf_bytes;
        self.buf_bytes = 0;
        let n = versions.len();
        self.node
            .ingest_fenced(self.fence.clone(), versions)
            .await
            .map_err(|e| match e {
                kv::KvError::IngestFenced { .. } => ProcError::Fenced(format!(
                    "ingesting {n} versions: {e} (the job was cut over, canceled or taken over)"
                )),
                e => ProcError::Failed(format!("ingesting {n} versions: {e}")),
            })?;
        let m = &self.metrics;
        let l = [self.label.as_str()];
        m.flushes.with_label_values(&l).inc();
        m.flush_duration_seconds
            .with_label_values(&l)
            .observe(started.elapsed().as_secs_f64());
        m.events_ingested.with_label_values(&l).inc_by(n as u64);
        m.logical_bytes.with_label_values(&l).inc_by(bytes as u64);
        if let Some(oldest) = self.oldest.take() {
            m.commit_latency_seconds
                .with_label_values(&l)
                .observe(age_seconds(&self.node, oldest));
        }
        Ok(())
    }

    fn rekey(&self, key: Vec<u8>) -> Result<Vec<u8>, String> {
        if !key.starts_with(&self.src_prefix) {
            return Err(format!(
                "the source sent a key outside its virtual cluster: {}",
                tenant::pretty_key(&key)
            ));
        }
        let mut k = Vec::with_capacity(key.len());
        k.extend_from_slice(&self.dest_prefix);
        k.extend_from_slice(&key[self.src_prefix.len()..]);
        Ok(k)
    }

    async fn run(
        &mut self,
        a: Assignment,
        tx: &mpsc::Sender<Result<pb::IngestProgress, Status>>,
        mut cancel: watch::Receiver<bool>,
    ) -> Result<(), ProcError> {
        let req = pb::StreamPartitionRequest {
            stream_id: a.stream_id,
            token: a.token.expose().to_string(),
            frontier: a.frontier.iter().map(span_ts_to_pb).collect(),
            initial_scan_ts: Some(ts_to_pb(a.initial_scan_ts)),
            batch_bytes: 0,
            consumer: format!("standby node {} (job {})", a.standby_node, a.job_id),
        };
        let mut stream = tokio::select! {
            s = subscribe(&a.source, &a.source_addr, req) => s.map_err(|e| e.to_string())?,
            _ = cancel.changed() => return Ok(()),
        };
        let l = [self.label.clone()];
        loop {
            let msg = tokio::select! {
                m = stream.message() => m,
                _ = cancel.changed() => return Ok(()),
                _ = tx.closed() => return Ok(()),
            };
            let ev = match msg {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    return Err(format!("source node {} ended the stream", a.source_addr).into());
                }
                Err(s) => {
                    return Err(format!(
                        "stream from source node {}: {}",
                        a.source_addr,
                        s.message()
                    )
                    .into());
                }
            };
            match ev.event {
                Some(pb::stream_event::Event::Batch(b)) => {
                    let versions = decode_batch(&b)
                        .map_err(|e| format!("batch from source node {}: {e}", a.source_addr))?;
                    for (key, ts, value) in versions {
                        if testing_skip(ts, a.initial_scan_ts) {
                            tracing::warn!(%ts, "testing: dropped one replicated version");
                            continue;
                        }
                        self.metrics
                            .admit_latency_seconds
                            .with_label_values(&l)
                            .observe(age_seconds(&self.node, ts));
                        self.buf_bytes += key.len() + value.as_ref().map_or(0, Vec::len);
                        self.oldest = Some(self.oldest.map_or(ts, |o| o.min(ts)));
                        self.buf.push(MvccVersion {
                            key: self.rekey(key)?,
                            ts,
                            value,
                        });
                    }
                    if self.buf_bytes >= FLUSH_BYTES {
                        self.flush().await?;
                    }
                }
                Some(pb::stream_event::Event::Checkpoint(c)) => {
                    self.metrics
                        .checkpoint_events_ingested
                        .with_label_values(&l)
                        .inc();
                    self.flush().await?;
                    let resolved: Vec<SpanTs> =
                        c.resolved.into_iter().map(span_ts_from_pb).collect();
                    let progress = pb::IngestProgress {
                        resolved: resolved.iter().map(span_ts_to_pb).collect(),
                    };
                    if tx.send(Ok(progress)).await.is_err() {
                        return Ok(());
                    }
                }
                None => {}
            }
        }
    }
}

#[tonic::async_trait]
impl pb::ingestion_server::Ingestion for IngestionService {
    type IngestPartitionStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::IngestProgress, Status>>;

    async fn ingest_partition(
        &self,
        request: Request<pb::IngestRequest>,
    ) -> Result<Response<Self::IngestPartitionStream>, Status> {
        let a: Assignment = serde_json::from_slice(&request.into_inner().assignment)
            .map_err(|e| Status::invalid_argument(format!("bad assignment: {e}")))?;
        let rx = self.start(a)?;
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn stop_ingestion(
        &self,
        request: Request<pb::StopIngestionRequest>,
    ) -> Result<Response<pb::StopIngestionResponse>, Status> {
        self.stop_job(request.into_inner().job_id).await;
        Ok(Response::new(pb::StopIngestionResponse {}))
    }
}

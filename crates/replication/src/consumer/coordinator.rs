//! One ingestion job's coordinator, run by the node holding the job's lease.

use super::ingest::Assignment;
use super::{IngestionJob, IngestionService, PlacedPartition, load, repl_status, retained_for};
use crate::client::{PgStreamClient, StreamClient};
use crate::frontier::{Frontier, KeySpan, SpanTs};
use crate::metrics::ReplicationMetrics;
use crate::secrets::JobSecret;
use crate::spec::{StreamSpec, span_ts_from_pb};
use ::sql::jobs::{self, status};
use hlc::Timestamp;
use kv::protectedts as pts;
use kv::{NodeId, Store};
use proto::replication as pb;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenant::{DataState, IngestionEpoch, TenantId, ingest_fence, registry};
use tokio::sync::mpsc;

/// How long a coordinator's lease lasts without renewal.
pub(crate) const LEASE: Duration = Duration::from_secs(6);
/// How often progress is persisted when the setting cannot be read.
const TICK: Duration = Duration::from_millis(200);
/// Retries without progress before the job pauses itself.
const MAX_RETRIES: u32 = 30;
/// Retries before the job pauses itself when a standby store is out of disk space (which
/// retrying does not mend, but a passing spike, such as a compaction, may).
const DISK_FULL_RETRIES: u32 = 3;
/// Versions removed per Raft entry during a cutover's revert.
const REVERT_BATCH: u64 = 20_000;
/// How long finishing the source's stream after a cutover may take.
const COMPLETE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long checking that a standby node is alive may take.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(2);

/// What a coordinator needs of its node.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub node: Arc<Store>,
    pub ingest: IngestionService,
    pub metrics: ReplicationMetrics,
}

enum Outcome {
    /// Paused, canceled, or the lease was lost: stop without touching the job.
    Stop,
    /// The replicated time reached the cutover time.
    Cutover,
}

enum FlowEvent {
    Progress(Vec<SpanTs>),
    Failed(Failure),
}

/// Why a flow failed.
#[derive(Debug, Clone)]
struct Failure {
    message: String,
    /// A standby store is short of disk space (see `ingest::ProcError::DiskFull`).
    disk_full: bool,
    /// A processor's ingest was refused because its epoch is over (see
    /// `ingest::ProcError::Fenced`).
    fenced: bool,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            message,
            disk_full: false,
            fenced: false,
        }
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

impl Failure {
    /// A failure from a processor's gRPC status, prefixed with where it happened.
    fn from_status(prefix: String, s: &tonic::Status) -> Self {
        Failure {
            message: format!("{prefix}: {}", s.message()),
            disk_full: s.code() == tonic::Code::ResourceExhausted,
            fenced: s.code() == tonic::Code::FailedPrecondition,
        }
    }
}

struct Flow {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    nodes: BTreeSet<(NodeId, String)>,
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((250u64 << attempt.min(5)).min(5_000))
}

/// Runs job `job_id` until it stops, pauses, fails over or loses its lease.
pub(crate) async fn run(ctx: Ctx, job_id: u64) {
    let me = ctx.node.id();
    let job = {
        let mut txn = match ctx.node.begin() {
            Ok(t) => t,
            Err(_) => return,
        };
        match load(&mut txn, job_id).await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(job_id, error = %e, "cannot load replication job");
                return;
            }
        }
    };
    let secret = {
        let secret = match ctx.node.begin() {
            Ok(mut txn) => crate::secrets::get(&mut txn, job_id).await,
            Err(e) => Err(e.into()),
        };
        match secret {
            Ok(Some(s)) => s,
            Ok(None) => {
                tracing::warn!(
                    job_id,
                    "the replication job has no secret (it has ended); not running it"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(job_id, error = %e, "cannot read the replication job's secret");
                return;
            }
        }
    };
    let label = job.details.dest_name.clone();
    let running = ctx.metrics.running.with_label_values(&[&label]);
    running.inc();
    tracing::info!(job_id, node_id = me.0, virtual_cluster = %label, "coordinating replication job");
    let client = job.source_client(&secret);
    let mut c = Coordinator {
        ctx: ctx.clone(),
        job_id,
        client,
        frontier: Frontier::from_entries(
            &job.details.source_span(),
            Timestamp::ZERO,
            &job.progress.frontier,
        ),
        job,
        label,
        epoch: None,
        secret,
    };
    c.run().await;
    // Every flow of this coordinator is stopped by now (each ends with stop_flow).
    if let Err(e) = crate::with_retries(|| super::release(&ctx.node, job_id, me.0)).await {
        tracing::debug!(job_id, error = %e, "cannot release the job; its lease expires on its own");
    }
    running.dec();
    tracing::info!(job_id, "replication job coordinator stopped");
}

struct Coordinator {
    ctx: Ctx,
    job_id: u64,
    client: PgStreamClient,
    job: IngestionJob,
    frontier: Frontier,
    label: String,
    /// This coordinator's ingestion epoch: started (the fence advanced) by its first
    /// persist, and again after one of its processors was fenced off.
    epoch: Option<IngestionEpoch>,
    /// The job's password and token (never written back with the job).
    secret: JobSecret,
}

impl Coordinator {
    async fn run(&mut self) {
        let mut attempts = 0u32;
        loop {
            match self.persist(None).await {
                Ok(Some(Outcome::Stop)) => return,
                Ok(Some(Outcome::Cutover)) => return self.cutover().await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(job_id = self.job_id, error = %e, "cannot update the replication job");
                    tokio::time::sleep(backoff(attempts)).await;
                    attempts = (attempts + 1).min(10);
                    continue;
                }
            }
            if self.job.progress.status == repl_status::CUTTING_OVER {
                return self.cutover().await;
            }
            let before = self.frontier.min();
            let result = self.replicate_once().await;
            match result {
                Ok(Outcome::Stop) => return,
                Ok(Outcome::Cutover) => return self.cutover().await,
                Err(f) => {
                    if f.fenced {
                        // Another coordinator advanced the epoch, or the fence closed: the
                        // next persist stops this one, or starts a new epoch if the job is
                        // still this coordinator's.
                        self.epoch = None;
                    }
                    self.ctx
                        .metrics
                        .replans
                        .with_label_values(&[&self.label])
                        .inc();
                    if self.frontier.min() > before {
                        attempts = 0;
                    }
                    attempts += 1;
                    let e = f.message;
                    tracing::warn!(job_id = self.job_id, attempt = attempts, error = %e, "replication flow failed; retrying over the live nodes");
                    let pause = if f.disk_full && attempts > DISK_FULL_RETRIES {
                        Some(
                            "paused: a standby node's store is nearly out of disk (the error says which); free disk space, then RESUME REPLICATION"
                                .to_string(),
                        )
                    } else if attempts > MAX_RETRIES {
                        Some(format!(
                            "paused after {MAX_RETRIES} retries without progress; RESUME REPLICATION continues it"
                        ))
                    } else {
                        None
                    };
                    let pausing = pause.is_some();
                    let persisted = self.persist(Some((e.clone(), pause))).await;
                    match persisted {
                        Ok(Some(Outcome::Stop)) => return,
                        Ok(Some(Outcome::Cutover)) => return self.cutover().await,
                        Ok(None) => {}
                        Err(ref pe) => {
                            tracing::warn!(job_id = self.job_id, error = %pe, "cannot record the error in the job; retrying")
                        }
                    }
                    // Only a recorded pause stops the coordinator; otherwise the next failure
                    // tries to pause again.
                    if pausing && persisted.is_ok() {
                        tracing::error!(job_id = self.job_id, error = %e, attempts, "replication job paused; RESUME REPLICATION continues it");
                        return;
                    }
                    tokio::time::sleep(backoff(attempts)).await;
                }
            }
        }
    }

    /// Plans, runs the flow until it fails or the job should stop, then stops the flow.
    async fn replicate_once(&mut self) -> Result<Outcome, Failure> {
        let spec = self
            .client
            .plan(self.job.details.stream_id)
            .await
            .map_err(|e| e.to_string())?;
        self.client
            .set_fallback_addrs(spec.partitions.iter().map(|p| p.addr.clone()).collect());
        let Some(epoch) = self.epoch else {
            return Err(format!(
                "the ingestion fence of virtual cluster {:?} is closed or held by another job",
                self.job.details.dest_name
            )
            .into());
        };
        let standby = self.ctx.node.live_members(LIVENESS_TIMEOUT).await;
        if standby.is_empty() {
            return Err("no live standby node".into());
        }
        let (tx, mut rx) = mpsc::channel(256);
        let flow = self.start_flow(&spec, &standby, epoch.epoch, tx);
        let result = self.drive(&mut rx).await;
        self.stop_flow(flow).await;
        result
    }

    fn start_flow(
        &mut self,
        spec: &StreamSpec,
        standby: &[(NodeId, String)],
        epoch: u64,
        tx: mpsc::Sender<FlowEvent>,
    ) -> Flow {
        let d = &self.job.details;
        let mut flow = Flow {
            tasks: Vec::new(),
            nodes: BTreeSet::new(),
        };
        let mut placed = Vec::new();
        // Start the assignment rotation at a per-job offset so that the coordinator's own
        // node does not always take partition 0.
        for (i, part) in spec.partitions.iter().enumerate() {
            let (dest_id, dest_addr) = standby[i % standby.len()].clone();
            let frontier: Vec<SpanTs> = part
                .spans
                .iter()
                .flat_map(|s| self.frontier.restrict(s))
                .collect();
            let a = Assignment {
                job_id: self.job_id,
                partition_id: part.id,
                source: d.source.clone(),
                source_addr: part.addr.clone(),
                stream_id: d.stream_id,
                token: self.secret.token.clone(),
                source_tenant_id: d.source_tenant_id,
                dest_tenant_id: d.dest_tenant_id,
                dest_name: d.dest_name.clone(),
                epoch,
                frontier,
                initial_scan_ts: d.start_time,
                standby_node: dest_id.0,
            };
            placed.push(PlacedPartition {
                id: part.id,
                source_node: part.node_id,
                source_addr: part.addr.clone(),
                standby_node: dest_id.0,
            });
            flow.nodes.insert((dest_id, dest_addr.clone()));
            let tx = tx.clone();
            let ctx = self.ctx.clone();
            flow.tasks.push(tokio::spawn(async move {
                let ev = run_partition(&ctx, dest_id, &dest_addr, a, &tx).await;
                let _ = tx.send(FlowEvent::Failed(ev)).await;
            }));
        }
        self.job.progress.partitions = placed;
        flow
    }

    async fn stop_flow(&self, flow: Flow) {
        for t in &flow.tasks {
            t.abort();
        }
        // Wait until no standby node still writes for this job (a dead node cannot).
        let me = self.ctx.node.id();
        let stops = flow.nodes.into_iter().map(|(id, addr)| {
            let ctx = self.ctx.clone();
            let job_id = self.job_id;
            async move {
                if id == me {
                    ctx.ingest.stop_job(job_id).await;
                    return;
                }
                let Ok(ch) = ctx.node.channel(&addr) else {
                    return;
                };
                let mut c = pb::ingestion_client::IngestionClient::new(ch);
                let _ = tokio::time::timeout(
                    Duration::from_secs(35),
                    c.stop_ingestion(pb::StopIngestionRequest { job_id }),
                )
                .await;
            }
        });
        futures::future::join_all(stops).await;
    }

    /// Merges progress, persists, heartbeats, watches for pause/cutover, until the flow fails.
    async fn drive(&mut self, rx: &mut mpsc::Receiver<FlowEvent>) -> Result<Outcome, Failure> {
        let mut tick = tokio::time::interval(
            crate::producer::duration_setting(
                &self.ctx.node,
                "physical_replication.consumer.minimum_flush_interval",
            )
            .await
            .unwrap_or(TICK)
            .max(Duration::from_millis(50)),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let hb_every = super::runner::heartbeat_interval(&self.ctx.node).await;
        // One connection to the source for this flow's heartbeats, kept between them.
        let hb_client = std::sync::Arc::new(self.job.source_client(&self.secret));
        let mut last_hb = Instant::now() - hb_every;
        let mut hb: Option<tokio::task::JoinHandle<Result<crate::spec::StreamStatus, String>>> =
            None;
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(FlowEvent::Progress(resolved)) => {
                        for r in resolved {
                            self.frontier.forward(&r.span, r.ts);
                        }
                    }
                    Some(FlowEvent::Failed(e)) => return Err(e),
                    None => return Err("every partition ended".into()),
                },
                _ = tick.tick() => {
                    match self.persist(None).await {
                        Ok(Some(o)) => return Ok(o),
                        Ok(None) => {}
                        Err(e) => tracing::debug!(job_id = self.job_id, error = %e, "persisting progress failed; retrying"),
                    }
                    if let Some(h) = &hb && h.is_finished() {
                        let h = hb.take().expect("checked");
                        match h.await {
                            Ok(Ok(st)) if !st.is_active() => {
                                return Err(format!("the source's replication stream {} is {}", self.job.details.stream_id, st.status).into());
                            }
                            Ok(Err(e)) => tracing::debug!(job_id = self.job_id, error = %e, "heartbeat failed"),
                            _ => {}
                        }
                    }
                    if hb.is_none() && last_hb.elapsed() >= hb_every {
                        last_hb = Instant::now();
                        let retained = self.job.progress.retained_time;
                        let stream_id = self.job.details.stream_id;
                        let client = hb_client.clone();
                        hb = Some(tokio::spawn(async move {
                            client.heartbeat(stream_id, retained).await.map_err(|e| e.to_string())
                        }));
                    }
                }
            }
        }
    }

    /// Reads the job, applies this coordinator's state (frontier, times, an error), renews the
    /// lease and writes it back. Returns what the job asks for, if not to keep going.
    /// `error` is the failure to record and, when the job should pause, its running status.
    async fn persist(
        &mut self,
        error: Option<(String, Option<String>)>,
    ) -> Result<Option<Outcome>, String> {
        let node = &self.ctx.node;
        let me = node.id().0;
        let mut txn = node.begin().map_err(|e| e.to_string())?;
        let mut job = load(&mut txn, self.job_id).await.map_err(|e| e.message)?;
        let now = node.clock().physical_now_ns();
        if job.record.status != status::RUNNING
            || (job.record.coordinator.is_some_and(|c| c != me)
                && job.record.lease_expires_ns > now)
        {
            return Ok(Some(Outcome::Stop));
        }
        let p = &mut job.progress;
        let min = self.frontier.min();
        let moved = min > p.replicated_time;
        if moved {
            p.replicated_time = min;
            p.retained_time = retained_for(&job.details, min).max(p.retained_time);
        }
        p.frontier = self.frontier.entries();
        p.partitions = self.job.progress.partitions.clone();
        match &error {
            Some((e, pause)) => {
                p.last_error = Some(e.clone());
                // A requested cutover stays shown as pending; the error is in the job.
                if p.cutover_time.is_none() {
                    p.status = repl_status::ERROR.into();
                }
                job.record.error = Some(e.clone());
                job.record.running_status = Some(format!("retrying after an error: {e}"));
                if let Some(why) = pause {
                    job.record.status = status::PAUSED.into();
                    job.record.running_status = Some(why.clone());
                }
            }
            None => {
                if moved || p.status == repl_status::ERROR {
                    if p.status == repl_status::INITIALIZING || p.status == repl_status::ERROR {
                        p.status = if p.replicated_time.is_zero() {
                            repl_status::INITIALIZING
                        } else {
                            repl_status::REPLICATING
                        }
                        .into();
                    }
                    if moved {
                        p.last_error = None;
                        job.record.error = None;
                    }
                }
                if p.cutover_time.is_none() && p.status != repl_status::CUTTING_OVER {
                    job.record.running_status = Some(self.describe_plan(p));
                }
            }
        }
        let cutover = p.cutover_time;
        job.record.coordinator = Some(me);
        job.record.lease_expires_ns = now + LEASE.as_nanos() as u64;
        // Every tick writes the job: that renews the lease, and the frontier entries go with it
        // (they let a resumed job restart each span from its own checkpoint).
        pts::advance(&mut txn, job.progress.pts_id, job.progress.retained_time)
            .await
            .map_err(|e| e.to_string())?;
        // A coordinator's first persist starts its epoch: processors of earlier coordinators
        // (a partitioned node that still believes it holds the job) are fenced off.
        let new_epoch = if self.epoch.is_none() && job.progress.status != repl_status::CUTTING_OVER
        {
            ingest_fence::advance(&mut txn, TenantId(job.details.dest_tenant_id), self.job_id)
                .await
                .map_err(|e| e.to_string())?
        } else {
            None
        };
        job.put(&mut txn);
        txn.commit().await.map_err(|e| e.to_string())?;
        if new_epoch.is_some() {
            tracing::info!(
                job_id = self.job_id,
                epoch = new_epoch.map(|e| e.epoch),
                "started an ingestion epoch"
            );
            self.epoch = new_epoch;
        }
        self.update_metrics(&job);
        self.job = job;
        if let Some(t) = cutover
            && self.frontier.min() >= t
        {
            return Ok(Some(Outcome::Cutover));
        }
        Ok(None)
    }

    fn describe_plan(&self, p: &super::IngestionProgress) -> String {
        let parts: Vec<String> = p
            .partitions
            .iter()
            .map(|pp| format!("source n{}→standby n{}", pp.source_node, pp.standby_node))
            .collect();
        format!(
            "{}: {} partitions ({})",
            p.status,
            parts.len(),
            parts.join(", ")
        )
    }

    fn update_metrics(&self, job: &IngestionJob) {
        let m = &self.ctx.metrics;
        let l = [self.label.as_str()];
        let secs = |t: Timestamp| t.wall_time_ns as f64 / 1e9;
        let replicated = job.progress.replicated_time;
        m.replicated_time_seconds
            .with_label_values(&l)
            .set(secs(replicated));
        m.retained_time_seconds
            .with_label_values(&l)
            .set(secs(job.progress.retained_time));
        if !replicated.is_zero() {
            let now = self.ctx.node.clock().physical_now_ns();
            m.replication_lag_seconds
                .with_label_values(&l)
                .set(now.saturating_sub(replicated.wall_time_ns) as f64 / 1e9);
        }
    }

    /// Writes the job with `f` applied and the lease renewed, retrying on conflicts; fails
    /// without writing if the job is no longer running under this coordinator (paused,
    /// canceled, or adopted by another node).
    async fn update(
        &mut self,
        close_fence: bool,
        f: impl Fn(&mut IngestionJob),
    ) -> Result<(), String> {
        let me = self.ctx.node.id().0;
        let mut last = String::new();
        for attempt in 0..20 {
            let mut txn = self.ctx.node.begin().map_err(|e| e.to_string())?;
            let mut job = load(&mut txn, self.job_id).await.map_err(|e| e.message)?;
            if job.record.status != status::RUNNING || job.record.coordinator != Some(me) {
                return Err(format!(
                    "job {} is no longer running under node {me}",
                    self.job_id
                ));
            }
            job.record.lease_expires_ns =
                self.ctx.node.clock().physical_now_ns() + LEASE.as_nanos() as u64;
            f(&mut job);
            if close_fence {
                ingest_fence::close(&mut txn, TenantId(job.details.dest_tenant_id));
            }
            job.put(&mut txn);
            match txn.commit().await {
                Ok(_) => {
                    self.job = job;
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(last)
    }

    /// Reverts the standby's keyspace to the cutover time (checkpointed), makes the virtual
    /// cluster ready, completes the source's stream.
    async fn cutover(&mut self) {
        let Some(t) = self.job.progress.cutover_time else {
            return;
        };
        let started = Instant::now();
        let l = [self.label.clone()];
        let m = self.ctx.metrics.clone();
        m.cutover_progress.with_label_values(&l).set(1.0);
        let dest_span = self.job.details.dest_span();
        let me = self.ctx.node.id().0;
        // Closing the fence in the same transaction orders it before every revert step in
        // the log: an ingest of any epoch that applies after it writes nothing.
        if let Err(e) = self
            .update(true, |j| {
                j.progress.status = repl_status::CUTTING_OVER.into();
                j.record.running_status =
                    Some(format!("cutting over to {t}: reverting newer versions"));
                if j.progress.revert_remaining.is_none() {
                    j.progress.revert_remaining = Some(dest_span.clone());
                }
            })
            .await
        {
            tracing::warn!(job_id = self.job_id, error = %e, "cannot record the cutover; the job will retry it");
            return;
        }
        tracing::info!(job_id = self.job_id, cutover_time = %t, "cutting over");
        let mut remaining = self
            .job
            .progress
            .revert_remaining
            .clone()
            .unwrap_or(dest_span);
        loop {
            let step = self
                .ctx
                .node
                .revert_span(remaining.to_storage(), t, REVERT_BATCH)
                .await;
            match step {
                Ok(Some(resume)) => {
                    remaining = KeySpan::new(resume, remaining.end.clone());
                    let r = remaining.clone();
                    if let Err(e) = self
                        .update(false, |j| j.progress.revert_remaining = Some(r.clone()))
                        .await
                    {
                        // Paused, canceled or adopted elsewhere: whoever runs it resumes from
                        // the last checkpoint.
                        tracing::warn!(job_id = self.job_id, error = %e, "cannot checkpoint the revert; stopping");
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(job_id = self.job_id, error = %e, "revert failed; the job will retry the cutover");
                    return;
                }
            }
        }
        // The virtual cluster becomes ready (not yet serving), the job succeeds.
        let node = self.ctx.node.clone();
        let mut done = false;
        for attempt in 0..20 {
            // Ok(false): the job is no longer this coordinator's to finish.
            let r: Result<bool, String> = async {
                let mut txn = node.begin().map_err(|e| e.to_string())?;
                let mut job = load(&mut txn, self.job_id).await.map_err(|e| e.message)?;
                if job.record.status != status::RUNNING || job.record.coordinator != Some(me) {
                    return Ok(false);
                }
                let mut rec = registry::get(&mut txn, TenantId(job.details.dest_tenant_id))
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("the virtual cluster was dropped during cutover")?;
                if rec.data_state != DataState::Add {
                    return Ok(false);
                }
                rec.data_state = DataState::Ready;
                registry::update(&mut txn, &rec)
                    .await
                    .map_err(|e| e.to_string())?;
                pts::release(&mut txn, job.progress.pts_id);
                crate::secrets::remove(&mut txn, self.job_id);
                job.progress.status = repl_status::READY.into();
                job.progress.revert_remaining = None;
                job.record.status = status::SUCCEEDED.into();
                job.record.finished = Some(jobs::now_text());
                job.record.running_status = Some(format!("cut over to {t}"));
                job.record.error = None;
                job.put(&mut txn);
                txn.commit().await.map_err(|e| e.to_string())?;
                self.job = job;
                Ok(true)
            }
            .await;
            match r {
                Ok(true) => {
                    done = true;
                    break;
                }
                Ok(false) => {
                    tracing::warn!(
                        job_id = self.job_id,
                        "the job was paused, canceled or adopted during cutover; not finishing it here"
                    );
                    break;
                }
                Err(e) => {
                    tracing::warn!(job_id = self.job_id, error = %e, "finishing the cutover failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
        m.cutover_progress.with_label_values(&l).set(0.0);
        if !done {
            return;
        }
        crate::secrets::purge_or_log(&self.ctx.node, self.job_id).await;
        m.replicated_time_seconds.with_label_values(&l).set(0.0);
        m.replication_lag_seconds.with_label_values(&l).set(0.0);
        tracing::info!(job_id = self.job_id, cutover_time = %t, elapsed_ms = started.elapsed().as_millis() as u64, "cutover complete");
        let client = self.job.source_client(&self.secret);
        match tokio::time::timeout(
            COMPLETE_TIMEOUT,
            client.complete(self.job.details.stream_id, true),
        )
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(job_id = self.job_id, error = %e, "could not complete the source's replication stream; it expires on its own")
            }
            Err(_) => tracing::warn!(
                job_id = self.job_id,
                "completing the source's replication stream timed out; it expires on its own"
            ),
        }
    }
}

/// Runs one partition on standby node `dest` and forwards its progress; returns why it ended.
async fn run_partition(
    ctx: &Ctx,
    dest: NodeId,
    dest_addr: &str,
    a: Assignment,
    tx: &mpsc::Sender<FlowEvent>,
) -> Failure {
    let part = a.partition_id;
    if dest == ctx.node.id() {
        let mut rx = match ctx.ingest.start(a) {
            Ok(rx) => rx,
            Err(s) => return Failure::from_status(format!("partition {part}"), &s),
        };
        while let Some(msg) = rx.recv().await {
            match msg {
                Ok(p) => {
                    let r = p.resolved.into_iter().map(span_ts_from_pb).collect();
                    if tx.send(FlowEvent::Progress(r)).await.is_err() {
                        return "stopped".into();
                    }
                }
                Err(s) => return Failure::from_status(format!("partition {part}"), &s),
            }
        }
        return format!("partition {part} ended").into();
    }
    let ch = match ctx.node.channel(dest_addr) {
        Ok(c) => c,
        Err(e) => return format!("standby node {dest}: {e}").into(),
    };
    let mut client = pb::ingestion_client::IngestionClient::new(ch);
    let req = pb::IngestRequest {
        assignment: serde_json::to_vec(&a).expect("assignments serialize"),
    };
    let mut stream = match client.ingest_partition(req).await {
        Ok(r) => r.into_inner(),
        Err(s) => return Failure::from_status(format!("standby node {dest}"), &s),
    };
    loop {
        match stream.message().await {
            Ok(Some(p)) => {
                let r = p.resolved.into_iter().map(span_ts_from_pb).collect();
                if tx.send(FlowEvent::Progress(r)).await.is_err() {
                    return "stopped".into();
                }
            }
            Ok(None) => return format!("partition {part} on standby node {dest} ended").into(),
            Err(s) => {
                return Failure::from_status(
                    format!("partition {part} on standby node {dest}"),
                    &s,
                );
            }
        }
    }
}

//! Job adoption: every node looks for running ingestion jobs that nobody coordinates (a new
//! job, or one whose coordinator's lease expired because its node died) and claims them.
//! It also expires producer streams whose standby stopped heart-beating.

use super::coordinator::{self, Ctx, LEASE};
use super::{IngestionService, JOB_TYPE};
use crate::metrics::ReplicationMetrics;
use ::sql::jobs::{self, status};
use kv::{NodeSlot, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often a node looks for jobs to adopt.
const ADOPT_EVERY: Duration = Duration::from_secs(1);
/// How often a node expires abandoned producer streams.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The consumer heartbeat interval (`physical_replication.consumer.heartbeat_frequency`).
pub(crate) async fn heartbeat_interval(node: &Arc<Store>) -> Duration {
    crate::producer::duration_setting(node, "physical_replication.consumer.heartbeat_frequency")
        .await
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_millis(100))
}

/// A node's job runner.
#[derive(Debug)]
pub struct JobRunner {
    slot: NodeSlot,
    ingest: IngestionService,
    metrics: ReplicationMetrics,
    wake: Notify,
}

impl JobRunner {
    /// Starts the adoption loop of a node.
    pub fn start(
        slot: NodeSlot,
        ingest: IngestionService,
        metrics: ReplicationMetrics,
    ) -> Arc<Self> {
        let runner = Arc::new(JobRunner {
            slot,
            ingest,
            metrics,
            wake: Notify::new(),
        });
        tokio::spawn(runner.clone().run());
        runner
    }

    /// Looks for jobs now (a job was just created or resumed).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    async fn run(self: Arc<Self>) {
        let mut running: HashMap<u64, tokio::task::JoinHandle<()>> = HashMap::new();
        let mut last_sweep = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(ADOPT_EVERY) => {}
                _ = self.wake.notified() => {}
            }
            let Some(node) = self.slot.get().cloned() else {
                continue;
            };
            if node.status().leader.is_none() {
                continue;
            }
            running.retain(|_, h| !h.is_finished());
            if let Err(e) = self.adopt(&node, &mut running).await {
                tracing::debug!(error = %e, "looking for replication jobs failed");
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = Instant::now();
                if let Err(e) = crate::producer::sweep_expired(&node).await {
                    tracing::debug!(error = %e, "expiring producer streams failed");
                }
            }
        }
    }

    async fn adopt(
        &self,
        node: &Arc<Store>,
        running: &mut HashMap<u64, tokio::task::JoinHandle<()>>,
    ) -> Result<(), String> {
        let me = node.id().0;
        let mut txn = node.begin().map_err(|e| e.to_string())?;
        let now = node.clock().physical_now_ns();
        let candidates: Vec<u64> = jobs::list(&mut txn)
            .await
            .map_err(|e| e.message)?
            .into_iter()
            .filter(|j| j.job_type == JOB_TYPE && j.status == status::RUNNING)
            .filter(|j| !running.contains_key(&j.id))
            .filter(|j| j.lease_expires_ns < now || j.coordinator == Some(me))
            .map(|j| j.id)
            .collect();
        for id in candidates {
            let mut txn = node.begin().map_err(|e| e.to_string())?;
            let Some(mut job) = jobs::get(&mut txn, id).await.map_err(|e| e.message)? else {
                continue;
            };
            let now = node.clock().physical_now_ns();
            if job.status != status::RUNNING
                || (job.lease_expires_ns >= now && job.coordinator != Some(me))
            {
                continue;
            }
            job.coordinator = Some(me);
            job.lease_expires_ns = now + LEASE.as_nanos() as u64;
            jobs::put(&mut txn, &job);
            if txn.commit().await.is_err() {
                // Another node claimed it first.
                continue;
            }
            let ctx = Ctx {
                node: node.clone(),
                ingest: self.ingest.clone(),
                metrics: self.metrics.clone(),
            };
            running.insert(id, tokio::spawn(coordinator::run(ctx, id)));
        }
        Ok(())
    }
}

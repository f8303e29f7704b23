//! Reads: where a read at a timestamp is served, and how it honours clock uncertainty.
//!
//! A read at `read_ts` is served, in this order of preference:
//! 1. **closed**: by any replica, when `read_ts` (and the uncertainty limit) is at or below its
//!    closed timestamp: every write at or below it is applied there (historical reads,
//!    `AS OF SYSTEM TIME`, follower reads);
//! 2. **lease**: by the leaseholder, at the present time, with no Raft round (see
//!    [`crate::lease`] for why that is safe);
//! 3. **forwarded**: a replica that can do neither sends it to the leaseholder (or, without
//!    a valid lease, to the Raft leader), which serves it by 2 or 4 and never forwards again;
//! 4. **close_wait**: otherwise (no lease yet, the leaseholder unreachable) this replica asks
//!    the leader to close `read_ts` through Raft and waits until it applied that far.
//!    Concurrent waits share one such proposal.
//!
//! Uncertainty: a transaction at the present time takes `read_ts` from its gateway's clock,
//! which may trail the clock that stamped a write the client already saw acknowledged. So a
//! value above `read_ts` but at or below the *uncertainty limit* (`read_ts` plus the maximum
//! clock offset) may have been written before the read began: the read cannot ignore it. A
//! transaction that has read nothing yet (`may_bump`) simply moves `read_ts` up: to the
//! leaseholder's clock, which is above every write the leaseholder acknowledged, or to the
//! limit when served from a closed timestamp. Otherwise the read fails with
//! [`KvError::ReadWithinUncertainty`] (SQLSTATE 40001) and the transaction restarts above the
//! value. The leaseholder's clock reading also lowers the limit for later reads (an observed
//! timestamp: nothing it acknowledges later can be older), so after the first read of a
//! transaction its window is normally empty.

use crate::convert::{span_to_pb, ts_from_pb, ts_to_pb};
use crate::replica::Replica;
use crate::{KvError, KvResult};
use hlc::Timestamp;
use proto::kv as pb;
use storage::encoding::PrettyKey;
use storage::{Engine, ExportMode, KeyValue, ScanResult, Span};

/// How a transaction reads: its timestamp, its uncertainty limit, and whether it may still
/// move its timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadSpec {
    pub read_ts: Timestamp,
    /// `None`: no uncertainty (a historical read at a fixed time).
    pub uncertainty_limit: Option<Timestamp>,
    /// Nothing was read at `read_ts` yet, so it may move up.
    pub may_bump: bool,
}

impl ReadSpec {
    /// A read at exactly `read_ts`, without uncertainty.
    pub fn fixed(read_ts: Timestamp) -> Self {
        ReadSpec {
            read_ts,
            uncertainty_limit: None,
            may_bump: false,
        }
    }

    /// A present-time transaction starting at `read_ts` from a clock with `max_offset`.
    pub fn present(read_ts: Timestamp, max_offset: std::time::Duration) -> Self {
        let offset_ns = u64::try_from(max_offset.as_nanos()).unwrap_or(u64::MAX);
        ReadSpec {
            read_ts,
            uncertainty_limit: Some(Timestamp::new(
                read_ts.wall_time_ns.saturating_add(offset_ns),
                0,
            )),
            may_bump: true,
        }
    }

    /// The window `(read_ts, limit]` still to check, if any.
    fn window_end(&self) -> Option<Timestamp> {
        self.uncertainty_limit.filter(|l| *l > self.read_ts)
    }

    /// The highest timestamp whose writes the read must see applied.
    fn visible_up_to(&self) -> Timestamp {
        self.window_end().unwrap_or(self.read_ts)
    }

    pub fn to_pb(self, forwarded: bool) -> pb::ReadOptions {
        pb::ReadOptions {
            uncertainty_limit: self.uncertainty_limit.map(ts_to_pb),
            may_bump: self.may_bump,
            forwarded,
        }
    }

    pub fn from_pb(read_ts: Option<pb::Timestamp>, o: Option<pb::ReadOptions>) -> (Self, bool) {
        let read_ts = ts_from_pb(read_ts);
        match o {
            None => (ReadSpec::fixed(read_ts), false),
            Some(o) => (
                ReadSpec {
                    read_ts,
                    uncertainty_limit: o.uncertainty_limit.map(|t| ts_from_pb(Some(t))),
                    may_bump: o.may_bump,
                },
                o.forwarded,
            ),
        }
    }

    /// What a transaction reads with after a read was served as `served`.
    pub fn after(self, served: &Served) -> Self {
        ReadSpec {
            read_ts: served.read_ts,
            uncertainty_limit: served.uncertainty_limit,
            may_bump: false,
        }
    }
}

/// Where a read was served from, and the transaction's timestamps after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Served {
    pub read_ts: Timestamp,
    pub uncertainty_limit: Option<Timestamp>,
}

impl Served {
    pub fn to_pb(self) -> pb::ReadServed {
        pb::ReadServed {
            read_ts: Some(ts_to_pb(self.read_ts)),
            uncertainty_limit: self.uncertainty_limit.map(ts_to_pb),
        }
    }

    /// What a response reports; a response without it (an older node) served `spec` as is.
    pub fn from_pb(spec: ReadSpec, s: Option<pb::ReadServed>) -> Self {
        match s {
            Some(s) => Served {
                read_ts: ts_from_pb(s.read_ts),
                uncertainty_limit: s.uncertainty_limit.map(|t| ts_from_pb(Some(t))),
            },
            None => Served {
                read_ts: spec.read_ts,
                uncertainty_limit: spec.uncertainty_limit,
            },
        }
    }
}

/// What a read asks for: a key, or a span with a row limit.
#[derive(Debug, Clone)]
pub(crate) enum ReadOp {
    /// The span of one key ([`ReadOp::get`]); the key is its start. Kept as a span because
    /// routing, the uncertainty check and the GC threshold check all look at one.
    Get(Span),
    Scan(Span, usize),
}

impl ReadOp {
    /// A point read of `key`.
    pub(crate) fn get(key: &[u8]) -> Self {
        ReadOp::Get(Span::key(key))
    }

    /// The keys the read looks at.
    fn span(&self) -> &Span {
        match self {
            ReadOp::Get(span) | ReadOp::Scan(span, _) => span,
        }
    }
}

/// What a read returns.
#[derive(Debug)]
pub(crate) enum ReadValue {
    Get(Option<Vec<u8>>),
    Scan(ScanResult),
}

/// How this replica will serve a read.
enum Route {
    /// Locally, at `spec` (already adjusted), with `spec.visible_up_to()` applied here.
    Local(ReadSpec, &'static str),
    /// At the node at this address.
    Remote(String),
}

impl Replica {
    /// Serves `op` as `spec` says, routing it as the module documentation describes.
    /// `forwarded` marks a request another node forwarded here (never forwarded again).
    pub(crate) async fn read(
        &self,
        op: ReadOp,
        spec: ReadSpec,
        forwarded: bool,
    ) -> KvResult<(ReadValue, Served)> {
        // Boxed: the routing future is deep, and every SQL statement's future embeds it.
        Box::pin(self.read_routed(op, spec, forwarded)).await
    }

    async fn read_routed(
        &self,
        op: ReadOp,
        spec: ReadSpec,
        forwarded: bool,
    ) -> KvResult<(ReadValue, Served)> {
        match self.route_read(spec, forwarded, op.span()).await? {
            Route::Local(spec, path) => {
                self.metrics().reads.with_label_values(&[path]).inc();
                self.read_local(op, spec).await
            }
            Route::Remote(addr) => {
                self.metrics().reads.with_label_values(&["forwarded"]).inc();
                match self.read_remote(&addr, &op, spec).await {
                    Ok(r) => Ok(r),
                    // The target moved or is unreachable: serve it here through Raft.
                    Err(KvError::Rpc { .. }) | Err(KvError::NotLeaseholder { .. }) => {
                        let spec = self.close_for_read(spec).await?;
                        self.metrics()
                            .reads
                            .with_label_values(&["close_wait"])
                            .inc();
                        self.read_local(op, spec).await
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    async fn route_read(&self, spec: ReadSpec, forwarded: bool, span: &Span) -> KvResult<Route> {
        let closed = self.closed_ts();
        if spec.visible_up_to() <= closed {
            let mut spec = spec;
            if spec.may_bump {
                // Everything at or below the limit is applied here: read there, no window.
                spec.read_ts = spec.visible_up_to();
                spec.uncertainty_limit = Some(spec.read_ts);
            }
            return Ok(Route::Local(spec, "closed"));
        }
        if let Some(spec) = self.lease_read(spec, span).await? {
            return Ok(Route::Local(spec, "lease"));
        }
        if !forwarded && let Some(addr) = self.read_target() {
            return Ok(Route::Remote(addr));
        }
        let spec = self.close_for_read(spec).await?;
        Ok(Route::Local(spec, "close_wait"))
    }

    /// As the leaseholder: readies a present-time read of `span` (forwards the clock, waits
    /// for this node's older proposals that may write into `span`), or `None` when this node
    /// may not serve it under a lease.
    async fn lease_read(&self, spec: ReadSpec, span: &Span) -> KvResult<Option<ReadSpec>> {
        let Some(term) = self.lease_term() else {
            return Ok(None);
        };
        let mut spec = spec;
        let (now, oldest) = self.tracker().oldest(
            || {
                self.clock().update(spec.read_ts)?;
                Ok::<_, KvError>(self.clock().now())
            },
            span,
        );
        let now = now?;
        if spec.may_bump {
            // The leaseholder's clock is above every write it acknowledged.
            spec.read_ts = spec.read_ts.max(now);
            spec.uncertainty_limit = Some(spec.read_ts);
        } else {
            // An observed timestamp: nothing this node acknowledges from now on is older.
            spec.uncertainty_limit = spec.uncertainty_limit.map(|l| l.min(now));
        }
        if oldest.is_some_and(|o| o <= spec.read_ts) {
            self.tracker().wait_below(spec.read_ts, span).await;
        }
        // Still the leaseholder in the same term, with no proposal of unknown outcome?
        Ok((self.lease_term() == Some(term)).then_some(spec))
    }

    /// The address to forward a read to: the leaseholder while its lease is valid here, else
    /// the Raft leader; `None` when that is this node or unknown.
    fn read_target(&self) -> Option<String> {
        let now = self.clock().now();
        let target = match self.lease() {
            Some(l) if l.expiration > now => l.holder,
            _ => self.status().leader?.0,
        };
        if target == self.node_id().0 {
            return None;
        }
        self.members()
            .into_iter()
            .find(|(id, _)| id.0 == target)
            .map(|(_, addr)| addr)
    }

    /// Makes this replica apply everything up to `spec.read_ts`, through a closed timestamp
    /// proposed by the leader; returns the spec to read at. The uncertainty window is
    /// checked only up to what this replica then applied: closing the whole window would
    /// push the leader's clock up to the maximum offset into the future. So this path (taken
    /// only while no node holds a valid lease) is exact for clocks in sync, and otherwise
    /// as good as the replica's progress.
    async fn close_for_read(&self, spec: ReadSpec) -> KvResult<ReadSpec> {
        let mut spec = spec;
        self.ensure_closed(spec.read_ts).await?;
        let applied = self.closed_ts();
        if spec.may_bump {
            spec.read_ts = spec.read_ts.max(applied);
            spec.uncertainty_limit = Some(spec.read_ts);
        } else {
            spec.uncertainty_limit = spec.uncertainty_limit.map(|l| l.min(applied));
        }
        Ok(spec)
    }

    /// Reads from this replica, which has applied everything up to `spec.visible_up_to()`.
    /// A point get runs inline (a lookup in the memtable or one block); a scan, which may
    /// read many blocks from disk, runs on a blocking thread, off the async workers.
    async fn read_local(&self, op: ReadOp, spec: ReadSpec) -> KvResult<(ReadValue, Served)> {
        let served = Served {
            read_ts: spec.read_ts,
            uncertainty_limit: spec.uncertainty_limit,
        };
        let value = match op {
            ReadOp::Get(span) => {
                self.check_uncertainty(self.engine(), &span, spec)?;
                let value = self.engine().get(&span.start, spec.read_ts)?;
                // After the read: a GC that raced it has raised the threshold by now.
                self.check_gc_threshold(&span, spec.read_ts)?;
                ReadValue::Get(value)
            }
            ReadOp::Scan(span, limit) => {
                let engine = self.engine().clone();
                let metrics = self.metrics().clone();
                let scanned = span.clone();
                let page = tokio::task::spawn_blocking(move || {
                    check_uncertainty(&engine, &metrics, &scanned, spec)?;
                    Ok::<_, KvError>(engine.scan(&scanned, spec.read_ts, limit)?)
                })
                .await
                .map_err(|e| KvError::Raft(format!("scan task failed: {e}")))??;
                self.check_gc_threshold(&span, spec.read_ts)?;
                ReadValue::Scan(page)
            }
        };
        Ok((value, served))
    }

    fn check_uncertainty(
        &self,
        engine: &storage::FjallEngine,
        span: &Span,
        spec: ReadSpec,
    ) -> KvResult<()> {
        check_uncertainty(engine, self.metrics(), span, spec)
    }

    async fn read_remote(
        &self,
        addr: &str,
        op: &ReadOp,
        spec: ReadSpec,
    ) -> KvResult<(ReadValue, Served)> {
        let mut client = self.kv_client(addr)?;
        let err = |s| crate::service::error_from_status(addr, s);
        match op {
            ReadOp::Get(span) => {
                let r = client
                    .get(pb::GetRequest {
                        range_id: self.range_id().0,
                        key: span.start.clone(),
                        read_ts: Some(ts_to_pb(spec.read_ts)),
                        options: Some(spec.to_pb(true)),
                    })
                    .await
                    .map_err(err)?
                    .into_inner();
                Ok((ReadValue::Get(r.value), Served::from_pb(spec, r.served)))
            }
            ReadOp::Scan(span, limit) => {
                let r = client
                    .scan(pb::ScanRequest {
                        range_id: self.range_id().0,
                        span: Some(span_to_pb(span)),
                        read_ts: Some(ts_to_pb(spec.read_ts)),
                        limit: u32::try_from(*limit).unwrap_or(u32::MAX),
                        options: Some(spec.to_pb(true)),
                    })
                    .await
                    .map_err(err)?
                    .into_inner();
                let served = Served::from_pb(spec, r.served);
                Ok((ReadValue::Scan(scan_from_pb(r)), served))
            }
        }
    }
}

/// Fails with [`KvError::ReadWithinUncertainty`] if `span` has a version in the read's
/// uncertainty window (all of it applied on this replica).
fn check_uncertainty(
    engine: &storage::FjallEngine,
    metrics: &crate::KvMetrics,
    span: &Span,
    spec: ReadSpec,
) -> KvResult<()> {
    let Some(limit) = spec.window_end() else {
        return Ok(());
    };
    if let Some(v) = engine
        .export(span, spec.read_ts, limit, ExportMode::AllRevisions)?
        .next()
    {
        let v = v?;
        metrics.read_uncertainty_restarts.inc();
        return Err(KvError::ReadWithinUncertainty {
            key: PrettyKey(v.key),
            read_ts: spec.read_ts,
            value_ts: v.ts,
        });
    }
    Ok(())
}

/// The rows a scan response carries.
pub(crate) fn scan_from_pb(r: pb::ScanResponse) -> ScanResult {
    ScanResult {
        rows: r
            .rows
            .into_iter()
            .map(|kv| KeyValue {
                key: kv.key,
                ts: ts_from_pb(kv.ts),
                value: kv.value,
            })
            .collect(),
        resume_key: r.resume_key,
    }
}

/// The scan response carrying `r`.
pub(crate) fn scan_to_pb(r: ScanResult, served: Served) -> pb::ScanResponse {
    pb::ScanResponse {
        rows: r
            .rows
            .into_iter()
            .map(|kv| pb::KeyValue {
                key: kv.key,
                ts: Some(ts_to_pb(kv.ts)),
                value: kv.value,
            })
            .collect(),
        resume_key: r.resume_key,
        served: Some(served.to_pb()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    async fn single_node(dir: &std::path::Path) -> (Arc<crate::Store>, Arc<Replica>) {
        let store = crate::testing::must_start_single_node(dir).await;
        let node = store
            .replica(crate::RangeId::FIRST)
            .expect("the first range");
        let deadline = Instant::now() + Duration::from_secs(20);
        while node.lease_term().is_none() {
            assert!(Instant::now() < deadline, "no lease within 20 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (store, node)
    }

    async fn get(
        node: &Replica,
        key: &[u8],
        spec: ReadSpec,
    ) -> KvResult<(Option<Vec<u8>>, Served)> {
        match node.read(ReadOp::get(key), spec, false).await? {
            (ReadValue::Get(v), served) => Ok((v, served)),
            (other, _) => panic!("get answered {other:?}"),
        }
    }

    // issue 15 item 2: reads honour clock uncertainty. Method: write a value at commit
    // timestamp T, then read from a timestamp 100 ms below T, as a gateway with a slower
    // clock would: a transaction that already read must fail with a retry error (it cannot
    // tell whether the write came first); one that has read nothing moves its timestamp up
    // and sees the value; a historical read (no uncertainty) does not see it. Without the
    // check the first read silently misses an acknowledged write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_value_in_the_uncertainty_window_restarts_the_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, node) = single_node(dir.path()).await;
        let mut txn = store.begin().expect("begin");
        txn.put(b"k".to_vec(), b"v".to_vec());
        let written = txn.commit().await.expect("commit");
        let behind = Timestamp::new(written.wall_time_ns - 100_000_000, 0);
        let max_offset = node.clock().max_offset();

        let mut spec = ReadSpec::present(behind, max_offset);
        spec.may_bump = false;
        match get(&node, b"k", spec).await {
            Err(KvError::ReadWithinUncertainty {
                read_ts, value_ts, ..
            }) => {
                assert_eq!(read_ts, behind);
                assert_eq!(value_ts, written);
            }
            other => panic!("expected an uncertainty restart, got {other:?}"),
        }

        let (value, served) = get(&node, b"k", ReadSpec::present(behind, max_offset))
            .await
            .expect("first read of a transaction");
        assert_eq!(value.as_deref(), Some(&b"v"[..]));
        assert!(
            served.read_ts >= written,
            "the timestamp moved above the write"
        );
        assert_eq!(
            served.uncertainty_limit,
            Some(served.read_ts),
            "the leaseholder's clock closes the window for later reads"
        );

        let (value, _) = get(&node, b"k", ReadSpec::fixed(behind))
            .await
            .expect("historical read");
        assert_eq!(value, None, "a historical read has no uncertainty");
        node.shutdown().await;
    }

    // issue 15 item 2: a read that waits for a closed timestamp (no valid lease) never
    // pushes the cluster's clock into the future. Method: serve a present-time read through
    // the close path and compare the clock with the physical time; closing the whole
    // uncertainty window would put it the maximum offset (500 ms) ahead, and every later
    // commit timestamp with it, hiding them from AS OF SYSTEM TIME reads on other nodes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_close_wait_read_keeps_the_clock_in_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_store, node) = single_node(dir.path()).await;
        let spec = ReadSpec::present(node.clock().now(), node.clock().max_offset());
        let served = node.close_for_read(spec).await.expect("close wait");
        assert!(served.read_ts >= spec.read_ts);
        let ahead_ns = node
            .clock()
            .now()
            .wall_time_ns
            .saturating_sub(node.clock().physical_now_ns());
        assert!(
            ahead_ns < 100_000_000,
            "the clock ran {ahead_ns} ns ahead of physical time"
        );
        node.shutdown().await;
    }

    // issue 15 item 2: concurrent waits for a closed timestamp share one Close proposal.
    // Method: 50 concurrent waits for timestamps taken before any of them proposes; count
    // the close proposals (50 without sharing).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_waits_share_one_close_proposal() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_store, node) = single_node(dir.path()).await;
        let before = node.metrics().close_proposals.get();
        let stamps: Vec<Timestamp> = (0..50).map(|_| node.clock().now()).collect();
        let waits = stamps.into_iter().map(|ts| node.ensure_closed(ts));
        for r in futures::future::join_all(waits).await {
            r.expect("closed");
        }
        let proposals = node.metrics().close_proposals.get() - before;
        assert!(
            (1..=2).contains(&proposals),
            "{proposals} close proposals for 50 concurrent waits"
        );
        node.shutdown().await;
    }
}

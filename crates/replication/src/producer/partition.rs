//! Partition streams: what a source node sends a standby node for one partition. First the
//! spans' history up to a timestamp (an initial scan of all revisions as of the stream's start
//! time, or catch-up from the consumer's checkpoints), in rounds until caught up with the
//! applied log, then the applied log itself; checkpoints throughout, at least every
//! `physical_replication.producer.min_checkpoint_interval`.

use super::{authorize, duration_setting};
use crate::frontier::{KeySpan, SpanTs};
use crate::metrics::ReplicationMetrics;
use crate::spec::{
    BATCH_BYTES_MAX, WireVersion, encode_batch, span_ts_from_pb, span_ts_to_pb, ts_from_pb,
};
use hlc::Timestamp;
use kv::{Applied, NodeSlot, Store};
use proto::replication as pb;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::{Engine, ExportMode};
use tenant::TenantId;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

/// Default largest batch (uncompressed bytes).
const DEFAULT_BATCH_BYTES: usize = 1 << 20;
/// A catch-up round shorter than this is the last: the stream then tails the applied log.
const SHORT_ROUND: Duration = Duration::from_secs(1);
/// Events queued towards the consumer (the rest is backpressure).
const QUEUE: usize = 16;
/// How often a tailing stream re-checks that its stream is still valid.
const REAUTHORIZE_EVERY: Duration = Duration::from_secs(10);

/// The `ReplicationSource` gRPC service of a node.
#[derive(Debug, Clone)]
pub struct SourceService {
    slot: NodeSlot,
    metrics: ReplicationMetrics,
}

impl SourceService {
    pub fn new(slot: NodeSlot, metrics: ReplicationMetrics) -> Self {
        SourceService { slot, metrics }
    }

    /// The tonic server (large messages allowed: batches can reach several MiB).
    pub fn server(self) -> pb::replication_source_server::ReplicationSourceServer<Self> {
        pb::replication_source_server::ReplicationSourceServer::new(self)
            .max_encoding_message_size(crate::spec::STREAM_MESSAGE_BYTES_MAX)
    }
}

type Tx = mpsc::Sender<Result<pb::StreamEvent, Status>>;

struct Stream {
    node: Arc<Store>,
    tx: Tx,
    spans: Vec<KeySpan>,
    entries: Vec<SpanTs>,
    initial_scan_ts: Timestamp,
    batch_bytes: usize,
    checkpoint_every: Duration,
    batch: Vec<WireVersion>,
    batch_size: usize,
    last_checkpoint: Instant,
    sent_bytes: prometheus::IntCounter,
    stream_id: u64,
    token: crate::spec::StreamToken,
}

/// The consumer went away: stop quietly.
struct Gone;

impl Stream {
    async fn send(&self, ev: pb::stream_event::Event) -> Result<(), Gone> {
        self.tx
            .send(Ok(pb::StreamEvent { event: Some(ev) }))
            .await
            .map_err(|_| Gone)
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = encode_batch(&self.batch);
        self.sent_bytes.inc_by(batch.lz4.len() as u64);
        self.batch.clear();
        self.batch_size = 0;
        self.send(pb::stream_event::Event::Batch(batch)).await
    }

    async fn push(
        &mut self,
        key: Vec<u8>,
        ts: Timestamp,
        value: Option<Vec<u8>>,
    ) -> Result<(), Gone> {
        self.batch_size += key.len() + value.as_ref().map_or(0, Vec::len) + 16;
        self.batch.push((key, ts, value));
        if self.batch_size >= self.batch_bytes {
            self.flush().await?;
        }
        Ok(())
    }

    async fn checkpoint(&mut self, resolved: Vec<SpanTs>) -> Result<(), Gone> {
        self.flush().await?;
        self.last_checkpoint = Instant::now();
        let resolved = resolved.iter().map(span_ts_to_pb).collect();
        self.send(pb::stream_event::Event::Checkpoint(pb::Checkpoint {
            resolved,
        }))
        .await
    }

    /// Sends every version of `entry.span` in `(entry.ts, hi]`, with checkpoints of the part
    /// already sent; afterwards the entry stands at `hi`.
    async fn scan_entry(&mut self, idx: usize, hi: Timestamp) -> Result<Result<(), String>, Gone> {
        let entry = self.entries[idx].clone();
        let read_from = if entry.ts.is_zero() { hi } else { entry.ts };
        // Checked before (no checkpoint of incomplete history is ever sent) and after the scan.
        if let Err(e) = self
            .node
            .check_gc_threshold(&entry.span.to_storage(), read_from)
        {
            return Ok(Err(e.to_string()));
        }
        let iter = match self.node.engine().export(
            &entry.span.to_storage(),
            entry.ts,
            hi,
            ExportMode::AllRevisions,
        ) {
            Ok(it) => it,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let mut n = 0usize;
        for v in iter {
            let v = match v {
                Ok(v) => v,
                Err(e) => return Ok(Err(e.to_string())),
            };
            let key = v.key.clone();
            self.push(v.key, v.ts, v.value).await?;
            n += 1;
            if n.is_multiple_of(256) {
                tokio::task::yield_now().await;
            }
            if self.last_checkpoint.elapsed() >= self.checkpoint_every {
                // Everything of [start, key) up to `hi` is sent (the versions of `key` itself may
                // not all be yet).
                if key > entry.span.start {
                    let done = KeySpan::new(entry.span.start.clone(), key);
                    self.checkpoint(vec![SpanTs { span: done, ts: hi }]).await?;
                } else {
                    self.flush().await?;
                    self.last_checkpoint = Instant::now();
                }
            }
        }
        // History below a GC threshold may be gone: an initial scan must read at or above it,
        // and a catch-up must start there (thresholds only rise, and rise before anything is
        // removed, so a GC that raced the scan is caught here).
        if let Err(e) = self
            .node
            .check_gc_threshold(&entry.span.to_storage(), read_from)
        {
            return Ok(Err(e.to_string()));
        }
        self.entries[idx].ts = hi;
        self.checkpoint(vec![SpanTs {
            span: entry.span,
            ts: hi,
        }])
        .await?;
        Ok(Ok(()))
    }

    /// Brings every entry up to the local closed timestamp, round after round, until a round is
    /// short; then subscribes to the applied log and returns the subscription with the common
    /// timestamp every entry stands at.
    async fn catch_up(
        &mut self,
    ) -> Result<Result<(tokio::sync::broadcast::Receiver<Arc<Applied>>, Timestamp), String>, Gone>
    {
        loop {
            let started = Instant::now();
            let closed = self.node.closed_ts();
            for i in 0..self.entries.len() {
                let e = &self.entries[i];
                let hi = if e.ts.is_zero() {
                    self.initial_scan_ts
                } else {
                    closed
                };
                if e.ts < hi
                    && let Err(err) = self.scan_entry(i, hi).await?
                {
                    return Ok(Err(err));
                }
            }
            if started.elapsed() < SHORT_ROUND {
                break;
            }
        }
        // The last round: subscribe first, so nothing applied from here on is missed; what is
        // applied between the subscription and `closed` is both scanned and in the
        // subscription, and skipped there.
        let events = self.node.subscribe_applied();
        let closed = self.node.closed_ts();
        for i in 0..self.entries.len() {
            if self.entries[i].ts < closed
                && let Err(err) = self.scan_entry(i, closed).await?
            {
                return Ok(Err(err));
            }
        }
        let resolved = self
            .entries
            .iter()
            .map(|e| e.ts)
            .min()
            .unwrap_or(closed)
            .max(closed);
        for e in &mut self.entries {
            e.ts = resolved;
        }
        Ok(Ok((events, resolved)))
    }

    /// The smallest span holding every span of the partition (the KV layer routes by it).
    fn hull(&self) -> storage::Span {
        let start = self
            .spans
            .iter()
            .map(|s| s.start.clone())
            .min()
            .unwrap_or_default();
        let end = self
            .spans
            .iter()
            .map(|s| s.end.clone())
            .max()
            .unwrap_or_default();
        storage::Span::new(start, end)
    }

    fn all_at(&self, ts: Timestamp) -> Vec<SpanTs> {
        self.spans
            .iter()
            .map(|s| SpanTs {
                span: s.clone(),
                ts,
            })
            .collect()
    }

    async fn run(&mut self) -> Result<Result<(), String>, Gone> {
        if self.initial_scan_ts > self.node.closed_ts()
            && let Err(e) = self
                .node
                .ensure_closed(&self.hull(), self.initial_scan_ts)
                .await
        {
            return Ok(Err(e.to_string()));
        }
        'outer: loop {
            let (mut events, mut resolved) = match self.catch_up().await? {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            self.checkpoint(self.all_at(resolved)).await?;
            let mut ticker = tokio::time::interval(self.checkpoint_every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_auth = Instant::now();
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Ok(applied) => match applied.as_ref() {
                            Applied::Entry { ts, versions } => {
                                if *ts <= resolved {
                                    continue;
                                }
                                for v in versions.iter() {
                                    if self.spans.iter().any(|s| s.contains(&v.key)) {
                                        self.push(v.key.clone(), v.ts, v.value.clone()).await?;
                                    }
                                }
                                resolved = *ts;
                            }
                            Applied::Reset => {
                                for e in &mut self.entries { e.ts = resolved; }
                                continue 'outer;
                            }
                        },
                        // Fell behind the applied log: catch up from storage again.
                        Err(RecvError::Lagged(_)) => {
                            for e in &mut self.entries { e.ts = resolved; }
                            continue 'outer;
                        }
                        Err(RecvError::Closed) => return Ok(Err("the node is shutting down".into())),
                    },
                    _ = ticker.tick() => {
                        self.checkpoint(self.all_at(resolved)).await?;
                        if last_auth.elapsed() >= REAUTHORIZE_EVERY {
                            last_auth = Instant::now();
                            if let Err(e) = authorize(&self.node, self.stream_id, self.token.expose()).await {
                                return Ok(Err(e.message));
                            }
                        }
                    }
                    _ = self.tx.closed() => return Err(Gone),
                }
            }
        }
    }
}

#[tonic::async_trait]
impl pb::replication_source_server::ReplicationSource for SourceService {
    type StreamPartitionStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::StreamEvent, Status>>;

    async fn stream_partition(
        &self,
        request: Request<pb::StreamPartitionRequest>,
    ) -> Result<Response<Self::StreamPartitionStream>, Status> {
        let req = request.into_inner();
        let node =
            self.slot.get().cloned().ok_or_else(|| {
                Status::unavailable("node is not part of an initialized cluster yet")
            })?;
        let details = authorize(&node, req.stream_id, &req.token)
            .await
            .map_err(|e| match e.code {
                ::sql::error::code::INSUFFICIENT_PRIVILEGE => Status::permission_denied(e.message),
                ::sql::error::code::UNDEFINED_OBJECT => Status::not_found(e.message),
                _ => Status::failed_precondition(e.message),
            })?;
        let tspan = TenantId(details.tenant_id).span();
        let tenant_span = KeySpan::new(tspan.start, tspan.end.unwrap_or_default());
        let mut entries: Vec<SpanTs> = req.frontier.into_iter().map(span_ts_from_pb).collect();
        entries.sort_by(|a, b| a.span.start.cmp(&b.span.start));
        if entries.is_empty() {
            return Err(Status::invalid_argument("a partition stream needs spans"));
        }
        for e in &entries {
            if e.span.is_empty() || e.span.intersect(&tenant_span) != Some(e.span.clone()) {
                return Err(Status::permission_denied(format!(
                    "span {:?} is outside virtual cluster {}'s keyspace",
                    e.span, details.tenant_name
                )));
            }
        }
        let checkpoint_every = duration_setting(
            &node,
            "physical_replication.producer.min_checkpoint_interval",
        )
        .await
        .unwrap_or(Duration::from_millis(200))
        .max(Duration::from_millis(10));
        let initial_scan_ts = ts_from_pb(req.initial_scan_ts);
        let initial_scan_ts = if initial_scan_ts.is_zero() {
            details.start_time
        } else {
            initial_scan_ts
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let label = details.tenant_name.clone();
        let streams = self.metrics.producer_streams.with_label_values(&[&label]);
        let mut stream = Stream {
            spans: entries.iter().map(|e| e.span.clone()).collect(),
            entries,
            node,
            tx,
            initial_scan_ts,
            // A consumer may ask for smaller batches, not for ones that would hold more memory
            // here than BATCH_BYTES_MAX or exceed its own message limit.
            batch_bytes: if req.batch_bytes == 0 {
                DEFAULT_BATCH_BYTES
            } else {
                usize::try_from(req.batch_bytes).map_or(BATCH_BYTES_MAX, |b| b.min(BATCH_BYTES_MAX))
            },
            checkpoint_every,
            batch: Vec::new(),
            batch_size: 0,
            last_checkpoint: Instant::now(),
            sent_bytes: self
                .metrics
                .producer_bytes_sent
                .with_label_values(&[&label]),
            stream_id: req.stream_id,
            token: req.token.into(),
        };
        let consumer = req.consumer;
        tracing::info!(stream_id = stream.stream_id, %consumer, spans = stream.spans.len(), "serving a partition stream");
        tokio::spawn(async move {
            streams.inc();
            match stream.run().await {
                Ok(Ok(())) | Err(Gone) => {}
                Ok(Err(e)) => {
                    tracing::warn!(stream_id = stream.stream_id, error = %e, "partition stream failed");
                    let _ = stream.tx.send(Err(Status::aborted(e))).await;
                }
            }
            streams.dec();
            tracing::info!(stream_id = stream.stream_id, %consumer, "partition stream ended");
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }
}

//! Incoming RPCs: the Raft transport and the KV service, over tonic.

use crate::convert::{span_from_pb, span_to_pb, ts_from_pb, ts_to_pb};
use crate::{KvError, KvNode, RangeId, RangefeedEvent};
use proto::kv as pb;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, Status> {
    postcard::from_bytes(payload)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<Response<pb::RaftResponse>, Status> {
    let payload = postcard::to_allocvec(v)
        .map_err(|e| Status::internal(format!("encoding raft response: {e}")))?;
    Ok(Response::new(pb::RaftResponse { payload }))
}

fn check_range(range_id: u64) -> Result<RangeId, Status> {
    if range_id != RangeId::FIRST.0 {
        return Err(Status::not_found(format!("unknown range r{range_id}")));
    }
    Ok(RangeId::FIRST)
}

/// Maps KV errors to gRPC statuses; callers retry `FailedPrecondition` and `Unavailable`.
fn status(e: KvError) -> Status {
    match e {
        KvError::NotLeader { .. } => Status::failed_precondition(e.to_string()),
        KvError::NoLeader { .. } | KvError::ShuttingDown => Status::unavailable(e.to_string()),
        KvError::ReadTimeout { .. } => Status::deadline_exceeded(e.to_string()),
        KvError::UnknownRange(_) => Status::not_found(e.to_string()),
        KvError::Clock(_) | KvError::Storage(storage::StorageError::InvalidSpan { .. }) => {
            Status::invalid_argument(e.to_string())
        }
        _ => Status::internal(e.to_string()),
    }
}

/// The Raft transport service of a node.
#[derive(Debug, Clone)]
pub struct RaftService {
    node: Arc<KvNode>,
}

impl RaftService {
    /// The service for `node`, ready to add to a tonic router.
    pub fn server(node: Arc<KvNode>) -> pb::raft_server::RaftServer<RaftService> {
        pb::raft_server::RaftServer::new(RaftService { node }).max_decoding_message_size(256 << 20)
    }
}

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        req: Request<pb::RaftRequest>,
    ) -> Result<Response<pb::RaftResponse>, Status> {
        let req = req.into_inner();
        check_range(req.range_id)?;
        let result = self.node.raft().append_entries(decode(&req.payload)?).await;
        encode(&result)
    }

    async fn vote(
        &self,
        req: Request<pb::RaftRequest>,
    ) -> Result<Response<pb::RaftResponse>, Status> {
        let req = req.into_inner();
        check_range(req.range_id)?;
        let result = self.node.raft().vote(decode(&req.payload)?).await;
        encode(&result)
    }

    async fn install_snapshot(
        &self,
        req: Request<pb::RaftRequest>,
    ) -> Result<Response<pb::RaftResponse>, Status> {
        let req = req.into_inner();
        check_range(req.range_id)?;
        let result = self
            .node
            .raft()
            .install_snapshot(decode(&req.payload)?)
            .await;
        encode(&result)
    }
}

/// The KV service of a node.
#[derive(Debug, Clone)]
pub struct KvService {
    node: Arc<KvNode>,
}

impl KvService {
    /// The service for `node`, ready to add to a tonic router.
    pub fn server(node: Arc<KvNode>) -> pb::kv_server::KvServer<KvService> {
        pb::kv_server::KvServer::new(KvService { node }).max_decoding_message_size(64 << 20)
    }

    fn count(&self, method: &str) {
        self.node
            .metrics()
            .rpc_requests
            .with_label_values(&[method])
            .inc();
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::RangefeedEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::kv_server::Kv for KvService {
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        self.count("get");
        let req = req.into_inner();
        let range = check_range(req.range_id)?;
        let value = self
            .node
            .get(range, &req.key, ts_from_pb(req.read_ts))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetResponse { value }))
    }

    async fn scan(
        &self,
        req: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        self.count("scan");
        let req = req.into_inner();
        let range = check_range(req.range_id)?;
        let limit = usize::try_from(req.limit.max(1)).unwrap_or(usize::MAX);
        let r = self
            .node
            .scan(
                range,
                &span_from_pb(req.span),
                ts_from_pb(req.read_ts),
                limit,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ScanResponse {
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
        }))
    }

    async fn commit(
        &self,
        req: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        self.count("commit");
        let req = req.into_inner();
        check_range(req.range_id)?;
        let outcome = self
            .node
            .commit_local(
                ts_from_pb(req.read_ts),
                req.read_keys,
                req.read_spans
                    .into_iter()
                    .map(|s| span_from_pb(Some(s)))
                    .collect(),
                req.writes.into_iter().map(|w| (w.key, w.value)).collect(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CommitResponse {
            outcome: Some(match outcome {
                Ok(ts) => pb::commit_response::Outcome::CommitTs(ts_to_pb(ts)),
                Err(key) => pb::commit_response::Outcome::ConflictKey(key),
            }),
        }))
    }

    async fn close(
        &self,
        req: Request<pb::CloseRequest>,
    ) -> Result<Response<pb::CloseResponse>, Status> {
        self.count("close");
        let req = req.into_inner();
        check_range(req.range_id)?;
        let ts = self
            .node
            .close_local(ts_from_pb(req.ts))
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CloseResponse {
            closed_ts: Some(ts_to_pb(ts)),
        }))
    }

    type RangefeedStream = EventStream;

    async fn rangefeed(
        &self,
        req: Request<pb::RangefeedRequest>,
    ) -> Result<Response<EventStream>, Status> {
        self.count("rangefeed");
        let req = req.into_inner();
        let range = check_range(req.range_id)?;
        let rx = self
            .node
            .rangefeed(range, span_from_pb(req.span), ts_from_pb(req.from_ts))
            .map_err(status)?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let stream = tokio_stream::StreamExt::map(stream, |ev| match ev {
            Ok(RangefeedEvent::Value(v)) => Ok(pb::RangefeedEvent {
                event: Some(pb::rangefeed_event::Event::Value(pb::RangefeedValue {
                    key: v.key,
                    ts: Some(ts_to_pb(v.ts)),
                    value: v.value,
                })),
            }),
            Ok(RangefeedEvent::Checkpoint { span, resolved_ts }) => Ok(pb::RangefeedEvent {
                event: Some(pb::rangefeed_event::Event::Checkpoint(
                    pb::RangefeedCheckpoint {
                        span: Some(span_to_pb(&span)),
                        resolved_ts: Some(ts_to_pb(resolved_ts)),
                    },
                )),
            }),
            Err(e) => Err(match e {
                KvError::RangefeedOverflow { .. } => Status::resource_exhausted(e.to_string()),
                other => status(other),
            }),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn join(
        &self,
        req: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinResponse>, Status> {
        self.count("join");
        let addr = req.into_inner().advertise_addr;
        if addr.is_empty() {
            return Err(Status::invalid_argument(
                "join request without an advertise address",
            ));
        }
        let id = self.node.add_node_local(&addr).await.map_err(status)?;
        Ok(Response::new(pb::JoinResponse { node_id: id.0 }))
    }

    async fn node_status(
        &self,
        _req: Request<pb::NodeStatusRequest>,
    ) -> Result<Response<pb::NodeStatusResponse>, Status> {
        self.count("node_status");
        let s = self.node.status();
        Ok(Response::new(pb::NodeStatusResponse {
            node_id: s.node_id.0,
            leader_id: s.leader.map(|l| l.0),
            term: s.term,
            applied_index: s.applied_index,
            closed_ts: Some(ts_to_pb(s.closed_ts)),
            voters: s.voters.into_iter().map(|v| v.0).collect(),
            learners: s.learners.into_iter().map(|v| v.0).collect(),
        }))
    }
}

//! Incoming RPCs: the Raft transport and the KV service, over tonic.

use crate::command::Command;
use crate::convert::{span_from_pb, span_to_pb, ts_from_pb, ts_to_pb};
use crate::limits::{KV_MESSAGE_BYTES_MAX, RAFT_MESSAGE_BYTES_MAX};
use crate::read::{ReadOp, ReadSpec, ReadValue, scan_to_pb};
use crate::replica::Replica;
use crate::txn::{TxnBuffer, response_from_outcome};
use crate::{KvError, NodeId, RangeId, RangefeedEvent, Store};
use proto::kv as pb;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
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

/// The store's replica of the range a request names.
fn replica_of(store: &Store, range_id: u64) -> Result<Arc<Replica>, Status> {
    store
        .replica(RangeId(range_id))
        .map_err(|_| Status::not_found(format!("unknown range r{range_id}")))
}

/// Maps KV errors to gRPC statuses; callers retry `FailedPrecondition` and `Unavailable`.
/// [`KvError::CommandTooLarge`] travels typed (see [`error_from_status`]).
fn status(e: KvError) -> Status {
    match e {
        KvError::CommandTooLarge {
            ref command,
            bytes,
            bytes_max,
        } => {
            let details = postcard::to_allocvec(&(command, bytes as u64, bytes_max as u64))
                .unwrap_or_default();
            Status::with_details(
                tonic::Code::ResourceExhausted,
                e.to_string(),
                details.into(),
            )
        }
        KvError::ReadWithinUncertainty {
            ref key,
            read_ts,
            value_ts,
        } => {
            let details = postcard::to_allocvec(&(UNCERTAINTY_DETAIL, &key.0, read_ts, value_ts))
                .unwrap_or_default();
            Status::with_details(tonic::Code::Aborted, e.to_string(), details.into())
        }
        KvError::NotLeader { .. } | KvError::NotLeaseholder { .. } => {
            Status::failed_precondition(e.to_string())
        }
        KvError::NoLeader { .. } | KvError::ShuttingDown => Status::unavailable(e.to_string()),
        KvError::ReadTimeout { .. } => Status::deadline_exceeded(e.to_string()),
        KvError::BelowGcThreshold { .. } => Status::out_of_range(e.to_string()),
        KvError::UnknownRange(_) => Status::not_found(e.to_string()),
        KvError::Clock(_)
        | KvError::EntryTooLarge { .. }
        | KvError::Storage(storage::StorageError::InvalidSpan { .. }) => {
            Status::invalid_argument(e.to_string())
        }
        KvError::CommandRejected { .. } | KvError::IngestFenced { .. } => {
            Status::aborted(e.to_string())
        }
        _ => Status::internal(e.to_string()),
    }
}

/// Marks the details of a status carrying [`KvError::ReadWithinUncertainty`].
const UNCERTAINTY_DETAIL: &str = "read-within-uncertainty";

/// The error a failed KV RPC to `target` means: [`KvError::CommandTooLarge`] when the
/// server refused a command for its size (so a gateway reports it as such), else an RPC
/// error carrying the status.
pub(crate) fn error_from_status(target: &str, s: Status) -> KvError {
    if s.code() == tonic::Code::ResourceExhausted
        && let Ok((command, bytes, bytes_max)) =
            postcard::from_bytes::<(String, u64, u64)>(s.details())
    {
        return KvError::CommandTooLarge {
            command,
            bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
            bytes_max: usize::try_from(bytes_max).unwrap_or(usize::MAX),
        };
    }
    if s.code() == tonic::Code::Aborted
        && let Ok((UNCERTAINTY_DETAIL, key, read_ts, value_ts)) =
            postcard::from_bytes::<(&str, Vec<u8>, hlc::Timestamp, hlc::Timestamp)>(s.details())
    {
        return KvError::ReadWithinUncertainty {
            key: storage::encoding::PrettyKey(key),
            read_ts,
            value_ts,
        };
    }
    KvError::Rpc {
        target: target.to_string(),
        message: format!("{:?}: {}", s.code(), s.message()),
    }
}

/// Where a node's store will be once the node knows its id. The RPC services are served
/// from start-up (so `init` and joins can reach the node) and answer `Unavailable` until the
/// slot is filled.
pub type NodeSlot = Arc<OnceLock<Arc<Store>>>;

/// A slot already holding `node`'s store.
pub fn filled_slot(node: Arc<Store>) -> NodeSlot {
    let slot = NodeSlot::default();
    let _ = slot.set(node);
    slot
}

fn node_of(slot: &NodeSlot) -> Result<&Arc<Store>, Status> {
    let node = slot.get().ok_or_else(|| {
        Status::unavailable(
            "node has not joined a cluster yet (run `roach init`, or wait for it to join)",
        )
    })?;
    if node.is_isolated() {
        return Err(Status::unavailable(
            "node is isolated from the network (test fault injection)",
        ));
    }
    Ok(node)
}

/// The Raft transport service of a node.
#[derive(Debug, Clone)]
pub struct RaftService {
    slot: NodeSlot,
}

impl RaftService {
    /// The service for the node in `slot`, ready to add to a tonic router.
    pub fn server(slot: NodeSlot) -> pb::raft_server::RaftServer<RaftService> {
        pb::raft_server::RaftServer::new(RaftService { slot })
            .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX)
    }
}

impl RaftService {
    /// Decodes an openraft request, hands it to the local Raft, and encodes the result.
    async fn handle<Req, Resp, F, Fut>(
        &self,
        req: Request<pb::RaftRequest>,
        call: F,
    ) -> Result<Response<pb::RaftResponse>, Status>
    where
        Req: DeserializeOwned,
        Resp: Serialize,
        F: FnOnce(openraft::Raft<crate::TypeConfig>, Req) -> Fut,
        Fut: std::future::Future<Output = Resp>,
    {
        let req = req.into_inner();
        let raft = replica_of(node_of(&self.slot)?, req.range_id)?
            .raft()
            .clone();
        encode(&call(raft, decode(&req.payload)?).await)
    }
}

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        req: Request<pb::RaftRequest>,
    ) -> Result<Response<pb::RaftResponse>, Status> {
        self.handle(req, |raft, r| async move { raft.append_entries(r).await })
            .await
    }

    async fn vote(
        &self,
        req: Request<pb::RaftRequest>,
    ) -> Result<Response<pb::RaftResponse>, Status> {
        self.handle(req, |raft, r| async move { raft.vote(r).await })
            .await
    }

    async fn install_snapshot(
        &self,
        req: Request<pb::RaftRequest>,
    ) -> Result<Response<pb::RaftResponse>, Status> {
        self.handle(req, |raft, r| async move { raft.install_snapshot(r).await })
            .await
    }
}

/// The KV service of a node.
#[derive(Debug, Clone)]
pub struct KvService {
    slot: NodeSlot,
}

impl KvService {
    /// The service for the node in `slot`, ready to add to a tonic router.
    pub fn server(slot: NodeSlot) -> pb::kv_server::KvServer<KvService> {
        pb::kv_server::KvServer::new(KvService { slot })
            .max_decoding_message_size(KV_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(KV_MESSAGE_BYTES_MAX)
    }

    /// The node, counting the request.
    fn node(&self, method: &str) -> Result<&Arc<Store>, Status> {
        let node = node_of(&self.slot)?;
        node.metrics()
            .rpc_requests
            .with_label_values(&[method])
            .inc();
        Ok(node)
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::RangefeedEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::kv_server::Kv for KvService {
    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let node = self.node("get")?;
        let req = req.into_inner();
        let replica = replica_of(node, req.range_id)?;
        let (spec, forwarded) = ReadSpec::from_pb(req.read_ts, req.options);
        match replica
            .read(ReadOp::get(&req.key), spec, forwarded)
            .await
            .map_err(status)?
        {
            (ReadValue::Get(value), served) => Ok(Response::new(pb::GetResponse {
                value,
                served: Some(served.to_pb()),
            })),
            _ => Err(Status::internal("get answered with scan rows")),
        }
    }

    async fn scan(
        &self,
        req: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let node = self.node("scan")?;
        let req = req.into_inner();
        let replica = replica_of(node, req.range_id)?;
        let limit = usize::try_from(req.limit.max(1)).unwrap_or(usize::MAX);
        let (spec, forwarded) = ReadSpec::from_pb(req.read_ts, req.options);
        match replica
            .read(ReadOp::Scan(span_from_pb(req.span), limit), spec, forwarded)
            .await
            .map_err(status)?
        {
            (ReadValue::Scan(r), served) => Ok(Response::new(scan_to_pb(r, served))),
            _ => Err(Status::internal("scan answered with a value")),
        }
    }

    async fn commit(
        &self,
        req: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let node = self.node("commit")?;
        let req = req.into_inner();
        let replica = replica_of(node, req.range_id)?;
        // Clients ask for routing; nodes forwarding to the leader do not (no loops).
        let route_to_leader = req.route_to_leader;
        let txn = TxnBuffer::from_request(req);
        let outcome = if route_to_leader {
            replica.commit(&txn).await
        } else {
            replica.commit_local(txn).await
        }
        .map_err(status)?;
        Ok(Response::new(response_from_outcome(outcome)))
    }

    async fn close(
        &self,
        req: Request<pb::CloseRequest>,
    ) -> Result<Response<pb::CloseResponse>, Status> {
        let node = self.node("close")?;
        let req = req.into_inner();
        let ts = replica_of(node, req.range_id)?
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
        let node = self.node("rangefeed")?;
        let req = req.into_inner();
        let rx = replica_of(node, req.range_id)?
            .rangefeed(span_from_pb(req.span), ts_from_pb(req.from_ts))
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

    async fn allocate_node_id(
        &self,
        _req: Request<pb::AllocateNodeIdRequest>,
    ) -> Result<Response<pb::AllocateNodeIdResponse>, Status> {
        let node = self.node("allocate_node_id")?;
        let id = node.allocate_node_id().await.map_err(status)?;
        Ok(Response::new(pb::AllocateNodeIdResponse { node_id: id.0 }))
    }

    async fn join(
        &self,
        req: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::JoinResponse>, Status> {
        let node = self.node("join")?;
        let req = req.into_inner();
        if req.advertise_addr.is_empty() || req.node_id == 0 {
            return Err(Status::invalid_argument(
                "join request needs a node id and an advertise address",
            ));
        }
        node.add_member(NodeId(req.node_id), &req.advertise_addr)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::JoinResponse {}))
    }

    async fn begin(
        &self,
        req: Request<pb::BeginRequest>,
    ) -> Result<Response<pb::BeginResponse>, Status> {
        let node = self.node("begin")?;
        replica_of(node, req.into_inner().range_id)?;
        Ok(Response::new(pb::BeginResponse {
            read_ts: Some(ts_to_pb(node.now())),
        }))
    }

    async fn fingerprint(
        &self,
        req: Request<pb::FingerprintRequest>,
    ) -> Result<Response<pb::FingerprintResponse>, Status> {
        let node = self.node("fingerprint")?;
        let req = req.into_inner();
        let fingerprint = replica_of(node, req.range_id)?
            .fingerprint(
                &span_from_pb(req.span),
                ts_from_pb(req.start_ts),
                ts_from_pb(req.end_ts),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::FingerprintResponse { fingerprint }))
    }

    async fn propose(
        &self,
        req: Request<pb::ProposeRequest>,
    ) -> Result<Response<pb::ProposeResponse>, Status> {
        let node = self.node("propose")?;
        let req = req.into_inner();
        let replica = replica_of(node, req.range_id)?;
        let command: Command = postcard::from_bytes(&req.command)
            .map_err(|e| Status::invalid_argument(format!("undecodable command: {e}")))?;
        let command_name = command.name();
        // Between nodes only: the receiver must be the leader (no forwarding loops).
        let result = replica
            .propose_stamped_local(command)
            .await
            .map_err(|e| {
                tracing::debug!(node_id = node.id().0, command = command_name, error = %e, "propose failed");
                status(e)
            })?;
        let result = postcard::to_allocvec(&result)
            .map_err(|e| Status::internal(format!("encoding command result: {e}")))?;
        Ok(Response::new(pb::ProposeResponse { result }))
    }

    async fn release_lease(
        &self,
        req: Request<pb::ReleaseLeaseRequest>,
    ) -> Result<Response<pb::ReleaseLeaseResponse>, Status> {
        let node = self.node("release_lease")?;
        let req = req.into_inner();
        let released_at = replica_of(node, req.range_id)?
            .release_lease(req.sequence)
            .map_err(status)?;
        Ok(Response::new(pb::ReleaseLeaseResponse {
            released_at: Some(ts_to_pb(released_at)),
        }))
    }

    async fn node_status(
        &self,
        _req: Request<pb::NodeStatusRequest>,
    ) -> Result<Response<pb::NodeStatusResponse>, Status> {
        let node = self.node("node_status")?;
        let s = node.status();
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
    async fn wait_applied(
        &self,
        req: Request<pb::WaitAppliedRequest>,
    ) -> Result<Response<pb::WaitAppliedResponse>, Status> {
        let node = self.node("wait_applied")?;
        let req = req.into_inner();
        let timeout = std::time::Duration::from_millis(req.timeout_ms)
            .min(crate::applied_wait::WAIT_APPLIED_MAX);
        let closed = replica_of(node, req.range_id)?
            .wait_applied_local(ts_from_pb(req.ts), timeout)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::WaitAppliedResponse {
            closed_ts: Some(ts_to_pb(closed)),
        }))
    }
}

//! A client of the KV service of a node (for tools, tests, benchmarks and workloads): the
//! node it connects to is the transaction's gateway.

use crate::convert::{span_from_pb, span_to_pb, ts_from_pb, ts_to_pb};
use crate::limits::KV_MESSAGE_BYTES_MAX;
use crate::read::{ReadSpec, Served, scan_from_pb};
use crate::txn::{CommitOutcome, TxnBuffer, outcome_from_response};
use crate::{KvError, KvResult, NodeId, NodeStatus, RangeId, RangefeedEvent};
use hlc::Timestamp;
use proto::kv as pb;
use std::time::Duration;
use storage::{MvccVersion, ScanResult, Span};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// A connection to one node's KV service.
#[derive(Debug, Clone)]
pub struct KvClient {
    addr: String,
    inner: pb::kv_client::KvClient<Channel>,
}

fn rpc(addr: &str) -> impl Fn(tonic::Status) -> KvError + '_ {
    move |s| crate::service::error_from_status(addr, s)
}

impl KvClient {
    /// Connects to the node at `addr` (`host:port`); `tls` `None` means an insecure cluster.
    pub async fn connect(addr: &str, tls: Option<ClientTlsConfig>) -> KvResult<Self> {
        let err = |e: tonic::transport::Error| KvError::Rpc {
            target: addr.to_string(),
            message: format!(
                "{e}: {}",
                std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            ),
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(err)?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls).map_err(err)?;
        }
        let channel = endpoint.connect().await.map_err(err)?;
        Ok(KvClient {
            addr: addr.to_string(),
            inner: pb::kv_client::KvClient::new(channel)
                .max_decoding_message_size(KV_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(KV_MESSAGE_BYTES_MAX),
        })
    }

    /// The address this client talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Begins a transaction with a read timestamp from the gateway's clock.
    pub async fn begin(&self) -> KvResult<RemoteTxn> {
        let r = self
            .inner
            .clone()
            .begin(pb::BeginRequest {
                range_id: RangeId::FIRST.0,
            })
            .await
            .map_err(rpc(&self.addr))?;
        Ok(RemoteTxn {
            client: self.clone(),
            buf: TxnBuffer::new(ReadSpec::present(
                ts_from_pb(r.into_inner().read_ts),
                hlc::DEFAULT_MAX_OFFSET,
            )),
        })
    }

    /// Writes `key = value` in a transaction of its own; returns the commit timestamp.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> KvResult<Timestamp> {
        let mut txn = self.begin().await?;
        txn.put(key, value);
        txn.commit().await
    }

    /// Reads `key` as of exactly `read_ts` through this node.
    pub async fn get(&self, key: &[u8], read_ts: Timestamp) -> KvResult<Option<Vec<u8>>> {
        Ok(self.get_as(key, ReadSpec::fixed(read_ts)).await?.0)
    }

    async fn get_as(&self, key: &[u8], spec: ReadSpec) -> KvResult<(Option<Vec<u8>>, Served)> {
        let r = self
            .inner
            .clone()
            .get(pb::GetRequest {
                range_id: RangeId::FIRST.0,
                key: key.to_vec(),
                read_ts: Some(ts_to_pb(spec.read_ts)),
                options: Some(spec.to_pb(false)),
            })
            .await
            .map_err(rpc(&self.addr))?
            .into_inner();
        Ok((r.value, Served::from_pb(spec, r.served)))
    }

    /// Scans `span` as of exactly `read_ts` through this node.
    pub async fn scan(&self, span: &Span, read_ts: Timestamp, limit: u32) -> KvResult<ScanResult> {
        let r = self
            .inner
            .clone()
            .scan(pb::ScanRequest {
                range_id: RangeId::FIRST.0,
                span: Some(span_to_pb(span)),
                read_ts: Some(ts_to_pb(read_ts)),
                limit,
                options: Some(ReadSpec::fixed(read_ts).to_pb(false)),
            })
            .await
            .map_err(rpc(&self.addr))?
            .into_inner();
        Ok(scan_from_pb(r))
    }

    /// The fingerprint of `span` in `(start_ts, end_ts]` on this node's replica.
    pub async fn fingerprint(
        &self,
        span: &Span,
        start_ts: Timestamp,
        end_ts: Timestamp,
    ) -> KvResult<u64> {
        let r = self
            .inner
            .clone()
            .fingerprint(pb::FingerprintRequest {
                range_id: RangeId::FIRST.0,
                span: Some(span_to_pb(span)),
                start_ts: Some(ts_to_pb(start_ts)),
                end_ts: Some(ts_to_pb(end_ts)),
            })
            .await
            .map_err(rpc(&self.addr))?;
        Ok(r.into_inner().fingerprint)
    }

    /// Allocates a fresh node id through the cluster's leader (for a joining node).
    pub async fn allocate_node_id(&self) -> KvResult<NodeId> {
        let r = self
            .inner
            .clone()
            .allocate_node_id(pb::AllocateNodeIdRequest {})
            .await
            .map_err(rpc(&self.addr))?;
        Ok(NodeId(r.into_inner().node_id))
    }

    /// Asks the cluster (through this node) to make node `id` at `advertise_addr` a member.
    pub async fn join(&self, id: NodeId, advertise_addr: &str) -> KvResult<()> {
        self.inner
            .clone()
            .join(pb::JoinRequest {
                node_id: id.0,
                advertise_addr: advertise_addr.to_string(),
            })
            .await
            .map_err(rpc(&self.addr))?;
        Ok(())
    }

    /// The node's status.
    pub async fn status(&self) -> KvResult<NodeStatus> {
        let s = self
            .inner
            .clone()
            .node_status(pb::NodeStatusRequest {})
            .await
            .map_err(rpc(&self.addr))?
            .into_inner();
        Ok(NodeStatus {
            node_id: NodeId(s.node_id),
            leader: s.leader_id.map(NodeId),
            term: s.term,
            applied_index: s.applied_index,
            closed_ts: ts_from_pb(s.closed_ts),
            voters: s.voters.into_iter().map(NodeId).collect(),
            learners: s.learners.into_iter().map(NodeId).collect(),
        })
    }

    /// Subscribes to the rangefeed of `span` from `from_ts` on this node.
    pub async fn rangefeed(&self, span: &Span, from_ts: Timestamp) -> KvResult<RemoteRangefeed> {
        let stream = self
            .inner
            .clone()
            .rangefeed(pb::RangefeedRequest {
                range_id: RangeId::FIRST.0,
                span: Some(span_to_pb(span)),
                from_ts: Some(ts_to_pb(from_ts)),
            })
            .await
            .map_err(rpc(&self.addr))?
            .into_inner();
        Ok(RemoteRangefeed {
            addr: self.addr.clone(),
            stream,
        })
    }

    async fn commit(&self, txn: &TxnBuffer) -> KvResult<CommitOutcome> {
        let r = self
            .inner
            .clone()
            .commit(txn.to_request(RangeId::FIRST, true))
            .await
            .map_err(rpc(&self.addr))?;
        outcome_from_response(r.into_inner()).map_err(rpc(&self.addr))
    }
}

/// A rangefeed served by a remote node.
#[derive(Debug)]
pub struct RemoteRangefeed {
    addr: String,
    stream: tonic::Streaming<pb::RangefeedEvent>,
}

impl RemoteRangefeed {
    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<KvResult<RangefeedEvent>> {
        let msg = match self.stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return None,
            Err(s) => return Some(Err(rpc(&self.addr)(s))),
        };
        Some(match msg.event {
            Some(pb::rangefeed_event::Event::Value(v)) => Ok(RangefeedEvent::Value(MvccVersion {
                key: v.key,
                ts: ts_from_pb(v.ts),
                value: v.value,
            })),
            Some(pb::rangefeed_event::Event::Checkpoint(c)) => Ok(RangefeedEvent::Checkpoint {
                span: span_from_pb(c.span),
                resolved_ts: ts_from_pb(c.resolved_ts),
            }),
            None => Err(KvError::Codec("rangefeed event without content".into())),
        })
    }
}

/// A transaction whose gateway is a remote node.
#[derive(Debug)]
pub struct RemoteTxn {
    client: KvClient,
    buf: TxnBuffer,
}

impl RemoteTxn {
    /// The snapshot every read sees.
    pub fn read_ts(&self) -> Timestamp {
        self.buf.read_ts
    }

    /// Reads `key`: this transaction's own write if any, else the snapshot.
    pub async fn get(&mut self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        if let Some(own) = self.buf.read_own_write_or_record(key) {
            return Ok(own);
        }
        let (value, served) = self.client.get_as(key, self.buf.spec()).await?;
        self.buf.served(&served);
        Ok(value)
    }

    /// Buffers `key = value`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.buf.put(key.into(), value.into());
    }

    /// Buffers a delete of `key`.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.buf.delete(key.into());
    }

    /// Commits; [`KvError::TxnRetry`] when a read changed after the read timestamp.
    pub async fn commit(self) -> KvResult<Timestamp> {
        if self.buf.writes.is_empty() {
            return Ok(self.buf.read_ts);
        }
        let outcome = self.client.commit(&self.buf).await?;
        self.buf.finish(outcome)
    }
}

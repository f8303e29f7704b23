//! Outgoing RPCs: channels to other nodes, and the Raft network over them.

use crate::command::TypeConfig;
use crate::limits::RAFT_MESSAGE_BYTES_MAX;
use crate::{KvError, KvResult, RangeId};
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use proto::kv as pb;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

type NodeIdRaw = u64;

/// Lazily connected channels to other nodes, by address, with the node's TLS settings.
#[derive(Debug)]
pub(crate) struct Connections {
    tls: Option<ClientTlsConfig>,
    channels: Mutex<HashMap<String, Channel>>,
    /// Fault injection for tests: no RPC leaves or reaches the node (see
    /// [`crate::Store::set_isolated`]).
    isolated: AtomicBool,
}

impl Connections {
    pub fn new(tls: Option<ClientTlsConfig>) -> Self {
        Connections {
            tls,
            channels: Mutex::new(HashMap::new()),
            isolated: AtomicBool::new(false),
        }
    }

    pub fn set_isolated(&self, isolated: bool) {
        self.isolated.store(isolated, Ordering::SeqCst);
    }

    pub fn is_isolated(&self) -> bool {
        self.isolated.load(Ordering::SeqCst)
    }

    /// A channel to `addr` (`host:port`); connects on first use and reconnects after failures.
    pub fn channel(&self, addr: &str) -> KvResult<Channel> {
        if self.is_isolated() {
            return Err(KvError::Rpc {
                target: addr.to_string(),
                message: "this node is isolated from the network (test fault injection)".into(),
            });
        }
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let rpc_err = |e: tonic::transport::Error| KvError::Rpc {
            target: addr.to_string(),
            message: e.to_string(),
        };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
            .map_err(rpc_err)?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.clone()).map_err(rpc_err)?;
        }
        let channel = endpoint.connect_lazy();
        channels.insert(addr.to_string(), channel.clone());
        Ok(channel)
    }
}

/// Creates Raft clients for peers.
#[derive(Debug, Clone)]
pub(crate) struct NetworkFactory {
    pub range_id: RangeId,
    pub conns: Arc<Connections>,
    pub metrics: crate::KvMetrics,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeIdRaw, node: &BasicNode) -> Self::Network {
        PeerClient {
            range_id: self.range_id,
            target,
            addr: node.addr.clone(),
            conns: self.conns.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// Sends Raft messages to one peer.
#[derive(Debug)]
pub(crate) struct PeerClient {
    /// The range whose Raft group this client carries messages for (the receiving store
    /// hands them to its replica of that range).
    range_id: RangeId,
    target: NodeIdRaw,
    addr: String,
    conns: Arc<Connections>,
    metrics: crate::KvMetrics,
}

fn net_err<E: std::error::Error + 'static>(e: &E) -> NetworkError {
    NetworkError::new(e)
}

impl PeerClient {
    async fn call<Req, Resp, Err>(
        &self,
        method: &'static str,
        req: &Req,
    ) -> Result<Resp, RPCError<NodeIdRaw, BasicNode, Err>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Err: std::error::Error + DeserializeOwned,
    {
        let payload = postcard::to_allocvec(req).map_err(|e| RPCError::Network(net_err(&e)))?;
        let channel = self
            .conns
            .channel(&self.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut client = pb::raft_client::RaftClient::new(channel)
            .max_encoding_message_size(RAFT_MESSAGE_BYTES_MAX)
            .max_decoding_message_size(RAFT_MESSAGE_BYTES_MAX);
        let request = pb::RaftRequest {
            range_id: self.range_id.0,
            payload,
        };
        if self.conns.is_isolated() {
            return Err(RPCError::Unreachable(Unreachable::new(
                &std::io::Error::other(
                    "this node is isolated from the network (test fault injection)",
                ),
            )));
        }
        let response = match method {
            "append_entries" => client.append_entries(request).await,
            "vote" => client.vote(request).await,
            _ => client.install_snapshot(request).await,
        }
        .map_err(|status| RPCError::Unreachable(Unreachable::new(&status)))?;
        let result: Result<Resp, Err> = postcard::from_bytes(&response.into_inner().payload)
            .map_err(|e| RPCError::Network(net_err(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        AppendEntriesResponse<NodeIdRaw>,
        RPCError<NodeIdRaw, BasicNode, RaftError<NodeIdRaw>>,
    > {
        self.call("append_entries", &rpc).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeIdRaw>,
        RPCError<NodeIdRaw, BasicNode, RaftError<NodeIdRaw, InstallSnapshotError>>,
    > {
        // openraft sends a snapshot in chunks of `snapshot_max_chunk_size`, read from its
        // file one at a time: this holds one chunk.
        let bytes = rpc.data.len() as u64;
        let done = rpc.done;
        let response = self.call("install_snapshot", &rpc).await?;
        self.metrics.snapshot_sent_bytes.inc_by(bytes);
        if done {
            self.metrics.snapshots_sent.inc();
        }
        Ok(response)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeIdRaw>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeIdRaw>, RPCError<NodeIdRaw, BasicNode, RaftError<NodeIdRaw>>> {
        self.call("vote", &rpc).await
    }
}

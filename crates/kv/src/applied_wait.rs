//! Waiting until replicas have applied a timestamp: what a schema change does before it
//! returns, so that a statement starting afterwards on any node sees it (the SQL layer's
//! catalog caches drop an entry when the write that changes it applies locally). The shape of
//! CockroachDB's "wait for one version", with every node holding a full replica.

use crate::convert::{ts_from_pb, ts_to_pb};
use crate::replica::Replica;
use crate::{KvError, KvResult, NodeId};
use hlc::Timestamp;
use proto::kv as pb;
use std::time::Duration;

/// The longest a `WaitApplied` request is served, whatever the caller asks.
pub(crate) const WAIT_APPLIED_MAX: Duration = Duration::from_secs(60);

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Replica {
    /// Waits until this replica has applied everything at or below `ts` (its closed
    /// timestamp reached `ts`), at most `timeout`, then forwards this node's clock past `ts`
    /// so that its later transactions read above it. Returns the closed timestamp.
    pub async fn wait_applied_local(
        &self,
        ts: Timestamp,
        timeout: Duration,
    ) -> KvResult<Timestamp> {
        let mut closed = self.feed().closed_ts.subscribe();
        let reached = match tokio::time::timeout(timeout, closed.wait_for(|c| *c >= ts)).await {
            Ok(Ok(c)) => *c,
            Ok(Err(_)) => return Err(KvError::ShuttingDown),
            Err(_) => {
                return Err(KvError::ReadTimeout {
                    wanted: ts,
                    closed: self.closed_ts(),
                    waited_ms: millis(timeout),
                });
            }
        };
        self.clock().update(ts)?;
        Ok(reached)
    }

    /// Waits until every member of the range has applied everything at or below `ts`, at
    /// most `timeout` in all. A member that cannot be reached at all (connection refused, not
    /// started) is skipped: it is down, and applies `ts` before it serves again. Returns the
    /// members skipped; fails with [`KvError::NotApplied`] naming the first member that is
    /// reachable but did not confirm in time.
    pub async fn wait_applied_everywhere(
        &self,
        ts: Timestamp,
        timeout: Duration,
    ) -> KvResult<Vec<NodeId>> {
        let waits = self.members().into_iter().map(|(id, addr)| async move {
            if id == self.node_id() {
                return self
                    .wait_applied_local(ts, timeout)
                    .await
                    .map(|_| None)
                    .map_err(|e| (id, e.to_string()));
            }
            let mut client = self.kv_client(&addr).map_err(|e| (id, e.to_string()))?;
            let request = pb::WaitAppliedRequest {
                range_id: self.range_id().0,
                ts: Some(ts_to_pb(ts)),
                timeout_ms: millis(timeout),
            };
            // A little longer than the member's own wait, so its answer arrives.
            let outer = timeout + Duration::from_millis(500);
            match tokio::time::timeout(outer, client.wait_applied(request)).await {
                Ok(Ok(r)) if ts_from_pb(r.get_ref().closed_ts) >= ts => Ok(None),
                Ok(Ok(_)) => Err((id, "answered below the timestamp".to_string())),
                Ok(Err(s)) if s.code() == tonic::Code::Unavailable => {
                    tracing::info!(node_id = self.node_id().0, member = id.0, error = %s.message(),
                        "member unreachable while waiting for it to apply; skipped");
                    Ok(Some(id))
                }
                Ok(Err(s)) => Err((id, s.message().to_string())),
                Err(_) => Err((id, "no answer".to_string())),
            }
        });
        let mut skipped = Vec::new();
        for r in futures::future::join_all(waits).await {
            match r {
                Ok(Some(id)) => skipped.push(id),
                Ok(None) => {}
                Err((node, reason)) => {
                    return Err(KvError::NotApplied {
                        node,
                        ts,
                        waited_ms: millis(timeout),
                        reason,
                    });
                }
            }
        }
        Ok(skipped)
    }
}

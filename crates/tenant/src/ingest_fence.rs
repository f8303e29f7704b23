//! The ingestion fence of a virtual cluster being filled by replication: which replication
//! job may write into its keyspace, and in which epoch. Ingest commands carry the fence they
//! were issued under (`kv::Command::FencedIngest`); the Raft state machine applies one only
//! while the fence key holds exactly that value, so every replica refuses a write from an
//! epoch that is over, in log order.
//!
//! Lifecycle: opened (epoch 1) with the job, in the transaction that creates it; advanced by
//! every coordinator that takes the job over (its predecessor's processors are fenced off);
//! closed (deleted) when the cutover starts, before any revert, and when the job is canceled
//! or the virtual cluster removed. A closed fence is never reopened: nothing can ingest into
//! a virtual cluster past its cutover.
//!
//! Layout (system keyspace): `\x03tenant/ingest-fence/<id: 8 bytes BE>` → job id (8 bytes
//! BE) followed by the epoch (8 bytes BE).

use crate::{TenantError, TenantId, TenantResult};
use kv::{IngestFence, Txn};

const FENCE_PREFIX: &[u8] = b"\x03tenant/ingest-fence/";

/// Who may ingest into a virtual cluster: replication job `job_id`, in epoch `epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestionEpoch {
    pub job_id: u64,
    pub epoch: u64,
}

impl IngestionEpoch {
    fn encode(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(&self.job_id.to_be_bytes());
        v.extend_from_slice(&self.epoch.to_be_bytes());
        v
    }

    fn decode(bytes: &[u8]) -> TenantResult<Self> {
        let corrupt = || TenantError::Corrupt("ingestion fence is not 16 bytes".into());
        let job: [u8; 8] = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        let epoch: [u8; 8] = bytes
            .get(8..16)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        if bytes.len() != 16 {
            return Err(corrupt());
        }
        Ok(IngestionEpoch {
            job_id: u64::from_be_bytes(job),
            epoch: u64::from_be_bytes(epoch),
        })
    }

    /// The condition an ingest into virtual cluster `id` under this epoch carries.
    pub fn fence(self, id: TenantId) -> IngestFence {
        IngestFence {
            key: fence_key(id),
            value: self.encode(),
        }
    }
}

fn fence_key(id: TenantId) -> Vec<u8> {
    let mut k = FENCE_PREFIX.to_vec();
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

/// The current epoch of virtual cluster `id`, `None` when no job may ingest into it.
pub async fn current(txn: &mut Txn, id: TenantId) -> TenantResult<Option<IngestionEpoch>> {
    match txn.get(&fence_key(id)).await? {
        Some(b) => Ok(Some(IngestionEpoch::decode(&b)?)),
        None => Ok(None),
    }
}

/// Lets job `job_id` ingest into virtual cluster `id` (epoch 1); in the transaction that
/// creates the job.
pub fn open(txn: &mut Txn, id: TenantId, job_id: u64) -> IngestionEpoch {
    let e = IngestionEpoch { job_id, epoch: 1 };
    txn.put(fence_key(id), e.encode());
    e
}

/// Starts a new epoch of job `job_id` (a coordinator taking the job over): ingests of earlier
/// epochs are refused from here on. `None` when the fence is closed or belongs to another
/// job, which nothing reopens.
pub async fn advance(
    txn: &mut Txn,
    id: TenantId,
    job_id: u64,
) -> TenantResult<Option<IngestionEpoch>> {
    match current(txn, id).await? {
        Some(e) if e.job_id == job_id => {
            let next = IngestionEpoch {
                job_id,
                epoch: e.epoch + 1,
            };
            txn.put(fence_key(id), next.encode());
            Ok(Some(next))
        }
        _ => Ok(None),
    }
}

/// Refuses every ingest into virtual cluster `id` from here on (cutover, cancel, removal).
pub fn close(txn: &mut Txn, id: TenantId) {
    txn.delete(fence_key(id));
}

//! Reverting a span to a timestamp: the cutover primitive.

use crate::backend::{Backend, Partition, RawBatch};
use crate::export::raw_versions;
use crate::{Durability, RevertProgress, Span, StorageError, StorageResult};
use hlc::Timestamp;

pub(crate) fn revert_span<B: Backend>(
    backend: &B,
    span: &Span,
    to_ts: Timestamp,
    batch_versions_max: usize,
) -> StorageResult<RevertProgress> {
    span.validate()?;
    if batch_versions_max == 0 {
        return Err(StorageError::ZeroLimit {
            what: "the revert batch size",
        });
    }
    let mut batch = RawBatch::with_capacity(batch_versions_max.min(4096));
    let mut resume_key = None;
    for v in raw_versions(backend, span) {
        let v = v?;
        if v.ts <= to_ts {
            continue;
        }
        if batch.len() == batch_versions_max {
            // There is more to remove: resume at this key (its newer versions already in the
            // batch are gone by then, so it is rescanned harmlessly).
            resume_key = Some(v.user_key()?);
            break;
        }
        batch.delete(Partition::Data, v.raw_key);
    }
    let versions_removed = batch.len() as u64;
    backend.commit(batch, Durability::Sync)?;
    Ok(RevertProgress {
        versions_removed,
        resume_key,
    })
}

//! Reverting a span to a timestamp: the cutover primitive.

use crate::backend::{Backend, Partition, RawBatch};
use crate::export::raw_versions;
use crate::{RevertProgress, Span, StorageError, StorageResult};
use hlc::Timestamp;

/// The removals of one revert step: at most `batch_versions_max` versions of `span` newer than
/// `to_ts`, as a batch for the caller to commit (holding the engine's write lock from the scan
/// to the commit), and what committing it achieves.
pub(crate) fn revert_batch<B: Backend>(
    backend: &B,
    span: &Span,
    to_ts: Timestamp,
    batch_versions_max: usize,
) -> StorageResult<(RawBatch, RevertProgress)> {
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
    Ok((
        batch,
        RevertProgress {
            versions_removed,
            resume_key,
        },
    ))
}

//! Garbage collection of versions no read at or above the threshold can see.

use crate::backend::{Backend, Partition, RawBatch};
use crate::export::raw_versions;
use crate::protected_ts;
use crate::{Durability, GcStats, Span, StorageResult};
use hlc::Timestamp;

/// Deletions gathered before a batch is committed (at the next key boundary).
const GC_BATCH_VERSIONS: usize = 1024;

pub(crate) fn gc<B: Backend>(
    backend: &B,
    span: &Span,
    threshold: Timestamp,
) -> StorageResult<GcStats> {
    span.validate()?;
    let threshold = protected_ts::list(backend)?
        .iter()
        .filter(|p| p.span.overlaps(span))
        .map(|p| p.ts)
        .fold(threshold, Timestamp::min);

    let mut versions_removed = 0u64;
    let mut batch = RawBatch::with_capacity(GC_BATCH_VERSIONS);
    // The key prefix whose newest version at or below the threshold has been seen.
    let mut covered_prefix: Option<Vec<u8>> = None;
    for v in raw_versions(backend, span) {
        let v = v?;
        if v.ts > threshold {
            continue;
        }
        let same_key = covered_prefix.as_deref() == Some(v.prefix());
        if !same_key {
            // Commit only between keys: removing a tombstone but not the versions it hides,
            // if a crash fell between two batches, would bring a deleted value back.
            if batch.len() >= GC_BATCH_VERSIONS {
                versions_removed += batch.len() as u64;
                backend.commit(std::mem::take(&mut batch), Durability::NoSync)?;
            }
            covered_prefix = Some(v.prefix().to_vec());
            if !v.is_tombstone() {
                // The newest visible version at the threshold: kept.
                continue;
            }
        }
        batch.delete(Partition::Data, v.raw_key);
    }
    versions_removed += batch.len() as u64;
    backend.commit(batch, Durability::Sync)?;
    Ok(GcStats {
        threshold,
        versions_removed,
    })
}

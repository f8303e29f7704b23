//! Garbage collection of versions no read at or above the threshold can see, one bounded step
//! at a time.

use crate::backend::{Backend, Partition, RawBatch};
use crate::export::raw_versions;
use crate::{GcProgress, Span, StorageError, StorageResult};
use hlc::Timestamp;

/// How many versions one step may scan per version it may remove: a span with little garbage
/// is still walked in bounded steps.
const SCAN_PER_REMOVAL: usize = 8;

/// The removals of one GC step over `span` at `threshold`: at most `batch_versions_max`
/// versions (and about eight times as many scanned), as a batch for the caller to commit
/// (holding the engine's write lock from the scan to the commit), and where to resume.
///
/// A step always ends at a key boundary: removing a tombstone but not the versions it hides,
/// if a crash fell between two steps, would bring a deleted value back.
pub(crate) fn gc_batch<B: Backend>(
    backend: &B,
    span: &Span,
    threshold: Timestamp,
    batch_versions_max: usize,
) -> StorageResult<(RawBatch, GcProgress)> {
    span.validate()?;
    if batch_versions_max == 0 {
        return Err(StorageError::ZeroLimit {
            what: "the gc batch size",
        });
    }
    let scan_max = batch_versions_max.saturating_mul(SCAN_PER_REMOVAL);
    let mut batch = RawBatch::with_capacity(batch_versions_max.min(4096));
    let mut bytes_removed = 0u64;
    let mut resume_key = None;
    // The key whose versions are being walked (its raw prefix), and whether its newest
    // version at or below the threshold has been seen.
    let mut current: Option<Vec<u8>> = None;
    let mut covered = false;
    for (scanned, v) in raw_versions(backend, span).enumerate() {
        let v = v?;
        if current.as_deref() != Some(v.prefix()) {
            if batch.len() >= batch_versions_max || scanned >= scan_max {
                resume_key = Some(v.user_key()?);
                break;
            }
            current = Some(v.prefix().to_vec());
            covered = false;
        }
        if v.ts > threshold {
            continue;
        }
        if !covered {
            covered = true;
            if !v.is_tombstone() {
                // The newest visible version at the threshold: kept.
                continue;
            }
        }
        bytes_removed += (v.raw_key.len() + v.raw_value.len()) as u64;
        batch.delete(Partition::Data, v.raw_key);
    }
    let versions_removed = batch.len() as u64;
    Ok((
        batch,
        GcProgress {
            versions_removed,
            bytes_removed,
            resume_key,
        },
    ))
}

//! Reading versions out of the data partition: the raw version cursor every operation walks,
//! and the export iterator built on it.

use crate::backend::{Backend, Partition};
use crate::encoding::{
    PrettyKey, TIMESTAMP_LEN, decode_key_prefix, decode_value, key_prefix, split_versioned_key,
};
use crate::{ExportIter, ExportMode, MvccVersion, Span, StorageError, StorageResult};
use hlc::Timestamp;

/// One stored version, still encoded.
#[derive(Debug)]
pub(crate) struct RawVersion {
    pub raw_key: Vec<u8>,
    pub ts: Timestamp,
    pub raw_value: Vec<u8>,
}

impl RawVersion {
    /// The encoded key prefix shared by all versions of this key.
    pub fn prefix(&self) -> &[u8] {
        &self.raw_key[..self.raw_key.len() - TIMESTAMP_LEN]
    }

    pub fn user_key(&self) -> StorageResult<Vec<u8>> {
        decode_key_prefix(self.prefix())
    }

    pub fn is_tombstone(&self) -> bool {
        self.raw_value.len() == 1 && self.raw_value[0] == 0
    }

    pub fn value(&self) -> StorageResult<Option<Vec<u8>>> {
        decode_value(&self.raw_key, &self.raw_value)
    }

    pub fn into_version(self) -> StorageResult<MvccVersion> {
        Ok(MvccVersion {
            key: self.user_key()?,
            ts: self.ts,
            value: self.value()?,
        })
    }
}

/// The encoded bounds of a span of user keys.
pub(crate) fn raw_bounds(span: &Span) -> (Vec<u8>, Option<Vec<u8>>) {
    (key_prefix(&span.start), span.end.as_deref().map(key_prefix))
}

/// Every stored version in `span`, in key order and newest first within a key.
pub(crate) fn raw_versions<B: Backend>(
    backend: &B,
    span: &Span,
) -> impl Iterator<Item = StorageResult<RawVersion>> + Send + 'static {
    let (start, end) = raw_bounds(span);
    backend.range(Partition::Data, start, end).map(|item| {
        let (raw_key, raw_value) = item?;
        let (_, ts) = split_versioned_key(&raw_key)?;
        Ok(RawVersion {
            raw_key,
            ts,
            raw_value,
        })
    })
}

/// Checks that `(start_ts, end_ts]` is a well-formed interval (it may be empty).
pub(crate) fn validate_interval(start_ts: Timestamp, end_ts: Timestamp) -> StorageResult<()> {
    if start_ts > end_ts {
        return Err(StorageError::InvalidInterval {
            start: start_ts,
            end: end_ts,
        });
    }
    Ok(())
}

/// The export iterator over a backend.
pub(crate) fn export<B: Backend>(
    backend: &B,
    span: &Span,
    start_ts: Timestamp,
    end_ts: Timestamp,
    mode: ExportMode,
) -> StorageResult<ExportIter> {
    span.validate()?;
    validate_interval(start_ts, end_ts)?;
    let inner = raw_versions(backend, span);
    Ok(match mode {
        ExportMode::AllRevisions => Box::new(
            inner
                .filter(move |v| match v {
                    Ok(v) => v.ts > start_ts && v.ts <= end_ts,
                    Err(_) => true,
                })
                .map(|v| v?.into_version()),
        ),
        ExportMode::Latest => Box::new(LatestIter {
            inner: Box::new(inner),
            start_ts,
            end_ts,
            done_prefix: None,
            failed: false,
        }),
    })
}

/// Yields, per key, the newest version at or below `end_ts` when it is above `start_ts`.
struct LatestIter {
    inner: Box<dyn Iterator<Item = StorageResult<RawVersion>> + Send>,
    start_ts: Timestamp,
    end_ts: Timestamp,
    /// The key prefix whose newest visible version was already decided.
    done_prefix: Option<Vec<u8>>,
    failed: bool,
}

impl Iterator for LatestIter {
    type Item = StorageResult<MvccVersion>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        for item in self.inner.by_ref() {
            let v = match item {
                Ok(v) => v,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            };
            if v.ts > self.end_ts || self.done_prefix.as_deref() == Some(v.prefix()) {
                continue;
            }
            self.done_prefix = Some(v.prefix().to_vec());
            if v.ts <= self.start_ts || (v.is_tombstone() && self.start_ts.is_zero()) {
                continue;
            }
            let version = v.into_version();
            self.failed = version.is_err();
            return Some(version);
        }
        None
    }
}

impl std::fmt::Debug for LatestIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatestIter")
            .field("start_ts", &self.start_ts)
            .field("end_ts", &self.end_ts)
            .field("done_prefix", &self.done_prefix.clone().map(PrettyKey))
            .finish()
    }
}

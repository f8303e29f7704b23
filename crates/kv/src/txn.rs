//! Transactions: reads at a snapshot timestamp, writes buffered at the gateway, one Raft
//! entry at commit whose read set is validated when it is applied.

use crate::{KvError, KvNode, KvResult, RangeId};
use hlc::Timestamp;
use std::collections::BTreeMap;
use std::sync::Arc;
use storage::encoding::PrettyKey;
use storage::{KeyValue, ScanResult, Span};

/// An open transaction. Dropping it without [`Txn::commit`] abandons it (nothing was written).
#[derive(Debug)]
pub struct Txn {
    node: Arc<KvNode>,
    range: RangeId,
    read_ts: Timestamp,
    read_keys: Vec<Vec<u8>>,
    read_spans: Vec<Span>,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Txn {
    pub(crate) fn new(node: Arc<KvNode>, range: RangeId, read_ts: Timestamp) -> Self {
        Txn {
            node,
            range,
            read_ts,
            read_keys: Vec::new(),
            read_spans: Vec::new(),
            writes: BTreeMap::new(),
        }
    }

    /// The snapshot every read of this transaction sees.
    pub fn read_ts(&self) -> Timestamp {
        self.read_ts
    }

    /// Reads `key`: this transaction's own write if it made one, else the snapshot.
    pub async fn get(&mut self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.clone());
        }
        self.read_keys.push(key.to_vec());
        self.node.get(self.range, key, self.read_ts).await
    }

    /// Scans `span` at the snapshot, merged with this transaction's own writes.
    pub async fn scan(&mut self, span: &Span, limit: usize) -> KvResult<ScanResult> {
        let snapshot = self
            .node
            .scan(self.range, span, self.read_ts, limit)
            .await?;
        // The whole span is read (not only the page) when the page ends it; else up to the
        // resume key.
        let read_span = match &snapshot.resume_key {
            Some(k) => Span::new(span.start.clone(), k.clone()),
            None => span.clone(),
        };
        let mut merged: BTreeMap<Vec<u8>, KeyValue> = snapshot
            .rows
            .into_iter()
            .map(|kv| (kv.key.clone(), kv))
            .collect();
        for (k, v) in self.writes.iter().filter(|(k, _)| read_span.contains(k)) {
            match v {
                Some(value) => {
                    merged.insert(
                        k.clone(),
                        KeyValue {
                            key: k.clone(),
                            ts: self.read_ts,
                            value: value.clone(),
                        },
                    );
                }
                None => {
                    merged.remove(k);
                }
            }
        }
        self.read_spans.push(read_span);
        Ok(ScanResult {
            rows: merged.into_values().collect(),
            resume_key: snapshot.resume_key,
        })
    }

    /// Buffers a write of `key = value`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.writes.insert(key.into(), Some(value.into()));
    }

    /// Buffers a delete of `key`.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.writes.insert(key.into(), None);
    }

    /// Commits: returns the commit timestamp, or [`KvError::TxnRetry`] if something this
    /// transaction read changed after its read timestamp. A read-only transaction commits at
    /// its read timestamp without a Raft round.
    pub async fn commit(self) -> KvResult<Timestamp> {
        if self.writes.is_empty() {
            return Ok(self.read_ts);
        }
        let read_ts = self.read_ts;
        let outcome = self
            .node
            .commit(
                self.range,
                read_ts,
                self.read_keys,
                self.read_spans,
                self.writes.into_iter().collect(),
            )
            .await?;
        match outcome {
            Ok(commit_ts) => Ok(commit_ts),
            Err(conflict_key) => Err(KvError::TxnRetry {
                key: PrettyKey(conflict_key),
                read_ts,
            }),
        }
    }
}

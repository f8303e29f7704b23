//! Transactions: reads at a snapshot timestamp, writes buffered at the gateway, one Raft
//! entry at commit whose read set is validated when it is applied.

use crate::command::Command;
use crate::convert::{span_from_pb, span_to_pb, ts_from_pb, ts_to_pb};
use crate::read::{ReadOp, ReadSpec, ReadValue, Served};
use crate::{KvError, KvResult, RangeId, Store};
use hlc::Timestamp;
use proto::kv as pb;
use std::collections::BTreeMap;
use std::sync::Arc;
use storage::encoding::PrettyKey;
use storage::{KeyValue, ScanResult, Span};

/// What a transaction has read and buffered, shared by local ([`Txn`]) and remote
/// ([`crate::RemoteTxn`]) transactions, with its wire and log forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnBuffer {
    pub read_ts: Timestamp,
    /// The clock uncertainty still to honour (see [`crate::read`]); `None` for a historical
    /// read.
    pub uncertainty_limit: Option<Timestamp>,
    /// Nothing was read yet: the first read may move `read_ts` up.
    pub may_bump: bool,
    pub read_keys: Vec<Vec<u8>>,
    pub read_spans: Vec<Span>,
    /// Buffered writes by key; `None` deletes.
    pub writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// A commit decided by the leader: the commit timestamp, or the key that conflicted.
pub(crate) type CommitOutcome = Result<Timestamp, Vec<u8>>;

impl TxnBuffer {
    pub fn new(spec: ReadSpec) -> Self {
        TxnBuffer {
            read_ts: spec.read_ts,
            uncertainty_limit: spec.uncertainty_limit,
            may_bump: spec.may_bump,
            read_keys: Vec::new(),
            read_spans: Vec::new(),
            writes: BTreeMap::new(),
        }
    }

    /// How the next read reads.
    pub fn spec(&self) -> ReadSpec {
        ReadSpec {
            read_ts: self.read_ts,
            uncertainty_limit: self.uncertainty_limit,
            may_bump: self.may_bump,
        }
    }

    /// Takes the timestamps a served read reports (see [`ReadSpec::after`]).
    pub fn served(&mut self, served: &Served) {
        let spec = self.spec().after(served);
        self.read_ts = spec.read_ts;
        self.uncertainty_limit = spec.uncertainty_limit;
        self.may_bump = spec.may_bump;
    }

    /// This transaction's own write of `key`, if it made one (`Some(None)`: deleted);
    /// otherwise records `key` in the read set and returns `None`.
    pub fn read_own_write_or_record(&mut self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        if let Some(v) = self.writes.get(key) {
            return Some(v.clone());
        }
        self.read_keys.push(key.to_vec());
        None
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// The commit request carrying this transaction.
    pub fn to_request(&self, range: RangeId, route_to_leader: bool) -> pb::CommitRequest {
        pb::CommitRequest {
            range_id: range.0,
            read_ts: Some(ts_to_pb(self.read_ts)),
            read_keys: self.read_keys.clone(),
            read_spans: self.read_spans.iter().map(span_to_pb).collect(),
            writes: self
                .writes
                .iter()
                .map(|(k, v)| pb::Write {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            route_to_leader,
        }
    }

    /// The transaction a commit request carries.
    pub fn from_request(req: pb::CommitRequest) -> Self {
        TxnBuffer {
            read_ts: ts_from_pb(req.read_ts),
            uncertainty_limit: None,
            may_bump: false,
            read_keys: req.read_keys,
            read_spans: req
                .read_spans
                .into_iter()
                .map(|s| span_from_pb(Some(s)))
                .collect(),
            // A later write of a key in the request replaces an earlier one, as in the buffer.
            writes: req.writes.into_iter().map(|w| (w.key, w.value)).collect(),
        }
    }

    /// The Raft command committing this transaction.
    pub fn into_command(self, proposed_ts: Timestamp) -> Command {
        Command::Txn {
            proposed_ts,
            read_ts: self.read_ts,
            read_keys: self.read_keys,
            read_spans: self
                .read_spans
                .into_iter()
                .map(|s| (s.start, s.end))
                .collect(),
            writes: self.writes.into_iter().collect(),
        }
    }

    /// The encoded size of the command [`TxnBuffer::into_command`] makes, computed without
    /// building it: postcard encodes an enum variant as its index followed by its fields, and
    /// a map like a sequence of pairs, so this tuple encodes exactly like `Command::Txn`.
    pub fn command_bytes(&self, proposed_ts: Timestamp) -> usize {
        /// The variant index of `Command::Txn`.
        const TXN_VARIANT: u32 = 1;
        let spans: Vec<(&Vec<u8>, &Option<Vec<u8>>)> =
            self.read_spans.iter().map(|s| (&s.start, &s.end)).collect();
        crate::command::encoded_bytes(&(
            TXN_VARIANT,
            proposed_ts,
            self.read_ts,
            &self.read_keys,
            spans,
            &self.writes,
        ))
    }

    /// A decided commit as the caller sees it: the commit timestamp, or the retryable error.
    pub fn finish(&self, outcome: CommitOutcome) -> KvResult<Timestamp> {
        outcome.map_err(|key| KvError::TxnRetry {
            key: PrettyKey(key),
            read_ts: self.read_ts,
        })
    }
}

/// The outcome a commit response carries.
pub(crate) fn outcome_from_response(r: pb::CommitResponse) -> Result<CommitOutcome, tonic::Status> {
    match r.outcome {
        Some(pb::commit_response::Outcome::CommitTs(ts)) => Ok(Ok(ts_from_pb(Some(ts)))),
        Some(pb::commit_response::Outcome::ConflictKey(k)) => Ok(Err(k)),
        None => Err(tonic::Status::internal(
            "commit response without an outcome",
        )),
    }
}

/// The commit response carrying an outcome.
pub(crate) fn response_from_outcome(outcome: CommitOutcome) -> pb::CommitResponse {
    pb::CommitResponse {
        outcome: Some(match outcome {
            Ok(ts) => pb::commit_response::Outcome::CommitTs(ts_to_pb(ts)),
            Err(key) => pb::commit_response::Outcome::ConflictKey(key),
        }),
    }
}

/// An open transaction. Dropping it without [`Txn::commit`] abandons it (nothing was written).
#[derive(Debug)]
pub struct Txn {
    store: Arc<Store>,
    buf: TxnBuffer,
}

impl Txn {
    pub(crate) fn new(store: Arc<Store>, spec: ReadSpec) -> Self {
        Txn {
            store,
            buf: TxnBuffer::new(spec),
        }
    }

    /// The store this transaction reads and commits through.
    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The snapshot every read of this transaction sees. Before the first read of a
    /// present-time transaction it may still move up (see [`crate::read`]).
    pub fn read_ts(&self) -> Timestamp {
        self.buf.read_ts
    }

    /// Reads `key`: this transaction's own write if it made one, else the snapshot.
    pub async fn get(&mut self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        if let Some(own) = self.buf.read_own_write_or_record(key) {
            return Ok(own);
        }
        let (value, served) = self
            .store
            .replica_for_key(key)?
            .read(ReadOp::get(key), self.buf.spec(), false)
            .await?;
        self.buf.served(&served);
        match value {
            ReadValue::Get(v) => Ok(v),
            other => Err(KvError::Codec(format!("get answered with {other:?}"))),
        }
    }

    /// Scans `span` at the snapshot, merged with this transaction's own writes.
    pub async fn scan(&mut self, span: &Span, limit: usize) -> KvResult<ScanResult> {
        let (value, served) = self
            .store
            .replica_for_span(span)?
            .read(ReadOp::Scan(span.clone(), limit), self.buf.spec(), false)
            .await?;
        self.buf.served(&served);
        let read_ts = self.buf.read_ts;
        let snapshot = match value {
            ReadValue::Scan(r) => r,
            other => return Err(KvError::Codec(format!("scan answered with {other:?}"))),
        };
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
        for (k, v) in self
            .buf
            .writes
            .iter()
            .filter(|(k, _)| read_span.contains(k))
        {
            match v {
                Some(value) => {
                    merged.insert(
                        k.clone(),
                        KeyValue {
                            key: k.clone(),
                            ts: read_ts,
                            value: value.clone(),
                        },
                    );
                }
                None => {
                    merged.remove(k);
                }
            }
        }
        self.buf.read_spans.push(read_span);
        Ok(ScanResult {
            rows: merged.into_values().collect(),
            resume_key: snapshot.resume_key,
        })
    }

    /// Buffers a write of `key = value`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.buf.put(key.into(), value.into());
    }

    /// Buffers a delete of `key`.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.buf.delete(key.into());
    }

    /// Adds `key` to the read set without reading it: for a value the caller holds from an
    /// earlier read (a cache), so that this transaction still fails to commit if `key`
    /// changed after its read timestamp.
    pub fn record_read(&mut self, key: &[u8]) {
        self.buf.read_keys.push(key.to_vec());
    }

    /// Commits: returns the commit timestamp, or [`KvError::TxnRetry`] if something this
    /// transaction read changed after its read timestamp. A read-only transaction commits at
    /// its read timestamp without a Raft round.
    pub async fn commit(self) -> KvResult<Timestamp> {
        if self.buf.writes.is_empty() {
            return Ok(self.buf.read_ts);
        }
        // One range holds every key the transaction read or wrote (with one range, always):
        // it commits in one phase through that range's leader.
        let replica = self.store.replica_for_txn(&self.buf)?;
        let outcome = replica.commit(&self.buf).await?;
        self.buf.finish(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: the size a gateway checks before forwarding a commit is exactly the size of the
    // Raft command the leader builds from it (issue 14 item 8 checks both against
    // kv.raft.command.max_size). Method: a buffer with reads, spans and writes; compare with
    // the real encoding.
    #[test]
    fn command_bytes_matches_the_encoding() {
        let mut buf = TxnBuffer::new(ReadSpec::fixed(Timestamp::new(5, 2)));
        buf.read_keys.push(b"k1".to_vec());
        buf.read_spans.push(Span::new(b"a".to_vec(), b"b".to_vec()));
        buf.read_spans.push(Span::from_key(b"c".to_vec()));
        buf.put(b"x".to_vec(), vec![7; 300]);
        buf.delete(b"y".to_vec());
        let ts = Timestamp::new(1_700_000_000_000_000_000, 3);
        let expected = postcard::to_allocvec(&buf.clone().into_command(ts))
            .expect("encode")
            .len();
        assert_eq!(buf.command_bytes(ts), expected);
    }
}

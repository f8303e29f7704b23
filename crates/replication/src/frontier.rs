//! The span frontier: for every part of a keyspace, the timestamp up to which it is complete.
//! The job's `replicated_time` is the frontier's minimum.

use hlc::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A bounded key span `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeySpan {
    #[serde(with = "hex_bytes")]
    pub start: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub end: Vec<u8>,
}

impl KeySpan {
    pub fn new(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        KeySpan {
            start: start.into(),
            end: end.into(),
        }
    }

    /// Whether the span holds no key.
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && key < self.end.as_slice()
    }

    /// The part of `self` inside `other`, if any.
    pub fn intersect(&self, other: &KeySpan) -> Option<KeySpan> {
        let s = KeySpan::new(
            self.start.clone().max(other.start.clone()),
            self.end.clone().min(other.end.clone()),
        );
        (!s.is_empty()).then_some(s)
    }

    /// As a storage span.
    pub fn to_storage(&self) -> storage::Span {
        storage::Span::new(self.start.clone(), self.end.clone())
    }
}

/// Byte strings as hex in JSON (job records and stream specs are JSON).
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd-length hex string"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// A span and the timestamp it is complete up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanTs {
    pub span: KeySpan,
    pub ts: Timestamp,
}

/// Non-overlapping entries that exactly cover one span, each with a timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    /// start -> (end, ts)
    entries: BTreeMap<Vec<u8>, (Vec<u8>, Timestamp)>,
}

impl Frontier {
    /// A frontier over `span`, all of it at `ts`.
    pub fn new(span: &KeySpan, ts: Timestamp) -> Self {
        let mut entries = BTreeMap::new();
        if !span.is_empty() {
            entries.insert(span.start.clone(), (span.end.clone(), ts));
        }
        Frontier { entries }
    }

    /// A frontier over `span` from saved entries (`ts` where they leave gaps).
    pub fn from_entries(span: &KeySpan, ts: Timestamp, saved: &[SpanTs]) -> Self {
        let mut f = Frontier::new(span, ts);
        for e in saved {
            f.forward(&e.span, e.ts);
        }
        f
    }

    /// Splits the entry containing `key` (if any) so that an entry starts at `key`.
    fn split_at(&mut self, key: &[u8]) {
        let found = self
            .entries
            .range(..=key.to_vec())
            .next_back()
            .map(|(s, (e, ts))| (s.clone(), e.clone(), *ts));
        if let Some((start, end, ts)) = found
            && start.as_slice() < key
            && key < end.as_slice()
        {
            self.entries.insert(start, (key.to_vec(), ts));
            self.entries.insert(key.to_vec(), (end, ts));
        }
    }

    /// Raises the timestamp of every part of `span` to at least `ts` (never lowers it).
    /// Returns whether anything moved.
    pub fn forward(&mut self, span: &KeySpan, ts: Timestamp) -> bool {
        if span.is_empty() {
            return false;
        }
        self.split_at(&span.start);
        self.split_at(&span.end);
        let mut moved = false;
        for (_, (_, t)) in self.entries.range_mut(span.start.clone()..span.end.clone()) {
            if *t < ts {
                *t = ts;
                moved = true;
            }
        }
        if moved {
            self.merge();
        }
        moved
    }

    /// Joins adjacent entries with equal timestamps.
    fn merge(&mut self) {
        let mut merged: BTreeMap<Vec<u8>, (Vec<u8>, Timestamp)> = BTreeMap::new();
        let mut last: Option<(Vec<u8>, Vec<u8>, Timestamp)> = None;
        for (s, (e, ts)) in std::mem::take(&mut self.entries) {
            match &mut last {
                Some((_, le, lts)) if *le == s && *lts == ts => *le = e,
                _ => {
                    if let Some((ls, le, lts)) = last.take() {
                        merged.insert(ls, (le, lts));
                    }
                    last = Some((s, e, ts));
                }
            }
        }
        if let Some((ls, le, lts)) = last {
            merged.insert(ls, (le, lts));
        }
        self.entries = merged;
    }

    /// The lowest timestamp over the whole span.
    pub fn min(&self) -> Timestamp {
        self.entries
            .values()
            .map(|(_, ts)| *ts)
            .min()
            .unwrap_or(Timestamp::ZERO)
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> Vec<SpanTs> {
        self.entries
            .iter()
            .map(|(s, (e, ts))| SpanTs {
                span: KeySpan::new(s.clone(), e.clone()),
                ts: *ts,
            })
            .collect()
    }

    /// The entries inside `span`, clipped to it.
    pub fn restrict(&self, span: &KeySpan) -> Vec<SpanTs> {
        self.entries()
            .into_iter()
            .filter_map(|e| e.span.intersect(span).map(|s| SpanTs { span: s, ts: e.ts }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(n: u64) -> Timestamp {
        Timestamp::new(n, 0)
    }

    #[test]
    fn forward_splits_and_merges() {
        let all = KeySpan::new(b"a".to_vec(), b"z".to_vec());
        let mut f = Frontier::new(&all, ts(1));
        assert!(f.forward(&KeySpan::new(b"c".to_vec(), b"f".to_vec()), ts(5)));
        assert_eq!(f.min(), ts(1));
        assert_eq!(f.entries().len(), 3);
        assert!(!f.forward(&KeySpan::new(b"c".to_vec(), b"f".to_vec()), ts(3)));
        f.forward(&KeySpan::new(b"a".to_vec(), b"c".to_vec()), ts(5));
        f.forward(&KeySpan::new(b"f".to_vec(), b"z".to_vec()), ts(5));
        assert_eq!(f.entries().len(), 1);
        assert_eq!(f.min(), ts(5));
        // Outside the frontier's span: nothing to move.
        assert!(!f.forward(&KeySpan::new(b"z".to_vec(), b"zz".to_vec()), ts(9)));
        assert_eq!(f.entries().len(), 1);
    }

    #[test]
    fn restrict_clips() {
        let all = KeySpan::new(b"a".to_vec(), b"z".to_vec());
        let mut f = Frontier::new(&all, ts(1));
        f.forward(&KeySpan::new(b"c".to_vec(), b"f".to_vec()), ts(5));
        let r = f.restrict(&KeySpan::new(b"b".to_vec(), b"d".to_vec()));
        assert_eq!(
            r,
            vec![
                SpanTs {
                    span: KeySpan::new(b"b".to_vec(), b"c".to_vec()),
                    ts: ts(1)
                },
                SpanTs {
                    span: KeySpan::new(b"c".to_vec(), b"d".to_vec()),
                    ts: ts(5)
                },
            ]
        );
        let json = serde_json::to_string(&r).expect("serializes");
        let back: Vec<SpanTs> = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, r);
    }

    proptest! {
        /// Against a model: one timestamp per single-byte key.
        #[test]
        fn matches_model(ops in proptest::collection::vec((0u8..20, 0u8..20, 0u64..50), 0..40)) {
            let all = KeySpan::new(vec![0u8], vec![20u8]);
            let mut f = Frontier::new(&all, ts(0));
            let mut model = [0u64; 20];
            for (a, b, t) in ops {
                let (a, b) = (a.min(b), a.max(b));
                f.forward(&KeySpan::new(vec![a], vec![b]), ts(t));
                for m in model.iter_mut().take(b as usize).skip(a as usize) {
                    *m = (*m).max(t);
                }
            }
            let entries = f.entries();
            // Exact cover, in order.
            prop_assert_eq!(&entries[0].span.start, &vec![0u8]);
            prop_assert_eq!(&entries.last().expect("non-empty").span.end, &vec![20u8]);
            for w in entries.windows(2) {
                prop_assert_eq!(&w[0].span.end, &w[1].span.start);
            }
            for (k, m) in model.iter().enumerate() {
                let e = entries.iter().find(|e| e.span.contains(&[k as u8])).expect("covered");
                prop_assert_eq!(e.ts, ts(*m));
            }
            prop_assert_eq!(f.min(), ts(*model.iter().min().expect("non-empty")));
        }
    }
}

use crate::encoding::PrettyKey;
use crate::{StorageError, StorageResult};

/// A half-open key span `[start, end)`; `end = None` reaches to the end of the keyspace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Span {
    /// The first key in the span.
    pub start: Vec<u8>,
    /// The first key after the span, or `None` for no upper bound.
    pub end: Option<Vec<u8>>,
}

impl Span {
    /// The span `[start, end)`.
    pub fn new(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        Span {
            start: start.into(),
            end: Some(end.into()),
        }
    }

    /// The span `[start, ∞)`.
    pub fn from_key(start: impl Into<Vec<u8>>) -> Self {
        Span {
            start: start.into(),
            end: None,
        }
    }

    /// Every key.
    pub fn all() -> Self {
        Span::from_key(Vec::new())
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        Span {
            start: prefix.to_vec(),
            end: prefix_end(prefix),
        }
    }

    /// The span holding exactly `key` (`[key, key\0)`).
    pub fn key(key: &[u8]) -> Self {
        Span::new(key, [key, &[0u8][..]].concat())
    }

    /// The smallest span holding every key of `keys`; `None` when there is none.
    pub fn covering<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Option<Self> {
        let mut keys = keys.into_iter();
        let first = keys.next()?;
        let (low, high) = keys.fold((first, first), |(lo, hi), k| (lo.min(k), hi.max(k)));
        Some(Span::new(low, [high, &[0u8][..]].concat()))
    }

    /// The same span starting at `start` instead (to resume a paginated operation).
    pub fn with_start(&self, start: impl Into<Vec<u8>>) -> Self {
        Span {
            start: start.into(),
            end: self.end.clone(),
        }
    }

    /// Whether `key` lies in the span.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }

    /// Whether the two spans share at least one key.
    pub fn overlaps(&self, other: &Span) -> bool {
        let self_starts_before_other_ends = other
            .end
            .as_deref()
            .is_none_or(|end| self.start.as_slice() < end);
        let other_starts_before_self_ends = self
            .end
            .as_deref()
            .is_none_or(|end| other.start.as_slice() < end);
        self_starts_before_other_ends && other_starts_before_self_ends
    }

    /// Checks that the span is not empty.
    pub fn validate(&self) -> StorageResult<()> {
        match &self.end {
            Some(end) if end.as_slice() <= self.start.as_slice() => {
                Err(StorageError::InvalidSpan {
                    start: PrettyKey(self.start.clone()),
                    end: PrettyKey(end.clone()),
                })
            }
            _ => Ok(()),
        }
    }
}

/// The first key after every key with `prefix`, or `None` when there is none (the prefix is
/// empty or all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: containment and overlap are right at the edges of half-open spans.
    #[test]
    fn contains_and_overlaps_at_edges() {
        let s = Span::new("b", "d");
        assert!(s.contains(b"b"));
        assert!(s.contains(b"c\xff"));
        assert!(!s.contains(b"d"));
        assert!(!s.contains(b"a"));
        assert!(s.overlaps(&Span::new("c", "z")));
        assert!(!s.overlaps(&Span::new("d", "z")));
        assert!(!s.overlaps(&Span::new("a", "b")));
        assert!(s.overlaps(&Span::all()));
        assert!(Span::from_key("c").overlaps(&s));
        assert!(Span::new("b", "a").validate().is_err());
        assert!(Span::new("a", "a").validate().is_err());
    }

    // Goal: a prefix span holds exactly the keys with the prefix, including 0xff edge cases.
    #[test]
    fn prefix_spans() {
        assert_eq!(Span::prefix(b"ab"), Span::new("ab", "ac"));
        assert_eq!(
            Span::prefix(b"a\xff"),
            Span::new(b"a\xff".to_vec(), b"b".to_vec())
        );
        assert_eq!(
            Span::prefix(b"\xff\xff"),
            Span::from_key(b"\xff\xff".to_vec())
        );
        let s = Span::prefix(b"a\xff");
        assert!(s.contains(b"a\xff\xff\xff"));
        assert!(!s.contains(b"b"));
    }

    // Goal: a key's span holds that key and nothing else (not its extensions), and a covering
    // span holds every key given, from the smallest to the largest, in any order.
    #[test]
    fn key_and_covering_spans() {
        let k = Span::key(b"b");
        assert!(k.contains(b"b"));
        assert!(!k.contains(b"b\x00"));
        assert!(!k.contains(b"a\xff"));
        let keys: [&[u8]; 3] = [b"m", b"c", b"x"];
        let c = Span::covering(keys).expect("keys");
        assert_eq!(c, Span::new("c", b"x\x00".to_vec()));
        assert!(keys.iter().all(|key| c.contains(key)));
        assert_eq!(Span::covering(std::iter::empty()), None);
    }
}

use std::fmt;

/// A node of the cluster. Ids start at 1 and are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A range: a span of the keyspace replicated by one Raft group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RangeId(pub u64);

impl RangeId {
    /// The only range for now: the whole keyspace.
    pub const FIRST: RangeId = RangeId(1);
}

impl fmt::Display for RangeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// The keys of a replica's own state, apart from the data it replicates: its Raft log
/// entries, vote and purge point (in the log database), its applied state with the lease and
/// its snapshot-install marker (local keys of the data store). Every one starts with `r`, the
/// range id (8 bytes, big-endian) and `/`, so replicas of many ranges share a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplicaKeys {
    prefix: [u8; 10],
}

impl ReplicaKeys {
    const ENTRY: u8 = b'e';
    const ENTRY_KEY_LEN: usize = 10 + 1 + 8;

    pub fn new(range: RangeId) -> Self {
        let mut prefix = [0u8; 10];
        prefix[0] = b'r';
        prefix[1..9].copy_from_slice(&range.0.to_be_bytes());
        prefix[9] = b'/';
        ReplicaKeys { prefix }
    }

    fn key(&self, suffix: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + suffix.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(suffix);
        k
    }

    /// The applied state (applied log id, membership, last timestamp, lease).
    pub fn applied(&self) -> Vec<u8> {
        self.key(b"applied")
    }

    /// Present while a snapshot is being installed (see `snapshot.rs`).
    pub fn installing_snapshot(&self) -> Vec<u8> {
        self.key(b"installing-snapshot")
    }

    /// The Raft vote.
    pub fn vote(&self) -> Vec<u8> {
        self.key(b"m/vote")
    }

    /// The last purged log id.
    pub fn purged(&self) -> Vec<u8> {
        self.key(b"m/purged")
    }

    /// The Raft log entry at `index`; entries sort by index.
    pub fn entry(&self, index: u64) -> [u8; Self::ENTRY_KEY_LEN] {
        let mut k = [0u8; Self::ENTRY_KEY_LEN];
        k[..10].copy_from_slice(&self.prefix);
        k[10] = Self::ENTRY;
        k[11..].copy_from_slice(&index.to_be_bytes());
        k
    }

    /// The index of an entry key made by [`ReplicaKeys::entry`].
    pub fn index_of(key: &[u8]) -> u64 {
        key.get(11..Self::ENTRY_KEY_LEN)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_keys_of_two_ranges_never_interleave() {
        let (a, b) = (ReplicaKeys::new(RangeId(1)), ReplicaKeys::new(RangeId(2)));
        assert!(a.entry(u64::MAX).as_slice() < b.entry(0).as_slice());
        assert!(a.applied() < b.vote());
        assert!(a.entry(7) < a.entry(300));
        assert_eq!(ReplicaKeys::index_of(&a.entry(300)), 300);
        assert_ne!(a.applied(), b.applied());
        assert_ne!(a.vote(), a.purged());
    }
}

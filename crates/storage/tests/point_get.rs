//! The MVCC point get reads one stored item (issue 15 item 7: a primary-key lookup is a
//! point read, not a scan).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use storage::backend::{Backend, Partition, RawBatch, RawIter};
use storage::{
    Durability, Engine, FjallBackend, MemBackend, MvccEngine, StorageResult, Timestamp, WriteBatch,
};

/// A backend that counts the items its range iterators yield.
#[derive(Debug)]
struct Counting<B> {
    inner: B,
    items: Arc<AtomicUsize>,
}

impl<B: Backend> Backend for Counting<B> {
    fn get(&self, partition: Partition, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        self.inner.get(partition, key)
    }

    fn range(&self, partition: Partition, start: Vec<u8>, end: Option<Vec<u8>>) -> RawIter {
        let items = self.items.clone();
        Box::new(self.inner.range(partition, start, end).inspect(move |_| {
            items.fetch_add(1, Ordering::Relaxed);
        }))
    }

    fn commit(&self, batch: RawBatch, durability: Durability) -> StorageResult<()> {
        self.inner.commit(batch, durability)
    }
}

// Goal (issue 15 item 7): `get` of a key with many versions, among many neighbours, seeks to
// the newest version at or below the read time and reads exactly that one item (or none past
// the key's last version), however long the key's history and whatever follows it. Method: a
// counting backend; 200 versions of `b`, 200 other keys; count the items pulled by gets at
// several timestamps, on both backends.
#[test]
fn a_point_get_reads_one_item() {
    let dir = tempfile::tempdir().expect("dir");
    let fjall = FjallBackend::open(dir.path()).expect("open");
    check_point_gets(fjall);
    check_point_gets(MemBackend::default());
}

fn check_point_gets<B: Backend>(backend: B) {
    let items = Arc::new(AtomicUsize::new(0));
    let engine = MvccEngine::with_backend(Counting {
        inner: backend,
        items: items.clone(),
    });
    let mut batch = WriteBatch::new();
    for i in 1..=200u64 {
        batch.put(b"b", Timestamp::new(i * 10, 0), i.to_be_bytes());
        batch.put(format!("c{i:03}"), Timestamp::new(i, 0), b"x");
        batch.put(format!("a{i:03}"), Timestamp::new(i, 0), b"x");
    }
    batch.delete(b"d", Timestamp::new(5, 0));
    engine.write(batch, Durability::NoSync).expect("write");

    for (read_ts, want) in [(2_000, Some(200u64)), (1_005, Some(100)), (10, Some(1))] {
        items.store(0, Ordering::Relaxed);
        let got = engine
            .get(b"b", Timestamp::new(read_ts, 0))
            .expect("get")
            .map(|v| u64::from_be_bytes(v.try_into().expect("8 bytes")));
        assert_eq!(got, want, "at {read_ts}");
        assert_eq!(items.load(Ordering::Relaxed), 1, "items read at {read_ts}");
    }
    for (key, read_ts) in [(&b"b"[..], 5), (b"bb", 100), (b"d", 100)] {
        items.store(0, Ordering::Relaxed);
        let got = engine.get(key, Timestamp::new(read_ts, 0)).expect("get");
        assert_eq!(got, None);
        assert!(
            items.load(Ordering::Relaxed) <= 1,
            "a missing key read {} items",
            items.load(Ordering::Relaxed)
        );
    }
}

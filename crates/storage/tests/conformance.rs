//! The conformance suite of the `Engine` trait, run against every engine: each case is a
//! function of an engine factory, instantiated once per engine by the macro at the bottom.

mod common;

use common::{Kind, ts};
use storage::{
    Durability, Engine, ExportMode, IngestStats, KeyValue, MvccVersion, Span, StorageError,
    Timestamp, WriteBatch,
};

fn must_export(
    e: &dyn Engine,
    span: &Span,
    start: u64,
    end: u64,
    mode: ExportMode,
) -> Vec<MvccVersion> {
    e.export(span, ts(start), ts(end), mode)
        .expect("export")
        .collect::<Result<Vec<_>, _>>()
        .expect("export items")
}

fn kv(key: &str, t: u64, value: &str) -> KeyValue {
    KeyValue {
        key: key.as_bytes().to_vec(),
        ts: ts(t),
        value: value.as_bytes().to_vec(),
    }
}

// Goal: get returns the newest version at or below the read time, a tombstone reads as
// absent, and keys that are prefixes of one another (or hold 0x00 bytes) never mix.
fn get_reads_newest_at_or_below(kind: Kind) {
    let e = kind.must_open();
    e.put(b"a", ts(10), b"v1").expect("put");
    e.put(b"a", ts(20), b"v2").expect("put");
    e.delete(b"a", ts(30)).expect("delete");
    e.put(b"a", ts(40), b"v4").expect("put");
    e.put(b"a\x00", ts(15), b"zero").expect("put");
    e.put(b"a\x00\x00", ts(16), b"zerozero").expect("put");
    e.put(b"", ts(5), b"empty").expect("put");
    let get = |k: &[u8], t: u64| e.get(k, ts(t)).expect("get");
    assert_eq!(get(b"a", 9), None);
    assert_eq!(get(b"a", 10).as_deref(), Some(&b"v1"[..]));
    assert_eq!(get(b"a", 19).as_deref(), Some(&b"v1"[..]));
    assert_eq!(get(b"a", 29).as_deref(), Some(&b"v2"[..]));
    assert_eq!(get(b"a", 30), None);
    assert_eq!(get(b"a", 39), None);
    assert_eq!(get(b"a", u64::MAX).as_deref(), Some(&b"v4"[..]));
    assert_eq!(get(b"a\x00", 100).as_deref(), Some(&b"zero"[..]));
    assert_eq!(get(b"a\x00\x00", 100).as_deref(), Some(&b"zerozero"[..]));
    assert_eq!(get(b"", 100).as_deref(), Some(&b"empty"[..]));
    assert_eq!(get(b"b", 100), None);
    assert_eq!(
        e.get(b"a", Timestamp::new(20, 1)).expect("get").as_deref(),
        Some(&b"v2"[..])
    );
}

// Goal: scan returns the live keys of the span as of the read time in order, honours the
// limit with a resume key, and paging with the resume key visits every key exactly once.
fn scan_pages_through_a_span(kind: Kind) {
    let e = kind.must_open();
    for i in 0..10u64 {
        e.put(
            format!("k{i}").as_bytes(),
            ts(10 + i),
            format!("v{i}").as_bytes(),
        )
        .expect("put");
    }
    e.delete(b"k4", ts(100)).expect("delete");
    e.put(b"k5", ts(101), b"new5").expect("put");
    let span = Span::new("k2", "k7");
    let rows = e.scan(&span, ts(200), 100).expect("scan");
    assert_eq!(
        rows.rows,
        vec![
            kv("k2", 12, "v2"),
            kv("k3", 13, "v3"),
            kv("k5", 101, "new5"),
            kv("k6", 16, "v6")
        ]
    );
    assert_eq!(rows.resume_key, None);
    // As of ts 14, k4 and k5's later versions are not visible, nor k5..k9 at all.
    let old = e.scan(&Span::all(), ts(14), 100).expect("scan");
    let keys: Vec<_> = old.rows.iter().map(|r| r.key.clone()).collect();
    assert_eq!(
        keys,
        vec![
            b"k0".to_vec(),
            b"k1".to_vec(),
            b"k2".to_vec(),
            b"k3".to_vec(),
            b"k4".to_vec()
        ]
    );
    // Paging three at a time.
    let mut seen = Vec::new();
    let mut cursor = Span::all();
    loop {
        let page = e.scan(&cursor, ts(200), 3).expect("scan");
        assert!(page.rows.len() <= 3);
        seen.extend(page.rows.into_iter().map(|r| r.key));
        match page.resume_key {
            Some(k) => cursor = cursor.with_start(k),
            None => break,
        }
    }
    assert_eq!(seen.len(), 9, "ten keys, one deleted");
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert!(matches!(
        e.scan(&Span::all(), ts(1), 0),
        Err(StorageError::ZeroLimit { .. })
    ));
    assert!(matches!(
        e.scan(&Span::new("b", "a"), ts(1), 1),
        Err(StorageError::InvalidSpan { .. })
    ));
}

// Goal: a batch with one bad write applies nothing; a good batch applies every write.
fn write_batch_is_all_or_nothing(kind: Kind) {
    let e = kind.must_open();
    let mut bad = WriteBatch::new();
    bad.put("x", ts(1), "1");
    bad.put("y", Timestamp::ZERO, "2");
    assert!(matches!(
        e.write(bad, Durability::Sync),
        Err(StorageError::ZeroTimestamp { .. })
    ));
    assert_eq!(e.get(b"x", ts(10)).expect("get"), None);
    let mut good = WriteBatch::new();
    good.put("x", ts(1), "1");
    good.put("y", ts(2), "2");
    good.delete("z", ts(3));
    e.write(good, Durability::NoSync).expect("write");
    assert_eq!(
        e.get(b"x", ts(10)).expect("get").as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        e.get(b"y", ts(10)).expect("get").as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(
        must_export(&*e, &Span::all(), 0, 10, ExportMode::AllRevisions).len(),
        3
    );
}

// Goal: export yields the latest version as of end_ts (tombstones only in incremental
// exports) or every revision in (start_ts, end_ts], in key order and newest first.
fn export_modes(kind: Kind) {
    let e = kind.must_open();
    e.put(b"a", ts(10), b"a10").expect("put");
    e.put(b"a", ts(20), b"a20").expect("put");
    e.put(b"b", ts(15), b"b15").expect("put");
    e.delete(b"b", ts(25)).expect("delete");
    e.put(b"c", ts(30), b"c30").expect("put");
    let all = Span::all();
    assert_eq!(
        must_export(&*e, &all, 0, 22, ExportMode::Latest),
        vec![
            MvccVersion::put("a", ts(20), "a20"),
            MvccVersion::put("b", ts(15), "b15")
        ]
    );
    // A full export as of 26 omits the deleted b; an incremental one from 22 carries its tombstone.
    assert_eq!(
        must_export(&*e, &all, 0, 26, ExportMode::Latest),
        vec![MvccVersion::put("a", ts(20), "a20")]
    );
    assert_eq!(
        must_export(&*e, &all, 22, 100, ExportMode::Latest),
        vec![
            MvccVersion::tombstone("b", ts(25)),
            MvccVersion::put("c", ts(30), "c30")
        ]
    );
    assert_eq!(
        must_export(&*e, &all, 10, 25, ExportMode::AllRevisions),
        vec![
            MvccVersion::put("a", ts(20), "a20"),
            MvccVersion::tombstone("b", ts(25)),
            MvccVersion::put("b", ts(15), "b15"),
        ]
    );
    assert_eq!(
        must_export(&*e, &Span::new("b", "c"), 0, 100, ExportMode::AllRevisions).len(),
        2
    );
    assert!(matches!(
        e.export(&all, ts(5), ts(4), ExportMode::Latest).map(|_| ()),
        Err(StorageError::InvalidInterval { .. })
    ));
}

// Goal: ingest keeps original timestamps, re-ingesting the same versions changes nothing,
// and a version that disagrees with stored history fails the whole call.
fn ingest_is_idempotent_and_detects_conflicts(kind: Kind) {
    let e = kind.must_open();
    let versions = vec![
        MvccVersion::put("a", ts(7), "x"),
        MvccVersion::tombstone("a", ts(9)),
        MvccVersion::put("b", ts(3), "y"),
    ];
    let stats = e.ingest(&versions, Durability::Sync).expect("ingest");
    assert_eq!(
        stats,
        IngestStats {
            written: 3,
            unchanged: 0
        }
    );
    let before = e
        .fingerprint(&Span::all(), Timestamp::ZERO, Timestamp::MAX)
        .expect("fp");
    let again = e.ingest(&versions, Durability::Sync).expect("re-ingest");
    assert_eq!(
        again,
        IngestStats {
            written: 0,
            unchanged: 3
        }
    );
    assert_eq!(
        e.fingerprint(&Span::all(), Timestamp::ZERO, Timestamp::MAX)
            .expect("fp"),
        before
    );
    assert_eq!(e.get(b"a", ts(8)).expect("get").as_deref(), Some(&b"x"[..]));
    let conflicting = vec![
        MvccVersion::put("c", ts(1), "new"),
        MvccVersion::put("b", ts(3), "different"),
    ];
    assert!(matches!(
        e.ingest(&conflicting, Durability::Sync),
        Err(StorageError::IngestConflict { .. })
    ));
    assert_eq!(
        e.get(b"c", ts(10)).expect("get"),
        None,
        "a failed ingest writes nothing"
    );
    let dup_in_batch = vec![
        MvccVersion::put("d", ts(1), "1"),
        MvccVersion::put("d", ts(1), "2"),
    ];
    assert!(e.ingest(&dup_in_batch, Durability::Sync).is_err());
    assert_eq!(e.get(b"d", ts(10)).expect("get"), None);
}

fn write_history(e: &dyn Engine, keys: u64, from: u64, to: u64) {
    for t in from..to {
        let mut batch = WriteBatch::new();
        for k in 0..keys {
            let key = format!("key{k:03}");
            match (t + k) % 7 {
                0 => batch.delete(key, ts(t)),
                3 | 5 => {}
                _ => batch.put(key, ts(t), format!("v{t}-{k}")),
            }
        }
        e.write(batch, Durability::NoSync).expect("write");
    }
}

// Goal (acceptance): write history, fingerprint as of T, write more, revert the span to T;
// the fingerprint of all history then equals the one taken at T, and reads match.
fn revert_restores_fingerprint_at_t(kind: Kind) {
    let e = kind.must_open();
    let span = Span::all();
    write_history(&*e, 50, 1, 40);
    let t = ts(39);
    let fp_at_t = e.fingerprint(&span, Timestamp::ZERO, t).expect("fp");
    let scan_at_t = e.scan(&span, t, 1000).expect("scan");
    write_history(&*e, 60, 40, 80);
    assert_ne!(
        e.fingerprint(&span, Timestamp::ZERO, Timestamp::MAX)
            .expect("fp"),
        fp_at_t
    );
    let progress = e.revert_span(&span, t, usize::MAX).expect("revert");
    assert!(progress.versions_removed > 0);
    assert_eq!(progress.resume_key, None);
    assert_eq!(
        e.fingerprint(&span, Timestamp::ZERO, Timestamp::MAX)
            .expect("fp"),
        fp_at_t
    );
    assert_eq!(
        e.scan(&span, Timestamp::MAX, 1000).expect("scan"),
        scan_at_t
    );
}

// Goal: a revert bounded to N versions per call removes at most N, returns a resume key while
// work remains, and resuming from it finishes the revert exactly; other spans are untouched.
fn revert_in_bounded_batches(kind: Kind) {
    let e = kind.must_open();
    write_history(&*e, 20, 1, 30);
    let t = ts(12);
    let inside = Span::new("key005", "key015");
    let fp_inside = e.fingerprint(&inside, Timestamp::ZERO, t).expect("fp");
    let outside_before = e
        .fingerprint(
            &Span::new("key015", "key999"),
            Timestamp::ZERO,
            Timestamp::MAX,
        )
        .expect("fp");
    let mut cursor = inside.clone();
    let mut calls = 0;
    let mut total = 0;
    loop {
        let p = e.revert_span(&cursor, t, 7).expect("revert");
        assert!(p.versions_removed <= 7);
        total += p.versions_removed;
        calls += 1;
        match p.resume_key {
            Some(k) => {
                assert!(inside.contains(&k));
                cursor = cursor.with_start(k);
            }
            None => break,
        }
    }
    assert!(calls > 3, "expected several bounded calls, got {calls}");
    assert!(total > 21);
    assert_eq!(
        e.fingerprint(&inside, Timestamp::ZERO, Timestamp::MAX)
            .expect("fp"),
        fp_inside
    );
    assert_eq!(
        e.fingerprint(
            &Span::new("key015", "key999"),
            Timestamp::ZERO,
            Timestamp::MAX
        )
        .expect("fp"),
        outside_before
    );
    assert!(matches!(
        e.revert_span(&inside, t, 0),
        Err(StorageError::ZeroLimit { .. })
    ));
}

// Goal: GC drops shadowed versions and deleted keys at or below the threshold, keeps what a
// read at the threshold sees, and leaves everything above it.
fn gc_removes_what_no_read_can_see(kind: Kind) {
    let e = kind.must_open();
    e.put(b"a", ts(10), b"a10").expect("put");
    e.put(b"a", ts(20), b"a20").expect("put");
    e.put(b"a", ts(40), b"a40").expect("put");
    e.put(b"b", ts(10), b"b10").expect("put");
    e.delete(b"b", ts(20)).expect("delete");
    e.put(b"c", ts(50), b"c50").expect("put");
    let all = Span::all();
    let scan_at_30 = e.scan(&all, ts(30), 100).expect("scan");
    let fp_above = e.fingerprint(&all, ts(30), Timestamp::MAX).expect("fp");
    let stats = e.gc(&all, ts(30), 100).expect("gc");
    assert_eq!(stats.versions_removed, 3, "a@10, b@10 and b's tombstone");
    assert!(stats.bytes_removed > 0);
    assert_eq!(stats.resume_key, None);
    assert_eq!(e.scan(&all, ts(30), 100).expect("scan"), scan_at_30);
    assert_eq!(
        e.fingerprint(&all, ts(30), Timestamp::MAX).expect("fp"),
        fp_above
    );
    assert_eq!(
        must_export(&*e, &all, 0, u64::MAX, ExportMode::AllRevisions),
        vec![
            MvccVersion::put("a", ts(40), "a40"),
            MvccVersion::put("a", ts(20), "a20"),
            MvccVersion::put("c", ts(50), "c50"),
        ]
    );
}

// issue 15 item 5: a GC of a huge span must not be one giant step. Goal: GC in bounded steps
// removes at most the asked number of versions per step (more only to finish a key: a step
// ends between keys, so a tombstone never goes without the versions it hides), resumes from
// the key it returns, and ends with exactly what one unbounded GC leaves. Method: GC the same
// history once in steps of 7 and once in one step, on two engines, and compare all revisions.
fn gc_in_bounded_steps(kind: Kind) {
    let stepped = kind.must_open();
    let whole = kind.must_open();
    for e in [&stepped, &whole] {
        write_history(&**e, 20, 1, 10);
        e.delete(b"key003", ts(20)).expect("delete");
    }
    let all = Span::all();
    let expected = whole.gc(&all, ts(8), usize::MAX).expect("gc");
    assert_eq!(expected.resume_key, None);
    let mut span = all.clone();
    let (mut removed, mut steps) = (0, 0);
    loop {
        let p = stepped.gc(&span, ts(8), 7).expect("gc step");
        // Each key here has at most 8 removable versions: a step stops at the first key
        // boundary at or after 7 removals.
        assert!(p.versions_removed < 7 + 8, "step of {}", p.versions_removed);
        removed += p.versions_removed;
        steps += 1;
        match p.resume_key {
            Some(k) => span = all.with_start(k),
            None => break,
        }
    }
    assert!(steps > 5, "the GC took {steps} steps");
    assert_eq!(removed, expected.versions_removed);
    assert_eq!(
        must_export(&*stepped, &all, 0, u64::MAX, ExportMode::AllRevisions),
        must_export(&*whole, &all, 0, u64::MAX, ExportMode::AllRevisions)
    );
    assert!(matches!(
        stepped.gc(&all, ts(8), 0),
        Err(StorageError::ZeroLimit { .. })
    ));
}

// Goal: a fingerprint depends only on the versions in its span and interval: the same history
// written in another order and batching gives the same hash; one changed byte changes it.
fn fingerprint_is_order_independent(kind: Kind) {
    let mut versions = Vec::new();
    for k in 0..30u64 {
        for t in 1..6u64 {
            if (k + t) % 4 == 0 {
                versions.push(MvccVersion::tombstone(format!("k{k}"), ts(t * 10 + k)));
            } else {
                versions.push(MvccVersion::put(
                    format!("k{k}"),
                    ts(t * 10 + k),
                    format!("{k}{t}"),
                ));
            }
        }
    }
    let forward = kind.must_open();
    for chunk in versions.chunks(7) {
        let mut b = WriteBatch::new();
        chunk.iter().cloned().for_each(|v| b.push(v));
        forward.write(b, Durability::NoSync).expect("write");
    }
    let backward = kind.must_open();
    for v in versions.iter().rev() {
        backward
            .ingest(std::slice::from_ref(v), Durability::NoSync)
            .expect("ingest");
    }
    let span = Span::new("k1", "k5");
    for (start, end) in [(0, u64::MAX), (0, 25), (25, 40), (12, 13)] {
        assert_eq!(
            forward.fingerprint(&span, ts(start), ts(end)).expect("fp"),
            backward.fingerprint(&span, ts(start), ts(end)).expect("fp"),
        );
    }
    let full = forward
        .fingerprint(&span, Timestamp::ZERO, Timestamp::MAX)
        .expect("fp");
    assert_ne!(full, 0);
    backward.put(b"k2", ts(31), b"changed").expect("put");
    assert_ne!(
        backward
            .fingerprint(&span, Timestamp::ZERO, Timestamp::MAX)
            .expect("fp"),
        full
    );
    // Versions outside the span or interval do not count.
    forward.put(b"k6", ts(1000), b"outside").expect("put");
    assert_eq!(
        forward
            .fingerprint(&span, Timestamp::ZERO, Timestamp::MAX)
            .expect("fp"),
        full
    );
}

// Goal: local metadata commits atomically with a batch's versions, reads back, can be
// cleared, and never shows up in exports or fingerprints.
fn local_metadata_is_atomic_and_invisible(kind: Kind) {
    let e = kind.must_open();
    let mut b = WriteBatch::new();
    b.put("k", ts(1), "v");
    b.put_local("applied", "7");
    e.write(b, Durability::Sync).expect("write");
    assert_eq!(
        e.get_local(b"applied").expect("get").as_deref(),
        Some(&b"7"[..])
    );
    let mut bad = WriteBatch::new();
    bad.put("k2", Timestamp::ZERO, "v");
    bad.put_local("applied", "8");
    assert!(e.write(bad, Durability::Sync).is_err());
    assert_eq!(
        e.get_local(b"applied").expect("get").as_deref(),
        Some(&b"7"[..]),
        "failed batch leaves metadata"
    );
    assert_eq!(
        must_export(&*e, &Span::all(), 0, u64::MAX, ExportMode::AllRevisions).len(),
        1
    );
    let mut clear = WriteBatch::new();
    clear.delete_local("applied");
    e.write(clear, Durability::Sync).expect("write");
    assert_eq!(e.get_local(b"applied").expect("get"), None);
}

// Goal: a stripped fingerprint hashes keys without their prefix: the same history written under
// two prefixes of equal length fingerprints the same once the prefix is stripped, differs
// without stripping, tells different data apart, honours the time interval, and with nothing
// stripped equals the plain fingerprint. Method: write identical histories under "A/" and
// "B/", then change one version under "B/".
fn fingerprint_stripped_ignores_the_prefix(kind: Kind) {
    let e = kind.must_open();
    for prefix in ["A/", "B/"] {
        for t in 1..=5u64 {
            let mut b = WriteBatch::new();
            for k in 0..4u64 {
                b.put(format!("{prefix}k{k}"), ts(t * 10 + k), format!("v{t}-{k}"));
            }
            b.delete(format!("{prefix}gone"), ts(t * 10 + 9));
            e.write(b, Durability::Sync).expect("write");
        }
    }
    // Outside both spans: must not count.
    e.put(b"C/k0", ts(11), b"other").expect("put");
    let (a, b) = (Span::prefix(b"A/"), Span::prefix(b"B/"));
    let fp = |span: &Span, strip: usize, start: u64, end: u64| {
        e.fingerprint_stripped(span, strip, ts(start), ts(end))
            .expect("fingerprint")
    };
    assert_eq!(fp(&a, 2, 0, u64::MAX), fp(&b, 2, 0, u64::MAX));
    assert_eq!(fp(&a, 2, 15, 35), fp(&b, 2, 15, 35));
    assert_ne!(fp(&a, 2, 0, u64::MAX), fp(&a, 2, 15, 35));
    assert_ne!(fp(&a, 0, 0, u64::MAX), fp(&b, 0, 0, u64::MAX));
    for (span, start, end) in [(&a, 0, u64::MAX), (&b, 15, 35), (&Span::all(), 0, 40)] {
        assert_eq!(
            fp(span, 0, start, end),
            e.fingerprint(span, ts(start), ts(end))
                .expect("fingerprint"),
            "strip 0 is the plain fingerprint"
        );
    }
    // The stripped hash of a version is version_hash of the stripped key.
    let mut buf = Vec::new();
    let single = Span::new("A/k0", "A/k1");
    let expected = (1..=5u64).fold(0, |acc, t| {
        let value = format!("v{t}-0");
        acc ^ storage::version_hash(b"k0", ts(t * 10), Some(value.as_bytes()), &mut buf)
    });
    assert_eq!(fp(&single, 2, 0, u64::MAX), expected);
    // Different data under B/ now fingerprints differently.
    e.put(b"B/k1", ts(99), b"diverged").expect("put");
    assert_ne!(fp(&a, 2, 0, u64::MAX), fp(&b, 2, 0, u64::MAX));
    assert_eq!(fp(&a, 2, 0, 98), fp(&b, 2, 0, 98));
}

// Goal: ingest_with and revert_span_with commit the caller's local metadata in the same atomic
// batch as their data: on success both are visible, on failure (a conflict, a zero limit)
// neither is.
fn ingest_and_revert_commit_local_metadata_atomically(kind: Kind) {
    let e = kind.must_open();
    let applied = |e: &dyn Engine| e.get_local(b"applied").expect("get local");
    let with = |v: &str| {
        let mut b = WriteBatch::new();
        b.put_local("applied", v);
        b
    };
    let versions = vec![
        MvccVersion::put("a", ts(5), "x"),
        MvccVersion::put("b", ts(6), "y"),
        MvccVersion::put("b", ts(8), "z"),
    ];
    e.ingest_with(&versions, with("1"), Durability::NoSync)
        .expect("ingest");
    assert_eq!(applied(&*e).as_deref(), Some(&b"1"[..]));
    assert_eq!(e.get(b"b", ts(9)).expect("get").as_deref(), Some(&b"z"[..]));
    let conflicting = vec![
        MvccVersion::put("c", ts(1), "new"),
        MvccVersion::put("a", ts(5), "different"),
    ];
    assert!(matches!(
        e.ingest_with(&conflicting, with("2"), Durability::NoSync),
        Err(StorageError::IngestConflict { .. })
    ));
    assert_eq!(applied(&*e).as_deref(), Some(&b"1"[..]), "nothing written");
    assert_eq!(e.get(b"c", ts(9)).expect("get"), None);
    assert!(matches!(
        e.revert_span_with(&Span::all(), ts(6), 0, with("3"), Durability::NoSync),
        Err(StorageError::ZeroLimit { .. })
    ));
    assert_eq!(applied(&*e).as_deref(), Some(&b"1"[..]), "nothing written");
    let p = e
        .revert_span_with(&Span::all(), ts(5), 1, with("4"), Durability::NoSync)
        .expect("revert");
    assert_eq!(p.versions_removed, 1);
    assert_eq!(p.resume_key.as_deref(), Some(&b"b"[..]));
    assert_eq!(applied(&*e).as_deref(), Some(&b"4"[..]));
    let p = e
        .revert_span_with(
            &Span::all().with_start(b"b".to_vec()),
            ts(5),
            1,
            with("5"),
            Durability::NoSync,
        )
        .expect("revert");
    assert_eq!((p.versions_removed, p.resume_key), (1, None));
    assert_eq!(applied(&*e).as_deref(), Some(&b"5"[..]));
    assert_eq!(e.get(b"b", Timestamp::MAX).expect("get"), None);
    assert_eq!(
        e.get(b"a", Timestamp::MAX).expect("get").as_deref(),
        Some(&b"x"[..])
    );
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod mem_engine {
            $( #[test] fn $case() { super::$case(super::Kind::Mem); } )*
        }
        mod fjall_engine {
            $( #[test] fn $case() { super::$case(super::Kind::Fjall); } )*
        }
    };
}

conformance!(
    get_reads_newest_at_or_below,
    scan_pages_through_a_span,
    write_batch_is_all_or_nothing,
    export_modes,
    ingest_is_idempotent_and_detects_conflicts,
    revert_restores_fingerprint_at_t,
    revert_in_bounded_batches,
    gc_removes_what_no_read_can_see,
    gc_in_bounded_steps,
    fingerprint_is_order_independent,
    local_metadata_is_atomic_and_invisible,
    fingerprint_stripped_ignores_the_prefix,
    ingest_and_revert_commit_local_metadata_atomically,
);

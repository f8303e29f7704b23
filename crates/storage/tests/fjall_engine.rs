//! Properties specific to the on-disk engine: what survives a restart and a compaction, and
//! agreement with the in-memory engine on the same history.

use storage::{
    Durability, Engine, ExportMode, FjallEngine, MemEngine, MvccVersion, Span, Timestamp,
    WriteBatch,
};

fn history() -> Vec<MvccVersion> {
    let mut out = Vec::new();
    for k in 0..200u64 {
        for t in 1..=(k % 5 + 1) {
            let key = format!("key{k:04}\x00{}", k % 3);
            if (k * t) % 6 == 0 {
                out.push(MvccVersion::tombstone(
                    key,
                    Timestamp::new(t * 100, (k % 3) as u32),
                ));
            } else {
                out.push(MvccVersion::put(
                    key,
                    Timestamp::new(t * 100, (k % 3) as u32),
                    vec![k as u8; 300],
                ));
            }
        }
    }
    out
}

fn must_write(e: &dyn Engine, versions: &[MvccVersion]) {
    for chunk in versions.chunks(64) {
        let mut b = WriteBatch::new();
        chunk.iter().cloned().for_each(|v| b.push(v));
        e.write(b, Durability::NoSync).expect("write");
    }
}

fn full_fp(e: &dyn Engine) -> u64 {
    e.fingerprint(&Span::all(), Timestamp::ZERO, Timestamp::MAX)
        .expect("fingerprint")
}

// Goal: data and fingerprints are the same after a reopen and after a
// full compaction, and equal to the in-memory engine's for the same history.
#[test]
fn history_survives_restart_and_compaction() {
    let dir = tempfile::tempdir().expect("temp dir");
    let versions = history();
    let mem = MemEngine::new();
    must_write(&mem, &versions);
    let (fp, fp_at_300, scan) = {
        let e = FjallEngine::open(dir.path()).expect("open");
        must_write(&e, &versions);
        let fp = full_fp(&e);
        assert_eq!(fp, full_fp(&mem), "fjall and memory engines agree");
        let fp_at_300 = e
            .fingerprint(&Span::all(), Timestamp::ZERO, Timestamp::new(300, 0))
            .expect("fp");
        let scan = e
            .scan(&Span::all(), Timestamp::new(350, 0), 10_000)
            .expect("scan");
        (fp, fp_at_300, scan)
    };
    let e = FjallEngine::open(dir.path()).expect("reopen");
    assert_eq!(full_fp(&e), fp, "after restart");
    assert_eq!(
        e.scan(&Span::all(), Timestamp::new(350, 0), 10_000)
            .expect("scan"),
        scan
    );
    e.backend().compact().expect("compact");
    assert_eq!(full_fp(&e), fp, "after compaction");
    assert_eq!(
        e.fingerprint(&Span::all(), Timestamp::ZERO, Timestamp::new(300, 0))
            .expect("fp"),
        fp_at_300
    );
    let exported: Vec<_> = e
        .export(
            &Span::all(),
            Timestamp::ZERO,
            Timestamp::MAX,
            ExportMode::AllRevisions,
        )
        .expect("export")
        .collect::<Result<_, _>>()
        .expect("export");
    let mut expected = versions.clone();
    expected.sort_by(|a, b| a.key.cmp(&b.key).then(b.ts.cmp(&a.ts)));
    assert_eq!(exported, expected);
}

// Goal: a revert and a GC are durable: their effect is still there after a reopen.
#[test]
fn revert_and_gc_survive_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let versions = history();
    let (fp_reverted, count) = {
        let e = FjallEngine::open(dir.path()).expect("open");
        must_write(&e, &versions);
        let p = e
            .revert_span(&Span::all(), Timestamp::new(300, 0), usize::MAX)
            .expect("revert");
        assert!(p.versions_removed > 0);
        let g = e
            .gc(
                &Span::new("key0100", "key0200"),
                Timestamp::new(250, 0),
                usize::MAX,
            )
            .expect("gc");
        assert!(g.versions_removed > 0);
        (full_fp(&e), e.version_count(&Span::all()).expect("count"))
    };
    let e = FjallEngine::open(dir.path()).expect("reopen");
    assert_eq!(full_fp(&e), fp_reverted);
    assert_eq!(e.version_count(&Span::all()).expect("count"), count);
}

// Goal: one process per store directory: a second open of an open store fails cleanly.
#[test]
fn second_open_of_a_store_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _first = FjallEngine::open(dir.path()).expect("open");
    let second = FjallEngine::open(dir.path());
    assert!(second.is_err(), "a second open of the same store must fail");
}

#[test]
fn disk_space_reports_the_store_filesystem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    let e = FjallEngine::open(&path).expect("open");
    let space = e.backend().disk_space().expect("statvfs of the store");
    assert!(space.total_bytes > 0, "{space:?}");
    assert!(space.available_bytes <= space.total_bytes, "{space:?}");
    std::fs::remove_dir_all(&path).expect("remove the store directory");
    assert!(
        e.backend().disk_space().is_err(),
        "a store whose directory is gone has no filesystem to report"
    );
}

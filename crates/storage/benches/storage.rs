//! Storage throughput: MVCC puts against raw fjall inserts of the same bytes, measured in the
//! same run, and export throughput.
//!
//! `cargo bench -p roach-storage` prints:
//! - `mvcc_put_vs_raw_fjall_ratio: X` (goal: at least 0.8)
//! - `mvcc_put_mb_per_s: X`
//! - `export_mb_per_s: X`
//!
//! Both write paths insert 1 KiB values in batches of 100 without fsync (durability is the
//! journal handed to the OS), into a fresh store per round; rounds alternate between the two
//! and the median of each side is reported, so background flushes and compactions weigh on
//! both alike. Run without `--bench` (as `cargo test --benches` does) it makes one tiny round
//! as a smoke test.

use std::time::{Duration, Instant};
use storage::{Durability, Engine, ExportMode, FjallEngine, Span, Timestamp, WriteBatch};

const VALUE_LEN: usize = 1024;
const BATCH_LEN: usize = 100;

struct Plan {
    batches: usize,
    rounds: usize,
}

fn key(i: usize) -> Vec<u8> {
    format!("user{i:010}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    let mut v = vec![0u8; VALUE_LEN];
    // Not all zeros, so compression does not flatter either side.
    let mut x = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for b in v.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    v
}

/// Bytes of user keys and values written per run.
fn payload_bytes(plan: &Plan) -> usize {
    (0..plan.batches * BATCH_LEN)
        .map(|i| key(i).len() + VALUE_LEN)
        .sum()
}

fn raw_fjall_round(plan: &Plan, values: &[Vec<u8>]) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = fjall::Database::builder(dir.path())
        .open()
        .expect("open fjall");
    let ks = db
        .keyspace("raw", fjall::KeyspaceCreateOptions::default)
        .expect("keyspace");
    let start = Instant::now();
    for b in 0..plan.batches {
        let mut batch = db.batch();
        for j in 0..BATCH_LEN {
            let i = b * BATCH_LEN + j;
            batch.insert(&ks, key(i), values[i].as_slice());
        }
        batch.commit().expect("commit");
    }
    start.elapsed()
}

fn mvcc_round(plan: &Plan, values: &[Vec<u8>]) -> (Duration, Duration, usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = FjallEngine::open(dir.path()).expect("open engine");
    let start = Instant::now();
    for b in 0..plan.batches {
        let mut batch = WriteBatch::with_capacity(BATCH_LEN);
        let ts = Timestamp::new(b as u64 + 1, 0);
        for j in 0..BATCH_LEN {
            let i = b * BATCH_LEN + j;
            batch.put(key(i), ts, values[i].as_slice());
        }
        engine.write(batch, Durability::NoSync).expect("write");
    }
    let put = start.elapsed();

    let start = Instant::now();
    let mut exported = 0usize;
    for v in engine
        .export(
            &Span::all(),
            Timestamp::ZERO,
            Timestamp::MAX,
            ExportMode::AllRevisions,
        )
        .expect("export")
    {
        exported += v.expect("export item").size_bytes();
    }
    (put, start.elapsed(), exported)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            batches: 500,
            rounds: 5,
        }
    } else {
        Plan {
            batches: 5,
            rounds: 1,
        }
    };
    let values: Vec<Vec<u8>> = (0..plan.batches * BATCH_LEN).map(value).collect();
    let bytes = payload_bytes(&plan);
    eprintln!(
        "storage bench: {} rounds of {} batches x {} values of {} B ({:.1} MB per round)",
        plan.rounds,
        plan.batches,
        BATCH_LEN,
        VALUE_LEN,
        bytes as f64 / 1e6
    );
    let (mut raw, mut mvcc, mut export) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..plan.rounds {
        // Alternate which side goes first, so neither always runs on a warmer machine.
        let (raw_d, (put_d, export_d, exported)) = if round % 2 == 0 {
            let r = raw_fjall_round(&plan, &values);
            (r, mvcc_round(&plan, &values))
        } else {
            let m = mvcc_round(&plan, &values);
            (raw_fjall_round(&plan, &values), m)
        };
        assert_eq!(exported, bytes, "export returned every byte written");
        raw.push(mb_per_s(bytes, raw_d));
        mvcc.push(mb_per_s(bytes, put_d));
        export.push(mb_per_s(exported, export_d));
        eprintln!(
            "round {round}: raw fjall {:.1} MB/s, mvcc put {:.1} MB/s, export {:.1} MB/s",
            raw[round], mvcc[round], export[round]
        );
    }
    let (raw, mvcc, export) = (median(raw), median(mvcc), median(export));
    println!("raw_fjall_put_mb_per_s: {raw:.1}");
    println!("mvcc_put_vs_raw_fjall_ratio: {:.3}", mvcc / raw);
    println!("mvcc_put_mb_per_s: {mvcc:.1}");
    println!("export_mb_per_s: {export:.1}");
}

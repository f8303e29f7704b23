//! Crash safety: a child process writes fsync-durable batches and acknowledges each one on
//! stdout; the parent SIGKILLs it mid-stream, reopens the store and checks that every
//! acknowledged batch is there whole and that no batch is there in part. Three rounds on the
//! same store, each resuming where the last left off.
//!
//! The child is this test binary itself, re-run on the ignored test `crash_child_writer`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use storage::{Durability, Engine, FjallEngine, Span, Timestamp, WriteBatch};

const CHILD_DIR_ENV: &str = "ROACH_CRASH_CHILD_DIR";
const CHILD_START_ENV: &str = "ROACH_CRASH_CHILD_START";
const KEYS_PER_BATCH: usize = 16;
const VALUE_LEN: usize = 4096;
/// The child stops by itself after this many batches if nobody kills it.
const CHILD_BATCHES_MAX: u64 = 100_000;

fn key(batch: u64, i: usize) -> Vec<u8> {
    format!("batch{batch:010}/key{i:02}").into_bytes()
}

fn value(batch: u64, i: usize) -> Vec<u8> {
    let seed = format!("{batch}:{i}:");
    seed.bytes().cycle().take(VALUE_LEN).collect()
}

// Not a test of its own: the child process of the crash test (it does nothing unless the
// parent set its environment).
#[test]
#[ignore = "run as a child process by crash_mid_stream_keeps_every_acknowledged_batch"]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let start: u64 = std::env::var(CHILD_START_ENV)
        .expect("start batch")
        .parse()
        .expect("start batch is a number");
    let engine = FjallEngine::open(std::path::Path::new(&dir)).expect("child opens store");
    let mut out = std::io::stdout().lock();
    for batch in start..start + CHILD_BATCHES_MAX {
        let mut wb = WriteBatch::with_capacity(KEYS_PER_BATCH);
        for i in 0..KEYS_PER_BATCH {
            wb.put(key(batch, i), Timestamp::new(batch + 1, 0), value(batch, i));
        }
        engine.write(wb, Durability::Sync).expect("durable write");
        writeln!(out, "ack {batch}").expect("stdout");
        out.flush().expect("stdout");
    }
}

/// Batch number -> how many of its keys are stored; checks each stored value on the way.
fn stored_batches(dir: &std::path::Path) -> BTreeMap<u64, usize> {
    let engine = FjallEngine::open(dir).expect("reopen after crash");
    let mut counts = BTreeMap::new();
    let mut span = Span::prefix(b"batch");
    loop {
        let page = engine.scan(&span, Timestamp::MAX, 1_000).expect("scan");
        for row in &page.rows {
            let text = std::str::from_utf8(&row.key).expect("utf8 key");
            let (b, i) = text
                .strip_prefix("batch")
                .and_then(|t| t.split_once("/key"))
                .expect("key shape");
            let (b, i): (u64, usize) = (b.parse().expect("batch"), i.parse().expect("index"));
            assert_eq!(
                row.value,
                value(b, i),
                "value of batch {b} key {i} is intact"
            );
            *counts.entry(b).or_insert(0) += 1;
        }
        match page.resume_key {
            Some(k) => span = span.with_start(k),
            None => return counts,
        }
    }
}

#[test]
fn crash_mid_stream_keeps_every_acknowledged_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = std::env::current_exe().expect("test binary path");
    let mut next_batch = 0u64;
    for round in 0..3u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, dir.path())
            .env(CHILD_START_ENV, next_batch.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child writer");
        let stdout = child.stdout.take().expect("child stdout");
        let kill_after = next_batch + 30 + round * 17;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut last_ack = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read child stdout");
            if let Some(n) = line.strip_prefix("ack ") {
                last_ack = Some(n.parse::<u64>().expect("ack number"));
            }
            if last_ack.is_some_and(|a| a >= kill_after) || Instant::now() > deadline {
                break;
            }
        }
        // SIGKILL while the child is writing its next batch.
        child.kill().expect("SIGKILL child");
        child.wait().expect("reap child");
        let last_ack = last_ack.expect("child acknowledged batches before the deadline");
        assert!(
            last_ack >= kill_after,
            "child too slow: {last_ack} acks in 120 s"
        );

        let counts = stored_batches(dir.path());
        for (batch, n) in &counts {
            assert_eq!(
                *n, KEYS_PER_BATCH,
                "batch {batch} is partial after the crash"
            );
        }
        for batch in 0..=last_ack {
            assert!(
                counts.contains_key(&batch),
                "acknowledged batch {batch} was lost"
            );
        }
        let highest = *counts.keys().last().expect("batches stored");
        assert!(
            highest <= last_ack + 1,
            "a batch beyond the one in flight appeared"
        );
        assert_eq!(counts.len() as u64, highest + 1, "batches form a prefix");
        next_batch = highest + 1;
    }
}

//! KV throughput, commit latency and closed timestamp lag on a 3-node in-process cluster
//! (real nodes talking tonic over 127.0.0.1, each with its own fjall store).
//!
//! `cargo bench -p roach-kv --bench kv` prints:
//! - `kv_commits_per_s: X`: single-key put transactions of 1 KiB values on random keys,
//!   committed by 16 concurrent writers, each sending its transactions through the nodes in
//!   turn (so most go through a follower gateway that forwards them to the leader);
//! - `kv_commit_latency_p50_ms: X` and `kv_commit_latency_p99_ms: X`: begin to commit of those;
//! - `closed_ts_lag_p99_ms_idle: X` and `closed_ts_lag_p99_ms_load: X`: a follower's physical
//!   clock minus its closed timestamp, sampled every 10 ms, with no writes and under the
//!   writers' load;
//! - `kv_point_reads_per_s_leaseholder: X` and `kv_point_reads_per_s_follower: X`: read-only
//!   transactions of one present-time get of a random written key, by 16 concurrent readers
//!   whose gateway is the leaseholder (the leader) or a follower, with no writes running.
//!
//! With `--bench` the idle phase lasts 3 s and the load 10 s; without it (as `cargo test
//! --benches` runs it) they last 0.5 s and 1 s, as a smoke test. Other details go to stderr.

#[path = "../tests/common/mod.rs"]
mod common;

use common::TestCluster;
use kv::{KvError, Store};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

const VALUE_LEN: usize = 1024;
const WRITERS: usize = 16;
/// Keys the writers pick from at random.
const KEYS: u32 = 100_000;
const LAG_SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

struct Plan {
    idle: Duration,
    load: Duration,
}

/// A 1 KiB value that does not compress to nothing.
fn value(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..VALUE_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The nearest-rank `p` quantile of sorted `samples`, or 0 with no samples.
fn quantile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let rank = (p * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

fn sorted(mut samples: Vec<f64>) -> Vec<f64> {
    samples.sort_by(f64::total_cmp);
    samples
}

/// Samples `node`'s closed timestamp lag in ms every 10 ms for `how_long`.
async fn sample_lag_ms(node: Arc<Store>, how_long: Duration) -> Vec<f64> {
    let until = Instant::now() + how_long;
    let mut ticker = tokio::time::interval(LAG_SAMPLE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples = Vec::new();
    while Instant::now() < until {
        ticker.tick().await;
        let lag_ns = node
            .clock()
            .physical_now_ns()
            .saturating_sub(node.closed_ts().wall_time_ns);
        samples.push(lag_ns as f64 / 1e6);
    }
    samples
}

#[derive(Debug, Default)]
struct WriterResult {
    latencies_ms: Vec<f64>,
    errors: u64,
    last_error: Option<String>,
}

/// Commits single-key puts through `nodes` in turn until `until`.
async fn write_until(
    nodes: Vec<Arc<Store>>,
    writer: usize,
    values: Arc<Vec<Vec<u8>>>,
    until: Instant,
) -> WriterResult {
    let mut result = WriterResult::default();
    let mut i = writer;
    while Instant::now() < until {
        let (key, v) = {
            let mut rng = rand::rng();
            (
                format!("bench/{:08}", rng.random_range(0..KEYS)),
                rng.random_range(0..values.len()),
            )
        };
        let node = &nodes[i % nodes.len()];
        i += 1;
        let start = Instant::now();
        let outcome: Result<_, KvError> = async {
            let mut txn = node.begin()?;
            txn.put(key, values[v].clone());
            txn.commit().await
        }
        .await;
        match outcome {
            Ok(_) => result
                .latencies_ms
                .push(start.elapsed().as_secs_f64() * 1e3),
            Err(e) => {
                result.errors += 1;
                result.last_error = Some(e.to_string());
            }
        }
    }
    result
}

async fn run(plan: Plan) {
    let cluster = TestCluster::must_start(3).await;
    let nodes: Vec<Arc<Store>> = (1..=3).map(|id| cluster.node(id)).collect();
    common::must_put(&nodes[0], "bench/warmup", "x").await;
    let leader = cluster.leader().expect("a leader");
    let follower = cluster.node((1..=3).find(|id| *id != leader).expect("a follower"));
    eprintln!(
        "kv bench: 3 nodes (leader n{leader}, lag sampled on {}), {WRITERS} writers, {VALUE_LEN} B \
         values, idle {:?}, load {:?}",
        follower.id(),
        plan.idle,
        plan.load
    );

    let idle_lag = sorted(sample_lag_ms(follower.clone(), plan.idle).await);

    let values: Arc<Vec<Vec<u8>>> = Arc::new((0..64).map(value).collect());
    let start = Instant::now();
    let until = start + plan.load;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(write_until(nodes.clone(), w, values.clone(), until)))
        .collect();
    let load_lag = tokio::spawn(sample_lag_ms(follower.clone(), plan.load));
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in writers {
        let r = w.await.expect("writer task");
        latencies.extend(r.latencies_ms);
        errors += r.errors;
        if let Some(e) = r.last_error {
            eprintln!("writer error: {e}");
        }
    }
    let elapsed = start.elapsed();
    let load_lag = sorted(load_lag.await.expect("lag sampler"));
    let latencies = sorted(latencies);
    let commits = latencies.len();
    assert!(commits > 0, "no commit succeeded");
    eprintln!(
        "kv bench: {commits} commits, {errors} errors in {elapsed:?}; {} idle and {} load lag \
         samples",
        idle_lag.len(),
        load_lag.len()
    );

    println!(
        "kv_commits_per_s: {:.0}",
        commits as f64 / elapsed.as_secs_f64()
    );
    println!(
        "kv_commit_latency_p50_ms: {:.2}",
        quantile(&latencies, 0.50)
    );
    println!(
        "kv_commit_latency_p99_ms: {:.2}",
        quantile(&latencies, 0.99)
    );
    println!(
        "closed_ts_lag_p99_ms_idle: {:.1}",
        quantile(&idle_lag, 0.99)
    );
    println!(
        "closed_ts_lag_p99_ms_load: {:.1}",
        quantile(&load_lag, 0.99)
    );

    let leaseholder = cluster.node(leader);
    for (name, gateway) in [("leaseholder", leaseholder), ("follower", follower)] {
        let start = Instant::now();
        let until = start + plan.load / 2;
        let readers: Vec<_> = (0..WRITERS)
            .map(|r| tokio::spawn(read_until(gateway.clone(), r, until)))
            .collect();
        let mut reads = 0u64;
        for r in readers {
            reads += r.await.expect("reader task");
        }
        println!(
            "kv_point_reads_per_s_{name}: {:.0}",
            reads as f64 / start.elapsed().as_secs_f64()
        );
    }
}

/// Point reads of random keys through `gateway` until `until`; returns how many succeeded.
async fn read_until(gateway: Arc<Store>, reader: usize, until: Instant) -> u64 {
    let mut reads = 0;
    let mut errors = 0;
    while Instant::now() < until {
        let key = format!("bench/{:08}", rand::rng().random_range(0..KEYS));
        let mut txn = match gateway.begin() {
            Ok(t) => t,
            Err(_) => {
                errors += 1;
                continue;
            }
        };
        match txn.get(key.as_bytes()).await {
            Ok(_) => reads += 1,
            Err(e) => {
                errors += 1;
                if errors == 1 {
                    eprintln!("reader {reader} error: {e}");
                }
            }
        }
    }
    reads
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let plan = if full {
        Plan {
            idle: Duration::from_secs(3),
            load: Duration::from_secs(10),
        }
    } else {
        Plan {
            idle: Duration::from_millis(500),
            load: Duration::from_secs(1),
        }
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run(plan));
}

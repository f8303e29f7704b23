//! The kv workload: point reads (`SELECT k, v FROM kv WHERE k = $1`) and blind writes
//! (`UPSERT INTO kv (k, v) VALUES ($1, $2)`) of random values, `--read-percent` of them reads.
//!
//! Keys are random in `0..--cycle-length`, or with `--sequential` written in increasing order
//! (wrapping at the cycle length) and read among the keys written so far in this run.

use super::load::{self, Column, Row};
use super::runner::{Op, Worker, Workload};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

pub(crate) const DATABASE: &str = "kv";
pub(crate) const TABLES: &[&str] = &["kv"];
pub(crate) const SCHEMA: &[&str] =
    &["CREATE TABLE IF NOT EXISTS kv (k INT8 NOT NULL PRIMARY KEY, v BYTES NOT NULL)"];

const READ: &str = "SELECT k, v FROM kv WHERE k = $1";
const WRITE: &str = "UPSERT INTO kv (k, v) VALUES ($1, $2)";

/// Flags of the kv workload.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct KvFlags {
    /// Percentage of operations that are reads (0-100).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub read_percent: u8,
    /// Smallest value written, in bytes.
    #[arg(long, default_value_t = 1)]
    pub min_block_bytes: usize,
    /// Largest value written, in bytes.
    #[arg(long, default_value_t = 1)]
    pub max_block_bytes: usize,
    /// Write keys in increasing order instead of at random.
    #[arg(long)]
    pub sequential: bool,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1_000_000)]
    pub cycle_length: u64,
}

impl KvFlags {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.min_block_bytes <= self.max_block_bytes,
            "--min-block-bytes ({}) must not exceed --max-block-bytes ({})",
            self.min_block_bytes,
            self.max_block_bytes
        );
        anyhow::ensure!(
            (1..=i64::MAX as u64).contains(&self.cycle_length),
            "--cycle-length must be between 1 and {}",
            i64::MAX
        );
        Ok(())
    }
}

/// Random bytes, between `min` and `max` of them.
fn random_block(rng: &mut impl RngCore, min: usize, max: usize) -> Vec<u8> {
    let len = rng.random_range(min..=max);
    let mut block = vec![0; len];
    rng.fill_bytes(&mut block);
    block
}

/// Chooses keys; shared by all workers so sequential writes do not repeat.
#[derive(Debug)]
pub(crate) struct Keys {
    sequential: bool,
    cycle_length: u64,
    /// Sequential mode: keys written (or being written) so far.
    written: AtomicU64,
}

impl Keys {
    fn new(sequential: bool, cycle_length: u64) -> Keys {
        Keys {
            sequential,
            cycle_length,
            written: AtomicU64::new(0),
        }
    }

    fn write_key(&self, rng: &mut impl Rng) -> i64 {
        let key = if self.sequential {
            self.written.fetch_add(1, Ordering::Relaxed) % self.cycle_length
        } else {
            rng.random_range(0..self.cycle_length)
        };
        key as i64
    }

    fn read_key(&self, rng: &mut impl Rng) -> i64 {
        let bound = if self.sequential {
            self.written
                .load(Ordering::Relaxed)
                .clamp(1, self.cycle_length)
        } else {
            self.cycle_length
        };
        rng.random_range(0..bound) as i64
    }
}

/// Loads keys `0..count` with random values (UPSERT, so loading again is harmless).
pub(crate) async fn load(
    client: &Client,
    flags: &KvFlags,
    count: u64,
    seed: u64,
) -> anyhow::Result<()> {
    if count == 0 {
        println!("kv: schema created");
        return Ok(());
    }
    anyhow::ensure!(
        count <= i64::MAX as u64,
        "--insert-count {count} exceeds the INT8 key range"
    );
    let columns = [
        Column::new("k", Type::INT8, ""),
        Column::new("v", Type::BYTEA, ""),
    ];
    let mut rng = SmallRng::seed_from_u64(seed);
    let (min, max) = (flags.min_block_bytes, flags.max_block_bytes);
    load::load_rows(client, "UPSERT", "kv", &columns, count, |i| -> Row {
        vec![
            Box::new(i as i64),
            Box::new(random_block(&mut rng, min, max)),
        ]
    })
    .await
}

/// The kv workload as the runner sees it.
#[derive(Debug)]
pub(crate) struct KvWorkload {
    flags: KvFlags,
    keys: Arc<Keys>,
}

impl KvWorkload {
    pub(crate) fn new(flags: KvFlags) -> KvWorkload {
        KvWorkload {
            keys: Arc::new(Keys::new(flags.sequential, flags.cycle_length)),
            flags,
        }
    }
}

/// A kv operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KvOp {
    Read(i64),
    Write(i64, Vec<u8>),
}

impl Op for KvOp {
    fn name(&self) -> &'static str {
        match self {
            KvOp::Read(_) => "read",
            KvOp::Write(..) => "write",
        }
    }
}

#[derive(Debug)]
pub(crate) struct KvWorker {
    flags: KvFlags,
    keys: Arc<Keys>,
    read: Statement,
    write: Statement,
}

impl KvWorker {
    fn choose_op(flags: &KvFlags, keys: &Keys, rng: &mut SmallRng) -> KvOp {
        if rng.random_range(0..100u8) < flags.read_percent {
            KvOp::Read(keys.read_key(rng))
        } else {
            let key = keys.write_key(rng);
            KvOp::Write(
                key,
                random_block(rng, flags.min_block_bytes, flags.max_block_bytes),
            )
        }
    }
}

impl Workload for KvWorkload {
    type Worker = KvWorker;

    fn name(&self) -> &'static str {
        DATABASE
    }

    fn op_names(&self) -> &'static [&'static str] {
        &["read", "write"]
    }

    async fn worker(&self, client: &Client) -> Result<KvWorker, tokio_postgres::Error> {
        Ok(KvWorker {
            flags: self.flags.clone(),
            keys: self.keys.clone(),
            read: client.prepare_typed(READ, &[Type::INT8]).await?,
            write: client
                .prepare_typed(WRITE, &[Type::INT8, Type::BYTEA])
                .await?,
        })
    }
}

impl Worker for KvWorker {
    type Op = KvOp;

    fn choose(&mut self, rng: &mut SmallRng) -> KvOp {
        Self::choose_op(&self.flags, &self.keys, rng)
    }

    async fn execute(&self, client: &Client, op: &KvOp) -> Result<(), tokio_postgres::Error> {
        match op {
            KvOp::Read(k) => client.query(&self.read, &[k]).await.map(|_| ()),
            KvOp::Write(k, v) => client.execute(&self.write, &[k, v]).await.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(read_percent: u8, sequential: bool) -> KvFlags {
        KvFlags {
            read_percent,
            min_block_bytes: 2,
            max_block_bytes: 5,
            sequential,
            cycle_length: 10,
        }
    }

    #[test]
    fn read_percent_is_respected() {
        // Goal: 0% and 100% are exact, 50% is close to half. Method: 10 000 seeded draws.
        let mut rng = SmallRng::seed_from_u64(3);
        for (percent, low, high) in [(0u8, 0, 0), (100, 10_000, 10_000), (50, 4_700, 5_300)] {
            let f = flags(percent, false);
            let keys = Keys::new(false, f.cycle_length);
            let reads = (0..10_000)
                .filter(|_| matches!(KvWorker::choose_op(&f, &keys, &mut rng), KvOp::Read(_)))
                .count();
            assert!((low..=high).contains(&reads), "{percent}%: {reads} reads");
        }
    }

    #[test]
    fn keys_and_values_stay_in_bounds() {
        // Goal: random keys stay in 0..cycle_length; sequential writes count up and wrap,
        // and sequential reads only ask for keys already written; values have between
        // min and max bytes.
        let mut rng = SmallRng::seed_from_u64(4);
        let f = flags(0, false);
        let keys = Keys::new(false, f.cycle_length);
        for _ in 0..1000 {
            match KvWorker::choose_op(&f, &keys, &mut rng) {
                KvOp::Write(k, v) => {
                    assert!((0..10).contains(&k));
                    assert!((2..=5).contains(&v.len()));
                }
                KvOp::Read(_) => panic!("no reads at 0%"),
            }
        }
        let seq = Keys::new(true, 10);
        assert_eq!(seq.read_key(&mut rng), 0, "nothing written yet: key 0");
        let written: Vec<i64> = (0..12).map(|_| seq.write_key(&mut rng)).collect();
        assert_eq!(written, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]);
        let fresh = Keys::new(true, 100);
        for _ in 0..3 {
            fresh.write_key(&mut rng);
        }
        for _ in 0..100 {
            assert!((0..3).contains(&fresh.read_key(&mut rng)));
        }
    }

    #[test]
    fn flags_validation() {
        // Goal: an inverted block size range or a zero cycle length is refused.
        assert!(flags(0, false).validate().is_ok());
        let mut f = flags(0, false);
        f.min_block_bytes = 6;
        assert!(f.validate().is_err());
        let mut f = flags(0, false);
        f.cycle_length = 0;
        assert!(f.validate().is_err());
    }
}

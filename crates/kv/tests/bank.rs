//! The bank workload: concurrent read-modify-write transfers between accounts through every
//! node as a gateway; serializable transactions keep the total balance exact.

mod common;

use common::TestCluster;
use hlc::Timestamp;
use kv::{KvError, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::Span;

const ACCOUNTS: usize = 100;
const INITIAL_BALANCE: i64 = 1_000;
const CLIENTS: usize = 8;
const RUN_FOR: Duration = Duration::from_secs(20);
/// The largest amount one transfer moves.
const TRANSFER_MAX: i64 = 100;
/// Transfers that fail with an error other than a conflict (e.g. during a leader change) may
/// be at most 1 in this many attempts.
const ERRORS_ONE_IN: u64 = 50;
const ACCOUNT_PREFIX: &[u8] = b"bank/acct/";

fn account_key(i: usize) -> Vec<u8> {
    format!("bank/acct/{i:03}").into_bytes()
}

fn parse_balance(key: &[u8], value: Option<Vec<u8>>) -> i64 {
    let value = value.unwrap_or_else(|| panic!("account {key:?} has no balance"));
    std::str::from_utf8(&value)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("account {key:?} has an undecodable balance {value:?}"))
}

fn seed() -> u64 {
    match std::env::var("ROACH_BANK_SEED") {
        Ok(s) => s.parse().expect("ROACH_BANK_SEED must be a u64"),
        Err(_) => rand::random(),
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct ClientStats {
    committed: u64,
    retries: u64,
    errors: u64,
    /// Attempts that found both accounts empty and wrote nothing.
    skipped: u64,
}

impl ClientStats {
    fn attempts(&self) -> u64 {
        self.committed + self.retries + self.errors + self.skipped
    }

    fn add(&mut self, other: ClientStats) {
        self.committed += other.committed;
        self.retries += other.retries;
        self.errors += other.errors;
        self.skipped += other.skipped;
    }
}

/// One transfer attempt: `Ok(true)` committed, `Ok(false)` nothing to move.
async fn transfer(node: &Arc<Store>, rng: &mut StdRng) -> Result<bool, KvError> {
    let a = rng.random_range(0..ACCOUNTS);
    let b = (a + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
    let (key_a, key_b) = (account_key(a), account_key(b));
    let mut txn = node.begin()?;
    let balance_a = parse_balance(&key_a, txn.get(&key_a).await?);
    let balance_b = parse_balance(&key_b, txn.get(&key_b).await?);
    // Move from the richer side, so an empty account still takes part.
    let (from, to, balance_from, balance_to) = if balance_a >= balance_b {
        (key_a, key_b, balance_a, balance_b)
    } else {
        (key_b, key_a, balance_b, balance_a)
    };
    if balance_from <= 0 {
        return Ok(false);
    }
    let amount = rng.random_range(1..=balance_from.min(TRANSFER_MAX));
    txn.put(from, (balance_from - amount).to_string());
    txn.put(to, (balance_to + amount).to_string());
    txn.commit().await?;
    Ok(true)
}

async fn run_client(node: Arc<Store>, client: usize, seed: u64, until: Instant) -> ClientStats {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(client as u64));
    let mut stats = ClientStats::default();
    let mut last_error: Option<String> = None;
    while Instant::now() < until {
        match transfer(&node, &mut rng).await {
            Ok(true) => stats.committed += 1,
            Ok(false) => stats.skipped += 1,
            Err(KvError::TxnRetry { .. }) => stats.retries += 1,
            Err(e) => {
                stats.errors += 1;
                last_error = Some(e.to_string());
            }
        }
    }
    if let Some(e) = last_error {
        println!("client {client} via {}: last error: {e}", node.id());
    }
    stats
}

/// Every balance and their total, read in one transaction through `node`.
async fn must_read_balances(node: &Arc<Store>) -> (Timestamp, Vec<i64>) {
    let mut txn = node.begin().expect("begin");
    let span = Span::prefix(ACCOUNT_PREFIX);
    let page = txn.scan(&span, ACCOUNTS * 2).await.expect("scan accounts");
    assert!(page.resume_key.is_none(), "one page holds every account");
    assert_eq!(page.rows.len(), ACCOUNTS, "account count via {}", node.id());
    let balances = page
        .rows
        .into_iter()
        .enumerate()
        .map(|(i, kv)| {
            assert_eq!(kv.key, account_key(i), "accounts in key order");
            parse_balance(&kv.key, Some(kv.value))
        })
        .collect();
    let read_ts = txn.read_ts();
    txn.commit().await.expect("read-only commit");
    (read_ts, balances)
}

// Goal: serializable transactions keep money conserved. Method: seed 100 accounts, then 8
// concurrent clients (seeded RNG, replay with ROACH_BANK_SEED) spread over the 3 nodes as
// gateways move random amounts between random pairs of accounts for 20 s, counting conflicts
// (TxnRetry) and other errors; then, through every node, one snapshot transaction must see the
// exact seeded total with no negative balance, and all replicas' fingerprints of the bank span
// at a common timestamp must be equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_transfers_keep_the_total_exact() {
    let seed = seed();
    println!("bank seed: {seed} (replay with ROACH_BANK_SEED={seed})");
    let cluster = TestCluster::must_start(3).await;

    let mut txn = cluster.node(1).begin().expect("begin");
    for i in 0..ACCOUNTS {
        txn.put(account_key(i), INITIAL_BALANCE.to_string());
    }
    let seeded_ts = txn.commit().await.expect("seed accounts");
    let expected_total = INITIAL_BALANCE * ACCOUNTS as i64;

    let until = Instant::now() + RUN_FOR;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let node = cluster.node(c as u64 % 3 + 1);
            tokio::spawn(run_client(node, c, seed, until))
        })
        .collect();
    let mut stats = ClientStats::default();
    for c in clients {
        stats.add(c.await.expect("client task"));
    }
    println!(
        "bank: {} transfers committed, {} retries (conflicts), {} other errors, {} skipped, \
         {} attempts",
        stats.committed,
        stats.retries,
        stats.errors,
        stats.skipped,
        stats.attempts()
    );
    assert!(stats.committed > 0, "no transfer committed");
    assert!(
        stats.retries > 0,
        "no conflict was exercised in {} attempts",
        stats.attempts()
    );
    assert!(
        stats.errors * ERRORS_ONE_IN <= stats.attempts(),
        "{} of {} attempts failed with errors other than conflicts",
        stats.errors,
        stats.attempts()
    );

    let mut common_ts = seeded_ts;
    for id in 1..=3 {
        let node = cluster.node(id);
        let (read_ts, balances) = must_read_balances(&node).await;
        for (i, balance) in balances.iter().enumerate() {
            assert!(
                *balance >= 0,
                "account {i} is negative ({balance}) via {}",
                node.id()
            );
        }
        let total: i64 = balances.iter().sum();
        assert_eq!(
            total,
            expected_total,
            "total via {} at {read_ts}",
            node.id()
        );
        common_ts = common_ts.max(read_ts);
    }

    let span = Span::prefix(ACCOUNT_PREFIX);
    let mut fingerprints = Vec::new();
    for id in 1..=3 {
        fingerprints.push(
            cluster
                .node(id)
                .fingerprint(&span, Timestamp::ZERO, common_ts)
                .await
                .expect("fingerprint"),
        );
    }
    assert_eq!(fingerprints[0], fingerprints[1], "n1 and n2 at {common_ts}");
    assert_eq!(fingerprints[0], fingerprints[2], "n1 and n3 at {common_ts}");
}

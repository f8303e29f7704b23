//! The bank workload: `--rows` accounts of [`INITIAL_BALANCE`] each; every operation moves
//! money between two distinct accounts in an explicit transaction, so the number of accounts
//! and the total balance never change (`check bank` asserts both).
//!
//! A transfer reads both balances, then moves at most what the source holds (balances never go
//! negative): `BEGIN; SELECT ... ; SELECT ... ; UPDATE ... - $2; UPDATE ... + $2; COMMIT`.

use super::load::{self, Column, Row};
use super::runner::{Op, Worker, Workload};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

pub(crate) const DATABASE: &str = "bank";
pub(crate) const TABLES: &[&str] = &["bank"];
pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS bank (id INT8 PRIMARY KEY, balance INT8 NOT NULL, payload STRING)",
];

/// Every account's balance after `init`.
pub(crate) const INITIAL_BALANCE: i64 = 1000;

/// The most one transfer moves.
const TRANSFER_MAX: i64 = 100;

const READ_BALANCE: &str = "SELECT balance FROM bank WHERE id = $1";
const WITHDRAW: &str = "UPDATE bank SET balance = balance - $2 WHERE id = $1";
const DEPOSIT: &str = "UPDATE bank SET balance = balance + $2 WHERE id = $1";

/// Flags of the bank workload.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BankFlags {
    /// Number of accounts.
    #[arg(long, default_value_t = 1000)]
    pub rows: u64,
    /// Bytes of random payload per account.
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,
}

impl BankFlags {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.rows >= 2,
            "--rows must be at least 2: a transfer needs two accounts"
        );
        anyhow::ensure!(
            i64::try_from(self.rows)
                .ok()
                .and_then(|r| r.checked_mul(INITIAL_BALANCE))
                .is_some(),
            "--rows {} is too large: the total balance would overflow INT8",
            self.rows
        );
        Ok(())
    }

    /// The total balance of all accounts.
    fn total(&self) -> i64 {
        self.rows as i64 * INITIAL_BALANCE
    }
}

/// A random string of `len` ASCII letters.
pub(crate) fn random_letters(rng: &mut impl Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

/// Loads the accounts, unless the table already has rows.
pub(crate) async fn load(client: &Client, flags: &BankFlags, seed: u64) -> anyhow::Result<()> {
    let existing = load::count_rows(client, "bank").await?;
    if existing > 0 {
        println!(
            "bank already has {existing} rows: not loading (pass --drop to load it again){}",
            if existing != flags.rows {
                format!("; note: --rows is {}", flags.rows)
            } else {
                String::new()
            }
        );
        return Ok(());
    }
    let columns = [
        Column::new("id", Type::INT8, ""),
        Column::new("balance", Type::INT8, ""),
        Column::new("payload", Type::TEXT, ""),
    ];
    let mut rng = SmallRng::seed_from_u64(seed);
    let payload_bytes = flags.payload_bytes;
    load::load_rows(client, "INSERT", "bank", &columns, flags.rows, |i| -> Row {
        vec![
            Box::new(i as i64),
            Box::new(INITIAL_BALANCE),
            Box::new(random_letters(&mut rng, payload_bytes)),
        ]
    })
    .await
}

/// Compares `SELECT count(*), sum(balance)` (as text) with what `flags` promise; returns the
/// line to print when they agree.
pub(crate) fn verify(
    flags: &BankFlags,
    count: Option<&str>,
    sum: Option<&str>,
) -> Result<String, String> {
    let count = count.unwrap_or("NULL");
    let sum = sum.unwrap_or("NULL");
    let want_count = flags.rows.to_string();
    let want_sum = flags.total().to_string();
    // sum() of INT8 may come back as a DECIMAL: accept `200000` and `200000.0`, nothing else.
    let sum_matches = sum == want_sum
        || sum
            .strip_prefix(want_sum.as_str())
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|frac| !frac.is_empty() && frac.bytes().all(|b| b == b'0'));
    if count != want_count || !sum_matches {
        return Err(format!(
            "bank check failed: {count} accounts with a total balance of {sum}; expected {want_count} accounts with a total of {want_sum}"
        ));
    }
    Ok(format!(
        "bank check ok: {count} accounts, total balance {want_sum}"
    ))
}

/// `check bank`: the number of accounts and the total balance.
pub(crate) async fn check(client: &Client, flags: &BankFlags) -> anyhow::Result<String> {
    let row = load::first_row(client, "SELECT count(*), sum(balance) FROM bank").await?;
    let value = |i: usize| row.get(i).cloned().flatten();
    verify(flags, value(0).as_deref(), value(1).as_deref()).map_err(anyhow::Error::msg)
}

/// The bank workload as the runner sees it.
#[derive(Debug)]
pub(crate) struct BankWorkload {
    flags: BankFlags,
}

impl BankWorkload {
    pub(crate) fn new(flags: BankFlags) -> BankWorkload {
        BankWorkload { flags }
    }
}

/// A transfer of up to `amount` from account `from` to account `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transfer {
    from: i64,
    to: i64,
    amount: i64,
}

impl Op for Transfer {
    fn name(&self) -> &'static str {
        "transfer"
    }
}

/// Chooses two distinct accounts among `rows` (at least 2) and an amount in 1..=TRANSFER_MAX.
fn choose_transfer(rng: &mut impl Rng, rows: u64) -> Transfer {
    let from = rng.random_range(0..rows);
    let to = (from + 1 + rng.random_range(0..rows - 1)) % rows;
    Transfer {
        from: from as i64,
        to: to as i64,
        amount: rng.random_range(1..=TRANSFER_MAX),
    }
}

#[derive(Debug)]
pub(crate) struct BankWorker {
    rows: u64,
    read_balance: Statement,
    withdraw: Statement,
    deposit: Statement,
}

impl Workload for BankWorkload {
    type Worker = BankWorker;

    fn name(&self) -> &'static str {
        DATABASE
    }

    fn op_names(&self) -> &'static [&'static str] {
        &["transfer"]
    }

    async fn worker(&self, client: &Client) -> Result<BankWorker, tokio_postgres::Error> {
        Ok(BankWorker {
            rows: self.flags.rows,
            read_balance: client.prepare_typed(READ_BALANCE, &[Type::INT8]).await?,
            withdraw: client
                .prepare_typed(WITHDRAW, &[Type::INT8, Type::INT8])
                .await?,
            deposit: client
                .prepare_typed(DEPOSIT, &[Type::INT8, Type::INT8])
                .await?,
        })
    }
}

impl BankWorker {
    /// The statements between BEGIN and COMMIT.
    async fn transfer(&self, client: &Client, op: &Transfer) -> Result<(), tokio_postgres::Error> {
        let from_balance: i64 = client
            .query_one(&self.read_balance, &[&op.from])
            .await?
            .try_get(0)?;
        client.query_one(&self.read_balance, &[&op.to]).await?;
        let amount = op.amount.min(from_balance.max(0));
        if amount > 0 {
            client.execute(&self.withdraw, &[&op.from, &amount]).await?;
            client.execute(&self.deposit, &[&op.to, &amount]).await?;
        }
        Ok(())
    }
}

impl Worker for BankWorker {
    type Op = Transfer;

    fn choose(&mut self, rng: &mut SmallRng) -> Transfer {
        choose_transfer(rng, self.rows)
    }

    async fn execute(&self, client: &Client, op: &Transfer) -> Result<(), tokio_postgres::Error> {
        client.batch_execute("BEGIN").await?;
        if let Err(e) = self.transfer(client, op).await {
            // The transaction is aborted either way; a failed rollback changes nothing.
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
        // A failed COMMIT ends the transaction too.
        client.batch_execute("COMMIT").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(rows: u64) -> BankFlags {
        BankFlags {
            rows,
            payload_bytes: 100,
        }
    }

    #[test]
    fn transfers_use_distinct_accounts_in_range() {
        // Goal: a transfer never has the same source and target, both are accounts that
        // exist, every account is chosen eventually, and amounts stay in 1..=TRANSFER_MAX.
        // Method: many seeded draws, including the smallest bank of two accounts.
        let mut rng = SmallRng::seed_from_u64(7);
        for rows in [2u64, 3, 1000] {
            let mut seen = std::collections::HashSet::new();
            // 30 000 draws miss one of 1000 accounts with probability about 1e-10.
            for _ in 0..30_000 {
                let t = choose_transfer(&mut rng, rows);
                assert_ne!(t.from, t.to);
                assert!((0..rows as i64).contains(&t.from) && (0..rows as i64).contains(&t.to));
                assert!((1..=TRANSFER_MAX).contains(&t.amount));
                seen.insert(t.to);
            }
            assert_eq!(seen.len() as u64, rows);
        }
    }

    #[test]
    fn check_compares_count_and_total() {
        // Goal: the check passes only for exactly `rows` accounts and `rows * 1000` in total
        // (integer or zero-fraction decimal text), and the failure names both numbers.
        assert!(verify(&flags(200), Some("200"), Some("200000")).is_ok());
        assert!(verify(&flags(200), Some("200"), Some("200000.00")).is_ok());
        for (count, sum) in [
            (Some("200"), Some("199999")),
            (Some("199"), Some("200000")),
            (Some("200"), Some("2000000")),
            (Some("200"), Some("200000.5")),
            (Some("200"), Some("200000.")),
            (Some("0"), None),
        ] {
            let err = verify(&flags(200), count, sum).expect_err("mismatch");
            assert!(err.starts_with("bank check failed"), "{err}");
            assert!(
                err.contains("expected 200 accounts with a total of 200000"),
                "{err}"
            );
        }
    }

    #[test]
    fn flags_validation() {
        // Goal: fewer than two accounts, or a total that overflows INT8, is refused.
        assert!(flags(2).validate().is_ok());
        assert!(flags(1).validate().is_err());
        assert!(flags(u64::MAX / 10).validate().is_err());
    }

    #[test]
    fn payload_is_letters_of_given_length() {
        // Goal: payloads are ASCII letters of exactly the requested length, the same for the
        // same seed.
        let a = random_letters(&mut SmallRng::seed_from_u64(1), 100);
        let b = random_letters(&mut SmallRng::seed_from_u64(1), 100);
        assert_eq!(a, b);
        assert_eq!(a.len(), 100);
        assert!(a.bytes().all(|c| c.is_ascii_lowercase()));
    }
}

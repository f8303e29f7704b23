//! `roach workload`: built-in load generators, like `cockroach workload`.
//!
//! `init` creates a workload's database and tables and loads its initial rows (with a progress
//! bar); `run` drives operations from `--concurrency` workers, each on its own connection, and
//! prints a line per operation type every second, then a summary; `check` verifies a
//! workload's invariant (bank: the number of accounts and the total balance never change).
//!
//! Workloads: `kv` (point reads and upserts), `bank` (transfers in explicit transactions,
//! retried on SQLSTATE 40001), `movr` (a ride-sharing schema with UUID keys and secondary
//! indexes). The SQL is roach's (CockroachDB's) dialect. Every statement that takes values is
//! prepared with explicit parameter types (`prepare_typed`), so nothing depends on the server's
//! parameter type inference; values of other types travel as text with a cast in the SQL
//! (`$1::UUID`).
//!
//! Connections reuse `roach sql`'s URL handling and TLS. Unlike the shell, a URL naming no
//! virtual cluster goes where the server sends it, like any driver. Passwords are never
//! printed: URLs are shown redacted.
//!
//! Exit codes: 0 on success; 1 when a connection or statement fails, a run stops on an error
//! (without `--tolerate-errors`), or a check finds a violated invariant; 2 for bad flags.

mod bank;
mod kv;
mod load;
mod movr;
mod runner;
mod stats;

use crate::security::SecurityArgs;
use crate::sql::connect::{self, Session};
use crate::sql::params::{ConnParams, Given};
use crate::sql::url::{self, ConnUrl};
use anyhow::Context;
use clap::Subcommand;
use std::convert::Infallible;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::Client;

/// The URL used when none is given: an insecure local node.
const DEFAULT_URL: &str = "postgresql://root@localhost:26257?sslmode=disable";

/// The `application_name` of workload connections unless the URL sets one.
const APPLICATION_NAME: &str = "roach workload";

/// Flags of `roach workload`.
#[derive(Debug, clap::Args)]
pub struct WorkloadArgs {
    #[command(subcommand)]
    command: WorkloadCommand,
}

#[derive(Debug, Subcommand)]
enum WorkloadCommand {
    /// Create a workload's database and tables and load its initial data.
    Init {
        #[command(subcommand)]
        workload: InitWorkload,
    },
    /// Run a workload, printing per-second statistics and a summary.
    Run {
        #[command(subcommand)]
        workload: RunWorkload,
    },
    /// Check a workload's invariants; exit code 1 when one is violated.
    Check {
        #[command(subcommand)]
        workload: CheckWorkload,
    },
}

#[derive(Debug, Subcommand)]
enum InitWorkload {
    /// Key-value pairs: table kv (k INT8 PRIMARY KEY, v BYTES) in database kv.
    Kv {
        #[command(flatten)]
        flags: kv::KvFlags,
        /// Rows to load (keys 0..N) after creating the table.
        #[arg(long, default_value_t = 0)]
        insert_count: u64,
        #[command(flatten)]
        init: InitFlags,
    },
    /// Bank accounts: table bank (id, balance, payload) in database bank.
    Bank {
        #[command(flatten)]
        flags: bank::BankFlags,
        #[command(flatten)]
        init: InitFlags,
    },
    /// A ride-sharing application: users, vehicles, rides, promo codes in database movr.
    Movr {
        #[command(flatten)]
        flags: movr::MovrFlags,
        #[command(flatten)]
        init: InitFlags,
    },
}

#[derive(Debug, Subcommand)]
enum RunWorkload {
    /// Point reads (SELECT by key) and writes (UPSERT) of random or sequential keys.
    Kv {
        #[command(flatten)]
        flags: kv::KvFlags,
        #[command(flatten)]
        run: RunFlags,
    },
    /// Transfers between two random accounts, each in an explicit transaction.
    Bank {
        #[command(flatten)]
        flags: bank::BankFlags,
        #[command(flatten)]
        run: RunFlags,
    },
    /// 95% reads (vehicles of a city, rides of a user), 5% writes (new ride, vehicle status),
    /// over the users and vehicles that `init movr` loaded.
    Movr {
        #[command(flatten)]
        run: RunFlags,
    },
}

#[derive(Debug, Subcommand)]
enum CheckWorkload {
    /// The bank has exactly --rows accounts holding --rows * 1000 in total.
    Bank {
        #[command(flatten)]
        flags: bank::BankFlags,
        #[command(flatten)]
        conn: ConnFlags,
    },
}

/// A connection URL as given; shown only redacted.
#[derive(Clone)]
pub(crate) struct WorkloadUrl(String);

impl FromStr for WorkloadUrl {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<WorkloadUrl, Infallible> {
        Ok(WorkloadUrl(s.to_string()))
    }
}

impl std::fmt::Debug for WorkloadUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", url::redact(&self.0))
    }
}

/// Where to connect.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnFlags {
    /// Connection URL: postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE?sslmode=...&options=...
    /// After connecting, the workload's own database (kv, bank or movr) becomes current.
    #[arg(value_name = "URL", default_value = DEFAULT_URL)]
    url: WorkloadUrl,
    #[command(flatten)]
    security: SecurityArgs,
}

/// Flags of every `init`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct InitFlags {
    /// Drop the workload's tables first, then create and load them again.
    #[arg(long)]
    drop: bool,
    /// Seed of the generated data (the same seed gives the same rows).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    conn: ConnFlags,
}

/// Flags of every `run`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RunFlags {
    /// Number of workers, each with its own connection.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Operations per second over all workers; 0 means unlimited.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    max_rate: f64,
    /// How long to run (e.g. 30s, 2m, 1h30m); 0 runs until Ctrl-C.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    duration: Duration,
    /// Count errors and keep going instead of stopping at the first one.
    #[arg(long)]
    tolerate_errors: bool,
    /// Seed of the workers' random choices [default: from the clock; printed at the start].
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    conn: ConnFlags,
}

/// Parses `--max-rate`: a finite, non-negative number of operations per second.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!(
            "invalid rate {s:?}: expected a non-negative number of operations per second"
        )),
    }
}

/// Parses a duration like `30s`, `2m`, `1h30m`, `1.5s`, `250ms`, or `0`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected e.g. 30s, 2m, 1h30m, 500ms or 0");
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad());
    }
    let mut total = 0.0_f64;
    let mut rest = s;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| bad())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_end] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Runs `roach workload`.
pub fn run(args: WorkloadArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match args.command {
            WorkloadCommand::Init { workload } => match workload {
                InitWorkload::Kv {
                    flags,
                    insert_count,
                    init,
                } => {
                    flags.validate()?;
                    let session = init_schema(&init, kv::DATABASE, kv::TABLES, kv::SCHEMA).await?;
                    kv::load(&session.client, &flags, insert_count, init.seed).await
                }
                InitWorkload::Bank { flags, init } => {
                    flags.validate()?;
                    let session =
                        init_schema(&init, bank::DATABASE, bank::TABLES, bank::SCHEMA).await?;
                    bank::load(&session.client, &flags, init.seed).await
                }
                InitWorkload::Movr { flags, init } => {
                    flags.validate()?;
                    let session =
                        init_schema(&init, movr::DATABASE, movr::TABLES, movr::SCHEMA).await?;
                    movr::load(&session.client, &flags, init.seed).await
                }
            },
            WorkloadCommand::Run { workload } => match workload {
                RunWorkload::Kv { flags, run } => {
                    flags.validate()?;
                    runner::run(kv::KvWorkload::new(flags), &run).await
                }
                RunWorkload::Bank { flags, run } => {
                    flags.validate()?;
                    runner::run(bank::BankWorkload::new(flags), &run).await
                }
                RunWorkload::Movr { run } => {
                    let params = resolve(&run.conn)?;
                    let session = connect_to(&params, movr::DATABASE).await?;
                    let workload = movr::MovrWorkload::load(&session.client).await?;
                    drop(session);
                    runner::run(workload, &run).await
                }
            },
            WorkloadCommand::Check { workload } => match workload {
                CheckWorkload::Bank { flags, conn } => {
                    flags.validate()?;
                    let params = resolve(&conn)?;
                    let session = connect_to(&params, bank::DATABASE).await?;
                    let report = bank::check(&session.client, &flags).await?;
                    println!("{report}");
                    Ok(())
                }
            },
        }
    })
}

/// Resolves the connection flags like `roach sql` does, except that a URL naming no virtual
/// cluster keeps naming none, and the application name is `roach workload`.
pub(crate) fn resolve(conn: &ConnFlags) -> anyhow::Result<ConnParams> {
    let given_url = &conn.url.0;
    let mut params = ConnParams::resolve(&Given {
        url: Some(given_url),
        certs_dir: Some(&conn.security.certs_dir),
        insecure: conn.security.insecure,
        ..Given::default()
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    // Resolve succeeded, so the URL parses.
    let url = ConnUrl::parse(given_url).map_err(|e| anyhow::anyhow!("{e}"))?;
    params.options = url.param("options").map(str::to_string);
    if url.param("application_name").is_none() {
        params.application_name = APPLICATION_NAME.to_string();
    }
    Ok(params)
}

/// Connects and makes `database` the current database.
pub(crate) async fn connect_to(params: &ConnParams, database: &str) -> anyhow::Result<Session> {
    let session = connect_only(params).await?;
    use_database(&session.client, database).await.map_err(|e| {
        let hint = if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME) {
            format!("\nHINT: run `roach workload init {database}` first")
        } else {
            String::new()
        };
        anyhow::anyhow!("cannot use database {database}: {}{hint}", describe(&e))
    })?;
    Ok(session)
}

/// Connects, with the connection error's hint in the message.
async fn connect_only(params: &ConnParams) -> anyhow::Result<Session> {
    connect::connect(params).await.map_err(|e| match e.hint() {
        Some(hint) => anyhow::anyhow!("{e}\nHINT: {hint}"),
        None => anyhow::anyhow!("{e}"),
    })
}

/// `SET database = <database>`.
pub(crate) async fn use_database(
    client: &Client,
    database: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!("SET database = {database}"))
        .await
}

/// A statement error in one line: the server's message and SQLSTATE (and hint), or the
/// client-side cause.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut out = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(hint) = db.hint() {
                out.push_str(&format!("; hint: {hint}"));
            }
            out
        }
        None => crate::sql::exec::error_chain(e),
    }
}

/// Runs DDL or other statements without values, with the statement in the error.
pub(crate) async fn execute_all(client: &Client, statements: &[&str]) -> anyhow::Result<()> {
    for statement in statements {
        client
            .batch_execute(statement)
            .await
            .map_err(|e| anyhow::anyhow!("{statement}: {}", describe(&e)))?;
    }
    Ok(())
}

/// The common part of `init`: connect, create and select the database, drop the tables if
/// asked, and create the schema (idempotent).
async fn init_schema(
    init: &InitFlags,
    database: &str,
    tables: &[&str],
    schema: &[&str],
) -> anyhow::Result<Session> {
    let params = resolve(&init.conn)?;
    eprintln!(
        "roach workload init {database}: connecting to {}",
        params.redacted_url()
    );
    let session = connect_only(&params).await?;
    execute_all(
        &session.client,
        &[&format!("CREATE DATABASE IF NOT EXISTS {database}")],
    )
    .await?;
    use_database(&session.client, database)
        .await
        .map_err(|e| anyhow::anyhow!("cannot use database {database}: {}", describe(&e)))?;
    if init.drop {
        let drops: Vec<String> = tables
            .iter()
            .map(|t| format!("DROP TABLE IF EXISTS {t}"))
            .collect();
        let drops: Vec<&str> = drops.iter().map(String::as_str).collect();
        execute_all(&session.client, &drops).await?;
    }
    execute_all(&session.client, schema).await?;
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Parses `roach workload ...` arguments.
    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: TestCommand,
    }

    #[derive(Debug, Subcommand)]
    enum TestCommand {
        Workload(WorkloadArgs),
    }

    fn must_parse(args: &[&str]) -> WorkloadCommand {
        let cli = TestCli::try_parse_from(["roach", "workload"].iter().chain(args))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let TestCommand::Workload(w) = cli.command;
        w.command
    }

    #[test]
    fn durations() {
        // Goal: the duration forms of cockroach workload parse, and junk is refused.
        for (text, want) in [
            ("0", Duration::ZERO),
            ("30s", Duration::from_secs(30)),
            ("2m", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5s", Duration::from_millis(1500)),
            ("250ms", Duration::from_millis(250)),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in ["", "5", "s", "5x", "-5s", "1..5s", "5 s", "ms"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn run_flags_and_defaults() {
        // Goal: run flags parse with their documented defaults, the URL is positional with a
        // default, and the workload flags go to the workload.
        let WorkloadCommand::Run {
            workload: RunWorkload::Kv { flags, run },
        } = must_parse(&["run", "kv", "--read-percent", "50", "--duration", "3s"])
        else {
            panic!("not run kv");
        };
        assert_eq!(flags.read_percent, 50);
        assert_eq!(run.duration, Duration::from_secs(3));
        assert_eq!(run.concurrency, 8);
        assert_eq!(run.max_rate, 0.0);
        assert!(!run.tolerate_errors);
        assert_eq!(run.conn.url.0, DEFAULT_URL);

        let WorkloadCommand::Run {
            workload: RunWorkload::Bank { flags, run },
        } = must_parse(&[
            "run",
            "bank",
            "--rows",
            "200",
            "--concurrency",
            "2",
            "--max-rate",
            "100",
            "--tolerate-errors",
            "postgresql://u:secret@h:1/db?sslmode=disable",
        ])
        else {
            panic!("not run bank");
        };
        assert_eq!(flags.rows, 200);
        assert_eq!(run.concurrency, 2);
        assert_eq!(run.max_rate, 100.0);
        assert!(run.tolerate_errors);
        let shown = format!("{run:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("u:****@h:1"), "{shown}");
    }

    #[test]
    fn init_and_check_flags() {
        // Goal: init takes --drop, --seed and the workload's flags; check bank takes --rows;
        // movr's city list is comma separated.
        let WorkloadCommand::Init {
            workload: InitWorkload::Kv {
                insert_count, init, ..
            },
        } = must_parse(&["init", "kv", "--insert-count", "10", "--drop"])
        else {
            panic!("not init kv");
        };
        assert_eq!(insert_count, 10);
        assert!(init.drop);
        assert_eq!(init.seed, 1);
        let WorkloadCommand::Init {
            workload: InitWorkload::Movr { flags, .. },
        } = must_parse(&["init", "movr", "--cities", "a,b", "--num-users", "4"])
        else {
            panic!("not init movr");
        };
        assert_eq!(flags.cities, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(flags.num_users, 4);
        let WorkloadCommand::Check {
            workload: CheckWorkload::Bank { flags, .. },
        } = must_parse(&["check", "bank", "--rows", "7"])
        else {
            panic!("not check bank");
        };
        assert_eq!(flags.rows, 7);
    }

    #[test]
    fn bad_flags_are_refused() {
        // Goal: out-of-range values are rejected by the parser, not discovered mid-run.
        for args in [
            &["run", "kv", "--read-percent", "101"][..],
            &["run", "kv", "--concurrency", "0"],
            &["run", "kv", "--max-rate", "-1"],
            &["run", "kv", "--max-rate", "inf"],
            &["run", "kv", "--duration", "soon"],
            &["run", "tpcc"],
            &["check", "kv"],
        ] {
            let parsed = TestCli::try_parse_from(["roach", "workload"].iter().chain(args));
            assert!(parsed.is_err(), "{args:?}");
        }
    }

    #[test]
    fn resolve_keeps_server_default_cluster() {
        // Goal: unlike `roach sql`, a URL without a cluster option adds none; a URL with one
        // keeps it; the application name defaults to `roach workload`.
        let conn = |url: &str| ConnFlags {
            url: WorkloadUrl(url.to_string()),
            security: SecurityArgs {
                certs_dir: "certs".into(),
                insecure: false,
            },
        };
        let p = resolve(&conn("postgresql://root@h:1/defaultdb?sslmode=disable")).expect("ok");
        assert_eq!(p.options, None);
        assert_eq!(p.application_name, APPLICATION_NAME);
        let p = resolve(&conn(
            "postgresql://root@h:1?sslmode=disable&options=-ccluster=application&application_name=x",
        ))
        .expect("ok");
        assert_eq!(p.options.as_deref(), Some("-ccluster=application"));
        assert_eq!(p.application_name, "x");
        let err = resolve(&conn("http://h")).expect_err("bad scheme");
        assert!(err.to_string().contains("postgresql://"), "{err}");
    }
}

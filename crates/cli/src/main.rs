//! The `roach` binary: command-line parsing and dispatch to the library crates.
//!
//! Owns: the command tree and how results are printed. Does not own any behaviour a test or
//! another binary would want to reuse: that lives in the library crates (`roach cert` calls
//! `server::certs`).

mod cert;
mod demo;
mod init;
mod security;
mod sql;
mod start;
mod workload;

use clap::{Parser, Subcommand};

/// roach: a distributed SQL database with virtual clusters and physical cluster replication.
#[derive(Debug, Parser)]
#[command(name = "roach", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the CA, node and client certificates of a secure cluster.
    Cert(cert::CertCommand),
    /// Start a node of a multi-node cluster (then run `roach init` once).
    Start(start::StartArgs),
    /// Start a one-node cluster, initialising it if its store is new.
    StartSingleNode(start::StartArgs),
    /// Initialise a new cluster through one of its started nodes.
    Init(init::InitArgs),
    /// Open a SQL shell on a node (or run statements with -e, or from piped stdin).
    Sql(sql::SqlArgs),
    /// Generate load: `init`, `run` or `check` the kv, bank or movr workload.
    Workload(workload::WorkloadArgs),
    /// Start a primary and a standby cluster replicating on this machine, and open a SQL shell.
    #[command(long_about = demo::LONG_HELP)]
    Demo(demo::DemoArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Cert(command) => cert::run(command),
        Command::Start(args) => start::run(args, false),
        Command::StartSingleNode(args) => {
            if !args.join.is_empty() {
                anyhow::bail!(
                    "start-single-node does not take --join; use `roach start` for a multi-node cluster"
                );
            }
            start::run(args, true)
        }
        Command::Init(args) => init::run(args),
        Command::Sql(args) => sql::run(args),
        Command::Workload(args) => workload::run(args),
        Command::Demo(args) => demo::run(args),
    }
}

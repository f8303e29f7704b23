//! The `roach` binary: command-line parsing and dispatch to the library crates.
//!
//! Owns: the command tree and how results are printed. Does not own any behaviour a test or
//! another binary would want to reuse: that lives in the library crates (`roach cert` calls
//! `server::certs`).

mod cert;

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Cert(command) => cert::run(command),
    }
}

//! The `--certs-dir` / `--insecure` flags shared by commands that talk to or run a node.

use std::path::PathBuf;

/// How a command secures its connections.
#[derive(Debug, Clone, clap::Args)]
pub struct SecurityArgs {
    /// The certificates directory (`ca.crt`, `node.crt`, `node.key`, `client.USER.*`).
    #[arg(
        long,
        env = "ROACH_CERTS_DIR",
        default_value = "certs",
        conflicts_with = "insecure"
    )]
    pub certs_dir: PathBuf,
    /// Run or connect without TLS. Only for local experiments: anyone who can reach the port
    /// can read and write all data.
    #[arg(long)]
    pub insecure: bool,
}

impl SecurityArgs {
    /// The certificates directory, or `None` when insecure.
    pub fn certs_dir(&self) -> Option<PathBuf> {
        (!self.insecure).then(|| self.certs_dir.clone())
    }
}

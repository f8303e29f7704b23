//! `roach cert create-ca | create-node | create-client`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use server::certs::{self, Overwrite, Validity};
use server::tls::CertsDir;

/// Create the CA, node and client certificates of a secure cluster.
#[derive(Debug, Args)]
pub struct CertCommand {
    #[command(subcommand)]
    command: CertSubcommand,
}

#[derive(Debug, Subcommand)]
enum CertSubcommand {
    /// Create a CA: writes <certs-dir>/ca.crt and the CA key at --ca-key.
    #[command(name = "create-ca")]
    Ca {
        #[command(flatten)]
        common: CommonArgs,
        /// How long the CA certificate is valid, e.g. 3650d, 87600h, 10y.
        #[arg(long, value_name = "DURATION", default_value = "3650d", value_parser = parse_lifetime)]
        lifetime: Duration,
    },
    /// Create the node certificate: writes <certs-dir>/node.crt and node.key, signed by the CA.
    ///
    /// The certificate's Common Name is `node`; it is valid both as a server and as a client
    /// certificate (nodes dial each other).
    #[command(name = "create-node")]
    Node {
        /// Addresses clients and other nodes use to reach this node: IP addresses become IP
        /// SANs, anything else DNS SANs (for a local cluster: 127.0.0.1 localhost).
        #[arg(required = true, value_name = "HOST")]
        hosts: Vec<String>,
        #[command(flatten)]
        common: CommonArgs,
        /// How long the certificate is valid, e.g. 1825d, 43800h, 5y.
        #[arg(long, value_name = "DURATION", default_value = "1825d", value_parser = parse_lifetime)]
        lifetime: Duration,
    },
    /// Create a SQL user's client certificate: writes <certs-dir>/client.USER.crt and .key.
    ///
    /// Without --tenant-scope the certificate logs in as USER to every virtual cluster where
    /// USER exists; give it only to the cluster operator. The name `node` is reserved for node
    /// certificates.
    #[command(name = "create-client")]
    Client {
        /// The SQL user: lowercase letters, digits, '_', '-' and '.'.
        #[arg(value_name = "USER")]
        user: String,
        /// Limit the certificate to these virtual clusters: comma-separated ids, or the names
        /// `system` (id 1) and `application` (id 3). Other virtual clusters are named by id
        /// (SHOW VIRTUAL CLUSTERS shows it), since this command runs offline.
        #[arg(long, value_name = "ID|system|application[,...]")]
        tenant_scope: Option<String>,
        #[command(flatten)]
        common: CommonArgs,
        /// How long the certificate is valid, e.g. 1825d, 43800h, 5y.
        #[arg(long, value_name = "DURATION", default_value = "1825d", value_parser = parse_lifetime)]
        lifetime: Duration,
    },
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// The certificates directory (created if missing).
    #[arg(
        long,
        env = "ROACH_CERTS_DIR",
        default_value = "certs",
        value_name = "DIR"
    )]
    certs_dir: PathBuf,
    /// The CA private key. Keep it off the nodes: only `roach cert` needs it.
    #[arg(long, env = "ROACH_CA_KEY", value_name = "FILE")]
    ca_key: PathBuf,
    /// Replace existing files instead of refusing to write.
    #[arg(long)]
    overwrite: bool,
}

impl CommonArgs {
    fn overwrite(&self) -> Overwrite {
        if self.overwrite {
            Overwrite::Replace
        } else {
            Overwrite::Refuse
        }
    }
}

/// Runs a `roach cert` subcommand, printing `wrote <path>` for every file written.
pub fn run(command: CertCommand) -> anyhow::Result<()> {
    let written = match &command.command {
        CertSubcommand::Ca { common, lifetime } => {
            let dir = CertsDir::new(&common.certs_dir);
            let written = certs::create_ca(
                &dir,
                &common.ca_key,
                Validity::starting_now(*lifetime),
                common.overwrite(),
            )
            .context("cannot create the CA")?;
            if is_inside(&common.ca_key, dir.path()) {
                eprintln!(
                    "warning: the CA key {} is inside the certificates directory {}; \
                     keep it somewhere nodes cannot read",
                    common.ca_key.display(),
                    dir.path().display()
                );
            }
            written
        }
        CertSubcommand::Node {
            hosts,
            common,
            lifetime,
        } => certs::create_node(
            &CertsDir::new(&common.certs_dir),
            &common.ca_key,
            hosts,
            Validity::starting_now(*lifetime),
            common.overwrite(),
        )
        .context("cannot create the node certificate")?,
        CertSubcommand::Client {
            user,
            tenant_scope,
            common,
            lifetime,
        } => {
            let scope = match tenant_scope {
                Some(text) => certs::parse_tenant_scope(text).with_context(|| {
                    format!("cannot create the client certificate for user {user}")
                })?,
                None => Vec::new(),
            };
            certs::create_scoped_client(
                &CertsDir::new(&common.certs_dir),
                &common.ca_key,
                user,
                &scope,
                Validity::starting_now(*lifetime),
                common.overwrite(),
            )
            .with_context(|| format!("cannot create the client certificate for user {user}"))?
        }
    };
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// Whether `file` lies in `dir` (both exist; compared after resolving symlinks).
fn is_inside(file: &Path, dir: &Path) -> bool {
    match (file.canonicalize(), dir.canonicalize()) {
        (Ok(file), Ok(dir)) => file.starts_with(dir),
        _ => false,
    }
}

/// Parses a duration such as `3650d`, `87600h`, `1h30m` or `10y`: one or more `<integer><unit>`
/// with units `s`, `m`, `h`, `d` (24 hours) and `y` (365 days).
fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let usage = || {
        format!(
            "invalid duration {text:?}: expected e.g. 3650d, 87600h, 1h30m or 10y (units s, m, h, d, y)"
        )
    };
    if text.is_empty() {
        return Err(usage());
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(usage)?;
        if digits == 0 {
            return Err(usage());
        }
        let count: u64 = rest[..digits].parse().map_err(|_| usage())?;
        let unit = rest[digits..].chars().next().ok_or_else(usage)?;
        let unit_secs = match unit {
            's' => 1,
            'm' => 60,
            'h' => 60 * 60,
            'd' => 24 * 60 * 60,
            'y' => 365 * 24 * 60 * 60,
            _ => return Err(usage()),
        };
        let secs = count.checked_mul(unit_secs).ok_or_else(usage)?;
        total = total
            .checked_add(Duration::from_secs(secs))
            .ok_or_else(usage)?;
        rest = &rest[digits + unit.len_utf8()..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_and_defaults_match_the_library() {
        // Goal: the duration syntax accepts Go-style and day/year forms, rejects garbage, and
        // the CLI's default strings equal the library's default lifetimes.
        // Method: a table of inputs.
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(parse_lifetime("87600h"), Ok(h(87600)));
        assert_eq!(parse_lifetime("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_lifetime("2d12h"), Ok(h(60)));
        assert_eq!(parse_lifetime("10y"), Ok(certs::CA_LIFETIME_DEFAULT));
        assert_eq!(parse_lifetime("3650d"), Ok(certs::CA_LIFETIME_DEFAULT));
        assert_eq!(parse_lifetime("1825d"), Ok(certs::NODE_LIFETIME_DEFAULT));
        assert_eq!(parse_lifetime("1825d"), Ok(certs::CLIENT_LIFETIME_DEFAULT));
        for bad in [
            "",
            "10",
            "h",
            "1x",
            "1h 2m",
            "-1h",
            "1.5h",
            "99999999999999999999y",
        ] {
            assert!(parse_lifetime(bad).is_err(), "{bad:?} must not parse");
        }
    }
}

//! `roach init`: initialise a new cluster through one of its nodes.

use crate::security::SecurityArgs;
use anyhow::{Context, bail};
use proto::server::InitRequest;
use proto::server::admin_client::AdminClient;
use std::time::Duration;
use tonic::transport::Endpoint;

/// Flags of `roach init`.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// The node to initialise the cluster through.
    #[arg(long, default_value = "localhost:26257")]
    pub host: String,
    #[command(flatten)]
    pub security: SecurityArgs,
}

/// Runs `roach init`.
pub fn run(args: InitArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let tls = match args.security.certs_dir() {
            Some(dir) => Some(server::node::cli_client_tls(&dir)?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", args.host))
            .with_context(|| format!("invalid --host {:?}", args.host))?
            .connect_timeout(Duration::from_secs(5));
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls).context("TLS configuration")?;
        }
        let channel = endpoint.connect().await.map_err(|e| {
            let cause = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
            anyhow::anyhow!("cannot reach the node at {}{cause}; is it running, and do its certificates match --certs-dir?", args.host)
        })?;
        match AdminClient::new(channel).init(InitRequest {}).await {
            Ok(r) => {
                println!("Cluster successfully initialized (node {}).", r.into_inner().node_id);
                Ok(())
            }
            Err(s) if s.code() == tonic::Code::AlreadyExists => bail!("cluster has already been initialized"),
            Err(s) => bail!("initializing the cluster through {} failed: {}", args.host, s.message()),
        }
    })
}

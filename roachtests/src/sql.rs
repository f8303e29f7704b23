//! SQL as the scenarios use it: root with the cluster's client certificate over TLS, the
//! simple-query protocol, rows as (column, text) pairs.

use anyhow::{Context, Result, anyhow};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::{Client, SimpleQueryMessage};

/// One result row: (column name, text or NULL).
pub type Row = Vec<(String, Option<String>)>;

fn tls(certs: &Path) -> Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certs.join("ca.crt")).context("ca.crt")? {
        roots.add(cert.context("ca.crt")?)?;
    }
    let chain = CertificateDer::pem_file_iter(certs.join("client.root.crt"))
        .context("client.root.crt")?
        .collect::<Result<Vec<_>, _>>()
        .context("client.root.crt")?;
    let key =
        PrivateKeyDer::from_pem_file(certs.join("client.root.key")).context("client.root.key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?)
}

/// Connects to `vc` at `addr` as root with the client certificate in `certs`.
pub async fn connect(addr: &str, vc: &str, certs: &Path) -> Result<Client> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("bad address {addr}"))?;
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port.parse()?)
        .user("root")
        .dbname("defaultdb")
        .options(format!("-ccluster={vc}"))
        .application_name("roachtests")
        .connect_timeout(Duration::from_secs(10))
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let connect = config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls(certs)?));
    let (client, conn) = tokio::time::timeout(Duration::from_secs(20), connect)
        .await
        .map_err(|_| anyhow!("connecting to {addr} timed out"))?
        .with_context(|| format!("connect to {vc} at {addr}"))?;
    tokio::spawn(conn);
    Ok(client)
}

/// The text of an error, with its SQLSTATE when the server sent one.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} (SQLSTATE {})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}

/// All rows of `sql` (a 60 s deadline: a statement never hangs a scenario).
pub async fn query(c: &Client, sql: &str) -> Result<Vec<Row>> {
    let msgs = tokio::time::timeout(Duration::from_secs(60), c.simple_query(sql))
        .await
        .map_err(|_| anyhow!("{sql}: no answer within 60 s"))?
        .map_err(|e| anyhow!("{sql}: {}", error_text(&e)))?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, col)| (col.name().to_string(), r.get(i).map(str::to_string)))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

/// Runs a statement.
pub async fn exec(c: &Client, sql: &str) -> Result<()> {
    query(c, sql).await.map(drop)
}

/// A column of a row (None for NULL); an error if there is no such column.
pub fn col<'a>(row: &'a Row, name: &str) -> Result<Option<&'a str>> {
    row.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_deref())
        .ok_or_else(|| anyhow!("no column {name}"))
}

/// The first column of the first row.
pub async fn one(c: &Client, sql: &str) -> Result<String> {
    let rows = query(c, sql).await?;
    rows.first()
        .and_then(|r| r.first())
        .and_then(|(_, v)| v.clone())
        .ok_or_else(|| anyhow!("{sql}: no value"))
}

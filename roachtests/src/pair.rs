//! A primary and a standby cluster set up as in the tutorial: each with its own CA, the CAs
//! exchanged, a replication user on the primary, and a fault-injecting proxy in front of each
//! primary node through which the standby connects.

use crate::launcher::{Cluster, path_str};
use crate::proxy::Proxy;
use crate::sql::{self, col, exec, query};
use anyhow::{Result, anyhow, bail};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

pub const VC: &str = "application";
pub const REPL_PASSWORD: &str = "roachtests-repl-secret";

/// One line of `SHOW VIRTUAL CLUSTER application WITH REPLICATION STATUS`.
#[derive(Debug, Clone, Default)]
pub struct ReplStatus {
    /// The source URI as shown (redacted).
    pub uri: String,
    pub retained: Option<String>,
    pub replicated: Option<String>,
    pub cutover: Option<String>,
    pub status: String,
}

#[derive(Debug)]
pub struct Pair {
    pub primary: Cluster,
    pub standby: Cluster,
    pub proxies: Vec<Proxy>,
}

impl Pair {
    /// Starts both clusters with their configuration profiles; `standby_env` is added to the standby nodes' environment.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        nodes: (usize, usize),
        profiles: (&str, &str),
        standby_env: &[(String, String)],
    ) -> Result<Pair> {
        let primary = Cluster::start(bin, dir, "primary", nodes.0, profiles.0, &[]).await?;
        let mut proxies = Vec::new();
        for n in &primary.nodes {
            proxies.push(Proxy::start(&n.rpc_addr).await?);
        }
        let map = proxies
            .iter()
            .map(|p| format!("{}={}", p.upstream, p.addr))
            .collect::<Vec<_>>()
            .join(",");
        let mut env = vec![("ROACH_TESTING_DIAL_MAP".to_string(), map)];
        env.extend_from_slice(standby_env);
        let standby = Cluster::start(bin, dir, "standby", nodes.1, profiles.1, &env).await?;
        std::fs::copy(
            primary.certs.join("ca.crt"),
            standby.certs.join("ca_primary.crt"),
        )?;
        std::fs::copy(
            standby.certs.join("ca.crt"),
            primary.certs.join("ca_standby.crt"),
        )?;
        let p = primary.connect(0, "system").await?;
        exec(
            &p,
            &format!("CREATE USER repl WITH PASSWORD '{REPL_PASSWORD}'"),
        )
        .await?;
        exec(&p, "GRANT SYSTEM REPLICATION TO repl").await?;
        exec(&p, "CREATE USER norepl WITH PASSWORD 'norepl-secret'").await?;
        Ok(Pair {
            primary,
            standby,
            proxies,
        })
    }

    /// The replication URI as `userinfo` with `rootcert` from the standby's certs directory.
    pub fn uri(&self, userinfo: &str, rootcert: &str) -> Result<String> {
        Ok(format!(
            "postgresql://{userinfo}@{}?options=-ccluster=system&sslmode=verify-full&sslrootcert={}",
            self.primary.nodes[0].rpc_addr,
            path_str(&self.standby.certs.join(rootcert))?
        ))
    }

    pub fn create_statement(source: &str, uri: &str) -> String {
        format!("CREATE VIRTUAL CLUSTER {VC} LIKE template FROM REPLICATION OF {source} ON '{uri}'")
    }

    /// The tutorial's CREATE statement on the standby.
    pub async fn create(&self) -> Result<()> {
        let s = self.standby.connect_any("system").await?;
        let uri = self.uri(&format!("repl:{REPL_PASSWORD}"), "ca_primary.crt")?;
        exec(&s, &Self::create_statement(VC, &uri)).await
    }

    pub async fn standby_sql(&self) -> Result<Client> {
        self.standby.connect_any("system").await
    }

    pub async fn primary_sql(&self) -> Result<Client> {
        self.primary.connect_any("system").await
    }
}

pub async fn repl_status(c: &Client) -> Result<ReplStatus> {
    let rows = query(
        c,
        &format!("SHOW VIRTUAL CLUSTER {VC} WITH REPLICATION STATUS"),
    )
    .await?;
    let r = rows
        .first()
        .ok_or_else(|| anyhow!("no replication status"))?;
    Ok(ReplStatus {
        uri: col(r, "source_cluster_uri")?
            .unwrap_or_default()
            .to_string(),
        retained: col(r, "retained_time")?.map(str::to_string),
        replicated: col(r, "replicated_time")?.map(str::to_string),
        cutover: col(r, "cutover_time")?.map(str::to_string),
        status: col(r, "status")?.unwrap_or_default().to_string(),
    })
}

/// Polls `f` every 100 ms until it returns `Some`, failing after `within`.
pub async fn poll<T, F, Fut>(what: &str, within: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the status is `replicating` with a replicated time later than `after`.
pub async fn wait_replicating_past(
    pair: &Pair,
    after: Option<&str>,
    within: Duration,
) -> Result<ReplStatus> {
    poll(
        &format!("replicated_time past {after:?}"),
        within,
        || async {
            let c = pair.standby_sql().await.ok()?;
            let s = repl_status(&c).await.ok()?;
            let t = s.replicated.as_deref()?;
            (s.status == "replicating" && after.is_none_or(|a| t > a)).then_some(s.clone())
        },
    )
    .await
}

/// `SHOW JOBS` rows of one type: (job_id, status, running_status, coordinator_id, error).
pub async fn jobs(c: &Client, job_type: &str) -> Result<Vec<[String; 5]>> {
    let mut out = Vec::new();
    for r in query(c, "SHOW JOBS").await? {
        if col(&r, "job_type")? == Some(job_type) {
            let f = |n: &str| -> Result<String> { Ok(col(&r, n)?.unwrap_or_default().to_string()) };
            out.push([
                f("job_id")?,
                f("status")?,
                f("running_status")?,
                f("coordinator_id")?,
                f("error")?,
            ]);
        }
    }
    Ok(out)
}

/// The (source node, standby node) pairs of the ingestion job's running status.
pub fn assignments(running_status: &str) -> Vec<(usize, usize)> {
    running_status
        .split("source n")
        .skip(1)
        .filter_map(|part| {
            let (src, rest) = part.split_once('→')?;
            let dst: String = rest
                .strip_prefix("standby n")?
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            Some((src.parse().ok()?, dst.parse().ok()?))
        })
        .collect()
}

/// The ingestion job's current partition assignments.
pub async fn current_assignments(pair: &Pair) -> Option<Vec<(usize, usize)>> {
    let c = pair.standby_sql().await.ok()?;
    let j = jobs(&c, "REPLICATION STREAM INGESTION").await.ok()?;
    Some(assignments(&j.first()?[2]))
}

/// The fingerprint of `application` as of `at` (from `start` when given).
pub async fn fingerprint(c: &Client, at: &str, start: Option<&str>) -> Result<String> {
    let with = start
        .map(|s| format!(" WITH START TIMESTAMP = '{s}'"))
        .unwrap_or_default();
    sql::one(
        c,
        &format!(
            "SELECT fingerprint FROM [SHOW EXPERIMENTAL_FINGERPRINTS FROM VIRTUAL CLUSTER {VC}{with}] AS OF SYSTEM TIME '{at}'"
        ),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_assignments() {
        assert_eq!(
            assignments(
                "replicating: 3 partitions (source n1→standby n1, source n2→standby n3, source n3→standby n2)"
            ),
            vec![(1, 1), (2, 3), (3, 2)]
        );
        assert!(assignments("initializing").is_empty());
    }
}

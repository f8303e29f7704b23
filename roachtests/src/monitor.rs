//! Reading the standby's Prometheus endpoint: the replicated time (for the lag, sampled every
//! 200 ms) and the bytes ingested.

use crate::launcher::Node;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The value of `metric{virtual_cluster="vc"}` in a Prometheus text page.
pub fn metric(page: &str, metric: &str, vc: &str) -> Option<f64> {
    let label = format!("virtual_cluster=\"{vc}\"");
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') && rest.contains(&label))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The value of the unlabelled metric `name` in a Prometheus text page.
pub fn plain_metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The `/_status/vars` pages of the nodes that answer.
async fn pages(http_addrs: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for addr in http_addrs {
        if let Ok(page) = vars(addr).await {
            out.push(page);
        }
    }
    out
}

/// The `/_status/vars` page of the node whose HTTP address is `addr`.
pub async fn vars(addr: &str) -> anyhow::Result<String> {
    match crate::launcher::http_get(addr, "/_status/vars").await? {
        (200, body) => Ok(body),
        (code, _) => Err(anyhow::anyhow!("/_status/vars at {addr} answered {code}")),
    }
}

/// The largest non-zero value of a time gauge (Unix seconds) any node reports for `vc`.
async fn latest(http_addrs: &[String], name: &str, vc: &str) -> Option<f64> {
    pages(http_addrs)
        .await
        .iter()
        .filter_map(|p| metric(p, name, vc))
        .filter(|t| *t > 0.0)
        .reduce(f64::max)
}

/// The largest replicated time (Unix seconds) any standby node reports for `vc`.
pub async fn replicated_time(http_addrs: &[String], vc: &str) -> Option<f64> {
    latest(
        http_addrs,
        "physical_replication_replicated_time_seconds",
        vc,
    )
    .await
}

/// The latest retained time (Unix seconds) any standby node reports for `vc`: the earliest
/// time one can cut over to.
pub async fn retained_time(http_addrs: &[String], vc: &str) -> Option<f64> {
    latest(http_addrs, "physical_replication_retained_time_seconds", vc).await
}

/// Bytes ingested for `vc`, summed over the standby nodes that answer.
pub async fn ingested_bytes(http_addrs: &[String], vc: &str) -> f64 {
    pages(http_addrs)
        .await
        .iter()
        .filter_map(|p| metric(p, "physical_replication_logical_bytes_total", vc))
        .sum()
}

pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub fn http_addrs(nodes: &[Node]) -> Vec<String> {
    nodes.iter().map(|n| n.http_addr.clone()).collect()
}

/// Samples the replication lag (now minus the replicated time) every 200 ms until stopped.
#[derive(Debug)]
pub struct LagSampler {
    samples: Arc<Mutex<Vec<f64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LagSampler {
    pub fn start(http_addrs: Vec<String>, vc: &str) -> LagSampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (s, vc) = (samples.clone(), vc.to_string());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                if let Some(t) = replicated_time(&http_addrs, &vc).await {
                    let lag_ms = ((now_secs() - t) * 1000.0).max(0.0);
                    s.lock().unwrap_or_else(|p| p.into_inner()).push(lag_ms);
                }
            }
        });
        LagSampler { samples, task }
    }

    /// Stops sampling: (p50, p99, number of samples) in ms.
    pub fn stop(self) -> (f64, f64, usize) {
        self.task.abort();
        let mut v = self
            .samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        v.sort_by(f64::total_cmp);
        (percentile(&v, 0.50), percentile(&v, 0.99), v.len())
    }
}

/// The `q` quantile of sorted samples (nearest rank); 0 when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_labelled_metric() {
        let page = "# HELP x\nphysical_replication_replicated_time_seconds{virtual_cluster=\"other\"} 5\nphysical_replication_replicated_time_seconds{virtual_cluster=\"application\"} 1795550920.5\n";
        assert_eq!(
            metric(
                page,
                "physical_replication_replicated_time_seconds",
                "application"
            ),
            Some(1795550920.5)
        );
        assert_eq!(
            metric(page, "physical_replication_replicated_time_seconds", "nope"),
            None
        );
    }

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    // kv/follower-snapshot reads the KV metrics, which carry no labels. Goal: the value of
    // exactly the named metric, not of a longer name that starts with it, nor of a labelled
    // series; `None` when it is absent. Method: a page with all three.
    #[test]
    fn plain_metric_reads_the_named_unlabelled_series() {
        let page = "# TYPE raft_log_bytes gauge\nraft_log_bytes_total 7\nraft_log_bytes{x=\"1\"} 9\nraft_log_bytes 42\n";
        assert_eq!(plain_metric(page, "raft_log_bytes"), Some(42.0));
        assert_eq!(plain_metric(page, "raft_log_bytes_total"), Some(7.0));
        assert_eq!(plain_metric(page, "raft_applied_index"), None);
    }
}

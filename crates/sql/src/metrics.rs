//! Prometheus metrics of the SQL layer (documented in docs/metrics.md).

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// The SQL layer's metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqlMetrics {
    /// Logins that failed authentication: a wrong password, an unknown user, a user without
    /// a password, an unknown or stopped virtual cluster (all look alike to the client).
    pub login_failures: IntCounter,
    /// Logins slowed down or refused by the failed-login throttle, by `scope`: `address`
    /// (refused: too many failures from the client's address) or `user` (delayed: too many
    /// failures for the user name).
    pub login_throttled: IntCounterVec,
    /// Catalog reads (descriptors, names, users, grants) served by the node's catalog cache.
    pub catalog_cache_hits: IntCounter,
    /// Catalog reads that went to KV (not cached, or the cache could not serve them).
    pub catalog_cache_misses: IntCounter,
    /// Catalog writes applied on this node that dropped cached values (and resets).
    pub catalog_cache_invalidations: IntCounter,
    /// Executions of prepared statements that reused their plan.
    pub plan_cache_hits: IntCounter,
    /// Executions of prepared statements that planned (first execution, or the catalog
    /// changed since the plan was made).
    pub plan_cache_misses: IntCounter,
}

impl SqlMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = SqlMetrics {
            login_failures: IntCounter::new(
                "sql_login_failures_total",
                "SQL logins that failed authentication (wrong password, unknown user or virtual cluster)",
            )?,
            login_throttled: IntCounterVec::new(
                Opts::new(
                    "sql_login_throttled_total",
                    "SQL logins refused (scope address) or delayed (scope user) after repeated failures",
                ),
                &["scope"],
            )?,
            catalog_cache_hits: IntCounter::new(
                "sql_catalog_cache_hits_total",
                "catalog reads (descriptors, names, users, grants) served by the node's catalog cache",
            )?,
            catalog_cache_misses: IntCounter::new(
                "sql_catalog_cache_misses_total",
                "catalog reads that went to KV",
            )?,
            catalog_cache_invalidations: IntCounter::new(
                "sql_catalog_cache_invalidations_total",
                "applied catalog writes that dropped cached catalog values",
            )?,
            plan_cache_hits: IntCounter::new(
                "sql_plan_cache_hits_total",
                "executions of prepared statements that reused their plan",
            )?,
            plan_cache_misses: IntCounter::new(
                "sql_plan_cache_misses_total",
                "executions of prepared statements that planned (first run or catalog changed)",
            )?,
        };
        // Both scopes are exported from the start, at 0.
        for scope in ["address", "user"] {
            m.login_throttled.with_label_values(&[scope]);
        }
        registry.register(Box::new(m.login_failures.clone()))?;
        registry.register(Box::new(m.login_throttled.clone()))?;
        for c in [
            &m.catalog_cache_hits,
            &m.catalog_cache_misses,
            &m.catalog_cache_invalidations,
            &m.plan_cache_hits,
            &m.plan_cache_misses,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        Ok(m)
    }

    /// Metrics registered nowhere (for tests and tools).
    pub fn unregistered() -> Self {
        Self::new(&Registry::new()).expect("fresh registry has no name clashes")
    }
}

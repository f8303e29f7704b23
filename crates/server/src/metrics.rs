//! The server's own metrics: connection admission on the shared port (issue 14 item 7).
//!
//! The counts live in `sql::admission::Admission` (atomics the listeners and the SQL
//! front end update); this collector copies them into Prometheus metrics at each scrape.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge, Opts, Registry};
use sql::admission::Admission;
use std::sync::Arc;

/// Exports a node's admission counts.
struct AdmissionCollector {
    admission: Arc<Admission>,
    open: IntGauge,
    refused: IntCounter,
    handshake_timeouts: IntCounter,
}

impl Collector for AdmissionCollector {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.open.desc(),
            self.refused.desc(),
            self.handshake_timeouts.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.open
            .set(i64::try_from(self.admission.open_sql_connections()).unwrap_or(i64::MAX));
        // Counters only move forward: add what the atomics gained since the last scrape.
        let catch_up = |counter: &IntCounter, now: u64| {
            counter.inc_by(now.saturating_sub(counter.get()));
        };
        catch_up(&self.refused, self.admission.refused_total());
        catch_up(
            &self.handshake_timeouts,
            self.admission.handshake_timeouts_total(),
        );
        [
            self.open.collect(),
            self.refused.collect(),
            self.handshake_timeouts.collect(),
        ]
        .concat()
    }
}

/// Registers the admission metrics of `admission` in `registry`.
pub(crate) fn register_admission(
    registry: &Registry,
    admission: Arc<Admission>,
) -> prometheus::Result<()> {
    let collector = AdmissionCollector {
        admission,
        open: IntGauge::with_opts(Opts::new(
            "sql_connections_open",
            "authenticated SQL sessions open on this node (counted against server.max_connections_per_gateway)",
        ))?,
        refused: IntCounter::with_opts(Opts::new(
            "sql_connections_refused_total",
            "SQL logins refused with 53300 because of server.max_connections_per_gateway",
        ))?,
        handshake_timeouts: IntCounter::with_opts(Opts::new(
            "server_handshake_timeouts_total",
            "shared-port connections closed because their first byte, TLS handshake or SQL startup and authentication outlived server.handshake_timeout",
        ))?,
    };
    registry.register(Box::new(collector))
}

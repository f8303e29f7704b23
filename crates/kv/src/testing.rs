//! Helpers for other crates' tests (feature `testing`): a bootstrapped single-node range.

use crate::{KvConfig, KvMetrics, NodeId, Store};
use hlc::Clock;
use std::path::Path;
use std::sync::Arc;
use storage::FjallEngine;

/// Starts node 1 over a store in `dir` and bootstraps a one-node cluster. Panics on failure
/// (test helper).
pub async fn must_start_single_node(dir: &Path) -> Arc<Store> {
    let engine = Arc::new(FjallEngine::open(dir).expect("open the test store"));
    let node = Store::start(
        NodeId(1),
        "127.0.0.1:1".into(),
        engine,
        Arc::new(Clock::system()),
        KvConfig::default(),
        None,
        KvMetrics::unregistered(),
    )
    .await
    .expect("start the test node");
    node.bootstrap().await.expect("bootstrap the test node");
    node
}

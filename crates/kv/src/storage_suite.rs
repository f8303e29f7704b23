//! openraft's own storage conformance suite, run against the log store and the state machine
//! (issue 15 acceptance).

use crate::TypeConfig;
use crate::log_store::LogStore;
use crate::metrics::KvMetrics;
use crate::snapshot::InstallHooks;
use crate::state_machine::{AppliedFeed, StateMachine};
use hlc::Clock;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageError, StorageIOError};
use std::sync::Arc;
use storage::FjallEngine;
use tempfile::TempDir;

/// Builds a fresh store in a temporary directory (the guard removes it).
struct Builder;

fn build_err(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::write(AnyError::error(e.to_string())).into()
}

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(build_err)?;
        let engine = Arc::new(FjallEngine::open(dir.path()).map_err(build_err)?);
        let metrics = KvMetrics::unregistered();
        let log = LogStore::open(engine.clone(), metrics.clone(), crate::RangeId::FIRST)
            .map_err(build_err)?;
        let sm = StateMachine::open(
            crate::RangeId::FIRST,
            engine,
            Arc::new(Clock::system()),
            Arc::new(AppliedFeed::new(16)),
            metrics,
            InstallHooks::default(),
        )
        .map_err(build_err)?;
        Ok((dir, log, sm))
    }
}

// issue 15 items 3 and 6 (acceptance): openraft's storage conformance suite. Goal: the log
// store (in its own fjall database) and the state machine (point-in-time snapshots through
// files) behave as openraft requires: log reads, appends, truncation, purge, vote, applied
// state and membership, snapshot build, transfer and install. Method: run
// `openraft::testing::Suite::test_all` with a builder that makes a fresh store per case (the
// suite runs its own tokio runtimes, so this is a plain test).
#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).expect("openraft's storage suite passes");
}

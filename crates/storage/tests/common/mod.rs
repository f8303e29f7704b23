//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use std::ops::Deref;
use storage::{Engine, FjallEngine, MemEngine, Timestamp};
use tempfile::TempDir;

/// An engine under test, keeping its directory alive as long as it is.
pub struct Store {
    engine: Box<dyn Engine>,
    _dir: Option<TempDir>,
}

impl Deref for Store {
    type Target = dyn Engine;
    fn deref(&self) -> &Self::Target {
        self.engine.as_ref()
    }
}

/// Which engine a test runs against.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Mem,
    Fjall,
}

impl Kind {
    pub fn must_open(self) -> Store {
        match self {
            Kind::Mem => Store {
                engine: Box::new(MemEngine::new()),
                _dir: None,
            },
            Kind::Fjall => {
                let dir = tempfile::tempdir().expect("temp dir");
                let engine = FjallEngine::open(dir.path()).expect("open fjall engine");
                Store {
                    engine: Box::new(engine),
                    _dir: Some(dir),
                }
            }
        }
    }
}

/// The timestamp at wall time `n`, logical 0.
pub fn ts(n: u64) -> Timestamp {
    Timestamp::new(n, 0)
}

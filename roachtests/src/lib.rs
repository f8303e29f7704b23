//! roachtests: end-to-end scenarios for physical cluster replication. Each scenario starts
//! real `roach` clusters as processes on 127.0.0.1 (each with its own CA), drives a workload,
//! injects a fault (SIGKILL and restart, SIGSTOP/SIGCONT, a TCP proxy that partitions or slows
//! the link to a source node), cuts over, and validates: equal fingerprints of the standby and
//! the primary as of the cutover time, the bank invariant, no unexpected ERROR log lines,
//! every node that should be alive is. It talks to the clusters only through SQL, HTTP,
//! signals and the command line.
//!
//! See `docs/testing.md`.

pub mod footprint;
pub mod launcher;
pub mod monitor;
pub mod pair;
pub mod proxy;
pub mod scenarios;
pub mod sql;
pub mod workload;

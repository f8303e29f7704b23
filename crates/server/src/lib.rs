//! A roach node: its store, listeners (RPC with mutual TLS, HTTP for health and metrics),
//! logging, how it joins or initialises a cluster, and the certificates it runs with (later
//! also profiles and jobs).
//!
//! Owns:
//! - [`node`]: starting a node from a [`config::NodeConfig`]: store, RPC and HTTP listeners,
//!   `init`, `--join`, restart with the store's node id.
//! - [`logging`]: tracing to stderr and `<store>/logs/roach.log`, node id on every line.
//! - [`tls`]: the certificates directory layout ([`tls::CertsDir`]) and the rustls
//!   configurations built from it (node server, node-to-node client, SQL user client), the PEM
//!   bytes for tonic, and reading a peer certificate's identity (node, or SQL user with an
//!   optional tenant scope; see `sql::certauth`).
//! - [`certs`]: creating the CA, node and client certificates (`roach cert ...` calls these).
//!
//! Does not own: command-line parsing (the `cli` crate) or SQL login decisions made from a
//! peer's certificate (`sql::pgserver`); it does decide which peers its own gRPC services admit
//! (`node.rs`: internal services only for node certificates).
//!
//! Every listener bounds a connection's handshake by `server.handshake_timeout` (first byte
//! and TLS on the shared port, HTTP request headers); SQL connections are counted against
//! `server.max_connections_per_gateway` (`sql::admission`).
//!
//! Invariants:
//! - Every rustls configuration is built with the ring provider passed explicitly, never the
//!   process default provider; aws-lc-rs is not linked.
//! - Private keys are created with mode 0600 and never written with wider permissions.
//! - A certificate never outlives the CA certificate that signs it.
//! - [`tls::TlsError`] names the file involved in every message; [`ServerError`] wraps it for
//!   everything else a node does.

pub mod certs;
pub mod config;
mod error;
mod http;
pub mod logging;
mod metrics;
pub mod node;
pub mod profiles;
pub mod tls;

pub use error::ServerError;
pub use tls::TlsError;

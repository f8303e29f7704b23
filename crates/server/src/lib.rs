//! A roach node: its TLS configuration and the certificates it runs with (later also flags,
//! profiles, listeners and jobs).
//!
//! Owns:
//! - [`tls`]: the certificates directory layout ([`tls::CertsDir`]) and the rustls
//!   configurations built from it (node server, node-to-node client, SQL user client), the PEM
//!   bytes for tonic, and reading a peer certificate's Common Name.
//! - [`certs`]: creating the CA, node and client certificates (`roach cert ...` calls these).
//!
//! Does not own: command-line parsing (the `cli` crate) or authorization decisions made from a
//! peer's Common Name (the layers serving RPCs and SQL).
//!
//! Invariants:
//! - Every rustls configuration is built with the ring provider passed explicitly, never the
//!   process default provider; aws-lc-rs is not linked.
//! - Private keys are created with mode 0600 and never written with wider permissions.
//! - A certificate never outlives the CA certificate that signs it.
//! - [`tls::TlsError`] is this crate's one error type; every message names the file involved.

pub mod certs;
pub mod tls;

pub use tls::TlsError;

//! The SQL layer: the PostgreSQL wire protocol front end, sessions, the statement parser,
//! the catalog of users, privileges and cluster settings, and the executor.
//!
//! Owns: authentication (client certificates, tenant-scoped ones included, and SCRAM-SHA-256
//! verifiers; passwords are never stored, logged or shown), what a certificate's identity is
//! (`certauth`: a node, or a SQL user), admission of SQL connections (`admission`: the per-node
//! limit and the startup/authentication deadline), routing a connection to a virtual cluster, the administrative
//! statements of the system virtual cluster (users, grants, cluster settings, virtual
//! clusters, jobs), applying a configuration profile at cluster initialisation, and the
//! application SQL of every virtual cluster: its catalog, rows and indexes as KVs in its own
//! keyspace, queries, writes, schema changes and transactions (docs/application-sql.md).
//!
//! Does not own: the listener and TLS configuration (`server`), keyspaces (`tenant`),
//! replication (`replication`).
//!
//! Invariants:
//! - Every error a client sees carries a SQLSTATE.
//! - A session reads and writes only its own virtual cluster's keyspace (through
//!   `tenant::TenantKv`), except the system virtual cluster's statements about tenants.
//! - Only users with the matching system privilege (or admins) run administrative statements.

pub mod admission;
pub mod bootstrap;
pub mod builtins;
pub mod catalog;
pub mod catalog_cache;
pub mod certauth;
pub mod datum;
pub mod ddl;
pub mod descriptors;
pub mod dml;
pub mod error;
pub mod exec;
pub mod expr;
pub mod hooks;
pub mod jobs;
pub mod keycodec;
pub mod kv_settings;
pub mod login;
pub mod metrics;
pub mod parser;
pub mod pgcatalog;
pub mod pgconn;
pub mod pgserver;
pub mod pgtypes;
pub mod plan_cache;
pub mod privileges;
pub mod query;
pub mod rows;
pub mod schema;
pub mod session;
pub mod settings;

pub use error::{SqlError, SqlResult};
pub use exec::SqlServer;
pub use metrics::SqlMetrics;
pub use pgserver::PgHandlers;

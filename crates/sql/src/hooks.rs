//! Hooks through which layers above `sql` serve statements the SQL layer parses but does not
//! own: physical replication (`replication` crate) registers itself here at node start.

use crate::error::SqlResult;
use crate::exec::{QueryResult, Session, SqlServer};
use crate::parser::Statement;
use tenant::TenantRecord;

/// What the replication layer provides to SQL.
#[async_trait::async_trait]
pub trait ReplicationHooks: Send + Sync + std::fmt::Debug {
    /// Runs a replication statement (`CREATE VIRTUAL CLUSTER ... FROM REPLICATION`, `ALTER
    /// VIRTUAL CLUSTER ... REPLICATION`, `SHOW ... WITH REPLICATION STATUS`, `SHOW
    /// EXPERIMENTAL_FINGERPRINTS`, and the producer's `crdb_internal` functions). `params` are
    /// the `$n` values as text.
    async fn execute(
        &self,
        server: &SqlServer,
        session: &Session,
        stmt: &Statement,
        params: &[Option<String>],
    ) -> SqlResult<QueryResult>;

    /// The state shown as `data_state` of a virtual cluster a replication job fills, while it
    /// does (`None` once it is done).
    async fn data_state(&self, server: &SqlServer, tenant: &TenantRecord) -> Option<String>;

    /// Stops the replication filling `tenant`, if any (before it is dropped).
    async fn before_drop(&self, server: &SqlServer, tenant: &TenantRecord) -> SqlResult<()>;
}

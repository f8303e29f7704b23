//! The executor of administrative statements and simple SELECTs, for one session.

use crate::catalog::{self, ADMIN_ROLE, ROOT, SYSTEM_PRIVILEGES, ScramVerifier, UserRecord};
use crate::error::{SqlError, SqlResult, code};
use crate::parser::{Grantable, Statement, Value};
use crate::settings::SETTINGS;
use kv::{NodeSlot, Store};
use pgwire::api::auth::sasl::scram::{ScramSecret, gen_salted_password};
use std::collections::BTreeMap;
use std::sync::Arc;
use storage::Span;
use tenant::{DataState, ServiceMode, TenantId, TenantKv, TenantRecord, registry};

/// SCRAM iterations for new verifiers (PostgreSQL's default).
pub const SCRAM_ITERATIONS: u32 = 4096;
/// Keys deleted per transaction when a dropped virtual cluster's data is cleared.
const CLEAR_BATCH: usize = 1000;

/// A column's type on the wire (values are sent as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColType {
    Int,
    Text,
    Bool,
    Numeric,
    /// A SQL type of application SQL.
    Sql(crate::descriptors::SqlType),
}

/// A result column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub typ: ColType,
}

fn col(name: &str, typ: ColType) -> Column {
    Column {
        name: name.to_string(),
        typ,
    }
}

/// What a statement returns.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    /// Rows, as text (`None` is NULL).
    Rows {
        columns: Vec<Column>,
        rows: Vec<Vec<Option<String>>>,
    },
    /// A command tag, with a row count where the protocol has one.
    Command { tag: String, rows: Option<usize> },
    /// Typed rows (application SQL).
    Typed {
        columns: Vec<Column>,
        rows: Vec<Vec<crate::datum::Datum>>,
    },
    /// An empty query.
    Empty,
}

/// A connection's session state.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub tenant: TenantRecord,
    pub database: String,
    pub vars: BTreeMap<String, String>,
    /// The connection's transaction state.
    pub conn: crate::session::ConnHandle,
}

/// The SQL layer of a node: shared by every connection.
#[derive(Debug)]
pub struct SqlServer {
    slot: NodeSlot,
    insecure: bool,
    replication: std::sync::OnceLock<Arc<dyn crate::hooks::ReplicationHooks>>,
    metrics: crate::metrics::SqlMetrics,
    /// The cluster's login nonce, read (or created) by the first login that needs it.
    auth_nonce: tokio::sync::OnceCell<Vec<u8>>,
    /// Connection admission: the SQL connection count and the handshake timeout.
    admission: Arc<crate::admission::Admission>,
    /// The node's catalog cache, and the same as the extension handed to every
    /// transaction of [`SqlServer::kv`].
    catalog_cache: crate::catalog_cache::CatalogCache,
    catalog_cache_ext: tenant::Extension,
}

/// The virtual cluster statements may only run in the system virtual cluster.
fn require_system(session: &Session, what: &str) -> SqlResult<()> {
    if session.tenant.id.is_system() {
        return Ok(());
    }
    Err(SqlError::privilege(format!(
        "{what} can only be run from the system virtual cluster (connected to {:?})",
        session.tenant.name
    ))
    .with_hint("connect with options=-ccluster=system"))
}

/// Fails with 42501 unless `me` may take over `target` (set its password or drop it):
/// whoever can do that can log in as `target` (or re-create it), so a non-admin may only do
/// it to users holding nothing it lacks. Admins and root can only be taken over by admins;
/// a non-admin's CREATEROLE covers users whose system and object privileges it holds too.
async fn require_takeover(
    txn: &mut tenant::TenantTxn,
    me: &UserRecord,
    target: &UserRecord,
    action: &str,
) -> SqlResult<()> {
    if me.admin {
        return Ok(());
    }
    if target.admin || target.name == ROOT {
        return Err(SqlError::privilege(format!(
            "user {} must be an admin to {action} the admin user {}",
            me.name, target.name
        ))
        .with_hint(format!(
            "only an admin can {action} a member of the admin role; ask an admin to do it"
        )));
    }
    let lacking = |what: String| {
        SqlError::privilege(format!(
            "user {} cannot {action} user {}: {} holds {what}, which {} does not",
            me.name, target.name, target.name, me.name
        ))
        .with_hint("an admin can do it; CREATEROLE only covers users holding no privilege you lack")
    };
    if let Some(p) = target.privileges.iter().find(|p| !me.has(p)) {
        return Err(lacking(format!("the system privilege {p}")));
    }
    if let Some((object, p)) =
        crate::privileges::first_not_held(txn, &me.name, &target.name).await?
    {
        return Err(lacking(format!("{p} on {object}")));
    }
    Ok(())
}

fn text(v: impl Into<String>) -> Option<String> {
    Some(v.into())
}

impl SqlServer {
    /// The SQL layer over the node in `slot`; `insecure` nodes accept connections without
    /// authentication.
    pub fn new(slot: NodeSlot, insecure: bool) -> Self {
        let metrics = crate::metrics::SqlMetrics::unregistered();
        let catalog_cache = crate::catalog_cache::CatalogCache::new(metrics.clone());
        SqlServer {
            slot,
            insecure,
            replication: std::sync::OnceLock::new(),
            metrics,
            auth_nonce: tokio::sync::OnceCell::new(),
            admission: Arc::default(),
            catalog_cache_ext: Arc::new(catalog_cache.clone()),
            catalog_cache,
        }
    }

    /// The same, reporting to `metrics` (registered by the node).
    pub fn with_metrics(mut self, metrics: crate::metrics::SqlMetrics) -> Self {
        self.catalog_cache = crate::catalog_cache::CatalogCache::new(metrics.clone());
        self.catalog_cache_ext = Arc::new(self.catalog_cache.clone());
        self.metrics = metrics;
        self
    }

    /// The node's catalog cache.
    pub fn catalog_cache(&self) -> &crate::catalog_cache::CatalogCache {
        &self.catalog_cache
    }

    /// Commits `txn`. When it changed the catalog (descriptors, users, grants), waits until
    /// every reachable node has applied the commit before returning, so that a statement
    /// started afterwards on any node sees the change (each node drops its cached values as
    /// it applies the write); a node that does not confirm within
    /// `sql.catalog.schema_change_wait_timeout` fails the statement with XXA00, although the
    /// change is committed.
    pub(crate) async fn commit(&self, txn: tenant::TenantTxn) -> SqlResult<hlc::Timestamp> {
        let changed_catalog = txn.wrote_cached_keys();
        let ts = txn.commit().await?;
        if changed_catalog {
            self.wait_for_nodes(ts).await?;
        }
        Ok(ts)
    }

    async fn wait_for_nodes(&self, ts: hlc::Timestamp) -> SqlResult<()> {
        const SETTING: &str = "sql.catalog.schema_change_wait_timeout";
        let text = self.setting(SETTING).await?;
        let timeout =
            crate::settings::parse_duration(&text).unwrap_or(std::time::Duration::from_secs(10));
        let node = self.node()?;
        match node.wait_applied_everywhere(ts, timeout).await {
            Ok(skipped) => {
                if !skipped.is_empty() {
                    tracing::info!(
                        node_id = node.id().0,
                        skipped = ?skipped,
                        "catalog change committed; unreachable nodes apply it when they return"
                    );
                }
                Ok(())
            }
            Err(e) => Err(SqlError::new(
                code::COMMITTED_WITH_SCHEMA_CHANGE_FAILURE,
                format!("the change committed, but not every node has applied it: {e}"),
            )
            .with_hint(format!(
                "the change is durable; statements on that node may see the previous version until it catches up. Check the node's health, or raise {SETTING}"
            ))),
        }
    }

    /// The SQL layer's metrics.
    pub fn metrics(&self) -> &crate::metrics::SqlMetrics {
        &self.metrics
    }

    /// The verifier a password login is checked against when it has no real one (see
    /// `login::dummy_verifier`).
    pub async fn dummy_verifier(&self, cluster: &str, user: &str) -> SqlResult<ScramVerifier> {
        let kv = self.kv(TenantId::SYSTEM)?;
        let nonce = self
            .auth_nonce
            .get_or_try_init(|| catalog::auth_nonce(&kv))
            .await?;
        Ok(crate::login::dummy_verifier(nonce, cluster, user))
    }

    /// The failed-login throttle's settings.
    pub async fn throttle_settings(&self) -> SqlResult<crate::login::ThrottleSettings> {
        let mut txn = self.kv(TenantId::SYSTEM)?.begin()?;
        crate::login::ThrottleSettings::read(&mut txn).await
    }

    /// The node's connection admission state (shared with its listeners).
    pub fn admission(&self) -> &Arc<crate::admission::Admission> {
        &self.admission
    }

    /// Registers the replication layer (once, at node start).
    pub fn set_replication(&self, hooks: Arc<dyn crate::hooks::ReplicationHooks>) {
        let _ = self.replication.set(hooks);
    }

    fn replication(&self) -> SqlResult<&Arc<dyn crate::hooks::ReplicationHooks>> {
        self.replication.get().ok_or_else(|| {
            SqlError::new(
                code::FEATURE_NOT_SUPPORTED,
                "physical cluster replication is not available on this node",
            )
        })
    }

    /// Whether the node runs insecure.
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// The node's replica, once it is part of an initialised cluster.
    pub fn node(&self) -> SqlResult<Arc<Store>> {
        self.slot.get().cloned().ok_or_else(|| {
            SqlError::new(
                code::CANNOT_CONNECT_NOW,
                "node is not part of an initialized cluster yet",
            )
            .with_hint("run `roach init` against one of the nodes")
        })
    }

    pub(crate) fn kv(&self, tenant: TenantId) -> SqlResult<TenantKv> {
        let node = self.node()?;
        self.catalog_cache.watch(&node);
        Ok(TenantKv::new(node, tenant).with_extension(self.catalog_cache_ext.clone()))
    }

    /// Reads a cluster setting of the system virtual cluster.
    pub async fn setting(&self, name: &str) -> SqlResult<String> {
        let mut txn = self.kv(TenantId::SYSTEM)?.begin()?;
        catalog::get_setting(&mut txn, name).await
    }

    /// The virtual cluster named `name`.
    pub async fn tenant_by_name(&self, name: &str) -> SqlResult<Option<TenantRecord>> {
        let mut txn = self.node()?.begin()?;
        Ok(registry::get_by_name(&mut txn, name).await?)
    }

    /// The user `name` of `tenant`.
    pub async fn user(&self, tenant: TenantId, name: &str) -> SqlResult<Option<UserRecord>> {
        let mut txn = self.kv(tenant)?.begin()?;
        catalog::get_user(&mut txn, name).await
    }

    /// The columns a statement returns, known before it runs (for Describe).
    pub fn result_columns(stmt: &Statement) -> Vec<Column> {
        use ColType::*;
        match stmt {
            Statement::ShowVirtualClusters | Statement::ShowVirtualCluster { .. } => vec![
                col("id", Int),
                col("name", Text),
                col("data_state", Text),
                col("service_mode", Text),
            ],
            Statement::ShowUsers => vec![
                col("username", Text),
                col("options", Text),
                col("member_of", Text),
            ],
            Statement::ShowGrants { .. } => vec![
                col("grantee", Text),
                col("privilege_type", Text),
                col("is_grantable", Bool),
            ],
            Statement::ShowClusterSetting { name }
            | Statement::ShowVirtualClusterSetting { name, .. } => vec![col(name, Text)],
            Statement::ShowClusterSettings => vec![
                col("variable", Text),
                col("value", Text),
                col("setting_type", Text),
                col("description", Text),
            ],
            Statement::ShowJobs => crate::jobs::JobRecord::COLUMNS
                .iter()
                .map(|c| {
                    col(
                        c,
                        if *c == "job_id" || *c == "coordinator_id" {
                            Int
                        } else {
                            Text
                        },
                    )
                })
                .collect(),
            Statement::ShowReplicationStatus { .. } => vec![
                col("id", Int),
                col("name", Text),
                col("source_tenant_name", Text),
                col("source_cluster_uri", Text),
                col("retained_time", Text),
                col("replicated_time", Text),
                col("replication_lag", Text),
                col("cutover_time", Text),
                col("status", Text),
            ],
            Statement::ShowFingerprints { columns, .. } => {
                // The parser admits only these names.
                let typed = |n: &str| col(n, if n == "fingerprint" { Int } else { Text });
                match columns {
                    None => crate::parser::FINGERPRINT_COLUMNS
                        .iter()
                        .map(|n| typed(n))
                        .collect(),
                    Some(names) => names.iter().map(|n| typed(n)).collect(),
                }
            }
            Statement::AlterReplication {
                action:
                    crate::parser::ReplicationAction::CompleteToLatest
                    | crate::parser::ReplicationAction::CompleteToSystemTime(_),
                ..
            } => vec![col("cutover_time", Text)],
            Statement::StartReplicationStream { .. } => vec![col("start_replication_stream", Text)],
            Statement::ReplicationStreamSpec { .. } => vec![col("replication_stream_spec", Text)],
            Statement::ReplicationStreamProgress { .. } => {
                vec![col("replication_stream_progress", Text)]
            }
            Statement::CompleteReplicationStream { .. } => {
                vec![col("complete_replication_stream", Text)]
            }
            Statement::ShowVar { name } => vec![col(name, Text)],
            _ => Vec::new(),
        }
    }

    /// Runs a prepared statement with the extended protocol's `$n` values, reusing the plan
    /// kept in `plan` while it is valid (see `plan_cache`).
    pub async fn execute_prepared(
        &self,
        session: &mut Session,
        stmt: &Statement,
        params: &[crate::datum::Datum],
        plan: &crate::plan_cache::PlanSlot,
    ) -> SqlResult<QueryResult> {
        if crate::session::is_txn_statement(stmt) {
            return self.execute_in_txn(session, stmt, params, Some(plan)).await;
        }
        self.execute(session, stmt, params).await
    }

    /// Runs one statement with the extended protocol's `$n` values.
    pub async fn execute(
        &self,
        session: &mut Session,
        stmt: &Statement,
        params: &[crate::datum::Datum],
    ) -> SqlResult<QueryResult> {
        if crate::session::is_txn_statement(stmt) {
            return self.execute_in_txn(session, stmt, params, None).await;
        }
        let params: Vec<Option<String>> = params.iter().map(|d| d.to_text()).collect();
        let value = |v: &Value| -> SqlResult<Option<String>> {
            match v {
                Value::Text(s) => Ok(Some(s.clone())),
                Value::Null | Value::Default => Ok(None),
                Value::Placeholder(n) => params.get(n - 1).cloned().ok_or_else(|| {
                    SqlError::new(
                        code::INVALID_PARAMETER_VALUE,
                        format!("no value for placeholder ${n}"),
                    )
                }),
            }
        };
        let command = |tag: &str| QueryResult::Command {
            tag: tag.to_string(),
            rows: None,
        };
        match stmt {
            Statement::Empty => Ok(QueryResult::Empty),
            Statement::CreateUser {
                name,
                if_not_exists,
                password,
            } => {
                let password = match password {
                    Some(p) => value(p)?,
                    None => None,
                };
                self.create_user(session, name, *if_not_exists, password.as_deref())
                    .await?;
                Ok(command(stmt.tag()))
            }
            Statement::AlterUserPassword { name, password } => {
                self.alter_password(session, name, value(password)?.as_deref())
                    .await?;
                Ok(command(stmt.tag()))
            }
            Statement::DropUser { names, if_exists } => {
                self.drop_users(session, names, *if_exists).await?;
                Ok(command(stmt.tag()))
            }
            Statement::ShowUsers => self.show_users(session).await,
            Statement::Grant { what, to } => {
                self.grant(session, what, to, true).await?;
                Ok(command(stmt.tag()))
            }
            Statement::Revoke { what, from } => {
                self.grant(session, what, from, false).await?;
                Ok(command(stmt.tag()))
            }
            Statement::ShowGrants { users } => self.show_grants(session, users).await,
            Statement::SetClusterSetting { name, value: v } => {
                require_system(session, "SET CLUSTER SETTING")?;
                let mut txn = self.kv(TenantId::SYSTEM)?.begin()?;
                self.session_user(&mut txn, session)
                    .await?
                    .require("MODIFYCLUSTERSETTING", "change cluster settings")?;
                catalog::put_setting(&mut txn, name, value(v)?.as_deref())?;
                self.commit(txn).await?;
                if crate::kv_settings::is_kv_setting(name) {
                    // In effect on this node when the statement returns; the other nodes
                    // follow as they apply the write (see `kv_settings::watch`).
                    crate::kv_settings::apply(&self.node()?).await?;
                }
                Ok(command(stmt.tag()))
            }
            Statement::ShowClusterSetting { name } => {
                require_system(session, "SHOW CLUSTER SETTING")?;
                let mut txn = self.kv(TenantId::SYSTEM)?.begin()?;
                self.require_view_settings(&mut txn, session).await?;
                let v = catalog::get_setting(&mut txn, name).await?;
                Ok(QueryResult::Rows {
                    columns: Self::result_columns(stmt),
                    rows: vec![vec![text(v)]],
                })
            }
            Statement::ShowVirtualClusterSetting { name, tenant } => {
                require_system(session, "SHOW CLUSTER SETTING")?;
                let mut kv_txn = self.node()?.begin()?;
                let rec = registry::must_get_by_name(&mut kv_txn, tenant).await?;
                drop(kv_txn);
                let mut txn = self.kv(TenantId::SYSTEM)?.begin()?;
                self.require_view_settings(&mut txn, session).await?;
                let v = match catalog::get_tenant_setting(&mut txn, rec.id, name).await? {
                    Some(v) => v,
                    None => catalog::get_setting(&mut txn, name).await?,
                };
                Ok(QueryResult::Rows {
                    columns: Self::result_columns(stmt),
                    rows: vec![vec![text(v)]],
                })
            }
            Statement::ShowClusterSettings => {
                require_system(session, "SHOW CLUSTER SETTINGS")?;
                let mut txn = self.kv(TenantId::SYSTEM)?.begin()?;
                self.require_view_settings(&mut txn, session).await?;
                let mut rows = Vec::new();
                for def in SETTINGS {
                    let v = catalog::get_setting(&mut txn, def.name).await?;
                    rows.push(vec![
                        text(def.name),
                        text(v),
                        text(def.typ.name()),
                        text(def.description),
                    ]);
                }
                Ok(QueryResult::Rows {
                    columns: Self::result_columns(stmt),
                    rows,
                })
            }
            Statement::ShowVirtualClusters | Statement::ShowVirtualCluster { .. } => {
                self.show_virtual_clusters(session, stmt).await
            }
            Statement::CreateVirtualCluster {
                name,
                if_not_exists,
                like,
            } => {
                self.create_virtual_cluster(session, name, *if_not_exists, like.as_deref())
                    .await?;
                Ok(command(stmt.tag()))
            }
            Statement::AlterVirtualClusterService { name, start_shared } => {
                self.alter_service(session, name, *start_shared).await?;
                Ok(command(stmt.tag()))
            }
            Statement::AlterVirtualClusterRename { name, to } => {
                self.require_manage(session).await?;
                if name == "system" {
                    return Err(SqlError::new(
                        code::INVALID_PARAMETER_VALUE,
                        "the system virtual cluster cannot be renamed",
                    ));
                }
                let mut txn = self.node()?.begin()?;
                let rec = registry::must_get_by_name(&mut txn, name).await?;
                if rec.service_mode != ServiceMode::None {
                    return Err(SqlError::new(
                        code::OBJECT_IN_USE,
                        format!("cannot rename virtual cluster {name:?} while it is serving SQL"),
                    )
                    .with_hint(format!(
                        "run ALTER VIRTUAL CLUSTER {name} STOP SERVICE first"
                    )));
                }
                registry::rename(&mut txn, name, to).await?;
                txn.commit().await?;
                Ok(command(stmt.tag()))
            }
            Statement::AlterVirtualClusterSetting {
                name,
                setting,
                value: v,
            } => {
                self.require_manage(session).await?;
                let value = value(v)?;
                let mut txn = self.node()?.begin()?;
                let rec = registry::must_get_by_name(&mut txn, name).await?;
                drop(txn);
                let mut txn = self.kv(TenantId::SYSTEM)?.begin()?;
                catalog::put_tenant_setting(&mut txn, rec.id, setting, value.as_deref())?;
                self.commit(txn).await?;
                Ok(command(stmt.tag()))
            }
            Statement::DropVirtualCluster {
                name,
                if_exists,
                immediate: _,
            } => {
                self.drop_virtual_cluster(session, name, *if_exists).await?;
                Ok(command(stmt.tag()))
            }
            Statement::ShowJobs => {
                require_system(session, "SHOW JOBS")?;
                self.current_user(session)
                    .await?
                    .require("VIEWJOB", "view jobs")?;
                Ok(QueryResult::Rows {
                    columns: Self::result_columns(stmt),
                    rows: self.jobs().await?,
                })
            }
            Statement::ShowVar { name } => {
                let v = match name.as_str() {
                    "database" => session.database.clone(),
                    "virtual_cluster_name" => session.tenant.name.clone(),
                    "server_version" => "13.0.0".to_string(),
                    "session_user" | "current_user" => session.user.clone(),
                    other => session.vars.get(other).cloned().ok_or_else(|| {
                        SqlError::new(
                            code::UNDEFINED_OBJECT,
                            format!("unrecognized configuration parameter {other:?}"),
                        )
                    })?,
                };
                Ok(QueryResult::Rows {
                    columns: Self::result_columns(stmt),
                    rows: vec![vec![text(v)]],
                })
            }
            Statement::SetVar { name, value: v } => {
                let v = value(v)?.unwrap_or_default();
                if name == "database" {
                    let mut txn = self.kv(session.tenant.id)?.begin()?;
                    if crate::descriptors::database_by_name(&mut txn, &v)
                        .await?
                        .is_none()
                    {
                        return Err(SqlError::new(
                            code::INVALID_CATALOG_NAME,
                            format!("database {v:?} does not exist"),
                        )
                        .with_hint("SHOW DATABASES lists them; CREATE DATABASE makes one"));
                    }
                    session.database = v;
                } else {
                    session.vars.insert(name.clone(), v);
                }
                Ok(command(stmt.tag()))
            }
            Statement::CreateReplicationStream { .. }
            | Statement::AlterReplication { .. }
            | Statement::ShowReplicationStatus { .. }
            | Statement::ShowFingerprints { .. }
            | Statement::StartReplicationStream { .. }
            | Statement::ReplicationStreamSpec { .. }
            | Statement::ReplicationStreamProgress { .. }
            | Statement::CompleteReplicationStream { .. } => {
                let hooks = self.replication()?.clone();
                hooks.execute(self, session, stmt, &params).await
            }
            other => Err(SqlError::internal(format!(
                "statement {} has no executor",
                other.tag()
            ))),
        }
    }

    async fn session_user(
        &self,
        txn: &mut tenant::TenantTxn,
        session: &Session,
    ) -> SqlResult<UserRecord> {
        catalog::get_user(txn, &session.user)
            .await?
            .ok_or_else(|| SqlError::privilege(format!("user {:?} no longer exists", session.user)))
    }

    async fn require_view_settings(
        &self,
        txn: &mut tenant::TenantTxn,
        session: &Session,
    ) -> SqlResult<()> {
        let user = self.session_user(txn, session).await?;
        if user.has("VIEWCLUSTERSETTING") {
            return Ok(());
        }
        user.require("MODIFYCLUSTERSETTING", "view cluster settings")
    }

    /// The session user, from the session's virtual cluster.
    pub async fn current_user(&self, session: &Session) -> SqlResult<UserRecord> {
        let mut txn = self.kv(session.tenant.id)?.begin()?;
        self.session_user(&mut txn, session).await
    }

    /// Fails unless the session is in the system virtual cluster with MANAGEVIRTUALCLUSTER.
    pub async fn require_manage(&self, session: &Session) -> SqlResult<()> {
        require_system(session, "virtual cluster statements")?;
        self.current_user(session)
            .await?
            .require("MANAGEVIRTUALCLUSTER", "manage virtual clusters")
    }

    async fn create_user(
        &self,
        session: &Session,
        name: &str,
        if_not_exists: bool,
        password: Option<&str>,
    ) -> SqlResult<()> {
        catalog::validate_user_name(name)?;
        let mut txn = self.kv(session.tenant.id)?.begin()?;
        self.session_user(&mut txn, session)
            .await?
            .require("CREATEROLE", "create users")?;
        if name == ADMIN_ROLE || catalog::get_user(&mut txn, name).await?.is_some() {
            if if_not_exists {
                return Ok(());
            }
            return Err(SqlError::new(
                code::DUPLICATE_OBJECT,
                format!("a role or user named {name} already exists"),
            ));
        }
        let user = UserRecord {
            name: name.to_string(),
            password: password.map(make_verifier).transpose()?,
            admin: false,
            privileges: Default::default(),
        };
        catalog::put_user(&mut txn, &user)?;
        self.commit(txn).await?;
        Ok(())
    }

    async fn alter_password(
        &self,
        session: &Session,
        name: &str,
        password: Option<&str>,
    ) -> SqlResult<()> {
        let mut txn = self.kv(session.tenant.id)?.begin()?;
        let me = self.session_user(&mut txn, session).await?;
        if me.name != name {
            me.require("CREATEROLE", "change another user's password")?;
        }
        let mut user = catalog::must_get_user(&mut txn, name).await?;
        if me.name != name {
            require_takeover(&mut txn, &me, &user, "change the password of").await?;
        }
        user.password = password.map(make_verifier).transpose()?;
        catalog::put_user(&mut txn, &user)?;
        self.commit(txn).await?;
        Ok(())
    }

    async fn drop_users(
        &self,
        session: &Session,
        names: &[String],
        if_exists: bool,
    ) -> SqlResult<()> {
        let mut txn = self.kv(session.tenant.id)?.begin()?;
        let me = self.session_user(&mut txn, session).await?;
        me.require("CREATEROLE", "drop users")?;
        for name in names {
            if name == ROOT || name == ADMIN_ROLE {
                return Err(SqlError::new(
                    code::INVALID_PARAMETER_VALUE,
                    format!("cannot drop {name}"),
                )
                .with_hint(format!(
                    "{name} is built in: every virtual cluster has it, and root is always an admin"
                )));
            }
            if name == &session.user {
                return Err(SqlError::new(
                    code::OBJECT_IN_USE,
                    "cannot drop the current user",
                ));
            }
            match catalog::get_user(&mut txn, name).await? {
                Some(user) => {
                    require_takeover(&mut txn, &me, &user, "drop").await?;
                    catalog::delete_user(&mut txn, name)?;
                    // Its system privileges and admin membership go with the record; its
                    // object grants are keyed by name, so a new user of the same name
                    // would inherit them: remove them too.
                    crate::privileges::remove_all(&mut txn, name).await?;
                }
                None if if_exists => {}
                None => {
                    return Err(SqlError::new(
                        code::UNDEFINED_OBJECT,
                        format!("user {name:?} does not exist"),
                    ));
                }
            }
        }
        self.commit(txn).await?;
        Ok(())
    }

    /// SHOW USERS lists every user of the virtual cluster to admins and CREATEROLE holders
    /// (those who manage users); anyone else is refused (as CockroachDB refuses reading
    /// `system.users` without a grant).
    async fn show_users(&self, session: &Session) -> SqlResult<QueryResult> {
        let mut txn = self.kv(session.tenant.id)?.begin()?;
        self.session_user(&mut txn, session)
            .await?
            .require("CREATEROLE", "list users")?;
        let users = catalog::list_users(&mut txn).await?;
        let rows = users
            .into_iter()
            .map(|u| {
                let member_of = if u.admin { "{admin}" } else { "{}" };
                vec![text(u.name), text(""), text(member_of)]
            })
            .collect();
        Ok(QueryResult::Rows {
            columns: Self::result_columns(&Statement::ShowUsers),
            rows,
        })
    }

    async fn grant(
        &self,
        session: &Session,
        what: &Grantable,
        users: &[String],
        grant: bool,
    ) -> SqlResult<()> {
        let mut txn = self.kv(session.tenant.id)?.begin()?;
        let me = self.session_user(&mut txn, session).await?;
        if !me.admin {
            return Err(SqlError::privilege(format!(
                "user {} must be an admin to grant or revoke privileges",
                me.name
            ))
            .with_hint("an admin can run GRANT admin TO <user>"));
        }
        if let Grantable::System(privs) = what {
            for p in privs {
                if !SYSTEM_PRIVILEGES.contains(&p.as_str()) {
                    return Err(SqlError::new(
                        code::INVALID_PARAMETER_VALUE,
                        format!(
                            "unknown system privilege {p}; known: {}",
                            SYSTEM_PRIVILEGES.join(", ")
                        ),
                    ));
                }
            }
        }
        if let Grantable::Role(role) = what
            && role != ADMIN_ROLE
        {
            return Err(SqlError::new(code::UNDEFINED_OBJECT, format!("role {role:?} does not exist"))
                .with_hint("the only role is admin; system privileges are granted with GRANT SYSTEM <privilege> TO <user>"));
        }
        for name in users {
            if name == ROOT {
                if !grant && matches!(what, Grantable::Role(_)) {
                    return Err(
                        SqlError::privilege("root cannot be removed from the admin role")
                            .with_hint(
                                "root is always an admin; revoke admin from other users instead",
                            ),
                    );
                }
                // Root holds every privilege already.
                continue;
            }
            let mut user = catalog::must_get_user(&mut txn, name).await?;
            match what {
                Grantable::System(privs) => {
                    for p in privs {
                        if grant {
                            user.privileges.insert(p.clone());
                        } else {
                            user.privileges.remove(p);
                        }
                    }
                }
                Grantable::Role(_) => user.admin = grant,
                Grantable::Object { .. } => {
                    return Err(SqlError::internal("object grants run in a transaction"));
                }
            }
            catalog::put_user(&mut txn, &user)?;
        }
        self.commit(txn).await?;
        Ok(())
    }

    /// SHOW GRANTS [FOR users]: admins and CREATEROLE holders see every user's grants; anyone
    /// else sees only its own (as PostgreSQL's information_schema shows only the privileges
    /// of roles the current user is), and naming another user is refused.
    async fn show_grants(&self, session: &Session, users: &[String]) -> SqlResult<QueryResult> {
        let mut txn = self.kv(session.tenant.id)?.begin()?;
        let me = self.session_user(&mut txn, session).await?;
        let sees_all = me.has("CREATEROLE");
        if !sees_all && let Some(other) = users.iter().find(|u| **u != me.name) {
            return Err(SqlError::privilege(format!(
                "user {} may only see its own grants, not those of {other}",
                me.name
            ))
            .with_hint(format!(
                "run SHOW GRANTS FOR {}, or ask an admin (or a CREATEROLE user)",
                me.name
            )));
        }
        let all = catalog::list_users(&mut txn).await?;
        let mut rows = Vec::new();
        for u in all.into_iter().filter(|u| {
            (sees_all || u.name == me.name) && (users.is_empty() || users.contains(&u.name))
        }) {
            if u.admin {
                rows.push(vec![text(&u.name), text("ALL"), text("true")]);
            }
            for p in &u.privileges {
                rows.push(vec![text(&u.name), text(p), text("false")]);
            }
        }
        Ok(QueryResult::Rows {
            columns: Self::result_columns(&Statement::ShowGrants { users: vec![] }),
            rows,
        })
    }

    async fn show_virtual_clusters(
        &self,
        session: &Session,
        stmt: &Statement,
    ) -> SqlResult<QueryResult> {
        self.require_manage(session).await?;
        let mut txn = self.node()?.begin()?;
        let records = match stmt {
            Statement::ShowVirtualCluster { name } => {
                vec![registry::must_get_by_name(&mut txn, name).await?]
            }
            _ => registry::list(&mut txn).await?,
        };
        let mut rows = Vec::with_capacity(records.len());
        for r in records {
            // A virtual cluster being filled by replication shows the replication's state.
            let state = match (r.replication_job_id, self.replication.get()) {
                (Some(_), Some(hooks)) => hooks.data_state(self, &r).await,
                _ => None,
            }
            .unwrap_or_else(|| r.data_state.to_string());
            rows.push(vec![
                text(r.id.to_string()),
                text(r.name),
                text(state),
                text(r.service_mode.to_string()),
            ]);
        }
        Ok(QueryResult::Rows {
            columns: Self::result_columns(stmt),
            rows,
        })
    }

    async fn create_virtual_cluster(
        &self,
        session: &Session,
        name: &str,
        if_not_exists: bool,
        like: Option<&str>,
    ) -> SqlResult<()> {
        self.require_manage(session).await?;
        let node = self.node()?;
        let mut txn = node.begin()?;
        if let Some(template) = like {
            registry::must_get_by_name(&mut txn, template).await?;
        }
        if registry::get_by_name(&mut txn, name).await?.is_some() {
            if if_not_exists {
                return Ok(());
            }
            return Err(tenant::TenantError::AlreadyExists(name.to_string()).into());
        }
        let record = registry::create(
            &mut txn,
            name,
            DataState::Ready,
            ServiceMode::None,
            node.now(),
        )
        .await?;
        txn.commit().await?;
        let mut txn = TenantKv::new(node, record.id).begin()?;
        crate::descriptors::ensure_default_database(&mut txn).await?;
        self.commit(txn).await?;
        Ok(())
    }

    async fn alter_service(
        &self,
        session: &Session,
        name: &str,
        start_shared: bool,
    ) -> SqlResult<()> {
        self.require_manage(session).await?;
        let mut txn = self.node()?.begin()?;
        let mut rec = registry::must_get_by_name(&mut txn, name).await?;
        if rec.id.is_system() {
            return Err(SqlError::new(
                code::INVALID_PARAMETER_VALUE,
                "the system virtual cluster always serves SQL",
            ));
        }
        if start_shared && rec.data_state != DataState::Ready {
            return Err(SqlError::new(
                code::OBJECT_IN_USE,
                format!(
                    "virtual cluster {name:?} cannot serve SQL while its data state is {}",
                    rec.data_state
                ),
            ));
        }
        rec.service_mode = if start_shared {
            ServiceMode::Shared
        } else {
            ServiceMode::None
        };
        registry::update(&mut txn, &rec).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn drop_virtual_cluster(
        &self,
        session: &Session,
        name: &str,
        if_exists: bool,
    ) -> SqlResult<()> {
        self.require_manage(session).await?;
        if self.setting("sql.drop_virtual_cluster.enabled").await? != "true" {
            return Err(SqlError::privilege(format!(
                "DROP VIRTUAL CLUSTER {name} is disabled on this cluster"
            ))
            .with_hint("SET CLUSTER SETTING sql.drop_virtual_cluster.enabled = true allows it"));
        }
        let node = self.node()?;
        let mut txn = node.begin()?;
        let Some(mut rec) = registry::get_by_name(&mut txn, name).await? else {
            if if_exists {
                return Ok(());
            }
            return Err(tenant::TenantError::NotFound(name.to_string()).into());
        };
        if rec.id.is_system() {
            return Err(SqlError::new(
                code::INVALID_PARAMETER_VALUE,
                "the system virtual cluster cannot be dropped",
            ));
        }
        if rec.service_mode != ServiceMode::None {
            return Err(SqlError::new(
                code::OBJECT_IN_USE,
                format!("cannot drop virtual cluster {name:?} while it is serving SQL"),
            )
            .with_hint(format!(
                "run ALTER VIRTUAL CLUSTER {name} STOP SERVICE first"
            )));
        }
        if rec.replication_job_id.is_some() {
            // Stop the replication filling it first, so nothing writes while it is cleared.
            drop(txn);
            self.replication()?.clone().before_drop(self, &rec).await?;
            txn = node.begin()?;
            rec = registry::must_get_by_name(&mut txn, name).await?;
        }
        rec.data_state = DataState::Dropping;
        registry::update(&mut txn, &rec).await?;
        txn.commit().await?;
        // Clear the data, then the record; a crash in between leaves it `dropping`, and a
        // repeated DROP finishes the job.
        let span = rec.id.span();
        loop {
            let mut txn = node.begin()?;
            let page = txn.scan(&span, CLEAR_BATCH).await?;
            if page.rows.is_empty() {
                break;
            }
            for row in page.rows {
                txn.delete(row.key);
            }
            txn.commit().await?;
        }
        let mut txn = node.begin()?;
        registry::remove(&mut txn, rec.id).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn jobs(&self) -> SqlResult<Vec<Vec<Option<String>>>> {
        let mut txn = self.kv(TenantId::SYSTEM)?.begin()?;
        let page = txn.scan(&Span::prefix(b"/sql/jobs/"), 100_000).await?;
        // Job records are written by the replication layer; none exist before it runs.
        page.rows
            .iter()
            .map(|kv| {
                let job: crate::jobs::JobRecord = postcard::from_bytes(&kv.value)
                    .map_err(|e| SqlError::internal(e.to_string()))?;
                Ok(job.row())
            })
            .collect()
    }
}

fn make_verifier(password: &str) -> SqlResult<ScramVerifier> {
    if password.is_empty() {
        return Err(SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            "a password cannot be empty",
        ));
    }
    let salt: [u8; 16] = rand::random();
    let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS as usize);
    match ScramSecret::verifier_from_salted_password(
        salt.to_vec(),
        salted,
        SCRAM_ITERATIONS as usize,
    ) {
        ScramSecret::Verifier {
            salt,
            iterations,
            stored_key,
            server_key,
        } => Ok(ScramVerifier {
            salt,
            iterations: iterations as u32,
            stored_key,
            server_key,
        }),
        ScramSecret::SaltedPassword { .. } => Err(SqlError::internal("expected a SCRAM verifier")),
    }
}

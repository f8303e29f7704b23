//! The PostgreSQL wire protocol front end (pgwire): start-up with routing to a virtual
//! cluster and authentication, and the simple and extended query protocols.

use crate::admission::ConnAdmission;
use crate::catalog::ScramVerifier;
use crate::certauth::{CertIdentity, CertLogin, check_not_node_user};
use crate::error::{SqlError, SqlResult, code};
use crate::exec::{ColType, Column, QueryResult, Session, SqlServer};
use crate::login::{LoginThrottle, Verdict};
use crate::parser::{self, Statement};
use async_trait::async_trait;
use futures::{Sink, stream};
use pgwire::api::auth::mechanism::AuthMechanismFactory;
use pgwire::api::auth::sasl::SaslMechanisms;
use pgwire::api::auth::sasl::scram::{ScramAuth, ScramSecret};
use pgwire::api::auth::{
    AuthDriver, AuthOutcome, AuthSource, DefaultServerParameterProvider, LoginInfo, Password,
    StartupHandler, protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{
    DataRowEncoder, DescribePortalResponse, DescribeStatementResponse, FieldFormat, FieldInfo,
    QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, METADATA_DATABASE, METADATA_USER, PgWireServerHandlers, Type,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use tenant::{DataState, ServiceMode, TenantId, TenantRecord};

/// Connection metadata keys holding the session's routing.
const META_TENANT_ID: &str = "roach.tenant_id";
const META_TENANT_NAME: &str = "roach.tenant_name";
/// The virtual cluster the client asked for, kept until authentication completes.
const META_REQUESTED_CLUSTER: &str = "roach.requested_cluster";
/// Set when a password login is checked against a dummy verifier: it can never succeed.
const META_DUMMY_VERIFIER: &str = "roach.dummy_verifier";
/// The default database of every virtual cluster.
pub const DEFAULT_DATABASE: &str = "defaultdb";

type Driver = Arc<AuthDriver<Arc<DefaultServerParameterProvider>>>;

/// Serves pgwire connections for one node.
pub struct PgHandlers {
    sql: Arc<SqlServer>,
    driver: Driver,
    parser: Arc<RoachQueryParser>,
    throttle: Arc<LoginThrottle>,
}

impl Debug for PgHandlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgHandlers").finish_non_exhaustive()
    }
}

impl PgHandlers {
    /// Handlers over `sql`.
    pub fn new(sql: Arc<SqlServer>) -> Self {
        let mut params = DefaultServerParameterProvider::default();
        params.server_version = "13.0.0".to_string();
        PgHandlers {
            sql: sql.clone(),
            driver: Arc::new(AuthDriver::new(Arc::new(params))),
            parser: Arc::new(RoachQueryParser { sql: sql.clone() }),
            throttle: Arc::new(LoginThrottle::default()),
        }
    }
}

impl PgWireServerHandlers for PgHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(QueryHandler {
            sql: self.sql.clone(),
            parser: self.parser.clone(),
        })
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::new(QueryHandler {
            sql: self.sql.clone(),
            parser: self.parser.clone(),
        })
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup(Arc::default())
    }
}

impl PgHandlers {
    /// The node's connection admission state.
    pub(crate) fn admission(&self) -> &Arc<crate::admission::Admission> {
        self.sql.admission()
    }

    /// The startup handler of one connection with admission state `conn`.
    pub(crate) fn startup(&self, conn: Arc<ConnAdmission>) -> Arc<Startup> {
        Arc::new(Startup {
            sql: self.sql.clone(),
            driver: self.driver.clone(),
            throttle: self.throttle.clone(),
            conn,
        })
    }
}

/// Where a connection goes: `options=-ccluster=NAME`, else a `cluster:NAME[/db]` database,
/// else the `server.controller.default_target_cluster` setting.
pub fn route(options: Option<&str>, database: Option<&str>) -> (Option<String>, Option<String>) {
    let from_options = options.and_then(|o| {
        o.split_whitespace().find_map(|opt| {
            opt.strip_prefix("-ccluster=")
                .or_else(|| opt.strip_prefix("--cluster="))
                .map(str::to_string)
        })
    });
    let (from_db, db) = match database {
        Some(d) => match d.strip_prefix("cluster:") {
            Some(rest) => match rest.split_once('/') {
                Some((c, db)) => (
                    Some(c.to_string()),
                    Some(db.to_string()).filter(|s| !s.is_empty()),
                ),
                None => (Some(rest.to_string()), None),
            },
            None => (None, Some(d.to_string())),
        },
        None => (None, None),
    };
    (from_options.or(from_db), db)
}

pub(crate) struct Startup {
    sql: Arc<SqlServer>,
    driver: Driver,
    throttle: Arc<LoginThrottle>,
    /// This connection's admission state (connection limit, handshake deadline).
    conn: Arc<ConnAdmission>,
}

/// The one error of every failed password login: a wrong password, an unknown user, a user
/// without a password, an unknown virtual cluster or one that does not serve SQL all look
/// the same before authentication (PostgreSQL's message).
fn password_failed(user: &str) -> SqlError {
    SqlError::new(
        code::INVALID_PASSWORD,
        format!("password authentication failed for user {user}"),
    )
    .with_hint(LOGIN_HINT)
}

/// The one error of every failed login on an insecure node (no credentials, but the user
/// must exist in a virtual cluster that exists).
fn insecure_login_failed(user: &str) -> SqlError {
    SqlError::new(
        code::INVALID_AUTHORIZATION,
        format!("authentication failed for user {user}"),
    )
    .with_hint(LOGIN_HINT)
}

const LOGIN_HINT: &str = "check the user name, the password and the virtual cluster (options=-ccluster=NAME): the user must exist in that virtual cluster and it must serve SQL";

/// The stored SCRAM verifier of one user, for one connection.
#[derive(Debug)]
struct VerifierSource {
    verifier: ScramVerifier,
}

#[async_trait]
impl AuthSource for VerifierSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        Err(PgWireError::InvalidPassword(
            login.user().unwrap_or_default().to_string(),
        ))
    }

    async fn get_scram_secret(
        &self,
        _login: &LoginInfo,
    ) -> PgWireResult<(ScramSecret, Option<()>)> {
        Ok((
            ScramSecret::Verifier {
                salt: self.verifier.salt.clone(),
                iterations: self.verifier.iterations as usize,
                stored_key: self.verifier.stored_key.clone(),
                server_key: self.verifier.server_key.clone(),
            },
            None,
        ))
    }
}

impl Startup {
    /// Whether the client's verified certificate authenticates a login as `user` to the
    /// virtual cluster `cluster` (`tenant` is its record, if it exists) (issue 14 item 2).
    /// The user `node` never logs in; a scoped certificate that does not cover the login
    /// refuses it (28000, naming its scope, and saying nothing of whether the virtual cluster
    /// exists); otherwise `false` means "use a password". Whether the user exists is said
    /// after authentication (`admit`).
    fn certificate_authenticates<C: ClientInfo>(
        client: &C,
        tenant: Option<&TenantRecord>,
        cluster: &str,
        user: &str,
    ) -> SqlResult<bool> {
        check_not_node_user(user)?;
        let Some(chain) = crate::pgconn::client_certificates(client) else {
            return Ok(false);
        };
        let Some(cert) = chain.first() else {
            return Ok(false);
        };
        let identity = CertIdentity::parse(cert.as_ref()).map_err(|reason| {
            SqlError::new(
                code::INVALID_AUTHORIZATION,
                format!("cannot read the client certificate: {reason}"),
            )
        })?;
        // Id 0 is never a virtual cluster's, so no scope covers an unknown one.
        let tenant_id = tenant.map_or(TenantId(0), |t| t.id);
        match identity.check_login(tenant_id, cluster, user)? {
            CertLogin::Authenticated => Ok(true),
            CertLogin::NotApplicable => Ok(false),
        }
    }

    /// After authentication: routes the session (`admit`), admits it under the connection
    /// limit, and completes authentication.
    async fn complete<C>(
        &self,
        client: &mut C,
        final_message: Option<Authentication>,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.admit(client)
            .await
            .map_err(SqlError::into_pgwire_fatal)?;
        let session = session_of(client).map_err(SqlError::into_pgwire_fatal)?;
        self.sql
            .admit_sql_connection(&self.conn, session.tenant.id, &session.user)
            .await
            .map_err(SqlError::into_pgwire_fatal)?;
        self.driver
            .complete_authentication(client, final_message)
            .await
    }

    /// The virtual cluster the connection asks for and its database (nothing is looked up:
    /// whether the virtual cluster exists is only said after authentication).
    async fn requested(
        &self,
        options: Option<&str>,
        database: Option<&str>,
    ) -> SqlResult<(String, String)> {
        let (cluster, db) = route(options, database);
        let cluster = match cluster {
            Some(c) => c,
            None => {
                self.sql
                    .setting("server.controller.default_target_cluster")
                    .await?
            }
        };
        Ok((cluster, db.unwrap_or_else(|| DEFAULT_DATABASE.to_string())))
    }

    /// After authentication: routes the session to the virtual cluster it asked for, which
    /// must exist and serve SQL (the precise reason may be given now), and forgets the
    /// failed logins of the address and the user.
    async fn admit<C: ClientInfo>(&self, client: &mut C) -> SqlResult<()> {
        let meta = client.metadata();
        let user = meta.get(METADATA_USER).cloned().unwrap_or_default();
        let cluster = meta
            .get(META_REQUESTED_CLUSTER)
            .cloned()
            .ok_or_else(|| SqlError::internal("connection has no requested virtual cluster"))?;
        if meta.contains_key(META_DUMMY_VERIFIER) {
            // A dummy verifier cannot be matched; refuse even if it somehow were.
            return Err(password_failed(&user));
        }
        let record = self.sql.tenant_by_name(&cluster).await?.ok_or_else(|| {
            SqlError::new(
                code::INVALID_CATALOG_NAME,
                format!("virtual cluster {cluster:?} does not exist"),
            )
            .with_hint("SHOW VIRTUAL CLUSTERS in the system virtual cluster lists them")
        })?;
        if record.service_mode != ServiceMode::Shared || record.data_state != DataState::Ready {
            return Err(SqlError::new(
                code::CONNECTION_REJECTED,
                format!(
                    "virtual cluster {:?} is not serving SQL (data_state {}, service_mode {})",
                    record.name, record.data_state, record.service_mode
                ),
            )
            .with_hint(format!(
                "an admin can run ALTER VIRTUAL CLUSTER {} START SERVICE SHARED from the system virtual cluster",
                record.name
            )));
        }
        if self.sql.user(record.id, &user).await?.is_none() {
            return Err(SqlError::new(
                code::INVALID_AUTHORIZATION,
                format!(
                    "user {user} does not exist in virtual cluster {}",
                    record.name
                ),
            )
            .with_hint("users are per virtual cluster: an admin of it can run CREATE USER"));
        }
        self.throttle
            .succeeded(client.socket_addr().ip(), &cluster, &user);
        let meta = client.metadata_mut();
        meta.insert(META_TENANT_ID.into(), record.id.0.to_string());
        meta.insert(META_TENANT_NAME.into(), record.name.clone());
        Ok(())
    }

    /// Applies the failed-login throttle to a password login: refused while the client's
    /// address is throttled, delayed while the user name is.
    async fn throttle<C: ClientInfo>(
        &self,
        client: &C,
        cluster: &str,
        user: &str,
    ) -> SqlResult<()> {
        let settings = self.sql.throttle_settings().await?;
        let addr = client.socket_addr().ip();
        match self
            .throttle
            .check(addr, cluster, user, &settings, std::time::Instant::now())
        {
            Verdict::Allow => Ok(()),
            Verdict::Delay(wait) => {
                self.sql
                    .metrics()
                    .login_throttled
                    .with_label_values(&["user"])
                    .inc();
                // The whole login must finish within server.handshake_timeout: a delay past
                // half of it would turn "delayed" into "closed", i.e. a lockout.
                let wait = wait.min(self.sql.admission().handshake_timeout() / 2);
                tracing::info!(user, cluster, %addr, wait_ms = wait.as_millis() as u64, "login delayed after failed logins for the user");
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Verdict::Refuse(wait) => {
                self.sql
                    .metrics()
                    .login_throttled
                    .with_label_values(&["address"])
                    .inc();
                tracing::warn!(user, cluster, %addr, "login refused after failed logins from the address");
                Err(SqlError::new(
                    code::INVALID_AUTHORIZATION,
                    format!(
                        "too many failed login attempts from {addr}; retry in {}s",
                        wait.as_secs().max(1)
                    ),
                )
                .with_hint(
                    "wait, or log in with a client certificate; see server.auth.failed_login_limit",
                ))
            }
        }
    }

    /// Counts a failed password login and returns its error.
    async fn password_login_failed<C: ClientInfo>(&self, client: &C) -> SqlError {
        let meta = client.metadata();
        let user = meta.get(METADATA_USER).cloned().unwrap_or_default();
        let cluster = meta
            .get(META_REQUESTED_CLUSTER)
            .cloned()
            .unwrap_or_default();
        let addr = client.socket_addr().ip();
        self.sql.metrics().login_failures.inc();
        tracing::info!(user, cluster, %addr, "password login failed");
        // Settings that cannot be read now count the failure with the defaults.
        let settings = self.sql.throttle_settings().await.unwrap_or_default();
        self.throttle
            .failed(addr, &cluster, &user, &settings, std::time::Instant::now());
        password_failed(&user)
    }

    async fn start<C>(&self, client: &mut C) -> SqlResult<Option<ScramVerifier>>
    where
        C: ClientInfo,
    {
        let user = client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .ok_or_else(|| {
                SqlError::new(
                    code::INVALID_AUTHORIZATION,
                    "no user name in the startup message",
                )
            })?;
        let options = client.metadata().get("options").cloned();
        let database = client.metadata().get(METADATA_DATABASE).cloned();
        let (cluster, db) = self
            .requested(options.as_deref(), database.as_deref())
            .await?;
        let meta = client.metadata_mut();
        meta.insert(META_REQUESTED_CLUSTER.into(), cluster.clone());
        meta.insert(METADATA_DATABASE.into(), db);

        // Users are looked up in the virtual cluster even when it does not serve SQL, so
        // that an authenticated user learns why; an unknown one has none.
        let tenant = self.sql.tenant_by_name(&cluster).await?;
        let user_record = match &tenant {
            Some(tenant) => self.sql.user(tenant.id, &user).await?,
            None => None,
        };
        if self.sql.insecure() {
            // No authentication, but only existing users.
            return match user_record {
                Some(_) => Ok(None),
                None => Err(insecure_login_failed(&user)),
            };
        }
        if Self::certificate_authenticates(client, tenant.as_ref(), &cluster, &user)? {
            return Ok(None);
        }
        if !client.is_secure() {
            return Err(SqlError::new(
                code::INVALID_AUTHORIZATION,
                "password authentication requires a TLS connection",
            )
            .with_hint(
                "connect with sslmode=require or stronger, or run the node with --insecure",
            ));
        }
        self.throttle(client, &cluster, &user).await?;
        match user_record.and_then(|u| u.password) {
            Some(v) => Ok(Some(v)),
            None => {
                // The same exchange as for a real user, against a verifier nothing matches.
                client
                    .metadata_mut()
                    .insert(META_DUMMY_VERIFIER.into(), "1".into());
                Ok(Some(self.sql.dummy_verifier(&cluster, &user).await?))
            }
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                match self
                    .start(client)
                    .await
                    .map_err(SqlError::into_pgwire_fatal)?
                {
                    None => {
                        // Authenticated by a client certificate (or an insecure node).
                        self.complete(client, None).await
                    }
                    Some(verifier) => {
                        let scram: ScramAuth =
                            ScramAuth::new(Arc::new(VerifierSource { verifier }));
                        let mechanism = SaslMechanisms::new(vec![Arc::new(scram)]).create();
                        match self.driver.begin_authentication(client, mechanism).await? {
                            AuthOutcome::InProgress => Ok(()),
                            AuthOutcome::Authenticated { final_message, .. } => {
                                self.complete(client, final_message).await
                            }
                        }
                    }
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let outcome = match self.driver.advance_authentication(client, message).await {
                    Err(PgWireError::InvalidPassword(_))
                    | Err(PgWireError::InvalidScramMessage(_)) => {
                        return Err(self.password_login_failed(client).await.into_pgwire_fatal());
                    }
                    other => other?,
                };
                match outcome {
                    AuthOutcome::InProgress => Ok(()),
                    AuthOutcome::Authenticated { final_message, .. } => {
                        self.complete(client, final_message).await
                    }
                }
            }
            _ => Ok(()),
        }
    }
}

/// A prepared statement: the statement, its parameter types (declared by the client or
/// inferred when it was prepared) and its result columns.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub statement: Statement,
    pub param_types: Vec<Type>,
    pub columns: Vec<Column>,
    /// Its plan, made at Parse and reused by Execute while valid.
    pub plan: Arc<crate::plan_cache::PlanSlot>,
}

/// Parses statements for the extended protocol.
#[derive(Debug)]
pub struct RoachQueryParser {
    sql: Arc<SqlServer>,
}

#[async_trait]
impl QueryParser for RoachQueryParser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut stmts = parser::parse(sql).map_err(SqlError::into_pgwire)?;
        let statement = match stmts.len() {
            1 => stmts.remove(0),
            _ => {
                return Err(
                    SqlError::syntax("prepared statements take exactly one statement")
                        .into_pgwire(),
                );
            }
        };
        // Types are inferred against the catalog now; a statement about a table that does
        // not exist yet still prepares (its parameters read as text) and fails when run.
        let session = session_of(client).map_err(SqlError::into_pgwire)?;
        let plan = Arc::new(crate::plan_cache::PlanSlot::default());
        let (inferred, columns) = match self.sql.describe(&session, &statement, Some(&plan)).await {
            Ok(d) => d,
            Err(_) => (Vec::new(), SqlServer::result_columns(&statement)),
        };
        let count = statement
            .parameter_count()
            .max(inferred.len())
            .max(types.len());
        let param_types = (0..count)
            .map(|i| match types.get(i).cloned().flatten() {
                Some(t) if t != Type::UNKNOWN => t,
                _ => inferred.get(i).map_or(Type::TEXT, crate::pgtypes::pg_type),
            })
            .collect();
        Ok(Some(Prepared {
            statement,
            param_types,
            columns,
            plan,
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(stmt.param_types.clone())
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(fields(&stmt.columns, format))
    }
}

fn pg_type(t: &ColType) -> Type {
    match t {
        ColType::Int => Type::INT8,
        ColType::Text => Type::TEXT,
        ColType::Bool => Type::BOOL,
        ColType::Numeric => Type::FLOAT8,
        ColType::Sql(t) => crate::pgtypes::pg_type(t),
    }
}

fn fields(columns: &[Column], format: Option<&Format>) -> Vec<FieldInfo> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let f = format.map_or(FieldFormat::Text, |f| crate::pgtypes::format_of(f, i));
            FieldInfo::new(c.name.clone(), None, None, pg_type(&c.typ), f)
        })
        .collect()
}

fn session_of<C: ClientInfo>(client: &C) -> SqlResult<Session> {
    let meta = client.metadata();
    let tenant_id = meta
        .get(META_TENANT_ID)
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| SqlError::internal("connection has no virtual cluster"))?;
    let conn = client
        .session_extensions()
        .get_or_insert_with(tokio::sync::Mutex::<crate::session::ConnState>::default);
    Ok(Session {
        user: meta.get(METADATA_USER).cloned().unwrap_or_default(),
        tenant: TenantRecord {
            id: TenantId(tenant_id),
            name: meta.get(META_TENANT_NAME).cloned().unwrap_or_default(),
            data_state: DataState::Ready,
            service_mode: ServiceMode::Shared,
            created_at: hlc::Timestamp::ZERO,
            replication_job_id: None,
        },
        database: meta
            .get(METADATA_DATABASE)
            .cloned()
            .unwrap_or_else(|| DEFAULT_DATABASE.into()),
        vars: meta
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("roach.var.")
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect::<BTreeMap<_, _>>(),
        conn,
    })
}

fn save_session<C: ClientInfo>(client: &mut C, session: &Session) {
    let meta = client.metadata_mut();
    meta.insert(METADATA_DATABASE.into(), session.database.clone());
    for (k, v) in &session.vars {
        meta.insert(format!("roach.var.{k}"), v.clone());
    }
}

/// A value already in its wire form (text or binary, as its field asks).
#[derive(Debug)]
struct Raw(Option<Vec<u8>>);

impl postgres_types::ToSql for Raw {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Some(b) => {
                out.extend_from_slice(b);
                Ok(postgres_types::IsNull::No)
            }
            None => Ok(postgres_types::IsNull::Yes),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    postgres_types::to_sql_checked!();
}

impl pgwire::types::ToSqlText for Raw {
    fn to_sql_text(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
        _format_options: &pgwire::types::format::FormatOptions,
    ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        postgres_types::ToSql::to_sql(self, ty, out)
    }
}

/// Encodes a text value by its column's type: clients may ask for binary results.
fn encode_value(enc: &mut DataRowEncoder, v: Option<String>, c: &Column) -> PgWireResult<()> {
    let bad = |e: &dyn std::fmt::Display| {
        SqlError::internal(format!("column {} holds an unexpected value: {e}", c.name))
            .into_pgwire()
    };
    match &c.typ {
        ColType::Int => {
            let v = v
                .as_deref()
                .map(str::parse::<i64>)
                .transpose()
                .map_err(|e| bad(&e))?;
            enc.encode_field(&v)
        }
        ColType::Numeric => {
            let v = v
                .as_deref()
                .map(str::parse::<f64>)
                .transpose()
                .map_err(|e| bad(&e))?;
            enc.encode_field(&v)
        }
        ColType::Bool => enc.encode_field(&v.as_deref().map(|s| matches!(s, "t" | "true"))),
        ColType::Text | ColType::Sql(_) => enc.encode_field(&v),
    }
}

fn to_response(result: QueryResult, format: Option<&Format>) -> PgWireResult<Response> {
    match result {
        QueryResult::Empty => Ok(Response::EmptyQuery),
        QueryResult::Command { tag, rows } => {
            let mut t = Tag::new(&tag);
            if tag == "INSERT" {
                // PostgreSQL's INSERT tag carries an oid (always 0) before the count.
                t = t.with_oid(0);
            }
            if let Some(n) = rows {
                t = t.with_rows(n);
            }
            Ok(match tag.as_str() {
                "BEGIN" => Response::TransactionStart(t),
                "COMMIT" | "ROLLBACK" => Response::TransactionEnd(t),
                _ => Response::Execution(t),
            })
        }
        QueryResult::Rows { columns, rows } => {
            let schema = Arc::new(fields(&columns, format));
            let mut encoded = Vec::with_capacity(rows.len());
            for row in rows {
                let mut enc = DataRowEncoder::new(schema.clone());
                for (v, c) in row.into_iter().zip(&columns) {
                    encode_value(&mut enc, v, c)?;
                }
                encoded.push(Ok(enc.take_row()));
            }
            Ok(Response::Query(QueryResponse::new(
                schema,
                stream::iter(encoded),
            )))
        }
        QueryResult::Typed { columns, rows } => {
            let schema = Arc::new(fields(&columns, format));
            let mut encoded = Vec::with_capacity(rows.len());
            let mut enc = DataRowEncoder::new(schema.clone());
            for row in rows {
                for (i, v) in row.iter().enumerate() {
                    let field = &schema[i];
                    let bytes = if field.format() == FieldFormat::Binary {
                        crate::pgtypes::encode_binary(v, field.datatype())
                            .map_err(SqlError::into_pgwire)?
                    } else {
                        v.to_text().map(String::into_bytes)
                    };
                    enc.encode_field(&Raw(bytes))?;
                }
                encoded.push(Ok(enc.take_row()));
            }
            Ok(Response::Query(QueryResponse::new(
                schema,
                stream::iter(encoded),
            )))
        }
    }
}

#[derive(Debug)]
struct QueryHandler {
    sql: Arc<SqlServer>,
    parser: Arc<RoachQueryParser>,
}

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
    {
        let mut session = session_of(client).map_err(SqlError::into_pgwire)?;
        let stmts = parser::parse(query).map_err(SqlError::into_pgwire)?;
        let mut out = Vec::with_capacity(stmts.len());
        for stmt in &stmts {
            match self.sql.execute(&mut session, stmt, &[]).await {
                Ok(r) => out.push(to_response(r, None)?),
                Err(e) => {
                    save_session(client, &session);
                    // Earlier statements' results are sent; the error ends the batch.
                    if out.is_empty() {
                        return Err(e.into_pgwire());
                    }
                    let mut info =
                        pgwire::error::ErrorInfo::new("ERROR".into(), e.code.into(), e.message);
                    info.hint = e.hint;
                    out.push(Response::Error(Box::new(info)));
                    return Ok(out);
                }
            }
        }
        save_session(client, &session);
        Ok(out)
    }
}

/// Checks a portal's format codes against its parameters and its prepared result columns
/// (08P01 on a mismatch, before anything indexes them).
fn check_portal_formats(portal: &Portal<Prepared>) -> PgWireResult<()> {
    crate::pgtypes::check_formats(
        &portal.parameter_format,
        portal.parameter_len(),
        "parameter",
    )
    .map_err(SqlError::into_pgwire)?;
    let columns = portal.statement.statement.columns.len();
    if columns > 0 {
        crate::pgtypes::check_formats(&portal.result_column_format, columns, "result")
            .map_err(SqlError::into_pgwire)?;
    }
    Ok(())
}

/// Decodes the bound parameters of a portal by their statement's types.
fn decode_params(portal: &Portal<Prepared>) -> PgWireResult<Vec<crate::datum::Datum>> {
    let types = &portal.statement.statement.param_types;
    check_portal_formats(portal)?;
    let mut out = Vec::with_capacity(portal.parameter_len());
    for i in 0..portal.parameter_len() {
        let t = types.get(i).cloned().unwrap_or(Type::TEXT);
        let value = portal.parameters.get(i).cloned().flatten();
        let v = crate::pgtypes::decode_param(
            value.as_deref(),
            &t,
            crate::pgtypes::format_of(&portal.parameter_format, i) == FieldFormat::Binary,
        )
        .map_err(SqlError::into_pgwire)?;
        out.push(v);
    }
    Ok(out)
}

#[async_trait]
impl ExtendedQueryHandler for QueryHandler {
    type Statement = Prepared;
    type QueryParser = RoachQueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = session_of(client).map_err(SqlError::into_pgwire)?;
        let params = decode_params(portal)?;
        let result = self
            .sql
            .execute_prepared(
                &mut session,
                &portal.statement.statement.statement,
                &params,
                &portal.statement.statement.plan,
            )
            .await
            .map_err(SqlError::into_pgwire)?;
        save_session(client, &session);
        // The row description sent at Describe is the prepared one; rows follow its types.
        let result = match result {
            QueryResult::Typed { rows, columns }
                if portal.statement.statement.columns.len() == columns.len() =>
            {
                QueryResult::Typed {
                    rows,
                    columns: portal.statement.statement.columns.clone(),
                }
            }
            // Re-planned after a schema change into other columns than Describe announced
            // (`SELECT *` after ADD COLUMN): PostgreSQL's answer.
            QueryResult::Typed { .. } if !portal.statement.statement.columns.is_empty() => {
                return Err(SqlError::new(
                    crate::error::code::FEATURE_NOT_SUPPORTED,
                    "cached plan must not change result type",
                )
                .with_hint("prepare the statement again")
                .into_pgwire());
            }
            other => other,
        };
        to_response(result, Some(&portal.result_column_format))
    }

    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        target: &StoredStatement<Prepared>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Ok(DescribeStatementResponse::new(
            target.statement.param_types.clone(),
            fields(&target.statement.columns, None),
        ))
    }

    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Prepared>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        check_portal_formats(portal)?;
        Ok(DescribePortalResponse::new(fields(
            &portal.statement.statement.columns,
            Some(&portal.result_column_format),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: routing follows options, then the cluster: database form, then the default.
    #[test]
    fn routing() {
        assert_eq!(
            route(Some("-ccluster=system"), Some("defaultdb")),
            (Some("system".into()), Some("defaultdb".into()))
        );
        assert_eq!(
            route(None, Some("cluster:app/mydb")),
            (Some("app".into()), Some("mydb".into()))
        );
        assert_eq!(route(None, Some("cluster:app")), (Some("app".into()), None));
        assert_eq!(
            route(Some("-c statement_timeout=5 -ccluster=x"), None),
            (Some("x".into()), None)
        );
        assert_eq!(route(None, None), (None, None));
        assert_eq!(
            route(Some("-ccluster=a"), Some("cluster:b/db")),
            (Some("a".into()), Some("db".into()))
        );
    }
}

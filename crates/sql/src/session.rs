//! Transactions of a connection and the statements that run in them: queries, DML, table
//! DDL and catalog SHOW statements of the session's virtual cluster.
//!
//! Outside `BEGIN ... COMMIT` each statement runs in its own (implicit) transaction, retried
//! automatically when it conflicts (nothing has been sent to the client yet). Inside an
//! explicit transaction a conflict returns 40001 and the client retries; any error aborts
//! the transaction until ROLLBACK.

use crate::datum::Datum;
use crate::descriptors::{self, SqlType};
use crate::error::{SqlError, SqlResult, code};
use crate::exec::{ColType, Column, QueryResult, Session, SqlServer};
use crate::expr::{ParamTypes, SessionInfo};
use crate::parser::{Grantable, Statement};
use crate::plan_cache::PlanSlot;
use crate::query::{self, Ctx};
use hlc::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tenant::TenantTxn;

/// Automatic retries of an implicit transaction that conflicted.
const IMPLICIT_RETRIES: u32 = 20;

/// An explicit transaction.
#[derive(Debug)]
pub struct OpenTxn {
    txn: TenantTxn,
    /// An error happened: only ROLLBACK (or COMMIT, which rolls back) is accepted.
    aborted: bool,
    /// `AS OF SYSTEM TIME`: reads only.
    read_only: bool,
    micros: i64,
}

/// Per-connection state that outlives a statement.
#[derive(Debug, Default)]
pub struct ConnState {
    pub txn: Option<OpenTxn>,
}

/// Parses `AS OF SYSTEM TIME` values: a decimal HLC timestamp, a TIMESTAMPTZ, or an interval
/// relative to `now` such as `'-10s'`.
pub fn parse_as_of(text: &str, now: Timestamp) -> SqlResult<Timestamp> {
    let t = text.trim();
    if let Ok(ts) = Timestamp::parse_decimal(t) {
        return Ok(ts);
    }
    if t.starts_with('-') {
        let iv = crate::datum::parse_interval(t)?;
        let micros = iv.total_micros();
        if micros >= 0 {
            return Err(SqlError::new(
                code::INVALID_PARAMETER_VALUE,
                format!("AS OF SYSTEM TIME {t:?} is in the future"),
            ));
        }
        let back_ns = (-micros as u128 * 1000).min(u64::MAX as u128) as u64;
        return Ok(Timestamp::new(now.wall_time_ns.saturating_sub(back_ns), 0));
    }
    if let Ok(ts) = Timestamp::parse_timestamptz(t) {
        return Ok(ts);
    }
    match Datum::parse(t, &SqlType::TimestampTz) {
        Ok(Datum::TimestampTz(micros)) => Ok(Timestamp::new((micros.max(0) as u64) * 1000, 0)),
        _ => Err(SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            format!(
                "AS OF SYSTEM TIME: could not parse {t:?} as a timestamp, a decimal HLC time or a negative interval"
            ),
        )),
    }
}

fn micros_of(ts: Timestamp) -> i64 {
    (ts.wall_time_ns / 1000) as i64
}

/// Whether `stmt` runs through the transaction path of this module.
pub fn is_txn_statement(stmt: &Statement) -> bool {
    matches!(
        stmt,
        Statement::Sql { .. }
            | Statement::CreateTable(_)
            | Statement::CreateDatabase { .. }
            | Statement::ShowTables
            | Statement::ShowColumns { .. }
            | Statement::ShowCreateTable { .. }
            | Statement::ShowIndexes { .. }
            | Statement::ShowDatabases
            | Statement::Begin { .. }
            | Statement::Commit
            | Statement::Rollback
            | Statement::SetTransaction { .. }
            | Statement::Grant {
                what: Grantable::Object { .. },
                ..
            }
            | Statement::Revoke {
                what: Grantable::Object { .. },
                ..
            }
    )
}

fn command(tag: &str, rows: Option<usize>) -> QueryResult {
    QueryResult::Command {
        tag: tag.to_string(),
        rows,
    }
}

fn typed(columns: Vec<Column>, rows: Vec<Vec<Datum>>) -> QueryResult {
    QueryResult::Typed { columns, rows }
}

fn sql_col(name: &str, t: SqlType) -> Column {
    Column {
        name: name.to_string(),
        typ: ColType::Sql(t),
    }
}

fn text() -> SqlType {
    SqlType::String { max_len: None }
}

impl SqlServer {
    fn session_info(&self, session: &Session, micros: i64) -> SqlResult<SessionInfo> {
        Ok(SessionInfo {
            user: session.user.clone(),
            database: session.database.clone(),
            virtual_cluster: session.tenant.name.clone(),
            txn_micros: micros,
            node_id: self.node()?.id().0,
            vars: session.vars.clone(),
            definitions: Default::default(),
        })
    }

    fn begin_txn(&self, session: &Session, as_of: Option<&str>) -> SqlResult<(TenantTxn, bool)> {
        let kv = self.kv(session.tenant.id)?;
        match as_of {
            Some(t) => {
                let ts = parse_as_of(t, self.node()?.now())?;
                let now = self.node()?.now();
                if ts > now {
                    return Err(SqlError::new(
                        code::INVALID_PARAMETER_VALUE,
                        "AS OF SYSTEM TIME cannot be in the future",
                    ));
                }
                Ok((kv.begin_at(ts)?, true))
            }
            None => Ok((kv.begin()?, false)),
        }
    }

    /// Runs a statement of the transaction path (see [`is_txn_statement`]).
    pub async fn execute_in_txn(
        &self,
        session: &mut Session,
        stmt: &Statement,
        params: &[Datum],
        plan: Option<&PlanSlot>,
    ) -> SqlResult<QueryResult> {
        let conn = session.conn.clone();
        let mut guard = conn.lock().await;
        match stmt {
            Statement::Begin { as_of } => {
                if guard.txn.is_some() {
                    // PostgreSQL warns and keeps the transaction.
                    return Ok(command("BEGIN", None));
                }
                let (txn, read_only) = self.begin_txn(session, as_of.as_deref())?;
                let micros = micros_of(txn.read_ts());
                guard.txn = Some(OpenTxn {
                    txn,
                    aborted: false,
                    read_only,
                    micros,
                });
                return Ok(command("BEGIN", None));
            }
            Statement::SetTransaction { as_of } => {
                let Some(open) = guard.txn.as_mut() else {
                    return Err(SqlError::new(
                        code::NO_ACTIVE_SQL_TRANSACTION,
                        "SET TRANSACTION can only be used in a transaction block",
                    ));
                };
                if let Some(t) = as_of {
                    let (txn, _) = self.begin_txn(session, Some(t))?;
                    open.micros = micros_of(txn.read_ts());
                    open.txn = txn;
                    open.read_only = true;
                }
                return Ok(command("SET TRANSACTION", None));
            }
            Statement::Commit => {
                let Some(open) = guard.txn.take() else {
                    return Ok(command("COMMIT", None));
                };
                if open.aborted {
                    return Ok(command("ROLLBACK", None));
                }
                self.commit(open.txn).await?;
                return Ok(command("COMMIT", None));
            }
            Statement::Rollback => {
                guard.txn = None;
                return Ok(command("ROLLBACK", None));
            }
            _ => {}
        }
        let as_of = match stmt {
            Statement::Sql { as_of, .. } => as_of.as_deref(),
            _ => None,
        };
        if let Some(open) = guard.txn.as_mut() {
            if open.aborted {
                return Err(SqlError::new(
                    code::IN_FAILED_TRANSACTION,
                    "current transaction is aborted, commands ignored until end of transaction block",
                ));
            }
            if as_of.is_some() {
                open.aborted = true;
                return Err(SqlError::new(
                    code::FEATURE_NOT_SUPPORTED,
                    "AS OF SYSTEM TIME must be given on BEGIN or SET TRANSACTION inside a transaction",
                ));
            }
            let info = self.session_info(session, open.micros)?;
            let read_only = open.read_only;
            let r = self
                .run_stmt(session, &mut open.txn, info, stmt, params, read_only, plan)
                .await;
            match r {
                Ok((result, db)) => {
                    if let Some(db) = db {
                        session.database = db;
                    }
                    return Ok(result);
                }
                Err(e) => {
                    open.aborted = true;
                    return Err(e);
                }
            }
        }
        drop(guard);
        let mut attempt = 0;
        loop {
            let (mut txn, read_only) = self.begin_txn(session, as_of)?;
            let info = self.session_info(session, micros_of(txn.read_ts()))?;
            let r = self
                .run_stmt(session, &mut txn, info, stmt, params, read_only, plan)
                .await;
            let retry = match r {
                Ok((result, db)) => match self.commit(txn).await {
                    Ok(_) => {
                        if let Some(db) = db {
                            session.database = db;
                        }
                        return Ok(result);
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if retry.code != code::SERIALIZATION_FAILURE || attempt >= IMPLICIT_RETRIES || read_only
            {
                return Err(retry);
            }
            attempt += 1;
            // Back off a little, with jitter, before the next attempt.
            let ms = rand::random::<u64>() % (2u64 << attempt.min(6));
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// The parameter types and result columns of a statement, without running it.
    /// A query's plan is made here and kept in `plan` (Parse), when it can be reused.
    pub async fn describe(
        &self,
        session: &Session,
        stmt: &Statement,
        plan: Option<&PlanSlot>,
    ) -> SqlResult<(Vec<SqlType>, Vec<Column>)> {
        if matches!(
            stmt,
            Statement::ShowTables
                | Statement::ShowColumns { .. }
                | Statement::ShowCreateTable { .. }
                | Statement::ShowIndexes { .. }
                | Statement::ShowDatabases
        ) {
            // Their columns are fixed; running them (read-only) is the simplest way to get
            // them.
            let (mut txn, _) = self.begin_txn(session, None)?;
            let info = self.session_info(session, micros_of(txn.read_ts()))?;
            let (r, _) = self
                .run_stmt(session, &mut txn, info, stmt, &[], false, None)
                .await?;
            let cols = match r {
                QueryResult::Typed { columns, .. } => columns,
                _ => Vec::new(),
            };
            return Ok((Vec::new(), cols));
        }
        if !matches!(stmt, Statement::Sql { .. }) {
            let n = stmt.parameter_count();
            return Ok((vec![text(); n], Self::result_columns(stmt)));
        }
        let (mut txn, _) = self.begin_txn(session, None)?;
        let info = self.session_info(session, micros_of(txn.read_ts()))?;
        let db = session_database(&mut txn, session).await?;
        let mut ctx = Ctx {
            txn: &mut txn,
            db,
            session: info,
            params: Vec::new(),
            param_types: ParamTypes::default(),
            describe_only: true,
            explain: Vec::new(),
        };
        let Statement::Sql {
            stmt: s, upsert, ..
        } = stmt
        else {
            return Ok((Vec::new(), Vec::new()));
        };
        if let (Some(slot), sqlparser::ast::Statement::Query(q)) = (plan, s.as_ref())
            && let Some(t) = crate::plan_cache::prepare(&mut ctx, q, slot).await?
        {
            let cols = out_columns(t.columns());
            return Ok((ctx.param_types.resolved(), cols));
        }
        let cols = sql_statement(&mut ctx, s, *upsert, None).await?.columns();
        Ok((ctx.param_types.resolved(), cols))
    }

    /// Runs one statement in `txn`; returns its result and a new current database (USE).
    #[allow(clippy::too_many_arguments)]
    async fn run_stmt(
        &self,
        session: &Session,
        txn: &mut TenantTxn,
        info: SessionInfo,
        stmt: &Statement,
        params: &[Datum],
        read_only: bool,
        plan: Option<&PlanSlot>,
    ) -> SqlResult<(QueryResult, Option<String>)> {
        let writes = !matches!(
            stmt,
            Statement::ShowTables
                | Statement::ShowColumns { .. }
                | Statement::ShowCreateTable { .. }
                | Statement::ShowIndexes { .. }
                | Statement::ShowDatabases
        ) && !matches!(stmt, Statement::Sql { stmt, .. } if matches!(stmt.as_ref(), sqlparser::ast::Statement::Query(_) | sqlparser::ast::Statement::Explain { .. }));
        if read_only && writes {
            return Err(SqlError::new(
                code::READ_ONLY_SQL_TRANSACTION,
                "cannot write in an AS OF SYSTEM TIME (read-only) transaction",
            ));
        }
        if let Statement::ShowDatabases = stmt {
            let rows = descriptors::list_databases(txn)
                .await?
                .into_iter()
                .map(|d| vec![Datum::String(d.name)])
                .collect();
            return Ok((typed(vec![sql_col("database_name", text())], rows), None));
        }
        if let Statement::CreateDatabase {
            name,
            if_not_exists,
        } = stmt
        {
            crate::privileges::require_admin(txn, &session.user, "create databases").await?;
            descriptors::create_database(txn, name, *if_not_exists).await?;
            return Ok((command("CREATE DATABASE", None), None));
        }
        let db = session_database(txn, session).await?;
        let mut ctx = Ctx {
            txn,
            db,
            session: info,
            params: params.to_vec(),
            param_types: ParamTypes::default(),
            describe_only: false,
            explain: Vec::new(),
        };
        let result = match stmt {
            Statement::Sql { stmt, upsert, .. } => {
                return Ok((
                    sql_statement(&mut ctx, stmt, *upsert, plan)
                        .await?
                        .into_result(),
                    None,
                ));
            }
            Statement::CreateTable(ct) => {
                crate::privileges::require_admin(ctx.txn, &session.user, "create tables").await?;
                // `db.table` and `db.public.table` create the table in another database.
                let parts: Vec<String> = ct
                    .name
                    .0
                    .iter()
                    .map(|p| p.to_string().trim_matches('"').to_lowercase())
                    .collect();
                let db_name = match parts.as_slice() {
                    [d, _, _] => Some(d.clone()),
                    [d, _] if d != "public" => Some(d.clone()),
                    _ => None,
                };
                let db_id = match db_name {
                    Some(d) if d != ctx.db.name => {
                        descriptors::database_by_name(ctx.txn, &d)
                            .await?
                            .ok_or_else(|| {
                                SqlError::new(
                                    code::INVALID_CATALOG_NAME,
                                    format!("database \"{d}\" does not exist"),
                                )
                            })?
                            .id
                    }
                    _ => ctx.db.id,
                };
                let desc = crate::ddl::table_from_ast(db_id, ct)?;
                let exists = descriptors::table_by_name(ctx.txn, db_id, &desc.name)
                    .await?
                    .is_some();
                if !(ct.if_not_exists && exists) {
                    descriptors::create_table(ctx.txn, desc).await?;
                }
                command("CREATE TABLE", None)
            }
            Statement::ShowTables => {
                let rows = descriptors::list_tables(ctx.txn, ctx.db.id)
                    .await?
                    .into_iter()
                    .map(|t| {
                        vec![
                            Datum::String("public".into()),
                            Datum::String(t.name),
                            Datum::String("table".into()),
                        ]
                    })
                    .collect();
                typed(
                    vec![
                        sql_col("schema_name", text()),
                        sql_col("table_name", text()),
                        sql_col("type", text()),
                    ],
                    rows,
                )
            }
            Statement::ShowColumns { table }
            | Statement::ShowCreateTable { table }
            | Statement::ShowIndexes { table } => {
                let t = descriptors::table_by_name(ctx.txn, ctx.db.id, table)
                    .await?
                    .ok_or_else(|| {
                        SqlError::new(
                            code::UNDEFINED_TABLE,
                            format!("relation \"{table}\" does not exist"),
                        )
                    })?;
                show_table(stmt, &t)
            }
            Statement::Grant { what, to } | Statement::Revoke { what, from: to } => {
                let Grantable::Object {
                    privileges,
                    database,
                    names,
                } = what
                else {
                    return Err(SqlError::internal("not an object grant"));
                };
                crate::privileges::require_admin(ctx.txn, &session.user, "grant privileges")
                    .await?;
                let mut objects = Vec::new();
                for n in names {
                    objects.push(if *database {
                        crate::privileges::Object::Database(
                            descriptors::database_by_name(ctx.txn, n)
                                .await?
                                .ok_or_else(|| {
                                    SqlError::new(
                                        code::INVALID_CATALOG_NAME,
                                        format!("database \"{n}\" does not exist"),
                                    )
                                })?
                                .id,
                        )
                    } else {
                        crate::privileges::Object::Table(
                            descriptors::table_by_name(ctx.txn, ctx.db.id, n)
                                .await?
                                .ok_or_else(|| {
                                    SqlError::new(
                                        code::UNDEFINED_TABLE,
                                        format!("relation \"{n}\" does not exist"),
                                    )
                                })?
                                .id,
                        )
                    });
                }
                let grant = matches!(stmt, Statement::Grant { .. });
                for user in to {
                    crate::catalog::must_get_user(ctx.txn, user).await?;
                    for o in &objects {
                        crate::privileges::change(ctx.txn, user, *o, privileges, grant).await?;
                    }
                }
                command(if grant { "GRANT" } else { "REVOKE" }, None)
            }
            other => {
                return Err(SqlError::internal(format!(
                    "statement {} does not run in a transaction",
                    other.tag()
                )));
            }
        };
        Ok((result, None))
    }
}

/// The session's database; one that is gone (or was never created) still lets queries that
/// read no table run, and names of tables in it resolve to nothing.
async fn session_database(
    txn: &mut TenantTxn,
    session: &Session,
) -> SqlResult<descriptors::DatabaseDesc> {
    Ok(descriptors::database_by_name(txn, &session.database)
        .await?
        .unwrap_or_else(|| descriptors::DatabaseDesc {
            id: u64::MAX,
            name: session.database.clone(),
        }))
}

fn show_table(stmt: &Statement, t: &descriptors::TableDesc) -> QueryResult {
    let s = |v: &str| Datum::String(v.to_string());
    match stmt {
        Statement::ShowColumns { .. } => typed(
            vec![
                sql_col("column_name", text()),
                sql_col("data_type", text()),
                sql_col("is_nullable", SqlType::Bool),
                sql_col("column_default", text()),
                sql_col("is_hidden", SqlType::Bool),
            ],
            t.columns
                .iter()
                .map(|c| {
                    vec![
                        s(&c.name),
                        s(&crate::ddl::type_name(&c.typ)),
                        Datum::Bool(c.nullable),
                        c.default_expr.clone().map_or(Datum::Null, Datum::String),
                        Datum::Bool(c.hidden),
                    ]
                })
                .collect(),
        ),
        Statement::ShowCreateTable { .. } => typed(
            vec![
                sql_col("table_name", text()),
                sql_col("create_statement", text()),
            ],
            vec![vec![s(&t.name), s(&crate::ddl::show_create(t))]],
        ),
        _ => {
            let mut rows = Vec::new();
            for idx in std::iter::once(&t.primary_index).chain(&t.secondary_indexes) {
                for (seq, (id, dir)) in idx.columns.iter().enumerate() {
                    let col = t
                        .columns
                        .iter()
                        .find(|c| c.id == *id)
                        .map_or("?", |c| c.name.as_str());
                    rows.push(vec![
                        s(&t.name),
                        s(&idx.name),
                        Datum::Bool(!idx.unique),
                        Datum::Int(seq as i64 + 1),
                        s(col),
                        s(if *dir == descriptors::IndexDirection::Desc {
                            "DESC"
                        } else {
                            "ASC"
                        }),
                    ]);
                }
            }
            typed(
                vec![
                    sql_col("table_name", text()),
                    sql_col("index_name", text()),
                    sql_col("non_unique", SqlType::Bool),
                    sql_col("seq_in_index", SqlType::Int),
                    sql_col("column_name", text()),
                    sql_col("direction", text()),
                ],
                rows,
            )
        }
    }
}

/// The outcome of a sqlparser statement.
enum SqlOutcome {
    Rows(Vec<query::OutCol>, Vec<Vec<Datum>>),
    Count(&'static str, usize),
    Command(&'static str),
}

/// Result columns of a query's output columns (an untyped one is text).
fn out_columns(cols: &[query::OutCol]) -> Vec<Column> {
    cols.iter()
        .map(|c| Column {
            name: c.name.clone(),
            typ: ColType::Sql(c.typ.clone().unwrap_or(SqlType::String { max_len: None })),
        })
        .collect()
}

impl SqlOutcome {
    fn columns(&self) -> Vec<Column> {
        match self {
            SqlOutcome::Rows(cols, _) => out_columns(cols),
            _ => Vec::new(),
        }
    }

    fn into_result(self) -> QueryResult {
        match self {
            SqlOutcome::Rows(..) => {
                let columns = self.columns();
                let SqlOutcome::Rows(_, rows) = self else {
                    return QueryResult::Empty;
                };
                typed(columns, rows)
            }
            SqlOutcome::Count(tag, n) => command(tag, Some(n)),
            SqlOutcome::Command(tag) => command(tag, None),
        }
    }
}

fn dml_outcome(tag: &'static str, r: crate::dml::DmlResult) -> SqlOutcome {
    match r.returning {
        Some((cols, rows)) => SqlOutcome::Rows(cols, rows),
        None => SqlOutcome::Count(tag, r.count),
    }
}

/// Plans and (unless describing) runs a sqlparser statement.
async fn sql_statement(
    ctx: &mut Ctx<'_>,
    stmt: &sqlparser::ast::Statement,
    upsert: bool,
    plan: Option<&PlanSlot>,
) -> SqlResult<SqlOutcome> {
    use sqlparser::ast::Statement as S;
    Ok(match stmt {
        S::Query(q) => {
            // Reading a table needs SELECT on it (checked as each table is resolved, and
            // again when a prepared statement's kept plan is loaded).
            let plan = match plan {
                Some(slot) if !ctx.describe_only => crate::plan_cache::plan(ctx, q, slot).await?,
                _ => query::plan_query(ctx, q, None).await?,
            };
            let rows = if ctx.describe_only {
                Vec::new()
            } else {
                plan.run(&ctx.params, &ctx.session, &[])?
            };
            SqlOutcome::Rows(plan.columns, rows)
        }
        S::Insert(ins) => dml_outcome("INSERT", crate::dml::insert(ctx, ins, upsert).await?),
        S::Update(u) => dml_outcome("UPDATE", crate::dml::update(ctx, u).await?),
        S::Delete(d) => dml_outcome("DELETE", crate::dml::delete(ctx, d).await?),
        S::CreateIndex(ci) => {
            if !ctx.describe_only {
                crate::schema::create_index(ctx, ci).await?;
            }
            SqlOutcome::Command("CREATE INDEX")
        }
        S::Drop {
            object_type,
            if_exists,
            names,
            cascade,
            ..
        } => {
            if !ctx.describe_only {
                crate::schema::drop(ctx, object_type, names, *if_exists, *cascade).await?;
            }
            SqlOutcome::Command(match object_type {
                sqlparser::ast::ObjectType::Index => "DROP INDEX",
                sqlparser::ast::ObjectType::Database => "DROP DATABASE",
                _ => "DROP TABLE",
            })
        }
        S::AlterTable(at) => {
            if !ctx.describe_only {
                crate::schema::alter_table(ctx, at).await?;
            }
            SqlOutcome::Command("ALTER TABLE")
        }
        S::Truncate(t) => {
            if !ctx.describe_only {
                let names: Vec<_> = t.table_names.iter().map(|n| n.name.clone()).collect();
                crate::schema::truncate(ctx, &names).await?;
            }
            SqlOutcome::Command("TRUNCATE")
        }
        S::Explain { statement, .. } => {
            let was = ctx.describe_only;
            ctx.describe_only = true;
            ctx.explain.clear();
            let inner = Box::pin(sql_statement(ctx, statement, upsert, None)).await;
            ctx.describe_only = was;
            inner?;
            let mut lines = vec![format!(
                "statement: {}",
                statement.to_string().chars().take(200).collect::<String>()
            )];
            lines.extend(ctx.explain.iter().map(|l| format!("read {l}")));
            SqlOutcome::Rows(
                vec![query::OutCol {
                    name: "info".into(),
                    typ: Some(SqlType::String { max_len: None }),
                }],
                lines.into_iter().map(|l| vec![Datum::String(l)]).collect(),
            )
        }
        other => {
            return Err(SqlError::new(
                code::FEATURE_NOT_SUPPORTED,
                format!(
                    "unsupported statement: {}",
                    other.to_string().chars().take(80).collect::<String>()
                ),
            ));
        }
    })
}

/// A shared handle to a connection's state.
pub type ConnHandle = Arc<tokio::sync::Mutex<ConnState>>;

//! Queries: planning a `SELECT` (name resolution, typing, choosing an index for each table
//! from the WHERE clause, lookup joins) and running it.
//!
//! A query runs in two phases. The asynchronous phase reads the KV: each table of the FROM
//! clause is read through the best index for the predicates that concern it alone (point
//! lookups, prefix or range scans; a full scan only when nothing constrains it), and the
//! inner side of an equality join is read by lookups of the outer side's values when they
//! are few. The synchronous phase joins, filters, groups, sorts and projects those rows;
//! correlated subqueries run in it once per outer row over rows read ahead of time.

use crate::datum::Datum;
use crate::descriptors::{self, DatabaseDesc, IndexDesc, SqlType, TableDesc};
use crate::error::{SqlError, SqlResult, code};
use crate::expr::ParamTypes;
use crate::expr::{
    self, BinOp, Compiler, EvalCtx, Expr, Grouping, Scope, ScopeCol, SessionInfo, SubqueryEval,
    SubqueryPlanner, function_name, ident, is_aggregate,
};
use crate::keycodec::{self, Direction};
use crate::rows::{self, Row};
use futures::future::BoxFuture;
use sqlparser::ast::{self, Expr as A};
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};
use storage::Span;
use tenant::TenantTxn;

/// KV rows read per scan request.
const SCAN_PAGE: usize = 10_000;
/// Outer values up to which a join reads its inner table by lookups.
const LOOKUP_JOIN_MAX: usize = 10_000;
/// Point spans up to which an IN list is read by lookups.
const MAX_SPANS: usize = 10_000;

/// What planning and running a statement needs.
pub struct Ctx<'t> {
    pub txn: &'t mut TenantTxn,
    pub db: DatabaseDesc,
    pub session: SessionInfo,
    pub params: Vec<Datum>,
    pub param_types: ParamTypes,
    /// Plan only (for Describe): read no rows.
    pub describe_only: bool,
    /// How each table was read, for EXPLAIN.
    pub explain: Vec<String>,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("db", &self.db.name)
            .finish_non_exhaustive()
    }
}

impl Ctx<'_> {
    pub fn eval_ctx<'a>(&'a self, outer: &'a [Datum]) -> EvalCtx<'a> {
        EvalCtx {
            params: &self.params,
            outer,
            session: &self.session,
        }
    }

    /// A compiler over `scope`.
    pub fn compiler<'a>(
        &'a self,
        scope: &'a Scope,
        outer: Option<&'a Scope>,
        subqueries: &'a (dyn SubqueryPlanner + Sync),
    ) -> Compiler<'a> {
        Compiler {
            scope,
            outer,
            params: &self.param_types,
            subqueries,
            grouping: None,
        }
    }
}

/// An output column.
#[derive(Debug, Clone, PartialEq)]
pub struct OutCol {
    pub name: String,
    pub typ: Option<SqlType>,
}

/// A planned query, ready to run.
#[derive(Debug)]
pub struct Planned {
    pub columns: Vec<OutCol>,
    body: Body,
    order: Vec<SortKey>,
    limit: Option<Expr>,
    offset: Option<Expr>,
}

#[derive(Debug)]
enum Body {
    Select(Box<SelectPlan>),
    Values(Vec<Vec<Expr>>),
    SetOp {
        left: Box<Planned>,
        right: Box<Planned>,
        op: ast::SetOperator,
        all: bool,
    },
}

#[derive(Debug, Clone)]
struct SortKey {
    expr: Expr,
    /// Evaluated over the output row (else over the row before projection).
    on_output: bool,
    desc: bool,
    nulls_first: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinKind {
    Inner,
    Left,
}

#[derive(Debug, Clone)]
struct JoinStep {
    kind: JoinKind,
    /// Equality keys: over the joined row so far, and over the right source's own row.
    left_keys: Vec<Expr>,
    right_keys: Vec<Expr>,
    /// The join condition over the combined row.
    on: Option<Expr>,
    /// WHERE conjuncts that can be checked once this source is joined.
    after: Option<Expr>,
}

#[derive(Debug, Clone)]
struct AggSpec {
    func: String,
    arg: Option<Expr>,
    extra: Option<Expr>,
    distinct: bool,
}

#[derive(Debug, Clone)]
struct GroupPlan {
    keys: Vec<Expr>,
    aggs: Vec<AggSpec>,
}

#[derive(Debug)]
struct SelectPlan {
    sources: Vec<Vec<Row>>,
    steps: Vec<JoinStep>,
    /// WHERE conjuncts checked on the fully joined row: those reading no column, the
    /// enclosing query's row, or a subquery.
    filter: Option<Expr>,
    grouping: Option<GroupPlan>,
    having: Option<Expr>,
    projection: Vec<Expr>,
    distinct: bool,
    /// Columns per source (for NULL padding of outer joins).
    widths: Vec<usize>,
    /// Sources computed when the query runs (`unnest`), by position.
    deferred: Vec<Option<Expr>>,
}

/// A table-like thing in FROM.
#[derive(Debug)]
enum SourceKind {
    Table(TableDesc),
    /// `unnest(array)`: one row per element, computed when the query runs (the array may
    /// come from the enclosing query's row).
    Unnest(Expr),
    Virtual(String),
    Derived(Box<Planned>),
    Unit,
}

#[derive(Debug)]
struct Source {
    kind: SourceKind,
    alias: String,
    scope_cols: Vec<ScopeCol>,
}

fn bad_table(name: &str) -> SqlError {
    SqlError::new(
        code::UNDEFINED_TABLE,
        format!("relation \"{name}\" does not exist"),
    )
}

/// Splits `[db.][schema.]name` and resolves the table, or a virtual catalog table.
pub async fn resolve_table(ctx: &mut Ctx<'_>, name: &ast::ObjectName) -> SqlResult<TableRef> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ast::ObjectNamePart::Identifier(i) => ident(i),
            other => other.to_string(),
        })
        .collect();
    let full = parts.join(".");
    let (db, schema, table) = match parts.as_slice() {
        [t] => (None, None, t.clone()),
        [s, t] => (None, Some(s.clone()), t.clone()),
        [d, s, t] => (Some(d.clone()), Some(s.clone()), t.clone()),
        _ => return Err(SqlError::syntax(format!("invalid table name {full}"))),
    };
    let virtual_schema = matches!(
        schema.as_deref(),
        Some("pg_catalog" | "information_schema" | "crdb_internal")
    );
    if virtual_schema || (schema.is_none() && crate::pgcatalog::is_virtual(&table)) {
        let qualified = match &schema {
            Some(s) if virtual_schema => format!("{s}.{table}"),
            _ => format!("pg_catalog.{table}"),
        };
        if crate::pgcatalog::columns(&qualified).is_some() {
            return Ok(TableRef::Virtual(qualified));
        }
        return Err(bad_table(&full));
    }
    // `db.table` (two parts) may name a database instead of a schema.
    let (db_name, schema) = match (db, schema) {
        (Some(d), s) => (Some(d), s),
        (None, Some(s)) if s != "public" => (Some(s), None),
        (None, s) => (None, s),
    };
    if let Some(s) = &schema
        && s != "public"
    {
        return Err(bad_table(&full));
    }
    let db_id = match db_name {
        Some(d) if d != ctx.db.name => {
            descriptors::database_by_name(ctx.txn, &d)
                .await?
                .ok_or_else(|| bad_table(&full))?
                .id
        }
        _ => ctx.db.id,
    };
    descriptors::table_by_name(ctx.txn, db_id, &table)
        .await?
        .map(TableRef::Table)
        .ok_or_else(|| bad_table(&full))
}

/// A resolved table name.
#[derive(Debug)]
pub enum TableRef {
    Table(TableDesc),
    Virtual(String),
}

/// The scope columns of a table.
pub fn table_scope_cols(t: &TableDesc, alias: &str) -> Vec<ScopeCol> {
    t.columns
        .iter()
        .map(|c| ScopeCol {
            table: Some(alias.to_string()),
            name: c.name.clone(),
            typ: Some(c.typ.clone()),
            hidden: c.hidden,
        })
        .collect()
}

/// Planned subqueries, keyed by the address of their AST node.
#[derive(Default)]
struct Subqueries {
    map: HashMap<usize, Arc<dyn SubqueryEval>>,
}

impl SubqueryPlanner for Subqueries {
    fn get(&self, q: &ast::Query) -> Option<Arc<dyn SubqueryEval>> {
        self.map.get(&(q as *const ast::Query as usize)).cloned()
    }
}

/// A planned subquery: run once if it does not read the outer row, else per outer row.
struct SubqueryRunner {
    plan: Planned,
    correlated: bool,
    cache: OnceLock<Vec<Row>>,
}

impl std::fmt::Debug for SubqueryRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubqueryRunner")
            .field("correlated", &self.correlated)
            .finish()
    }
}

impl SubqueryEval for SubqueryRunner {
    fn rows(&self, ctx: &EvalCtx<'_>, outer: &[Datum]) -> SqlResult<Vec<Row>> {
        if self.correlated {
            return self.plan.run(ctx.params, ctx.session, outer);
        }
        if let Some(rows) = self.cache.get() {
            return Ok(rows.clone());
        }
        let rows = self.plan.run(ctx.params, ctx.session, &[])?;
        let _ = self.cache.set(rows.clone());
        Ok(rows)
    }
}

/// Collects the subqueries of an expression (not descending into them).
fn collect_subqueries<'a>(e: &'a A, out: &mut Vec<&'a ast::Query>) {
    match e {
        A::Subquery(q) | A::Exists { subquery: q, .. } => out.push(q),
        A::In { expr, target, .. } => {
            collect_subqueries(expr, out);
            match target {
                ast::InTarget::Subquery(q) => out.push(q),
                ast::InTarget::List(l) => l.iter().for_each(|x| collect_subqueries(x, out)),
                _ => {}
            }
        }
        A::BinaryOp { left, right, .. } => {
            collect_subqueries(left, out);
            collect_subqueries(right, out);
        }
        A::Array(arr) => arr.elem.iter().for_each(|x| collect_subqueries(x, out)),
        A::AnyOp { left, right, .. } | A::AllOp { left, right, .. } => {
            collect_subqueries(left, out);
            collect_subqueries(right, out);
        }
        A::UnaryOp { expr, .. }
        | A::Nested(expr)
        | A::IsNull(expr)
        | A::IsNotNull(expr)
        | A::IsTrue(expr)
        | A::IsNotTrue(expr)
        | A::IsFalse(expr)
        | A::IsNotFalse(expr)
        | A::Cast { expr, .. }
        | A::Collate { expr, .. } => collect_subqueries(expr, out),
        A::Between {
            expr, low, high, ..
        } => {
            collect_subqueries(expr, out);
            collect_subqueries(low, out);
            collect_subqueries(high, out);
        }
        A::Like { expr, pattern, .. } | A::ILike { expr, pattern, .. } => {
            collect_subqueries(expr, out);
            collect_subqueries(pattern, out);
        }
        A::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            if let Some(o) = operand {
                collect_subqueries(o, out);
            }
            for w in conditions {
                collect_subqueries(&w.condition, out);
                collect_subqueries(&w.result, out);
            }
            if let Some(e) = else_result {
                collect_subqueries(e, out);
            }
        }
        A::Function(f) => {
            if let ast::FunctionArguments::List(list) = &f.args {
                for a in &list.args {
                    if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) = a {
                        collect_subqueries(x, out);
                    }
                }
            }
            if let ast::FunctionArguments::Subquery(q) = &f.args {
                out.push(q);
            }
        }
        _ => {}
    }
}

/// Plans every subquery in `exprs` with `scope` as their outer scope.
async fn plan_subqueries(ctx: &mut Ctx<'_>, exprs: &[&A], scope: &Scope) -> SqlResult<Subqueries> {
    let mut found = Vec::new();
    for e in exprs {
        collect_subqueries(e, &mut found);
    }
    let mut subs = Subqueries::default();
    for q in found {
        let plan = plan_query(ctx, q, Some(scope)).await?;
        let correlated = plan.reads_outer();
        subs.map.insert(
            q as *const ast::Query as usize,
            Arc::new(SubqueryRunner {
                plan,
                correlated,
                cache: OnceLock::new(),
            }),
        );
    }
    Ok(subs)
}

/// Plans a query (`outer`: the enclosing query's scope, for correlated subqueries).
pub fn plan_query<'a, 't>(
    ctx: &'a mut Ctx<'t>,
    q: &'a ast::Query,
    outer: Option<&'a Scope>,
) -> BoxFuture<'a, SqlResult<Planned>>
where
    't: 'a,
{
    Box::pin(async move {
        if q.with.is_some() {
            return Err(SqlError::new(
                code::FEATURE_NOT_SUPPORTED,
                "WITH (common table expressions) is not supported",
            ));
        }
        let (order_exprs, limit, offset) = query_parts(q)?;
        let mut planned = match q.body.as_ref() {
            ast::SetExpr::Select(s) => {
                plan_select(ctx, s, outer, &order_exprs, limit.as_ref(), offset.as_ref()).await?
            }
            other => {
                let mut p = plan_set_expr(ctx, other, outer).await?;
                p.order = output_sort_keys(ctx, &p.columns, &order_exprs)?;
                p
            }
        };
        (planned.limit, planned.offset) = compile_limits(ctx, outer, &limit, &offset)?;
        Ok(planned)
    })
}

type QueryParts<'q> = (Vec<&'q ast::OrderByExpr>, Option<A>, Option<A>);

/// A query's ORDER BY items, LIMIT and OFFSET.
fn query_parts(q: &ast::Query) -> SqlResult<QueryParts<'_>> {
    let order_exprs: Vec<&ast::OrderByExpr> = match &q.order_by {
        Some(ob) => match &ob.kind {
            ast::OrderByKind::Expressions(v) => v.iter().collect(),
            ast::OrderByKind::All(_) => {
                return Err(SqlError::new(code::FEATURE_NOT_SUPPORTED, "ORDER BY ALL"));
            }
        },
        None => Vec::new(),
    };
    let (limit, offset) = match &q.limit_clause {
        Some(ast::LimitClause::LimitOffset { limit, offset, .. }) => {
            (limit.clone(), offset.as_ref().map(|o| o.value.clone()))
        }
        Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => {
            (Some(limit.clone()), Some(offset.clone()))
        }
        None => (None, None),
    };
    Ok((order_exprs, limit, offset))
}

/// LIMIT and OFFSET compiled as integers.
fn compile_limits(
    ctx: &Ctx<'_>,
    outer: Option<&Scope>,
    limit: &Option<A>,
    offset: &Option<A>,
) -> SqlResult<(Option<Expr>, Option<Expr>)> {
    let empty = Scope::default();
    let c = ctx.compiler(&empty, outer, &expr::NoSubqueries);
    let limit = limit
        .as_ref()
        .map(|l| c.compile_as(l, Some(SqlType::Int)))
        .transpose()?;
    let offset = offset
        .as_ref()
        .map(|o| c.compile_as(o, Some(SqlType::Int)))
        .transpose()?;
    Ok((limit, offset))
}

/// A query planned without reading a row, to be loaded again with other parameter values:
/// a prepared statement's plan (`plan_cache`).
#[derive(Debug)]
pub struct QueryTemplate {
    select: SelectTemplate,
    limit: Option<Expr>,
    offset: Option<Expr>,
}

impl QueryTemplate {
    /// Its result columns.
    pub fn columns(&self) -> &[OutCol] {
        &self.select.columns
    }
}

/// Compiles `q` into a template; `None` when its plan cannot be reused (WITH, set
/// operations, subqueries, derived tables: their plans hold rows).
pub async fn compile_query(ctx: &mut Ctx<'_>, q: &ast::Query) -> SqlResult<Option<QueryTemplate>> {
    let ast::SetExpr::Select(s) = q.body.as_ref() else {
        return Ok(None);
    };
    if q.with.is_some() {
        return Ok(None);
    }
    let (order_exprs, limit, offset) = query_parts(q)?;
    let select =
        compile_select(ctx, s, None, &order_exprs, limit.as_ref(), offset.as_ref()).await?;
    if !select.reusable() {
        return Ok(None);
    }
    let (limit, offset) = compile_limits(ctx, None, &limit, &offset)?;
    Ok(Some(QueryTemplate {
        select,
        limit,
        offset,
    }))
}

/// Loads a template with `ctx`'s parameters: checks the session user may still read its
/// tables, reads them, and returns the plan, ready to run.
pub async fn load_query(ctx: &mut Ctx<'_>, t: &QueryTemplate) -> SqlResult<Planned> {
    for table in t.select.tables() {
        crate::privileges::require_table(ctx, table, "SELECT").await?;
    }
    let mut planned = load_select(ctx, &t.select).await?;
    planned.limit = t.limit.clone();
    planned.offset = t.offset.clone();
    Ok(planned)
}

/// ORDER BY over output columns only (for VALUES and set operations).
fn output_sort_keys(
    ctx: &Ctx<'_>,
    columns: &[OutCol],
    order: &[&ast::OrderByExpr],
) -> SqlResult<Vec<SortKey>> {
    let scope = Scope {
        cols: columns
            .iter()
            .map(|c| ScopeCol {
                table: None,
                name: c.name.clone(),
                typ: c.typ.clone(),
                hidden: false,
            })
            .collect(),
    };
    let c = ctx.compiler(&scope, None, &expr::NoSubqueries);
    order
        .iter()
        .map(|o| {
            let e = match &o.expr {
                A::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => ordinal(n, columns.len())?,
                    _ => c.compile(&o.expr)?,
                },
                other => c.compile(other)?,
            };
            Ok(sort_key(e, true, o))
        })
        .collect()
}

fn ordinal(n: &str, len: usize) -> SqlResult<Expr> {
    let i: usize = n.parse().unwrap_or(0);
    if i == 0 || i > len {
        return Err(SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            format!("ORDER BY position {n} is not in select list"),
        ));
    }
    Ok(Expr::Col(i - 1))
}

fn sort_key(expr: Expr, on_output: bool, o: &ast::OrderByExpr) -> SortKey {
    let desc = matches!(o.options.sort, Some(ast::OrderBySort::Desc));
    SortKey {
        expr,
        on_output,
        desc,
        // NULLs sort first ascending and last descending, as in CockroachDB.
        nulls_first: o.options.nulls_first.unwrap_or(!desc),
    }
}

fn plan_set_expr<'a, 't>(
    ctx: &'a mut Ctx<'t>,
    body: &'a ast::SetExpr,
    outer: Option<&'a Scope>,
) -> BoxFuture<'a, SqlResult<Planned>>
where
    't: 'a,
{
    Box::pin(async move {
        match body {
            ast::SetExpr::Select(s) => plan_select(ctx, s, outer, &[], None, None).await,
            ast::SetExpr::Query(q) => plan_query(ctx, q, outer).await,
            ast::SetExpr::Values(v) => {
                let empty = Scope::default();
                let c = ctx.compiler(&empty, outer, &expr::NoSubqueries);
                let mut rows = Vec::with_capacity(v.rows.len());
                for r in &v.rows {
                    rows.push(
                        r.iter()
                            .map(|e| c.compile(e))
                            .collect::<SqlResult<Vec<_>>>()?,
                    );
                }
                let width = rows.first().map_or(0, Vec::len);
                if rows.iter().any(|r| r.len() != width) {
                    return Err(SqlError::syntax("VALUES lists must all be the same length"));
                }
                let columns = (0..width)
                    .map(|i| OutCol {
                        name: format!("column{}", i + 1),
                        typ: rows.iter().find_map(|r| c.type_of(&r[i])),
                    })
                    .collect();
                Ok(Planned {
                    columns,
                    body: Body::Values(rows),
                    order: Vec::new(),
                    limit: None,
                    offset: None,
                })
            }
            ast::SetExpr::SetOperation {
                left,
                op,
                set_quantifier,
                right,
            } => {
                let l = plan_set_expr(ctx, left, outer).await?;
                let r = plan_set_expr(ctx, right, outer).await?;
                if l.columns.len() != r.columns.len() {
                    return Err(SqlError::syntax(format!(
                        "each {op} query must have the same number of columns"
                    )));
                }
                let columns = l
                    .columns
                    .iter()
                    .zip(&r.columns)
                    .map(|(a, b)| OutCol {
                        name: a.name.clone(),
                        typ: a.typ.clone().or_else(|| b.typ.clone()),
                    })
                    .collect();
                Ok(Planned {
                    columns,
                    body: Body::SetOp {
                        left: Box::new(l),
                        right: Box::new(r),
                        op: *op,
                        all: matches!(set_quantifier, ast::SetQuantifier::All),
                    },
                    order: Vec::new(),
                    limit: None,
                    offset: None,
                })
            }
            other => Err(SqlError::new(
                code::FEATURE_NOT_SUPPORTED,
                format!("unsupported query: {other}"),
            )),
        }
    })
}

/// Resolves one FROM item into a source (no rows read yet).
async fn resolve_source(
    ctx: &mut Ctx<'_>,
    f: &ast::TableFactor,
    outer: Option<&Scope>,
) -> SqlResult<Source> {
    match f {
        ast::TableFactor::Table {
            name, alias, args, ..
        } => {
            if let Some(args) = args {
                let fname = expr::function_name(name);
                if fname != "unnest" || args.args.len() != 1 {
                    return Err(SqlError::new(
                        code::FEATURE_NOT_SUPPORTED,
                        format!("table functions are not supported: {name}"),
                    ));
                }
                let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(arg)) = &args.args[0]
                else {
                    return Err(SqlError::syntax("unnest takes one array"));
                };
                let empty = Scope::default();
                let e = ctx
                    .compiler(&empty, outer, &expr::NoSubqueries)
                    .compile(arg)?;
                let a = alias
                    .as_ref()
                    .map(|a| ident(&a.name))
                    .unwrap_or_else(|| "unnest".into());
                let mut cols = vec![ScopeCol {
                    table: Some(a.clone()),
                    name: "unnest".into(),
                    typ: Some(SqlType::String { max_len: None }),
                    hidden: false,
                }];
                apply_column_aliases(&mut cols, alias.as_ref())?;
                return Ok(Source {
                    scope_cols: cols,
                    alias: a,
                    kind: SourceKind::Unnest(e),
                });
            }
            let alias_name = alias.as_ref().map(|a| ident(&a.name));
            match resolve_table(ctx, name).await? {
                TableRef::Table(t) => {
                    crate::privileges::require_table(ctx, &t, "SELECT").await?;
                    let a = alias_name.unwrap_or_else(|| t.name.clone());
                    let mut cols = table_scope_cols(&t, &a);
                    apply_column_aliases(&mut cols, alias.as_ref())?;
                    Ok(Source {
                        scope_cols: cols,
                        alias: a,
                        kind: SourceKind::Table(t),
                    })
                }
                TableRef::Virtual(v) => {
                    let short = v.rsplit('.').next().unwrap_or(&v).to_string();
                    let a = alias_name.unwrap_or(short);
                    let mut cols: Vec<ScopeCol> = crate::pgcatalog::columns(&v)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(n, t)| ScopeCol {
                            table: Some(a.clone()),
                            name: n.to_string(),
                            typ: Some(t),
                            hidden: false,
                        })
                        .collect();
                    apply_column_aliases(&mut cols, alias.as_ref())?;
                    Ok(Source {
                        scope_cols: cols,
                        alias: a,
                        kind: SourceKind::Virtual(v),
                    })
                }
            }
        }
        ast::TableFactor::Derived {
            subquery, alias, ..
        } => {
            let plan = plan_query(ctx, subquery, outer).await?;
            let a = alias
                .as_ref()
                .map(|a| ident(&a.name))
                .unwrap_or_else(|| "subquery".into());
            let mut cols: Vec<ScopeCol> = plan
                .columns
                .iter()
                .map(|c| ScopeCol {
                    table: Some(a.clone()),
                    name: c.name.clone(),
                    typ: c.typ.clone(),
                    hidden: false,
                })
                .collect();
            apply_column_aliases(&mut cols, alias.as_ref())?;
            Ok(Source {
                scope_cols: cols,
                alias: a,
                kind: SourceKind::Derived(Box::new(plan)),
            })
        }
        other => Err(SqlError::new(
            code::FEATURE_NOT_SUPPORTED,
            format!("unsupported FROM item: {other}"),
        )),
    }
}

fn apply_column_aliases(cols: &mut [ScopeCol], alias: Option<&ast::TableAlias>) -> SqlResult<()> {
    if let Some(a) = alias {
        if a.columns.len() > cols.len() {
            return Err(SqlError::syntax(format!(
                "table \"{}\" has {} columns available but {} columns specified",
                a.name,
                cols.len(),
                a.columns.len()
            )));
        }
        for (c, n) in cols.iter_mut().zip(&a.columns) {
            c.name = ident(&n.name);
        }
    }
    Ok(())
}

/// Constraints on one column from `col op const` conjuncts.
#[derive(Debug, Default, Clone)]
struct ColConstraint {
    eq: Option<Vec<Datum>>,
    lower: Option<Datum>,
    upper: Option<Datum>,
}

/// Reads constraints on local columns out of conjuncts (already local to one source).
fn column_constraints(
    conjuncts: &[Expr],
    ectx: &EvalCtx<'_>,
) -> SqlResult<HashMap<usize, ColConstraint>> {
    let mut out: HashMap<usize, ColConstraint> = HashMap::new();
    for c in conjuncts {
        match c {
            Expr::Bin(op, a, b) => {
                let (col, value, op) = match (a.as_ref(), b.as_ref()) {
                    (Expr::Col(i), v) if v.is_const(false) => (*i, v, *op),
                    (v, Expr::Col(i)) if v.is_const(false) => (*i, v, flip(*op)),
                    _ => continue,
                };
                let v = value.eval(&[], ectx)?;
                if v.is_null() {
                    continue;
                }
                let e = out.entry(col).or_default();
                match op {
                    BinOp::Eq => e.eq = Some(vec![v]),
                    BinOp::Gt | BinOp::GtEq => e.lower = Some(v),
                    BinOp::Lt | BinOp::LtEq => e.upper = Some(v),
                    _ => {}
                }
            }
            Expr::InList(x, list, false) => {
                let Expr::Col(i) = x.as_ref() else { continue };
                if !list.iter().all(|e| e.is_const(false)) {
                    continue;
                }
                let mut values = Vec::with_capacity(list.len());
                for e in list {
                    let v = e.eval(&[], ectx)?;
                    if !v.is_null() {
                        values.push(v);
                    }
                }
                values.sort_by(|a, b| a.sort_cmp(b));
                values.dedup_by(|a, b| a.sort_cmp(b) == Ordering::Equal);
                out.entry(*i).or_default().eq = Some(values);
            }
            _ => {}
        }
    }
    Ok(out)
}

fn flip(op: BinOp) -> BinOp {
    match op {
        BinOp::Lt => BinOp::Gt,
        BinOp::LtEq => BinOp::GtEq,
        BinOp::Gt => BinOp::Lt,
        BinOp::GtEq => BinOp::LtEq,
        other => other,
    }
}

/// A way to read a table: an index and the spans of it to scan.
#[derive(Debug)]
struct Access {
    index: IndexDesc,
    primary: bool,
    spans: Vec<Span>,
    /// Every span is one key (equality on every column of a unique index, none of them
    /// NULL): read each with a point get of its start key, not a scan.
    point: bool,
    description: String,
}

/// Casts a constraint value to a column's type for a key; `None` if it does not convert
/// exactly (the filter still decides).
fn key_value(v: &Datum, typ: &SqlType) -> Option<Datum> {
    let c = v.clone().cast(typ).ok()?;
    (c.sql_cmp(v).ok()? == Some(Ordering::Equal)).then_some(c)
}

/// Chooses the index and spans for a table from constraints on its columns.
fn choose_access(t: &TableDesc, constraints: &HashMap<usize, ColConstraint>) -> SqlResult<Access> {
    let mut best: Option<(usize, bool, bool, Access)> = None;
    let indexes = std::iter::once((&t.primary_index, true))
        .chain(t.secondary_indexes.iter().map(|i| (i, false)));
    for (idx, primary) in indexes {
        let mut prefixes: Vec<Vec<Datum>> = vec![Vec::new()];
        let mut eq_cols = 0;
        let mut range: Option<(usize, Option<Datum>, Option<Datum>)> = None;
        for (col_id, _) in &idx.columns {
            let pos = rows::column_position(t, *col_id)?;
            let typ = &t.columns[pos].typ;
            let Some(c) = constraints.get(&pos) else {
                break;
            };
            if let Some(values) = &c.eq {
                let values: Option<Vec<Datum>> = values.iter().map(|v| key_value(v, typ)).collect();
                let Some(values) = values else { break };
                if prefixes.len() * values.len().max(1) > MAX_SPANS {
                    break;
                }
                prefixes = prefixes
                    .into_iter()
                    .flat_map(|p| {
                        values.iter().map(move |v| {
                            let mut p = p.clone();
                            p.push(v.clone());
                            p
                        })
                    })
                    .collect();
                eq_cols += 1;
                continue;
            }
            if c.lower.is_some() || c.upper.is_some() {
                let lo = c.lower.as_ref().and_then(|v| key_value(v, typ));
                let hi = c.upper.as_ref().and_then(|v| key_value(v, typ));
                if lo.is_some() || hi.is_some() {
                    range = Some((eq_cols, lo, hi));
                }
            }
            break;
        }
        if eq_cols == 0 && range.is_none() && !primary {
            continue;
        }
        let full_unique = idx.unique && eq_cols == idx.columns.len();
        let mut spans = Vec::with_capacity(prefixes.len());
        for p in &prefixes {
            let k = rows::index_key_prefix(t, idx, p);
            match &range {
                Some((pos, lo, hi)) => {
                    let dir: Direction = idx.columns[*pos].1.into();
                    let enc = |v: &Datum| {
                        let mut x = k.clone();
                        keycodec::encode(&mut x, &v.to_key(), dir);
                        x
                    };
                    let end_of = |x: &[u8]| storage::prefix_end(x).unwrap_or_default();
                    let (start_v, end_v) = match dir {
                        Direction::Asc => (lo, hi),
                        Direction::Desc => (hi, lo),
                    };
                    let start = match start_v {
                        Some(v) => enc(v),
                        None => {
                            // Skip NULLs: they sort first ascending.
                            if dir == Direction::Asc {
                                let mut x = k.clone();
                                keycodec::encode(&mut x, &keycodec::KeyValue::Null, dir);
                                end_of(&x)
                            } else {
                                k.clone()
                            }
                        }
                    };
                    let end = match end_v {
                        Some(v) => end_of(&enc(v)),
                        None => end_of(&k),
                    };
                    if start < end {
                        spans.push(Span::new(start, end));
                    }
                }
                None => spans.push(Span::prefix(&k)),
            }
        }
        spans.sort_by(|a, b| a.start.cmp(&b.start));
        let kind = if eq_cols == 0 && range.is_none() {
            "full scan".to_string()
        } else if full_unique {
            format!("{} point lookup(s)", spans.len())
        } else {
            format!("{} span(s)", spans.len())
        };
        let description = format!("{}@{}: {kind}", t.name, idx.name);
        let score = (eq_cols, range.is_some(), full_unique);
        let better = match &best {
            None => true,
            Some((e, r, u, _)) => {
                (score.2 && !*u)
                    || (score.2 == *u && (score.0 > *e || (score.0 == *e && score.1 && !*r)))
            }
        };
        if better {
            best = Some((
                eq_cols,
                range.is_some(),
                full_unique,
                Access {
                    index: idx.clone(),
                    primary,
                    spans,
                    point: full_unique,
                    description,
                },
            ));
        }
    }
    best.map(|b| b.3)
        .ok_or_else(|| SqlError::internal("no index to read"))
}

/// Records how `t` would be read for `conjuncts` (for EXPLAIN), without reading it.
pub fn describe_access(ctx: &mut Ctx<'_>, t: &TableDesc, conjuncts: &[Expr]) {
    let constraints = {
        let ectx = ctx.eval_ctx(&[]);
        column_constraints(conjuncts, &ectx).unwrap_or_default()
    };
    if let Ok(a) = choose_access(t, &constraints) {
        ctx.explain.push(a.description);
    }
}

/// Reads the rows of `t` that `filter` (over the table's own columns) accepts, through the
/// index that `conjuncts` constrain best; stops after `limit` accepted rows.
pub async fn read_table(
    ctx: &mut Ctx<'_>,
    t: &TableDesc,
    conjuncts: &[Expr],
    limit: Option<usize>,
) -> SqlResult<Vec<Row>> {
    let constraints = {
        let ectx = ctx.eval_ctx(&[]);
        column_constraints(conjuncts, &ectx)?
    };
    let access = choose_access(t, &constraints)?;
    ctx.explain.push(access.description.clone());
    let filter = conjuncts
        .iter()
        .cloned()
        .reduce(|a, b| Expr::Bin(BinOp::And, Box::new(a), Box::new(b)));
    let mut out = Vec::new();
    if access.point {
        // A unique index's key for non-NULL values is exactly the span's start: a point
        // get (the engine's seek to the newest version of one key), not a range scan.
        for span in &access.spans {
            let Some(value) = ctx.txn.get(&span.start).await? else {
                continue;
            };
            let row = row_of_entry(ctx, t, &access, &span.start, &value).await?;
            if let Some(f) = &filter {
                let ectx = ctx.eval_ctx(&[]);
                if expr::truth(&f.eval(&row, &ectx)?)? != Some(true) {
                    continue;
                }
            }
            out.push(row);
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        return Ok(out);
    }
    for span in &access.spans {
        let mut span = span.clone();
        loop {
            let page = ctx.txn.scan(&span, SCAN_PAGE).await?;
            for kv in &page.rows {
                let row = row_of_entry(ctx, t, &access, &kv.key, &kv.value).await?;
                if let Some(f) = &filter {
                    let ectx = ctx.eval_ctx(&[]);
                    if expr::truth(&f.eval(&row, &ectx)?)? != Some(true) {
                        continue;
                    }
                }
                out.push(row);
                if limit.is_some_and(|l| out.len() >= l) {
                    return Ok(out);
                }
            }
            match page.resume_key {
                Some(k) => span.start = k,
                None => break,
            }
        }
    }
    Ok(out)
}

/// The row an index entry of `access` stands for (a secondary index's entry points at it).
async fn row_of_entry(
    ctx: &mut Ctx<'_>,
    t: &TableDesc,
    access: &Access,
    key: &[u8],
    value: &[u8],
) -> SqlResult<Row> {
    if access.primary {
        return rows::decode_row(t, key, value);
    }
    let pk = rows::primary_key_from_index_value(t, value)?;
    match ctx.txn.get(&pk).await? {
        Some(v) => rows::decode_row(t, &pk, &v),
        None => Err(SqlError::internal(format!(
            "index {} of {} points at a missing row",
            access.index.name, t.name
        ))),
    }
}

/// Which sources an expression reads (by the column ranges of the combined row).
fn sources_of(e: &Expr, offsets: &[usize]) -> BTreeSet<usize> {
    e.columns()
        .into_iter()
        .map(|c| offsets.iter().rposition(|o| *o <= c).unwrap_or(0))
        .collect()
}

fn and_all(v: Vec<Expr>) -> Option<Expr> {
    v.into_iter()
        .reduce(|a, b| Expr::Bin(BinOp::And, Box::new(a), Box::new(b)))
}

async fn plan_select(
    ctx: &mut Ctx<'_>,
    s: &ast::Select,
    outer: Option<&Scope>,
    order: &[&ast::OrderByExpr],
    limit: Option<&A>,
    offset: Option<&A>,
) -> SqlResult<Planned> {
    let template = compile_select(ctx, s, outer, order, limit, offset).await?;
    load_select(ctx, &template).await
}

/// A SELECT compiled (names resolved, expressions typed, joins and filters placed) but not
/// read: [`load_select`] reads its sources. Without subqueries or derived tables (whose plans
/// hold rows read when they were planned) it can be kept and loaded again, with other
/// parameter values (a prepared statement's plan, see `plan_cache`).
#[derive(Debug)]
pub(crate) struct SelectTemplate {
    sources: Vec<Source>,
    pushdown: Vec<Vec<Expr>>,
    offsets: Vec<usize>,
    steps: Vec<JoinStep>,
    filter: Option<Expr>,
    grouping: Option<GroupPlan>,
    having: Option<Expr>,
    projection: Vec<Expr>,
    columns: Vec<OutCol>,
    distinct: bool,
    widths: Vec<usize>,
    sort: Vec<SortKey>,
    /// LIMIT and OFFSET, when the rows read can stop early (one source, nothing reorders).
    limit_hint: Option<(Option<A>, Option<A>)>,
    /// Planned subqueries exist (their plans hold rows): not reusable.
    has_subqueries: bool,
}

impl SelectTemplate {
    /// Whether loading it again with other parameters is correct.
    pub(crate) fn reusable(&self) -> bool {
        !self.has_subqueries
            && self
                .sources
                .iter()
                .all(|s| !matches!(s.kind, SourceKind::Derived(_)))
    }

    /// The tables it reads.
    pub(crate) fn tables(&self) -> impl Iterator<Item = &TableDesc> {
        self.sources.iter().filter_map(|s| match &s.kind {
            SourceKind::Table(t) => Some(t),
            _ => None,
        })
    }
}

async fn compile_select(
    ctx: &mut Ctx<'_>,
    s: &ast::Select,
    outer: Option<&Scope>,
    order: &[&ast::OrderByExpr],
    limit: Option<&A>,
    offset: Option<&A>,
) -> SqlResult<SelectTemplate> {
    // 1. FROM: resolve sources and the join tree (left-deep).
    let mut sources: Vec<Source> = Vec::new();
    let mut joins: Vec<(JoinKind, Option<&A>)> = Vec::new();
    for (i, twj) in s.from.iter().enumerate() {
        sources.push(resolve_source(ctx, &twj.relation, outer).await?);
        if i > 0 {
            joins.push((JoinKind::Inner, None));
        }
        for j in &twj.joins {
            sources.push(resolve_source(ctx, &j.relation, outer).await?);
            use ast::JoinOperator as J;
            let (kind, constraint) = match &j.join_operator {
                J::Join(c) | J::Inner(c) => (JoinKind::Inner, Some(c)),
                J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, Some(c)),
                J::CrossJoin(_) => (JoinKind::Inner, None),
                other => {
                    return Err(SqlError::new(
                        code::FEATURE_NOT_SUPPORTED,
                        format!("unsupported join: {other:?}")
                            .chars()
                            .take(80)
                            .collect::<String>(),
                    ));
                }
            };
            let on = match constraint {
                Some(ast::JoinConstraint::On(e)) => Some(e),
                Some(ast::JoinConstraint::None) | None => None,
                Some(_) => {
                    return Err(SqlError::new(
                        code::FEATURE_NOT_SUPPORTED,
                        "only JOIN ... ON is supported (not USING or NATURAL)",
                    ));
                }
            };
            joins.push((kind, on));
        }
    }
    if sources.is_empty() {
        sources.push(Source {
            kind: SourceKind::Unit,
            alias: String::new(),
            scope_cols: Vec::new(),
        });
    }
    let mut offsets = Vec::with_capacity(sources.len());
    let mut scope = Scope::default();
    for src in &sources {
        offsets.push(scope.cols.len());
        scope.cols.extend(src.scope_cols.iter().cloned());
    }
    let widths: Vec<usize> = sources.iter().map(|s| s.scope_cols.len()).collect();

    // 2. Subqueries anywhere in the select, planned with this scope as their outer scope.
    let group_exprs: Vec<&A> = match &s.group_by {
        ast::GroupByExpr::Expressions(v, _) => v.iter().collect(),
        ast::GroupByExpr::All(_) => {
            return Err(SqlError::new(code::FEATURE_NOT_SUPPORTED, "GROUP BY ALL"));
        }
    };
    let mut all_exprs: Vec<&A> = Vec::new();
    all_exprs.extend(s.selection.iter());
    all_exprs.extend(s.having.iter());
    all_exprs.extend(joins.iter().filter_map(|(_, on)| *on));
    for item in &s.projection {
        if let ast::SelectItem::UnnamedExpr(e) | ast::SelectItem::ExprWithAlias { expr: e, .. } =
            item
        {
            all_exprs.push(e);
        }
    }
    all_exprs.extend(order.iter().map(|o| &o.expr));
    let subs = plan_subqueries(ctx, &all_exprs, &scope).await?;

    // 3. Compile WHERE and ON; place each conjunct where it can be checked first.
    let c = ctx.compiler(&scope, outer, &subs);
    let where_conj = match &s.selection {
        Some(w) => {
            let e = c.compile(w)?;
            c.hint(&e, Some(SqlType::Bool));
            e.conjuncts()
        }
        None => Vec::new(),
    };
    let mut ons: Vec<Vec<Expr>> = Vec::with_capacity(joins.len());
    for (_, on) in &joins {
        ons.push(match on {
            Some(e) => c.compile(e)?.conjuncts(),
            None => Vec::new(),
        });
    }
    // Sources on the nullable side of a LEFT JOIN, and everything after, cannot take
    // WHERE conjuncts early.
    let nullable: Vec<bool> = (0..sources.len())
        .map(|i| i > 0 && joins[i - 1].0 == JoinKind::Left)
        .collect();
    let mut pushdown: Vec<Vec<Expr>> = vec![Vec::new(); sources.len()];
    let mut after: Vec<Vec<Expr>> = vec![Vec::new(); sources.len()];
    let mut final_filter: Vec<Expr> = Vec::new();
    for e in where_conj {
        let srcs = sources_of(&e, &offsets);
        let last = srcs.iter().max().copied().unwrap_or(0);
        let subquery = e.has_subquery();
        if srcs.len() == 1 && !nullable[last] && !e.has_outer() && !subquery {
            pushdown[last].push(e.remap(&|c| c - offsets[last]));
        } else if srcs.is_empty() {
            final_filter.push(e);
        } else {
            after[last].push(e);
        }
    }
    // ON conjuncts that concern the right side alone filter it as it is read (for a LEFT JOIN
    // too: ON decides which right rows match, never which left rows stay).
    let mut on_rest: Vec<Vec<Expr>> = Vec::with_capacity(ons.len());
    for (i, conj) in ons.into_iter().enumerate() {
        let right = i + 1;
        let mut rest = Vec::new();
        for e in conj {
            let srcs = sources_of(&e, &offsets);
            if srcs.len() == 1 && srcs.contains(&right) && !e.has_outer() && !e.has_subquery() {
                pushdown[right].push(e.remap(&|c| c - offsets[right]));
            } else {
                rest.push(e);
            }
        }
        on_rest.push(rest);
    }

    // 4. Aggregation and projection, compiled before reading (types are known from scope).
    let mut agg_asts: Vec<&ast::Function> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut items: Vec<ProjItem> = Vec::new();
    for item in &s.projection {
        match item {
            ast::SelectItem::UnnamedExpr(e) => {
                items.push(ProjItem::Expr(output_name(e), e));
            }
            ast::SelectItem::ExprWithAlias { expr, alias } => {
                items.push(ProjItem::Expr(ident(alias), expr));
            }
            ast::SelectItem::Wildcard(_) => {
                for (i, col) in scope.cols.iter().enumerate() {
                    if !col.hidden {
                        items.push(ProjItem::Col(col.name.clone(), i));
                    }
                }
            }
            ast::SelectItem::QualifiedWildcard(kind, _) => {
                let name = match kind {
                    ast::SelectItemQualifiedWildcardKind::ObjectName(n) => {
                        n.0.last()
                            .map(|p| match p {
                                ast::ObjectNamePart::Identifier(i) => ident(i),
                                other => other.to_string(),
                            })
                            .unwrap_or_default()
                    }
                    ast::SelectItemQualifiedWildcardKind::Expr(e) => e.to_string(),
                };
                let Some(si) = sources.iter().position(|s| s.alias == name) else {
                    return Err(SqlError::new(
                        code::UNDEFINED_TABLE,
                        format!("no data source matches pattern: {name}.*"),
                    ));
                };
                for (j, col) in sources[si].scope_cols.iter().enumerate() {
                    if !col.hidden {
                        items.push(ProjItem::Col(col.name.clone(), offsets[si] + j));
                    }
                }
            }
            other => {
                return Err(SqlError::new(
                    code::FEATURE_NOT_SUPPORTED,
                    format!("unsupported select item {other}"),
                ));
            }
        }
    }
    for it in &items {
        if let ProjItem::Expr(_, e) = it {
            collect_aggs(e, &mut agg_asts, &mut seen);
        }
    }
    if let Some(h) = &s.having {
        collect_aggs(h, &mut agg_asts, &mut seen);
    }
    for o in order {
        collect_aggs(&o.expr, &mut agg_asts, &mut seen);
    }
    let grouped = !group_exprs.is_empty() || !agg_asts.is_empty() || s.having.is_some();
    let mut mapped = Grouping::default();
    let mut group_plan = None;
    if grouped {
        let mut keys: Vec<Expr> = Vec::new();
        for g in &group_exprs {
            // GROUP BY 1 and GROUP BY alias refer to the select list.
            let target: &A = match g {
                A::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => {
                        let i: usize = n.parse().unwrap_or(0);
                        match items.get(i.wrapping_sub(1)) {
                            Some(ProjItem::Expr(_, e)) => e,
                            _ => {
                                return Err(SqlError::new(
                                    code::INVALID_PARAMETER_VALUE,
                                    format!("GROUP BY position {n} is not in select list"),
                                ));
                            }
                        }
                    }
                    _ => g,
                },
                A::Identifier(i) if scope.resolve(None, &ident(i))?.is_none() => items
                    .iter()
                    .find_map(|it| match it {
                        ProjItem::Expr(n, e) if *n == ident(i) => Some(*e),
                        _ => None,
                    })
                    .unwrap_or(g),
                _ => g,
            };
            let e = c.compile(target)?;
            let slot = match keys
                .iter()
                .position(|k| format!("{k:?}") == format!("{e:?}"))
            {
                Some(s) => s,
                None => {
                    keys.push(e.clone());
                    keys.len() - 1
                }
            };
            mapped.keys.push((target.to_string(), e.clone(), slot));
            if target.to_string() != g.to_string() {
                mapped.keys.push((g.to_string(), e, slot));
            }
        }
        mapped.nkeys = keys.len();
        let mut aggs = Vec::new();
        for f in &agg_asts {
            aggs.push(compile_agg(&c, f)?);
            mapped.aggs.push(f.to_string());
        }
        group_plan = Some(GroupPlan { keys, aggs });
    }
    let post_compiler = Compiler {
        scope: c.scope,
        outer: c.outer,
        params: c.params,
        subqueries: c.subqueries,
        grouping: grouped.then_some(&mapped),
    };
    let compile_post = |e: &A| -> SqlResult<Expr> { post_compiler.compile(e) };
    let mut projection = Vec::with_capacity(items.len());
    let mut columns = Vec::with_capacity(items.len());
    let key_types: Vec<Option<SqlType>> = group_plan
        .as_ref()
        .map(|gp| {
            gp.keys
                .iter()
                .map(|k| c.type_of(k))
                .chain(gp.aggs.iter().map(|a| agg_type(a, &c)))
                .collect()
        })
        .unwrap_or_default();
    let type_of_post = |e: &Expr| -> Option<SqlType> {
        if group_plan.is_some() {
            e.typ(&key_types, &ctx.param_types.lock())
        } else {
            c.type_of(e)
        }
    };
    for it in &items {
        let (name, e) = match it {
            ProjItem::Col(name, i) => {
                let e = if grouped {
                    mapped.column_slot(*i).map(Expr::Col).ok_or_else(|| {
                        SqlError::new(
                            code::GROUPING_ERROR,
                            format!(
                                "column \"{name}\" must appear in the GROUP BY clause or be used in an aggregate function"
                            ),
                        )
                    })?
                } else {
                    Expr::Col(*i)
                };
                (name.clone(), e)
            }
            ProjItem::Expr(name, a) => (name.clone(), compile_post(a)?),
        };
        columns.push(OutCol {
            name,
            typ: type_of_post(&e),
        });
        projection.push(e);
    }
    let having = s.having.as_ref().map(&compile_post).transpose()?;
    let mut sort = Vec::with_capacity(order.len());
    for o in order {
        let key = match &o.expr {
            A::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                let n = match &v.value {
                    ast::Value::Number(n, _) => n.clone(),
                    _ => String::new(),
                };
                sort_key(ordinal(&n, columns.len())?, true, o)
            }
            A::Identifier(i)
                if columns.iter().filter(|c| c.name == ident(i)).count() == 1
                    && (scope.resolve(None, &ident(i))?.is_none()
                        || items
                            .iter()
                            .any(|it| matches!(it, ProjItem::Expr(n, _) if *n == ident(i)))) =>
            {
                let pos = columns.iter().position(|c| c.name == ident(i)).unwrap_or(0);
                sort_key(Expr::Col(pos), true, o)
            }
            other => sort_key(compile_post(other)?, false, o),
        };
        sort.push(key);
    }
    let distinct = match &s.distinct {
        None | Some(ast::Distinct::All) => false,
        Some(ast::Distinct::Distinct) => true,
        Some(ast::Distinct::On(_)) => {
            return Err(SqlError::new(code::FEATURE_NOT_SUPPORTED, "DISTINCT ON"));
        }
    };

    // 5. Join steps with hash keys.
    let mut steps = Vec::with_capacity(joins.len());
    for (i, (kind, _)) in joins.iter().enumerate() {
        let right = i + 1;
        let rest = std::mem::take(&mut on_rest[i]);
        let mut left_keys = Vec::new();
        let mut right_keys = Vec::new();
        let mut on = Vec::new();
        let mut candidates: Vec<Expr> = rest;
        if *kind == JoinKind::Inner {
            candidates.append(&mut after[right]);
        }
        for e in candidates {
            if let Expr::Bin(BinOp::Eq, a, b) = &e {
                let (sa, sb) = (sources_of(a, &offsets), sources_of(b, &offsets));
                let left_only = |s: &BTreeSet<usize>| !s.is_empty() && s.iter().all(|x| *x < right);
                let right_only = |s: &BTreeSet<usize>| s.len() == 1 && s.contains(&right);
                let no_outer = !a.has_outer() && !b.has_outer();
                if no_outer && left_only(&sa) && right_only(&sb) {
                    left_keys.push((**a).clone());
                    right_keys.push(b.remap(&|c| c - offsets[right]));
                    continue;
                }
                if no_outer && left_only(&sb) && right_only(&sa) {
                    left_keys.push((**b).clone());
                    right_keys.push(a.remap(&|c| c - offsets[right]));
                    continue;
                }
            }
            on.push(e);
        }
        steps.push(JoinStep {
            kind: *kind,
            left_keys,
            right_keys,
            on: and_all(on),
            after: and_all(std::mem::take(&mut after[right])),
        });
    }
    let first_after = and_all(std::mem::take(&mut after[0]));
    let mut filter_rest = final_filter;
    if let Some(f) = first_after {
        filter_rest.push(f);
    }

    let single = sources.len() == 1;
    let no_reorder = !grouped && !distinct && sort.is_empty() && filter_rest.is_empty();
    Ok(SelectTemplate {
        has_subqueries: !subs.map.is_empty(),
        sources,
        pushdown,
        offsets,
        steps,
        filter: and_all(filter_rest),
        grouping: group_plan,
        having,
        projection,
        columns,
        distinct,
        widths,
        sort,
        limit_hint: (single && no_reorder).then(|| (limit.cloned(), offset.cloned())),
    })
}

/// Reads the sources of a compiled SELECT (with `ctx`'s parameters): the plan, ready to run.
async fn load_select(ctx: &mut Ctx<'_>, t: &SelectTemplate) -> SqlResult<Planned> {
    let SelectTemplate {
        sources,
        offsets,
        steps,
        ..
    } = t;
    let mut pushdown = t.pushdown.clone();
    // 6. Read the sources.
    let limit_hint =
        if let Some((limit, offset)) = t.limit_hint.as_ref().filter(|_| !ctx.describe_only) {
            let (limit, offset) = (limit.as_ref(), offset.as_ref());
            let empty = Scope::default();
            let lc = ctx.compiler(&empty, None, &expr::NoSubqueries);
            let eval_int = |e: Option<&A>| -> SqlResult<Option<i64>> {
                match e {
                    Some(e) => {
                        let x = lc.compile_as(e, Some(SqlType::Int))?;
                        if !x.is_const(false) {
                            return Ok(None);
                        }
                        match x.eval(&[], &ctx.eval_ctx(&[]))? {
                            Datum::Int(i) => Ok(Some(i)),
                            _ => Ok(None),
                        }
                    }
                    None => Ok(Some(0)),
                }
            };
            match (
                limit.map(|l| eval_int(Some(l))).transpose()?.flatten(),
                eval_int(offset)?,
            ) {
                (Some(l), Some(o)) if l >= 0 && o >= 0 => Some(l.saturating_add(o) as usize),
                _ => None,
            }
        } else {
            None
        };
    let mut loaded: Vec<Vec<Row>> = Vec::with_capacity(sources.len());
    if !ctx.describe_only {
        for (i, src) in sources.iter().enumerate() {
            let local = std::mem::take(&mut pushdown[i]);
            let rows = match &src.kind {
                SourceKind::Unit => vec![Vec::new()],
                SourceKind::Unnest(_) => Vec::new(),
                SourceKind::Table(t) => {
                    let mut conj = local;
                    // A lookup join: constrain the join column by the values seen on the left.
                    if i > 0
                        && let Some((col, values)) =
                            lookup_values(ctx, &steps[i - 1], &loaded, offsets)?
                    {
                        conj.push(Expr::InList(
                            Box::new(Expr::Col(col)),
                            values.into_iter().map(Expr::Const).collect(),
                            false,
                        ));
                    }
                    read_table(ctx, t, &conj, limit_hint).await?
                }
                SourceKind::Virtual(name) => {
                    let all = crate::pgcatalog::rows(ctx, name).await?;
                    filter_rows(all, &local, &ctx.eval_ctx(&[]))?
                }
                SourceKind::Derived(plan) => {
                    let all = plan.run(&ctx.params, &ctx.session, &[])?;
                    filter_rows(all, &local, &ctx.eval_ctx(&[]))?
                }
            };
            loaded.push(rows);
        }
    } else {
        loaded = vec![Vec::new(); sources.len()];
        // EXPLAIN: how each table would be read.
        for (i, src) in sources.iter().enumerate() {
            if let SourceKind::Table(t) = &src.kind {
                describe_access(ctx, t, &pushdown[i]);
            }
        }
    }
    Ok(Planned {
        columns: t.columns.clone(),
        body: Body::Select(Box::new(SelectPlan {
            sources: loaded,
            steps: steps.clone(),
            filter: t.filter.clone(),
            grouping: t.grouping.clone(),
            having: t.having.clone(),
            projection: t.projection.clone(),
            distinct: t.distinct,
            widths: t.widths.clone(),
            deferred: sources
                .iter()
                .map(|s| match &s.kind {
                    SourceKind::Unnest(e) => Some(e.clone()),
                    _ => None,
                })
                .collect(),
        })),
        order: t.sort.clone(),
        limit: None,
        offset: None,
    })
}

/// For a join step whose right side is compared for equality with one left source's
/// expression: that column and the distinct left values, if few.
fn lookup_values(
    ctx: &Ctx<'_>,
    step: &JoinStep,
    loaded: &[Vec<Row>],
    offsets: &[usize],
) -> SqlResult<Option<(usize, Vec<Datum>)>> {
    for (lk, rk) in step.left_keys.iter().zip(&step.right_keys) {
        let Expr::Col(col) = rk else { continue };
        let srcs = sources_of(lk, offsets);
        if srcs.len() != 1 {
            continue;
        }
        let src = *srcs.iter().next().unwrap_or(&0);
        let rows = &loaded[src];
        if rows.len() > LOOKUP_JOIN_MAX {
            continue;
        }
        let local = lk.remap(&|c| c - offsets[src]);
        let ectx = ctx.eval_ctx(&[]);
        let mut values = Vec::with_capacity(rows.len());
        for r in rows {
            let v = local.eval(r, &ectx)?;
            if !v.is_null() {
                values.push(v);
            }
        }
        values.sort_by(|a, b| a.sort_cmp(b));
        values.dedup_by(|a, b| a.sort_cmp(b) == Ordering::Equal);
        return Ok(Some((*col, values)));
    }
    Ok(None)
}

fn filter_rows(rows: Vec<Row>, conj: &[Expr], ectx: &EvalCtx<'_>) -> SqlResult<Vec<Row>> {
    if conj.is_empty() {
        return Ok(rows);
    }
    let mut out = Vec::with_capacity(rows.len());
    'rows: for r in rows {
        for c in conj {
            if expr::truth(&c.eval(&r, ectx)?)? != Some(true) {
                continue 'rows;
            }
        }
        out.push(r);
    }
    Ok(out)
}

enum ProjItem<'a> {
    Expr(String, &'a A),
    Col(String, usize),
}

/// The output name of a select item without an alias.
pub fn output_name(e: &A) -> String {
    match e {
        A::Identifier(i) => ident(i),
        A::CompoundIdentifier(p) => p.last().map(ident).unwrap_or_default(),
        A::Function(f) => function_name(&f.name),
        A::Cast { expr, .. } => match expr.as_ref() {
            A::Identifier(_) | A::CompoundIdentifier(_) | A::Function(_) => output_name(expr),
            _ => "?column?".into(),
        },
        A::Nested(inner) => output_name(inner),
        A::Case { .. } => "case".into(),
        A::Exists { .. } => "exists".into(),
        A::Extract { .. } => "extract".into(),
        A::Subquery(q) => match q.body.as_ref() {
            ast::SetExpr::Select(s) => match s.projection.first() {
                Some(ast::SelectItem::UnnamedExpr(e)) => output_name(e),
                Some(ast::SelectItem::ExprWithAlias { alias, .. }) => ident(alias),
                _ => "?column?".into(),
            },
            _ => "?column?".into(),
        },
        _ => "?column?".into(),
    }
}

fn collect_aggs<'a>(e: &'a A, out: &mut Vec<&'a ast::Function>, seen: &mut BTreeSet<String>) {
    match e {
        A::Function(f) if is_aggregate(&function_name(&f.name)) && seen.insert(f.to_string()) => {
            out.push(f);
        }
        A::Function(f) if is_aggregate(&function_name(&f.name)) => {}
        A::Function(f) => {
            if let ast::FunctionArguments::List(l) = &f.args {
                for a in &l.args {
                    if let ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(x)) = a {
                        collect_aggs(x, out, seen);
                    }
                }
            }
        }
        A::BinaryOp { left, right, .. } => {
            collect_aggs(left, out, seen);
            collect_aggs(right, out, seen);
        }
        A::UnaryOp { expr, .. }
        | A::Nested(expr)
        | A::Cast { expr, .. }
        | A::IsNull(expr)
        | A::IsNotNull(expr) => collect_aggs(expr, out, seen),
        A::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            if let Some(o) = operand {
                collect_aggs(o, out, seen);
            }
            for w in conditions {
                collect_aggs(&w.condition, out, seen);
                collect_aggs(&w.result, out, seen);
            }
            if let Some(x) = else_result {
                collect_aggs(x, out, seen);
            }
        }
        A::Between {
            expr, low, high, ..
        } => {
            collect_aggs(expr, out, seen);
            collect_aggs(low, out, seen);
            collect_aggs(high, out, seen);
        }
        _ => {}
    }
}

fn compile_agg(c: &Compiler<'_>, f: &ast::Function) -> SqlResult<AggSpec> {
    let func = function_name(&f.name);
    let func = if func == "every" {
        "bool_and".to_string()
    } else {
        func
    };
    let ast::FunctionArguments::List(list) = &f.args else {
        return Err(SqlError::syntax(format!("{func}() needs arguments")));
    };
    let distinct = matches!(
        list.duplicate_treatment,
        Some(ast::DuplicateTreatment::Distinct)
    );
    let mut args = Vec::new();
    for a in &list.args {
        match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard) if func == "count" => {}
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => {
                let mut inner = Vec::new();
                collect_aggs(e, &mut inner, &mut BTreeSet::new());
                if !inner.is_empty() {
                    return Err(SqlError::new(
                        code::GROUPING_ERROR,
                        "aggregate function calls cannot be nested",
                    ));
                }
                args.push(c.compile(e)?);
            }
            other => {
                return Err(SqlError::new(
                    code::FEATURE_NOT_SUPPORTED,
                    format!("unsupported aggregate argument {other}"),
                ));
            }
        }
    }
    let want = if func == "string_agg" {
        2
    } else if func == "count" && args.is_empty() {
        0
    } else {
        1
    };
    if args.len() != want {
        return Err(SqlError::new(
            code::UNDEFINED_FUNCTION,
            format!("wrong number of arguments for {func}()"),
        ));
    }
    let mut it = args.into_iter();
    Ok(AggSpec {
        func,
        arg: it.next(),
        extra: it.next(),
        distinct,
    })
}

fn agg_type(a: &AggSpec, c: &Compiler<'_>) -> Option<SqlType> {
    let t = a.arg.as_ref().and_then(|e| c.type_of(e));
    match a.func.as_str() {
        "count" => Some(SqlType::Int),
        "sum" => match t {
            Some(SqlType::Float) => Some(SqlType::Float),
            Some(SqlType::Interval) => Some(SqlType::Interval),
            _ => Some(SqlType::Decimal),
        },
        "avg" => match t {
            Some(SqlType::Float) => Some(SqlType::Float),
            _ => Some(SqlType::Decimal),
        },
        "bool_and" | "bool_or" => Some(SqlType::Bool),
        "string_agg" => Some(SqlType::String { max_len: None }),
        _ => t,
    }
}

/// An aggregate's running state.
#[derive(Debug, Clone)]
enum Acc {
    Count(i64),
    Sum(Option<Datum>),
    Avg(Option<Datum>, i64),
    Min(Option<Datum>),
    Max(Option<Datum>),
    BoolAnd(Option<bool>),
    BoolOr(Option<bool>),
    StringAgg(Option<String>),
}

impl Acc {
    fn new(func: &str) -> Acc {
        match func {
            "count" => Acc::Count(0),
            "sum" => Acc::Sum(None),
            "avg" => Acc::Avg(None, 0),
            "min" => Acc::Min(None),
            "max" => Acc::Max(None),
            "bool_and" => Acc::BoolAnd(None),
            "bool_or" => Acc::BoolOr(None),
            _ => Acc::StringAgg(None),
        }
    }

    fn add(&mut self, v: Option<Datum>, extra: Option<Datum>) -> SqlResult<()> {
        let Some(v) = v else {
            // count(*)
            if let Acc::Count(n) = self {
                *n += 1;
            }
            return Ok(());
        };
        if v.is_null() {
            return Ok(());
        }
        let sum = |acc: Option<Datum>, v: Datum| -> SqlResult<Datum> {
            let v = match v {
                Datum::Int(i) => Datum::Decimal(rust_decimal::Decimal::from(i)),
                other => other,
            };
            match acc {
                None => Ok(v),
                Some(a) => expr::binary(BinOp::Add, a, v),
            }
        };
        match self {
            Acc::Count(n) => *n += 1,
            Acc::Sum(s) => *s = Some(sum(s.take(), v)?),
            Acc::Avg(s, n) => {
                *s = Some(sum(s.take(), v)?);
                *n += 1;
            }
            Acc::Min(m) => {
                if m.as_ref().is_none_or(|x| v.sort_cmp(x) == Ordering::Less) {
                    *m = Some(v);
                }
            }
            Acc::Max(m) => {
                if m.as_ref()
                    .is_none_or(|x| v.sort_cmp(x) == Ordering::Greater)
                {
                    *m = Some(v);
                }
            }
            Acc::BoolAnd(b) => {
                let x = expr::truth(&v)?.unwrap_or(true);
                *b = Some(b.unwrap_or(true) && x);
            }
            Acc::BoolOr(b) => {
                let x = expr::truth(&v)?.unwrap_or(false);
                *b = Some(b.unwrap_or(false) || x);
            }
            Acc::StringAgg(s) => {
                let text = v.to_text().unwrap_or_default();
                *s = Some(match s.take() {
                    None => text,
                    Some(prev) => format!(
                        "{prev}{}{text}",
                        extra.and_then(|e| e.to_text()).unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }

    fn finish(self) -> SqlResult<Datum> {
        Ok(match self {
            Acc::Count(n) => Datum::Int(n),
            Acc::Sum(s) | Acc::Min(s) | Acc::Max(s) => s.unwrap_or(Datum::Null),
            Acc::Avg(None, _) => Datum::Null,
            Acc::Avg(Some(s), n) => match s {
                Datum::Float(f) => Datum::Float(f / n as f64),
                other => expr::binary(BinOp::Div, other, Datum::Decimal(n.into()))?,
            },
            Acc::BoolAnd(b) | Acc::BoolOr(b) => b.map_or(Datum::Null, Datum::Bool),
            Acc::StringAgg(s) => s.map_or(Datum::Null, Datum::String),
        })
    }
}

/// A group: its key, its aggregates, and the values DISTINCT aggregates have seen.
type Group = (Vec<Datum>, Vec<Acc>, Vec<BTreeSet<Vec<u8>>>);

/// A hashable key for grouping, DISTINCT and hash joins.
fn datum_key(values: &[Datum]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        // Numbers of different types that are equal must collide.
        let v = match v {
            Datum::Int(i) => Datum::Decimal((*i).into()),
            Datum::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => {
                Datum::Decimal((*f as i64).into())
            }
            Datum::TimestampTz(t) => Datum::Timestamp(*t),
            other => other.clone(),
        };
        keycodec::encode(&mut out, &v.to_key(), Direction::Asc);
    }
    out
}

impl Planned {
    /// Whether the plan reads the enclosing query's row.
    pub fn reads_outer(&self) -> bool {
        match &self.body {
            Body::Select(s) => {
                let exprs = s
                    .projection
                    .iter()
                    .chain(s.filter.iter())
                    .chain(s.having.iter())
                    .chain(
                        s.steps
                            .iter()
                            .flat_map(|st| st.on.iter().chain(st.after.iter())),
                    )
                    .chain(self.order.iter().map(|k| &k.expr));
                exprs.into_iter().any(|e| e.has_outer())
            }
            Body::Values(rows) => rows.iter().flatten().any(Expr::has_outer),
            Body::SetOp { left, right, .. } => left.reads_outer() || right.reads_outer(),
        }
    }

    /// Runs the plan over the rows it read when planned.
    pub fn run(
        &self,
        params: &[Datum],
        session: &SessionInfo,
        outer: &[Datum],
    ) -> SqlResult<Vec<Row>> {
        let ectx = EvalCtx {
            params,
            outer,
            session,
        };
        let mut keyed: Vec<(Row, Vec<Datum>)> = match &self.body {
            Body::Select(s) => s.run(&ectx, &self.order)?,
            Body::Values(rows) => rows
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|e| e.eval(&[], &ectx))
                        .collect::<SqlResult<Row>>()
                        .map(|row| (row, Vec::new()))
                })
                .collect::<SqlResult<_>>()?,
            Body::SetOp {
                left,
                right,
                op,
                all,
            } => {
                let l = left.run(params, session, outer)?;
                let r = right.run(params, session, outer)?;
                let rows = match op {
                    ast::SetOperator::Union => {
                        let mut v = l;
                        v.extend(r);
                        if !*all {
                            dedup_rows(&mut v);
                        }
                        v
                    }
                    ast::SetOperator::Intersect | ast::SetOperator::Except => {
                        let rk: BTreeSet<Vec<u8>> = r.iter().map(|x| datum_key(x)).collect();
                        let keep_in = matches!(op, ast::SetOperator::Intersect);
                        let mut v: Vec<Row> = l
                            .into_iter()
                            .filter(|x| rk.contains(&datum_key(x)) == keep_in)
                            .collect();
                        if !*all {
                            dedup_rows(&mut v);
                        }
                        v
                    }
                    other => {
                        return Err(SqlError::new(
                            code::FEATURE_NOT_SUPPORTED,
                            format!("set operation {other}"),
                        ));
                    }
                };
                rows.into_iter().map(|r| (r, Vec::new())).collect()
            }
        };
        // Keys over output columns are computed here (select plans left them out).
        if !self.order.is_empty() {
            for (row, keys) in keyed.iter_mut() {
                let mut full = Vec::with_capacity(self.order.len());
                let mut pre = keys.drain(..);
                for k in &self.order {
                    if k.on_output {
                        full.push(k.expr.eval(row, &ectx)?);
                    } else {
                        full.push(pre.next().unwrap_or(Datum::Null));
                    }
                }
                drop(pre);
                *keys = full;
            }
            let order = &self.order;
            keyed.sort_by(|(_, a), (_, b)| {
                for (k, (x, y)) in order.iter().zip(a.iter().zip(b)) {
                    let o = match (x.is_null(), y.is_null()) {
                        (true, true) => Ordering::Equal,
                        (true, false) => {
                            if k.nulls_first {
                                Ordering::Less
                            } else {
                                Ordering::Greater
                            }
                        }
                        (false, true) => {
                            if k.nulls_first {
                                Ordering::Greater
                            } else {
                                Ordering::Less
                            }
                        }
                        _ => {
                            let o = x.sort_cmp(y);
                            if k.desc { o.reverse() } else { o }
                        }
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                Ordering::Equal
            });
        }
        let int_of = |e: &Option<Expr>, what: &str| -> SqlResult<Option<usize>> {
            match e {
                None => Ok(None),
                Some(e) => match e.eval(&[], &ectx)? {
                    Datum::Null => Ok(None),
                    Datum::Int(i) if i >= 0 => Ok(Some(i as usize)),
                    other => Err(SqlError::new(
                        code::INVALID_PARAMETER_VALUE,
                        format!(
                            "{what} must be a non-negative integer, got {:?}",
                            other.to_text()
                        ),
                    )),
                },
            }
        };
        let offset = int_of(&self.offset, "OFFSET")?.unwrap_or(0);
        let limit = int_of(&self.limit, "LIMIT")?;
        Ok(keyed
            .into_iter()
            .skip(offset)
            .take(limit.unwrap_or(usize::MAX))
            .map(|(r, _)| r)
            .collect())
    }
}

fn dedup_rows(v: &mut Vec<Row>) {
    let mut seen = BTreeSet::new();
    v.retain(|r| seen.insert(datum_key(r)));
}

impl SelectPlan {
    /// Joined, filtered, grouped and projected rows, each with its sort keys over the row
    /// before projection.
    fn run(&self, ectx: &EvalCtx<'_>, order: &[SortKey]) -> SqlResult<Vec<(Row, Vec<Datum>)>> {
        let accept = |e: &Option<Expr>, row: &[Datum]| -> SqlResult<bool> {
            match e {
                None => Ok(true),
                Some(e) => Ok(expr::truth(&e.eval(row, ectx)?)? == Some(true)),
            }
        };
        let mut rows: Vec<Row> = self.source_rows(0, ectx)?;
        for (i, step) in self.steps.iter().enumerate() {
            let right_rows = self.source_rows(i + 1, ectx)?;
            let right = &right_rows;
            // LEFT JOIN pads unmatched rows with this many NULLs.
            let right_width = self.widths[i + 1];
            let mut index: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
            let hashed = !step.left_keys.is_empty();
            if hashed {
                for (j, r) in right.iter().enumerate() {
                    let mut k = Vec::with_capacity(step.right_keys.len());
                    for e in &step.right_keys {
                        k.push(e.eval(r, ectx)?);
                    }
                    if k.iter().any(Datum::is_null) {
                        continue;
                    }
                    index.entry(datum_key(&k)).or_default().push(j);
                }
            }
            let mut out = Vec::new();
            for l in &rows {
                let candidates: Vec<usize> = if hashed {
                    let mut k = Vec::with_capacity(step.left_keys.len());
                    for e in &step.left_keys {
                        k.push(e.eval(l, ectx)?);
                    }
                    if k.iter().any(Datum::is_null) {
                        Vec::new()
                    } else {
                        index.get(&datum_key(&k)).cloned().unwrap_or_default()
                    }
                } else {
                    (0..right.len()).collect()
                };
                let mut matched = false;
                for j in candidates {
                    let mut combined = l.clone();
                    combined.extend(right[j].iter().cloned());
                    if accept(&step.on, &combined)? {
                        matched = true;
                        out.push(combined);
                    }
                }
                if !matched && step.kind == JoinKind::Left {
                    let mut combined = l.clone();
                    combined.extend(std::iter::repeat_n(Datum::Null, right_width));
                    out.push(combined);
                }
            }
            let mut kept = Vec::with_capacity(out.len());
            for r in out {
                if accept(&step.after, &r)? {
                    kept.push(r);
                }
            }
            rows = kept;
        }
        if self.filter.is_some() {
            let mut kept = Vec::with_capacity(rows.len());
            for r in rows {
                if accept(&self.filter, &r)? {
                    kept.push(r);
                }
            }
            rows = kept;
        }
        // Grouping.
        let rows: Vec<Row> = match &self.grouping {
            None => rows,
            Some(g) => {
                let mut groups: Vec<Group> = Vec::new();
                let mut by_key: HashMap<Vec<u8>, usize> = HashMap::new();
                for r in &rows {
                    let mut key = Vec::with_capacity(g.keys.len());
                    for k in &g.keys {
                        key.push(k.eval(r, ectx)?);
                    }
                    let hk = datum_key(&key);
                    let gi = match by_key.get(&hk) {
                        Some(i) => *i,
                        None => {
                            groups.push((
                                key,
                                g.aggs.iter().map(|a| Acc::new(&a.func)).collect(),
                                vec![BTreeSet::new(); g.aggs.len()],
                            ));
                            by_key.insert(hk, groups.len() - 1);
                            groups.len() - 1
                        }
                    };
                    let (_, accs, seen) = &mut groups[gi];
                    for (ai, a) in g.aggs.iter().enumerate() {
                        let v = a.arg.as_ref().map(|e| e.eval(r, ectx)).transpose()?;
                        if a.distinct
                            && let Some(v) = &v
                            && !seen[ai].insert(datum_key(std::slice::from_ref(v)))
                        {
                            continue;
                        }
                        let extra = a.extra.as_ref().map(|e| e.eval(r, ectx)).transpose()?;
                        accs[ai].add(v, extra)?;
                    }
                }
                // Aggregates without GROUP BY return one row even over no input.
                if groups.is_empty() && g.keys.is_empty() {
                    groups.push((
                        Vec::new(),
                        g.aggs.iter().map(|a| Acc::new(&a.func)).collect(),
                        Vec::new(),
                    ));
                }
                let mut out = Vec::with_capacity(groups.len());
                for (key, accs, _) in groups {
                    let mut row = key;
                    for a in accs {
                        row.push(a.finish()?);
                    }
                    if accept(&self.having, &row)? {
                        out.push(row);
                    }
                }
                out
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut p = Vec::with_capacity(self.projection.len());
            for e in &self.projection {
                p.push(e.eval(r, ectx)?);
            }
            let mut keys = Vec::new();
            for k in order.iter().filter(|k| !k.on_output) {
                keys.push(k.expr.eval(r, ectx)?);
            }
            out.push((p, keys));
        }
        if self.distinct {
            let mut seen = BTreeSet::new();
            out.retain(|(r, _)| seen.insert(datum_key(r)));
        }
        Ok(out)
    }

    /// The rows of source `i`: read at planning, or computed now (`unnest`).
    fn source_rows(&self, i: usize, ectx: &EvalCtx<'_>) -> SqlResult<Vec<Row>> {
        match self.deferred.get(i).and_then(Option::as_ref) {
            Some(e) => {
                let v = e.eval(&[], ectx)?;
                let Some(text) = v.to_text() else {
                    return Ok(Vec::new());
                };
                let body = text.trim().trim_start_matches('{').trim_end_matches('}');
                Ok(body
                    .split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(|x| vec![Datum::String(x.trim_matches('"').to_string())])
                    .collect())
            }
            None => Ok(self.sources[i].clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptors::{ColumnDesc, IndexDirection};

    fn table() -> TableDesc {
        let col = |id, name: &str| ColumnDesc {
            id,
            name: name.into(),
            typ: SqlType::Int,
            nullable: true,
            default_expr: None,
            hidden: false,
        };
        TableDesc {
            id: 104,
            database_id: 100,
            name: "t".into(),
            columns: vec![col(1, "a"), col(2, "b"), col(3, "c")],
            primary_index: IndexDesc {
                id: 1,
                name: "t_pkey".into(),
                unique: true,
                columns: vec![(1, IndexDirection::Asc), (2, IndexDirection::Asc)],
            },
            secondary_indexes: vec![IndexDesc {
                id: 2,
                name: "t_c_key".into(),
                unique: true,
                columns: vec![(3, IndexDirection::Asc)],
            }],
            next_column_id: 4,
            next_index_id: 3,
            version: 1,
        }
    }

    fn eq(values: &[i64]) -> ColConstraint {
        ColConstraint {
            eq: Some(values.iter().map(|v| Datum::Int(*v)).collect()),
            ..Default::default()
        }
    }

    // Goal (issue 15 item 7): equality on every column of the primary key (or of a unique
    // index) is read with point gets of exact keys, one per value combination; a prefix of
    // the key is still a span scan. Method: choose the access for constraints on the full
    // primary key, an IN list on it, a unique secondary index and a key prefix; the point
    // accesses' spans start at the exact row (or index entry) keys.
    #[test]
    fn full_unique_key_equality_is_a_point_get() {
        let t = table();
        let full = HashMap::from([(0, eq(&[1])), (1, eq(&[2]))]);
        let a = choose_access(&t, &full).expect("access");
        assert!(a.point && a.primary, "{}", a.description);
        let key = rows::index_key_prefix(&t, &t.primary_index, &[Datum::Int(1), Datum::Int(2)]);
        assert_eq!(a.spans.iter().map(|s| &s.start).collect::<Vec<_>>(), [&key]);

        let in_list = HashMap::from([(0, eq(&[1, 3])), (1, eq(&[2]))]);
        let a = choose_access(&t, &in_list).expect("access");
        assert!(a.point, "{}", a.description);
        assert_eq!(a.spans.len(), 2);

        let unique = HashMap::from([(2, eq(&[9]))]);
        let a = choose_access(&t, &unique).expect("access");
        assert!(a.point && !a.primary, "{}", a.description);

        let prefix = HashMap::from([(0, eq(&[1]))]);
        let a = choose_access(&t, &prefix).expect("access");
        assert!(
            !a.point,
            "a key prefix became a point get: {}",
            a.description
        );
    }
}

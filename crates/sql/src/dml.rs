//! INSERT, UPSERT, UPDATE and DELETE: rows and their index entries written in the
//! statement's transaction, with NOT NULL and uniqueness enforced.

use crate::datum::Datum;
use crate::descriptors::{IndexDesc, TableDesc};
use crate::error::{SqlError, SqlResult, code};
use crate::expr::{self, Compiler, Expr, NoSubqueries, Scope, ident};
use crate::query::{self, Ctx, OutCol, TableRef, table_scope_cols};
use crate::rows::{self, Row};
use sqlparser::ast;

/// What a DML statement returns: a row count, or rows from RETURNING.
#[derive(Debug)]
pub struct DmlResult {
    pub count: usize,
    pub returning: Option<(Vec<OutCol>, Vec<Row>)>,
}

async fn table_for_write(ctx: &mut Ctx<'_>, name: &ast::ObjectName) -> SqlResult<TableDesc> {
    match query::resolve_table(ctx, name).await? {
        TableRef::Table(t) => Ok(t),
        TableRef::Virtual(v) => Err(SqlError::privilege(format!(
            "{v} is a virtual catalog table and cannot be modified"
        ))),
    }
}

fn column_index(t: &TableDesc, name: &str) -> SqlResult<usize> {
    t.columns
        .iter()
        .position(|c| c.name == name)
        .ok_or_else(|| {
            SqlError::new(
                code::UNDEFINED_COLUMN,
                format!("column \"{name}\" does not exist"),
            )
        })
}

/// Compiles a column's DEFAULT expression.
fn default_expr(ctx: &Ctx<'_>, text: &str) -> SqlResult<Expr> {
    let e = sqlparser::parser::Parser::new(&sqlparser::dialect::PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::internal(format!("bad stored default {text:?}: {e}")))?;
    let scope = Scope::default();
    ctx.compiler(&scope, None, &NoSubqueries).compile(&e)
}

/// Checks NOT NULL and converts each value to its column's type.
fn finish_row(t: &TableDesc, row: Row) -> SqlResult<Row> {
    let mut out = Vec::with_capacity(row.len());
    for (c, v) in t.columns.iter().zip(row) {
        if v.is_null() && !c.nullable {
            return Err(SqlError::new(
                code::NOT_NULL_VIOLATION,
                format!(
                    "null value in column \"{}\" violates not-null constraint",
                    c.name
                ),
            ));
        }
        if let Datum::Jsonb(_) = v
            && t.primary_index
                .columns
                .iter()
                .chain(t.secondary_indexes.iter().flat_map(|i| i.columns.iter()))
                .any(|(id, _)| *id == c.id)
        {
            return Err(SqlError::new(
                code::FEATURE_NOT_SUPPORTED,
                "JSONB columns cannot be indexed",
            ));
        }
        out.push(v.cast(&c.typ).map_err(|e| {
            if e.code == code::CANNOT_COERCE {
                SqlError::new(
                    code::DATATYPE_MISMATCH,
                    format!(
                        "value type does not match column \"{}\": {}",
                        c.name, e.message
                    ),
                )
            } else {
                e
            }
        })?);
    }
    Ok(out)
}

fn unique_violation(idx: &IndexDesc) -> SqlError {
    SqlError::new(
        code::UNIQUE_VIOLATION,
        format!(
            "duplicate key value violates unique constraint \"{}\"",
            idx.name
        ),
    )
}

/// The existing row whose unique key in `idx` equals `row`'s (another row than `own_pk`).
async fn unique_conflict(
    ctx: &mut Ctx<'_>,
    t: &TableDesc,
    idx: &IndexDesc,
    row: &[Datum],
    own_pk: Option<&[u8]>,
) -> SqlResult<Option<Row>> {
    let (k, _) = rows::index_entry(t, idx, row)?;
    // Entries with a NULL key column carry the primary key and never conflict.
    if idx
        .columns
        .iter()
        .any(|(id, _)| rows::column_position(t, *id).is_ok_and(|p| row[p].is_null()))
    {
        return Ok(None);
    }
    let Some(v) = ctx.txn.get(&k).await? else {
        return Ok(None);
    };
    let pk = rows::primary_key_from_index_value(t, &v)?;
    if own_pk == Some(pk.as_slice()) {
        return Ok(None);
    }
    match ctx.txn.get(&pk).await? {
        Some(value) => Ok(Some(rows::decode_row(t, &pk, &value)?)),
        None => Ok(None),
    }
}

/// Writes `new` (replacing `old` if given): the primary KV and every index entry.
fn write_row(ctx: &mut Ctx<'_>, t: &TableDesc, old: Option<&Row>, new: &Row) -> SqlResult<()> {
    let new_pk = rows::primary_key(t, new)?;
    if let Some(o) = old {
        let old_pk = rows::primary_key(t, o)?;
        if old_pk != new_pk {
            ctx.txn.delete(&old_pk)?;
        }
        for idx in &t.secondary_indexes {
            let (ok, _) = rows::index_entry(t, idx, o)?;
            let (nk, _) = rows::index_entry(t, idx, new)?;
            if ok != nk {
                ctx.txn.delete(&ok)?;
            }
        }
    }
    ctx.txn.put(&new_pk, rows::primary_value(t, new))?;
    for idx in &t.secondary_indexes {
        let (k, v) = rows::index_entry(t, idx, new)?;
        ctx.txn.put(&k, v)?;
    }
    Ok(())
}

/// Replaces `old` by `new` (checked and converted to the column types), refusing a
/// primary or unique key that another row holds; returns the row as written.
async fn update_row(ctx: &mut Ctx<'_>, t: &TableDesc, old: &Row, new: Row) -> SqlResult<Row> {
    let new = finish_row(t, new)?;
    let old_pk = rows::primary_key(t, old)?;
    let new_pk = rows::primary_key(t, &new)?;
    if new_pk != old_pk && ctx.txn.get(&new_pk).await?.is_some() {
        return Err(unique_violation(&t.primary_index));
    }
    check_unique(ctx, t, &new, Some(&old_pk)).await?;
    write_row(ctx, t, Some(old), &new)?;
    Ok(new)
}

/// Deletes a row and its index entries.
fn delete_row(ctx: &mut Ctx<'_>, t: &TableDesc, row: &Row) -> SqlResult<()> {
    ctx.txn.delete(&rows::primary_key(t, row)?)?;
    for idx in &t.secondary_indexes {
        let (k, _) = rows::index_entry(t, idx, row)?;
        ctx.txn.delete(&k)?;
    }
    Ok(())
}

/// Checks that `new` violates no unique index against other rows (`own_pk`: its own old
/// primary key when updating).
async fn check_unique(
    ctx: &mut Ctx<'_>,
    t: &TableDesc,
    new: &Row,
    own_pk: Option<&[u8]>,
) -> SqlResult<()> {
    for idx in t.secondary_indexes.iter().filter(|i| i.unique) {
        if unique_conflict(ctx, t, idx, new, own_pk).await?.is_some() {
            return Err(unique_violation(idx));
        }
    }
    Ok(())
}

/// A compiled RETURNING list over the table's columns.
struct Returning {
    columns: Vec<OutCol>,
    exprs: Vec<Expr>,
}

fn compile_returning(
    ctx: &Ctx<'_>,
    t: &TableDesc,
    items: Option<&Vec<ast::SelectItem>>,
) -> SqlResult<Option<Returning>> {
    let Some(items) = items else { return Ok(None) };
    let scope = Scope {
        cols: table_scope_cols(t, &t.name),
    };
    let c = ctx.compiler(&scope, None, &NoSubqueries);
    let mut columns = Vec::new();
    let mut exprs = Vec::new();
    for item in items {
        match item {
            ast::SelectItem::Wildcard(_) => {
                for (i, col) in t.columns.iter().enumerate() {
                    if !col.hidden {
                        columns.push(OutCol {
                            name: col.name.clone(),
                            typ: Some(col.typ.clone()),
                        });
                        exprs.push(Expr::Col(i));
                    }
                }
            }
            ast::SelectItem::UnnamedExpr(e) => {
                let x = c.compile(e)?;
                columns.push(OutCol {
                    name: query::output_name(e),
                    typ: c.type_of(&x),
                });
                exprs.push(x);
            }
            ast::SelectItem::ExprWithAlias { expr, alias } => {
                let x = c.compile(expr)?;
                columns.push(OutCol {
                    name: ident(alias),
                    typ: c.type_of(&x),
                });
                exprs.push(x);
            }
            other => {
                return Err(SqlError::new(
                    code::FEATURE_NOT_SUPPORTED,
                    format!("unsupported RETURNING item {other}"),
                ));
            }
        }
    }
    Ok(Some(Returning { columns, exprs }))
}

impl Returning {
    fn row(&self, ctx: &Ctx<'_>, row: &Row) -> SqlResult<Row> {
        let ectx = ctx.eval_ctx(&[]);
        self.exprs.iter().map(|e| e.eval(row, &ectx)).collect()
    }
}

fn finish(count: usize, returning: Option<Returning>, rows: Vec<Row>) -> DmlResult {
    DmlResult {
        count,
        returning: returning.map(|r| (r.columns, rows)),
    }
}

/// Checks that the session may write to the table.
async fn require_write(ctx: &mut Ctx<'_>, t: &TableDesc, privilege: &str) -> SqlResult<()> {
    crate::privileges::require_table(ctx, t, privilege).await
}

/// INSERT (and UPSERT when `upsert`).
pub async fn insert(ctx: &mut Ctx<'_>, ins: &ast::Insert, upsert: bool) -> SqlResult<DmlResult> {
    let name = match &ins.table {
        ast::TableObject::TableName(n) => n.clone(),
        other => {
            return Err(SqlError::new(
                code::FEATURE_NOT_SUPPORTED,
                format!("INSERT into {other}"),
            ));
        }
    };
    let t = table_for_write(ctx, &name).await?;
    require_write(ctx, &t, "INSERT").await?;
    if upsert || ins.on.is_some() {
        require_write(ctx, &t, "UPDATE").await?;
    }
    // Target columns.
    let targets: Vec<usize> = if ins.columns.is_empty() {
        (0..t.columns.len())
            .filter(|i| !t.columns[*i].hidden)
            .collect()
    } else {
        let mut v = Vec::new();
        for c in &ins.columns {
            let i = column_index(&t, &expr::object_name_last(c))?;
            if v.contains(&i) {
                return Err(SqlError::new(
                    code::DUPLICATE_COLUMN,
                    format!(
                        "multiple assignments to the same column \"{}\"",
                        t.columns[i].name
                    ),
                ));
            }
            v.push(i);
        }
        v
    };
    let returning = compile_returning(ctx, &t, ins.returning.as_ref())?;
    // Conflict handling.
    enum OnConflict {
        Error,
        Nothing(Option<Vec<usize>>),
        Update(Option<Vec<usize>>, Vec<(usize, Expr)>, Option<Expr>),
    }
    // DO UPDATE expressions see the existing row, then `excluded` (the proposed row).
    let mut excluded_scope = Scope {
        cols: table_scope_cols(&t, &t.name),
    };
    excluded_scope.cols.extend(table_scope_cols(&t, "excluded"));
    let conflict = match &ins.on {
        None => OnConflict::Error,
        Some(ast::OnInsert::OnConflict(oc)) => {
            let target = match &oc.conflict_target {
                Some(ast::ConflictTarget::Columns { columns: cols, .. }) => Some(
                    cols.iter()
                        .map(|c| column_index(&t, &ident(c)))
                        .collect::<SqlResult<Vec<_>>>()?,
                ),
                Some(ast::ConflictTarget::OnConstraint(n)) => {
                    let n = expr::object_name_last(n);
                    let idx = std::iter::once(&t.primary_index)
                        .chain(&t.secondary_indexes)
                        .find(|i| i.name == n)
                        .ok_or_else(|| {
                            SqlError::new(
                                code::UNDEFINED_OBJECT,
                                format!("constraint \"{n}\" does not exist"),
                            )
                        })?;
                    Some(
                        idx.columns
                            .iter()
                            .map(|(id, _)| rows::column_position(&t, *id))
                            .collect::<SqlResult<Vec<_>>>()?,
                    )
                }
                None => None,
            };
            match &oc.action {
                ast::OnConflictAction::DoNothing => OnConflict::Nothing(target),
                ast::OnConflictAction::DoUpdate(du) => {
                    if target.is_none() {
                        return Err(SqlError::syntax(
                            "ON CONFLICT DO UPDATE requires a conflict target, e.g. ON CONFLICT (id)",
                        ));
                    }
                    let c = ctx.compiler(&excluded_scope, None, &NoSubqueries);
                    let mut sets = Vec::new();
                    for a in &du.assignments {
                        let ast::AssignmentTarget::ColumnName(n) = &a.target else {
                            return Err(SqlError::new(
                                code::FEATURE_NOT_SUPPORTED,
                                "tuple assignment",
                            ));
                        };
                        let i = column_index(&t, &expr::object_name_last(n))?;
                        sets.push((i, c.compile_as(&a.value, Some(t.columns[i].typ.clone()))?));
                    }
                    let wh = du.selection.as_ref().map(|w| c.compile(w)).transpose()?;
                    OnConflict::Update(target, sets, wh)
                }
            }
        }
        Some(other) => {
            return Err(SqlError::new(
                code::FEATURE_NOT_SUPPORTED,
                format!("unsupported ON clause {other}"),
            ));
        }
    };
    // The index a conflict target names (primary key or a unique index).
    let target_index = |cols: &Option<Vec<usize>>| -> SqlResult<Option<IndexDesc>> {
        let Some(cols) = cols else { return Ok(None) };
        let mut want: Vec<u32> = cols.iter().map(|i| t.columns[*i].id).collect();
        want.sort_unstable();
        for idx in
            std::iter::once(&t.primary_index).chain(t.secondary_indexes.iter().filter(|i| i.unique))
        {
            let mut have: Vec<u32> = idx.columns.iter().map(|(id, _)| *id).collect();
            have.sort_unstable();
            if have == want {
                return Ok(Some(idx.clone()));
            }
        }
        Err(SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            "there is no unique or exclusion constraint matching the ON CONFLICT specification",
        ))
    };
    // Source rows.
    let source = ins
        .source
        .as_ref()
        .ok_or_else(|| SqlError::syntax("INSERT needs VALUES or a query"))?;
    let mut proposed: Vec<Row> = Vec::new();
    match source.body.as_ref() {
        ast::SetExpr::Values(values) if source.order_by.is_none() => {
            let scope = Scope::default();
            let c = ctx.compiler(&scope, None, &NoSubqueries);
            let mut compiled = Vec::with_capacity(values.rows.len());
            for r in &values.rows {
                if r.len() != targets.len() {
                    return Err(SqlError::syntax(format!(
                        "INSERT has {} target columns but {} expressions",
                        targets.len(),
                        r.len()
                    )));
                }
                let mut exprs = Vec::with_capacity(r.len());
                for (e, ti) in r.iter().zip(&targets) {
                    exprs.push(match e {
                        ast::Expr::Identifier(i)
                            if i.value.eq_ignore_ascii_case("default")
                                && i.quote_style.is_none() =>
                        {
                            None
                        }
                        _ => Some(c.compile_as(e, Some(t.columns[*ti].typ.clone()))?),
                    });
                }
                compiled.push(exprs);
            }
            if !ctx.describe_only {
                let ectx = ctx.eval_ctx(&[]);
                for exprs in compiled {
                    let mut vals = Vec::with_capacity(exprs.len());
                    for e in exprs {
                        vals.push(match e {
                            Some(e) => Some(e.eval(&[], &ectx)?),
                            None => None,
                        });
                    }
                    proposed.push(vals.into_iter().map(|v| v.unwrap_or(Datum::Null)).collect());
                }
            }
        }
        _ => {
            let plan = query::plan_query(ctx, source, None).await?;
            if plan.columns.len() != targets.len() {
                return Err(SqlError::syntax(format!(
                    "INSERT has {} target columns but the query returns {}",
                    targets.len(),
                    plan.columns.len()
                )));
            }
            if !ctx.describe_only {
                proposed = plan.run(&ctx.params, &ctx.session, &[])?;
            }
        }
    }
    if ctx.describe_only {
        return Ok(finish(0, returning, Vec::new()));
    }
    // Defaults for columns not given.
    let defaults: Vec<Option<Expr>> = t
        .columns
        .iter()
        .map(|c| {
            c.default_expr
                .as_deref()
                .map(|d| default_expr(ctx, d))
                .transpose()
        })
        .collect::<SqlResult<_>>()?;
    let mut count = 0;
    let mut returned = Vec::new();
    for values in proposed {
        let mut row = vec![Datum::Null; t.columns.len()];
        let mut given = vec![false; t.columns.len()];
        for (v, ti) in values.into_iter().zip(&targets) {
            row[*ti] = v;
            given[*ti] = true;
        }
        // An explicit DEFAULT in VALUES arrives as NULL for a column with a default only
        // when it was written as DEFAULT; plain NULLs stay NULL.
        let ectx = ctx.eval_ctx(&[]);
        for (i, d) in defaults.iter().enumerate() {
            if !given[i]
                && let Some(d) = d
            {
                row[i] = d.eval(&[], &ectx)?;
            }
        }
        let row = finish_row(&t, row)?;
        let pk = rows::primary_key(&t, &row)?;
        let existing = match ctx.txn.get(&pk).await? {
            Some(v) => Some(rows::decode_row(&t, &pk, &v)?),
            None => None,
        };
        if upsert {
            // UPSERT: the given columns replace those of an existing row.
            let new = match &existing {
                Some(old) => {
                    let mut merged = old.clone();
                    for (i, g) in given.iter().enumerate() {
                        if *g {
                            merged[i] = row[i].clone();
                        }
                    }
                    merged
                }
                None => row,
            };
            check_unique(ctx, &t, &new, Some(&pk)).await?;
            write_row(ctx, &t, existing.as_ref(), &new)?;
            count += 1;
            if let Some(r) = &returning {
                returned.push(r.row(ctx, &new)?);
            }
            continue;
        }
        // Find a conflicting row: by the primary key, then by each unique index.
        let mut conflict_row: Option<(Row, IndexDesc)> =
            existing.map(|e| (e, t.primary_index.clone()));
        if conflict_row.is_none() {
            for idx in t.secondary_indexes.iter().filter(|i| i.unique) {
                if let Some(r) = unique_conflict(ctx, &t, idx, &row, None).await? {
                    conflict_row = Some((r, idx.clone()));
                    break;
                }
            }
        }
        match (&conflict, conflict_row) {
            (_, None) => {
                write_row(ctx, &t, None, &row)?;
                count += 1;
                if let Some(r) = &returning {
                    returned.push(r.row(ctx, &row)?);
                }
            }
            (OnConflict::Error, Some((_, idx))) => return Err(unique_violation(&idx)),
            (OnConflict::Nothing(target), Some((_, idx))) => {
                if let Some(want) = target_index(target)?
                    && want.id != idx.id
                {
                    return Err(unique_violation(&idx));
                }
            }
            (OnConflict::Update(target, sets, wh), Some((old, idx))) => {
                if let Some(want) = target_index(target)?
                    && want.id != idx.id
                {
                    return Err(unique_violation(&idx));
                }
                let mut both = old.clone();
                both.extend(row.iter().cloned());
                let ectx = ctx.eval_ctx(&[]);
                if let Some(w) = wh
                    && expr::truth(&w.eval(&both, &ectx)?)? != Some(true)
                {
                    continue;
                }
                let mut new = old.clone();
                for (i, e) in sets {
                    new[*i] = e.eval(&both, &ectx)?;
                }
                let new = update_row(ctx, &t, &old, new).await?;
                count += 1;
                if let Some(r) = &returning {
                    returned.push(r.row(ctx, &new)?);
                }
            }
        }
    }
    Ok(finish(count, returning, returned))
}

/// The rows of `t` a WHERE clause selects (read through the best index).
async fn matching_rows(
    ctx: &mut Ctx<'_>,
    t: &TableDesc,
    selection: Option<&ast::Expr>,
) -> SqlResult<Vec<Row>> {
    let scope = Scope {
        cols: table_scope_cols(t, &t.name),
    };
    let conj = match selection {
        Some(w) => {
            let c: Compiler<'_> = ctx.compiler(&scope, None, &NoSubqueries);
            let e = c.compile(w)?;
            c.hint(&e, Some(crate::descriptors::SqlType::Bool));
            e.conjuncts()
        }
        None => Vec::new(),
    };
    if ctx.describe_only {
        query::describe_access(ctx, t, &conj);
        return Ok(Vec::new());
    }
    query::read_table(ctx, t, &conj, None).await
}

/// UPDATE.
pub async fn update(ctx: &mut Ctx<'_>, u: &ast::Update) -> SqlResult<DmlResult> {
    if u.from.is_some() || !u.table.joins.is_empty() {
        return Err(SqlError::new(
            code::FEATURE_NOT_SUPPORTED,
            "UPDATE ... FROM",
        ));
    }
    let ast::TableFactor::Table { name, .. } = &u.table.relation else {
        return Err(SqlError::syntax("UPDATE needs a table name"));
    };
    let t = table_for_write(ctx, name).await?;
    require_write(ctx, &t, "UPDATE").await?;
    let scope = Scope {
        cols: table_scope_cols(&t, &t.name),
    };
    let mut sets = Vec::new();
    {
        let c = ctx.compiler(&scope, None, &NoSubqueries);
        for a in &u.assignments {
            match &a.target {
                ast::AssignmentTarget::ColumnName(n) => {
                    let i = column_index(&t, &expr::object_name_last(n))?;
                    sets.push((i, c.compile_as(&a.value, Some(t.columns[i].typ.clone()))?));
                }
                ast::AssignmentTarget::Tuple(_) => {
                    return Err(SqlError::new(
                        code::FEATURE_NOT_SUPPORTED,
                        "tuple assignment",
                    ));
                }
            }
        }
    }
    let returning = compile_returning(ctx, &t, u.returning.as_ref())?;
    let targets = matching_rows(ctx, &t, u.selection.as_ref()).await?;
    let mut returned = Vec::new();
    let mut count = 0;
    for old in targets {
        let ectx = ctx.eval_ctx(&[]);
        let mut new = old.clone();
        for (i, e) in &sets {
            new[*i] = e.eval(&old, &ectx)?;
        }
        let new = update_row(ctx, &t, &old, new).await?;
        count += 1;
        if let Some(r) = &returning {
            returned.push(r.row(ctx, &new)?);
        }
    }
    Ok(finish(count, returning, returned))
}

/// DELETE.
pub async fn delete(ctx: &mut Ctx<'_>, d: &ast::Delete) -> SqlResult<DmlResult> {
    let tables = match &d.from {
        ast::FromTable::WithFromKeyword(t) | ast::FromTable::WithoutKeyword(t) => t,
    };
    if tables.len() != 1 || !tables[0].joins.is_empty() || d.using.is_some() {
        return Err(SqlError::new(
            code::FEATURE_NOT_SUPPORTED,
            "DELETE from more than one table",
        ));
    }
    let ast::TableFactor::Table { name, .. } = &tables[0].relation else {
        return Err(SqlError::syntax("DELETE needs a table name"));
    };
    let t = table_for_write(ctx, name).await?;
    require_write(ctx, &t, "DELETE").await?;
    let returning = compile_returning(ctx, &t, d.returning.as_ref())?;
    let targets = matching_rows(ctx, &t, d.selection.as_ref()).await?;
    let mut returned = Vec::new();
    for row in &targets {
        delete_row(ctx, &t, row)?;
        if let Some(r) = &returning {
            returned.push(r.row(ctx, row)?);
        }
    }
    Ok(finish(targets.len(), returning, returned))
}

/// Writes every row's entry of a new index (CREATE INDEX backfill); fails on a duplicate
/// for a unique index.
pub async fn backfill_index(ctx: &mut Ctx<'_>, t: &TableDesc, idx: &IndexDesc) -> SqlResult<usize> {
    let all = query::read_table(ctx, t, &[], None).await?;
    for row in &all {
        let (k, v) = rows::index_entry(t, idx, row)?;
        if idx.unique
            && !idx
                .columns
                .iter()
                .any(|(id, _)| rows::column_position(t, *id).is_ok_and(|p| row[p].is_null()))
            && ctx.txn.get(&k).await?.is_some()
        {
            return Err(unique_violation(idx));
        }
        ctx.txn.put(&k, v)?;
    }
    Ok(all.len())
}

/// Rewrites every row (ALTER TABLE ADD COLUMN with a default).
pub async fn rewrite_rows(
    ctx: &mut Ctx<'_>,
    old: &TableDesc,
    new: &TableDesc,
    fill: &(dyn Fn(&mut Row) -> SqlResult<()> + Sync),
) -> SqlResult<usize> {
    let all = query::read_table(ctx, old, &[], None).await?;
    for row in &all {
        let mut r = row.clone();
        r.resize(new.columns.len(), Datum::Null);
        fill(&mut r)?;
        let r = finish_row(new, r)?;
        ctx.txn
            .put(&rows::primary_key(new, &r)?, rows::primary_value(new, &r))?;
    }
    Ok(all.len())
}

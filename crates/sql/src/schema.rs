//! Schema changes on tables: CREATE/DROP INDEX, DROP TABLE/DATABASE, ALTER TABLE (ADD
//! COLUMN, RENAME, RENAME COLUMN, DROP COLUMN), TRUNCATE. Each runs in the statement's
//! transaction: the descriptor change and the rows it implies commit together, except that
//! rows made unreachable (a dropped table or index, a truncated table's old indexes) are
//! deleted after the commit in bounded batches (see [`clear_span`]), so that no statement
//! needs a Raft command as large as the table.

use crate::datum::Datum;
use crate::descriptors::{self, ColumnDesc, IndexDesc, IndexDirection, TableDesc};
use crate::dml;
use crate::error::{SqlError, SqlResult, code};
use crate::expr::{NoSubqueries, Scope, ident, object_name_last};
use crate::query::{self, Ctx, TableRef};
use sqlparser::ast;
use storage::Span;

async fn require_admin(ctx: &mut Ctx<'_>, what: &str) -> SqlResult<()> {
    crate::privileges::require_admin(ctx.txn, &ctx.session.user, what).await
}

async fn table(ctx: &mut Ctx<'_>, name: &ast::ObjectName) -> SqlResult<TableDesc> {
    match query::resolve_table(ctx, name).await? {
        TableRef::Table(t) => Ok(t),
        TableRef::Virtual(v) => Err(SqlError::privilege(format!(
            "{v} is a virtual catalog table"
        ))),
    }
}

/// Deletes every KV under `span` once the statement's transaction commits: the descriptor
/// change that makes the rows unreachable commits in the transaction, and the rows are
/// deleted after it in bounded batches, so a table larger than `kv.raft.command.max_size`
/// can be dropped or truncated (a rolled-back transaction deletes nothing).
fn clear_span(ctx: &mut Ctx<'_>, span: &Span) -> SqlResult<()> {
    Ok(ctx.txn.clear_span_after_commit(span)?)
}

/// CREATE [UNIQUE] INDEX.
pub async fn create_index(ctx: &mut Ctx<'_>, ci: &ast::CreateIndex) -> SqlResult<()> {
    require_admin(ctx, "create indexes").await?;
    let mut t = table(ctx, &ci.table_name).await?;
    if ci.predicate.is_some() {
        return Err(SqlError::new(
            code::FEATURE_NOT_SUPPORTED,
            "partial indexes",
        ));
    }
    let mut cols = Vec::with_capacity(ci.columns.len());
    let mut names = Vec::new();
    for c in &ci.columns {
        let name = match &c.column.expr {
            ast::Expr::Identifier(i) => ident(i),
            other => {
                return Err(SqlError::new(
                    code::FEATURE_NOT_SUPPORTED,
                    format!("index on expression {other}"),
                ));
            }
        };
        let col = t.columns.iter().find(|x| x.name == name).ok_or_else(|| {
            SqlError::new(
                code::UNDEFINED_COLUMN,
                format!("column \"{name}\" does not exist"),
            )
        })?;
        if col.typ == descriptors::SqlType::Jsonb {
            return Err(SqlError::new(
                code::FEATURE_NOT_SUPPORTED,
                format!("column {name} is of type JSONB and thus is not indexable"),
            ));
        }
        let dir = if matches!(c.column.options.sort, Some(ast::OrderBySort::Desc)) {
            IndexDirection::Desc
        } else {
            IndexDirection::Asc
        };
        cols.push((col.id, dir));
        names.push(name);
    }
    let name = match &ci.name {
        Some(n) => object_name_last(n),
        None => format!(
            "{}_{}_{}",
            t.name,
            names.join("_"),
            if ci.unique { "key" } else { "idx" }
        ),
    };
    let exists = std::iter::once(&t.primary_index)
        .chain(&t.secondary_indexes)
        .any(|i| i.name == name);
    if exists {
        if ci.if_not_exists {
            return Ok(());
        }
        return Err(SqlError::new(
            code::DUPLICATE_TABLE,
            format!("index \"{name}\" already exists"),
        ));
    }
    let idx = IndexDesc {
        id: t.next_index_id,
        name,
        unique: ci.unique,
        columns: cols,
    };
    t.next_index_id += 1;
    dml::backfill_index(ctx, &t, &idx).await?;
    t.secondary_indexes.push(idx);
    descriptors::update_table(ctx.txn, &mut t)
}

/// The table holding index `name` in the current database (`table@index` also works).
async fn find_index(
    ctx: &mut Ctx<'_>,
    name: &ast::ObjectName,
) -> SqlResult<Option<(TableDesc, String)>> {
    let full = object_name_last(name);
    if let Some((t, i)) = full.split_once('@') {
        let tn = ast::ObjectName::from(vec![ast::Ident::new(t)]);
        let t = table(ctx, &tn).await?;
        return Ok(Some((t, i.to_string())));
    }
    for t in descriptors::list_tables(ctx.txn, ctx.db.id).await? {
        if t.secondary_indexes.iter().any(|i| i.name == full) || t.primary_index.name == full {
            return Ok(Some((t, full)));
        }
    }
    Ok(None)
}

/// DROP TABLE / INDEX / DATABASE.
pub async fn drop(
    ctx: &mut Ctx<'_>,
    object_type: &ast::ObjectType,
    names: &[ast::ObjectName],
    if_exists: bool,
    cascade: bool,
) -> SqlResult<()> {
    require_admin(ctx, "drop objects").await?;
    for name in names {
        match object_type {
            ast::ObjectType::Table => {
                let t = match query::resolve_table(ctx, name).await {
                    Ok(TableRef::Table(t)) => t,
                    Ok(TableRef::Virtual(v)) => {
                        return Err(SqlError::privilege(format!(
                            "{v} is a virtual catalog table"
                        )));
                    }
                    Err(e) if e.code == code::UNDEFINED_TABLE && if_exists => continue,
                    Err(e) => return Err(e),
                };
                clear_span(ctx, &descriptors::table_span(t.id))?;
                descriptors::delete_table(ctx.txn, &t)?;
            }
            ast::ObjectType::Index => {
                let Some((mut t, idx_name)) = find_index(ctx, name).await? else {
                    if if_exists {
                        continue;
                    }
                    return Err(SqlError::new(
                        code::UNDEFINED_OBJECT,
                        format!("index \"{}\" does not exist", object_name_last(name)),
                    ));
                };
                if t.primary_index.name == idx_name {
                    return Err(SqlError::new(
                        code::FEATURE_NOT_SUPPORTED,
                        format!(
                            "cannot drop the primary index {idx_name} of table {}",
                            t.name
                        ),
                    ));
                }
                let Some(pos) = t.secondary_indexes.iter().position(|i| i.name == idx_name) else {
                    if if_exists {
                        continue;
                    }
                    return Err(SqlError::new(
                        code::UNDEFINED_OBJECT,
                        format!("index \"{idx_name}\" does not exist"),
                    ));
                };
                let idx = t.secondary_indexes.remove(pos);
                clear_span(ctx, &Span::prefix(&descriptors::index_prefix(t.id, idx.id)))?;
                descriptors::update_table(ctx.txn, &mut t)?;
            }
            ast::ObjectType::Database => {
                let n = object_name_last(name);
                let Some(db) = descriptors::database_by_name(ctx.txn, &n).await? else {
                    if if_exists {
                        continue;
                    }
                    return Err(SqlError::new(
                        code::INVALID_CATALOG_NAME,
                        format!("database \"{n}\" does not exist"),
                    ));
                };
                if n == ctx.db.name {
                    return Err(SqlError::new(
                        code::OBJECT_IN_USE,
                        format!("cannot drop the current database \"{n}\""),
                    )
                    .with_hint("switch to another database first (USE defaultdb)"));
                }
                let tables = descriptors::list_tables(ctx.txn, db.id).await?;
                if !tables.is_empty() && !cascade {
                    return Err(SqlError::new(
                        code::DEPENDENT_OBJECTS_STILL_EXIST,
                        format!("database \"{n}\" is not empty and CASCADE was not specified"),
                    ));
                }
                for t in tables {
                    clear_span(ctx, &descriptors::table_span(t.id))?;
                    descriptors::delete_table(ctx.txn, &t)?;
                }
                descriptors::delete_database(ctx.txn, &db)?;
            }
            other => {
                return Err(SqlError::new(
                    code::FEATURE_NOT_SUPPORTED,
                    format!("DROP {other}"),
                ));
            }
        }
    }
    Ok(())
}

/// Empties `t` as CockroachDB does: every index gets a fresh id, so the table's rows live
/// under new, empty prefixes from this transaction's commit on; the old prefixes are
/// cleared after the commit. Concurrent writers read the descriptor, whose version this
/// bumps, so none of them commits into an old prefix.
fn truncate_table(ctx: &mut Ctx<'_>, mut t: TableDesc) -> SqlResult<()> {
    let indexes = std::iter::once(&mut t.primary_index).chain(t.secondary_indexes.iter_mut());
    let mut old_ids = Vec::new();
    for idx in indexes {
        old_ids.push(idx.id);
        idx.id = t.next_index_id;
        t.next_index_id += 1;
    }
    descriptors::update_table(ctx.txn, &mut t)?;
    for id in old_ids {
        clear_span(ctx, &Span::prefix(&descriptors::index_prefix(t.id, id)))?;
    }
    Ok(())
}

/// TRUNCATE.
pub async fn truncate(ctx: &mut Ctx<'_>, names: &[ast::ObjectName]) -> SqlResult<()> {
    for name in names {
        let t = table(ctx, name).await?;
        crate::privileges::require_table(ctx, &t, "DELETE").await?;
        truncate_table(ctx, t)?;
    }
    Ok(())
}

/// ALTER TABLE.
pub async fn alter_table(ctx: &mut Ctx<'_>, at: &ast::AlterTable) -> SqlResult<()> {
    require_admin(ctx, "alter tables").await?;
    let mut t = match query::resolve_table(ctx, &at.name).await {
        Ok(TableRef::Table(t)) => t,
        Ok(TableRef::Virtual(v)) => {
            return Err(SqlError::privilege(format!(
                "{v} is a virtual catalog table"
            )));
        }
        Err(e) if e.code == code::UNDEFINED_TABLE && at.if_exists => return Ok(()),
        Err(e) => return Err(e),
    };
    for op in &at.operations {
        match op {
            ast::AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                ..
            } => {
                let name = ident(&column_def.name);
                if t.columns.iter().any(|c| c.name == name) {
                    if *if_not_exists {
                        continue;
                    }
                    return Err(SqlError::new(
                        code::DUPLICATE_COLUMN,
                        format!(
                            "column \"{name}\" of relation \"{}\" already exists",
                            t.name
                        ),
                    ));
                }
                let (typ, serial) = crate::ddl::map_type(&column_def.data_type.to_string())?;
                let mut col = ColumnDesc {
                    id: t.next_column_id,
                    name: name.clone(),
                    typ,
                    nullable: true,
                    default_expr: serial.then(|| crate::ddl::UNIQUE_ROWID.to_string()),
                    hidden: false,
                };
                let mut unique = false;
                for opt in &column_def.options {
                    match &opt.option {
                        ast::ColumnOption::Null => col.nullable = true,
                        ast::ColumnOption::NotNull => col.nullable = false,
                        ast::ColumnOption::Default(e) => col.default_expr = Some(e.to_string()),
                        ast::ColumnOption::Unique(_) => unique = true,
                        other => {
                            return Err(SqlError::new(
                                code::FEATURE_NOT_SUPPORTED,
                                format!("column option {other} in ADD COLUMN"),
                            ));
                        }
                    }
                }
                let old = t.clone();
                t.next_column_id += 1;
                t.columns.push(col.clone());
                // Existing rows get the default (or NULL, which NOT NULL refuses).
                let default = match &col.default_expr {
                    Some(d) => {
                        let e = sqlparser::parser::Parser::new(
                            &sqlparser::dialect::PostgreSqlDialect {},
                        )
                        .try_with_sql(d)
                        .and_then(|mut p| p.parse_expr())
                        .map_err(|e| SqlError::syntax(e.to_string()))?;
                        let scope = Scope::default();
                        Some(ctx.compiler(&scope, None, &NoSubqueries).compile(&e)?)
                    }
                    None => None,
                };
                let pos = t.columns.len() - 1;
                rewrite(ctx, &old, &t.clone(), default.as_ref(), pos).await?;
                if unique {
                    let idx = IndexDesc {
                        id: t.next_index_id,
                        name: format!("{}_{}_key", t.name, name),
                        unique: true,
                        columns: vec![(col.id, IndexDirection::Asc)],
                    };
                    t.next_index_id += 1;
                    dml::backfill_index(ctx, &t, &idx).await?;
                    t.secondary_indexes.push(idx);
                }
            }
            ast::AlterTableOperation::RenameTable { table_name } => {
                let to = match table_name {
                    ast::RenameTableNameKind::As(n) | ast::RenameTableNameKind::To(n) => {
                        object_name_last(n)
                    }
                };
                descriptors::rename_table(ctx.txn, &mut t, &to).await?;
                return Ok(());
            }
            ast::AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => {
                let (old, new) = (ident(old_column_name), ident(new_column_name));
                if t.columns.iter().any(|c| c.name == new) {
                    return Err(SqlError::new(
                        code::DUPLICATE_COLUMN,
                        format!("column \"{new}\" of relation \"{}\" already exists", t.name),
                    ));
                }
                let c = t
                    .columns
                    .iter_mut()
                    .find(|c| c.name == old)
                    .ok_or_else(|| {
                        SqlError::new(
                            code::UNDEFINED_COLUMN,
                            format!("column \"{old}\" does not exist"),
                        )
                    })?;
                c.name = new;
            }
            ast::AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                for n in column_names {
                    let name = ident(n);
                    let Some(pos) = t.columns.iter().position(|c| c.name == name && !c.hidden)
                    else {
                        if *if_exists {
                            continue;
                        }
                        return Err(SqlError::new(
                            code::UNDEFINED_COLUMN,
                            format!("column \"{name}\" does not exist"),
                        ));
                    };
                    let id = t.columns[pos].id;
                    if t.primary_index.columns.iter().any(|(c, _)| *c == id) {
                        return Err(SqlError::new(
                            code::FEATURE_NOT_SUPPORTED,
                            format!("column \"{name}\" is referenced by the primary key"),
                        ));
                    }
                    if t.secondary_indexes
                        .iter()
                        .any(|i| i.columns.iter().any(|(c, _)| *c == id))
                    {
                        return Err(SqlError::new(
                            code::DEPENDENT_OBJECTS_STILL_EXIST,
                            format!(
                                "column \"{name}\" is referenced by an index; drop the index first"
                            ),
                        ));
                    }
                    // Stored values of a dropped column are skipped when rows are read.
                    t.columns.remove(pos);
                }
            }
            other => {
                return Err(SqlError::new(
                    code::FEATURE_NOT_SUPPORTED,
                    format!("ALTER TABLE {other}"),
                ));
            }
        }
    }
    descriptors::update_table(ctx.txn, &mut t)
}

/// Rewrites every row of `old` as a row of `new`, filling column `pos` from `default`.
async fn rewrite(
    ctx: &mut Ctx<'_>,
    old: &TableDesc,
    new: &TableDesc,
    default: Option<&crate::expr::Expr>,
    pos: usize,
) -> SqlResult<()> {
    let (params, session) = (ctx.params.clone(), ctx.session.clone());
    let fill = move |row: &mut Vec<Datum>| -> SqlResult<()> {
        if let Some(d) = default {
            let ectx = crate::expr::EvalCtx {
                params: &params,
                outer: &[],
                session: &session,
            };
            row[pos] = d.eval(&[], &ectx)?;
        }
        Ok(())
    };
    dml::rewrite_rows(ctx, old, new, &fill).await?;
    Ok(())
}

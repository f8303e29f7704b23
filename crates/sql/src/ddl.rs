//! Table DDL: turns a parsed `CREATE TABLE` into a [`TableDesc`] (columns, types, defaults,
//! the primary key, unique constraints as unique secondary indexes, a hidden `rowid` when no
//! primary key is given).

use crate::descriptors::{ColumnDesc, IndexDesc, IndexDirection, SqlType, TableDesc};
use crate::error::{SqlError, SqlResult, code};
use sqlparser::ast::{ColumnOption, CreateTable, Expr, TableConstraint};

/// SQLSTATEs of DDL errors.
const UNDEFINED_COLUMN: &str = "42703";
const DUPLICATE_COLUMN: &str = "42701";
const INVALID_TABLE_DEFINITION: &str = "42P16";

/// Index key columns by name, with direction.
type KeyColumns = Vec<(String, IndexDirection)>;

/// The default of the hidden `rowid` and of `SERIAL` columns.
pub const UNIQUE_ROWID: &str = "unique_rowid()";

/// Maps a SQL type name (as sqlparser prints it) to a roach type; `SERIAL` types also imply
/// a default of [`UNIQUE_ROWID`].
pub fn map_type(printed: &str) -> SqlResult<(SqlType, bool)> {
    let lower = printed.trim().to_ascii_lowercase();
    let (base, arg) = match lower.split_once('(') {
        Some((b, rest)) => (
            b.trim().to_string(),
            rest.trim_end_matches(')').trim().to_string(),
        ),
        None => (lower.clone(), String::new()),
    };
    let len = || arg.parse::<u32>().ok();
    Ok(match base.as_str() {
        "int" | "integer" | "int2" | "int4" | "int8" | "bigint" | "smallint" | "int64" => {
            (SqlType::Int, false)
        }
        "serial" | "serial4" | "serial8" | "bigserial" | "smallserial" => (SqlType::Int, true),
        "float" | "float8" | "float4" | "real" | "double" | "double precision" => {
            (SqlType::Float, false)
        }
        "decimal" | "numeric" | "dec" => (SqlType::Decimal, false),
        "string" | "text" => (SqlType::String { max_len: None }, false),
        "varchar" | "character varying" | "char" | "character" => {
            (SqlType::String { max_len: len() }, false)
        }
        "bytes" | "bytea" | "blob" => (SqlType::Bytes, false),
        "bool" | "boolean" => (SqlType::Bool, false),
        "uuid" => (SqlType::Uuid, false),
        "timestamp" | "timestamp without time zone" => (SqlType::Timestamp, false),
        "timestamptz" | "timestamp with time zone" => (SqlType::TimestampTz, false),
        "date" => (SqlType::Date, false),
        "interval" => (SqlType::Interval, false),
        "jsonb" | "json" => (SqlType::Jsonb, false),
        _ => {
            return Err(SqlError::new(code::FEATURE_NOT_SUPPORTED, format!("unsupported type {printed}")).with_hint(
                "supported: INT, SERIAL, FLOAT, DECIMAL, STRING/TEXT/VARCHAR(n), BYTES, BOOL, UUID, TIMESTAMP, TIMESTAMPTZ, DATE, INTERVAL, JSONB",
            ));
        }
    })
}

/// How a type prints in `SHOW COLUMNS` and `SHOW CREATE TABLE`.
pub fn type_name(t: &SqlType) -> String {
    match t {
        SqlType::Int => "INT8".into(),
        SqlType::Float => "FLOAT8".into(),
        SqlType::Decimal => "DECIMAL".into(),
        SqlType::String { max_len: None } => "STRING".into(),
        SqlType::String { max_len: Some(n) } => format!("VARCHAR({n})"),
        SqlType::Bytes => "BYTES".into(),
        SqlType::Bool => "BOOL".into(),
        SqlType::Uuid => "UUID".into(),
        SqlType::Timestamp => "TIMESTAMP".into(),
        SqlType::TimestampTz => "TIMESTAMPTZ".into(),
        SqlType::Date => "DATE".into(),
        SqlType::Interval => "INTERVAL".into(),
        SqlType::Jsonb => "JSONB".into(),
    }
}

fn index_column_name(e: &Expr) -> SqlResult<String> {
    match e {
        Expr::Identifier(i) => Ok(i.value.to_lowercase()),
        other => Err(SqlError::new(
            code::FEATURE_NOT_SUPPORTED,
            format!("index on expression {other} is not supported"),
        )),
    }
}

/// The table a `CREATE TABLE` describes, in database `database_id` (its id is assigned when
/// it is stored).
pub fn table_from_ast(database_id: u64, ct: &CreateTable) -> SqlResult<TableDesc> {
    let name = ct
        .name
        .0
        .last()
        .map(|p| p.to_string().trim_matches('"').to_lowercase())
        .ok_or_else(|| SqlError::syntax("CREATE TABLE needs a table name"))?;
    let mut columns: Vec<ColumnDesc> = Vec::new();
    let mut primary: Option<KeyColumns> = None;
    let mut uniques: Vec<(Option<String>, KeyColumns)> = Vec::new();
    let set_primary = |primary: &mut Option<KeyColumns>, cols| {
        if primary.is_some() {
            return Err(SqlError::new(
                INVALID_TABLE_DEFINITION,
                format!("multiple primary keys for table {name:?} are not allowed"),
            ));
        }
        *primary = Some(cols);
        Ok(())
    };
    for (i, def) in ct.columns.iter().enumerate() {
        let col_name = def.name.value.to_lowercase();
        if columns.iter().any(|c| c.name == col_name) {
            return Err(SqlError::new(
                DUPLICATE_COLUMN,
                format!("column {col_name:?} specified more than once"),
            ));
        }
        let (typ, serial) = map_type(&def.data_type.to_string())?;
        let mut col = ColumnDesc {
            id: (i + 1) as u32,
            name: col_name.clone(),
            typ,
            nullable: !serial,
            default_expr: serial.then(|| UNIQUE_ROWID.to_string()),
            hidden: false,
        };
        for opt in &def.options {
            match &opt.option {
                ColumnOption::Null => col.nullable = true,
                ColumnOption::NotNull => col.nullable = false,
                ColumnOption::Default(e) => col.default_expr = Some(e.to_string()),
                ColumnOption::PrimaryKey(_) => {
                    set_primary(&mut primary, vec![(col_name.clone(), IndexDirection::Asc)])?
                }
                ColumnOption::Unique(_) => {
                    uniques.push((None, vec![(col_name.clone(), IndexDirection::Asc)]))
                }
                other => {
                    return Err(SqlError::new(
                        code::FEATURE_NOT_SUPPORTED,
                        format!("column option {other} is not supported"),
                    ));
                }
            }
        }
        columns.push(col);
    }
    let key_columns =
        |cols: &[sqlparser::ast::IndexColumn]| -> SqlResult<Vec<(String, IndexDirection)>> {
            cols.iter()
                .map(|c| {
                    let dir = if matches!(
                        c.column.options.sort,
                        Some(sqlparser::ast::OrderBySort::Desc)
                    ) {
                        IndexDirection::Desc
                    } else {
                        IndexDirection::Asc
                    };
                    Ok((index_column_name(&c.column.expr)?, dir))
                })
                .collect()
        };
    for c in &ct.constraints {
        match c {
            TableConstraint::PrimaryKey(pk) => {
                set_primary(&mut primary, key_columns(&pk.columns)?)?
            }
            TableConstraint::Unique(u) => uniques.push((
                u.name.as_ref().map(|n| n.value.to_lowercase()),
                key_columns(&u.columns)?,
            )),
            other => {
                return Err(SqlError::new(
                    code::FEATURE_NOT_SUPPORTED,
                    format!("table constraint {other} is not supported"),
                ));
            }
        }
    }
    let id_of = |columns: &[ColumnDesc], n: &str| {
        columns
            .iter()
            .find(|c| c.name == n)
            .map(|c| c.id)
            .ok_or_else(|| SqlError::new(UNDEFINED_COLUMN, format!("column {n:?} does not exist")))
    };
    let primary_cols = match primary {
        Some(cols) => cols,
        None => {
            let id = columns.len() as u32 + 1;
            columns.push(ColumnDesc {
                id,
                name: "rowid".into(),
                typ: SqlType::Int,
                nullable: false,
                default_expr: Some(UNIQUE_ROWID.into()),
                hidden: true,
            });
            vec![("rowid".into(), IndexDirection::Asc)]
        }
    };
    let mut pk = Vec::with_capacity(primary_cols.len());
    for (n, d) in &primary_cols {
        let id = id_of(&columns, n)?;
        if let Some(c) = columns.iter_mut().find(|c| c.id == id) {
            c.nullable = false;
        }
        pk.push((id, *d));
    }
    let mut next_index_id = 2;
    let mut secondary = Vec::new();
    for (idx_name, cols) in uniques {
        let mut ids = Vec::with_capacity(cols.len());
        for (n, d) in &cols {
            ids.push((id_of(&columns, n)?, *d));
        }
        let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        secondary.push(IndexDesc {
            id: next_index_id,
            name: idx_name.unwrap_or_else(|| format!("{name}_{}_key", names.join("_"))),
            unique: true,
            columns: ids,
        });
        next_index_id += 1;
    }
    Ok(TableDesc {
        id: 0,
        database_id,
        name: name.clone(),
        next_column_id: columns.len() as u32 + 1,
        columns,
        primary_index: IndexDesc {
            id: 1,
            name: format!("{name}_pkey"),
            unique: true,
            columns: pk,
        },
        secondary_indexes: secondary,
        next_index_id,
        version: 1,
    })
}

/// `SHOW CREATE TABLE` text of a table.
pub fn show_create(t: &TableDesc) -> String {
    let col_name = |id: u32| {
        t.columns
            .iter()
            .find(|c| c.id == id)
            .map_or("?", |c| c.name.as_str())
            .to_string()
    };
    let key = |idx: &IndexDesc| {
        idx.columns
            .iter()
            .map(|(id, d)| {
                let dir = if *d == IndexDirection::Desc {
                    "DESC"
                } else {
                    "ASC"
                };
                format!("{} {dir}", col_name(*id))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines: Vec<String> = t
        .columns
        .iter()
        .filter(|c| !c.hidden)
        .map(|c| {
            let mut l = format!("\t{} {}", c.name, type_name(&c.typ));
            l.push_str(if c.nullable { " NULL" } else { " NOT NULL" });
            if let Some(d) = &c.default_expr {
                l.push_str(&format!(" DEFAULT {d}"));
            }
            l
        })
        .collect();
    if !t.columns.iter().any(|c| c.hidden) {
        lines.push(format!(
            "\tCONSTRAINT {} PRIMARY KEY ({})",
            t.primary_index.name,
            key(&t.primary_index)
        ));
    }
    for idx in &t.secondary_indexes {
        let unique = if idx.unique { "UNIQUE " } else { "" };
        lines.push(format!("\t{unique}INDEX {} ({})", idx.name, key(idx)));
    }
    format!("CREATE TABLE public.{} (\n{}\n)", t.name, lines.join(",\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;

    fn parse(sql: &str) -> SqlResult<TableDesc> {
        let stmt = sqlparser::parser::Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .expect("parses")
            .remove(0);
        match stmt {
            sqlparser::ast::Statement::CreateTable(ct) => table_from_ast(7, &ct),
            other => panic!("not CREATE TABLE: {other}"),
        }
    }

    // Goal: types, defaults, nullability, composite and inline primary keys, unique
    // constraints and the hidden rowid map onto the descriptor as documented.
    #[test]
    fn create_table_shapes() {
        let t = parse("CREATE TABLE accounts (id INT PRIMARY KEY, balance DECIMAL NOT NULL DEFAULT 0, name VARCHAR(20) UNIQUE, created TIMESTAMPTZ)").expect("ok");
        assert_eq!(t.name, "accounts");
        assert_eq!(t.primary_index.columns, vec![(1, IndexDirection::Asc)]);
        assert_eq!(t.columns[1].typ, SqlType::Decimal);
        assert!(!t.columns[1].nullable);
        assert_eq!(t.columns[1].default_expr.as_deref(), Some("0"));
        assert_eq!(t.columns[2].typ, SqlType::String { max_len: Some(20) });
        assert_eq!(t.secondary_indexes.len(), 1);
        assert!(t.secondary_indexes[0].unique);
        assert_eq!(t.secondary_indexes[0].name, "accounts_name_key");
        assert_eq!(t.columns[3].typ, SqlType::TimestampTz);

        let t = parse(
            "CREATE TABLE rides (city STRING, id UUID, t TIMESTAMP, PRIMARY KEY (city, id DESC))",
        )
        .expect("ok");
        assert_eq!(
            t.primary_index.columns,
            vec![(1, IndexDirection::Asc), (2, IndexDirection::Desc)]
        );
        assert!(!t.columns[0].nullable && !t.columns[1].nullable && t.columns[2].nullable);

        let t = parse("CREATE TABLE log (msg TEXT, n SERIAL)").expect("ok");
        let rowid = t.columns.last().expect("rowid");
        assert!(rowid.hidden && rowid.name == "rowid");
        assert_eq!(
            t.primary_index.columns,
            vec![(rowid.id, IndexDirection::Asc)]
        );
        assert_eq!(t.columns[1].default_expr.as_deref(), Some(UNIQUE_ROWID));
    }

    // Goal: SHOW CREATE TABLE prints the columns, the primary key and unique indexes, and
    // hides the rowid of a table without a primary key.
    #[test]
    fn show_create_text() {
        let t = parse("CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(20) UNIQUE)")
            .expect("ok");
        assert_eq!(
            show_create(&t),
            "CREATE TABLE public.accounts (\n\tid INT8 NOT NULL,\n\towner VARCHAR(20) NULL,\n\tCONSTRAINT accounts_pkey PRIMARY KEY (id ASC),\n\tUNIQUE INDEX accounts_owner_key (owner ASC)\n)"
        );
        let t = parse("CREATE TABLE log (msg TEXT)").expect("ok");
        assert_eq!(
            show_create(&t),
            "CREATE TABLE public.log (\n\tmsg STRING NULL\n)"
        );
    }

    // Goal: bad definitions fail with the PostgreSQL SQLSTATE for each mistake.
    #[test]
    fn create_table_errors() {
        assert_eq!(
            parse("CREATE TABLE t (a INT, a INT)")
                .expect_err("dup")
                .code,
            DUPLICATE_COLUMN
        );
        assert_eq!(
            parse("CREATE TABLE t (a INT, PRIMARY KEY (b))")
                .expect_err("undefined")
                .code,
            UNDEFINED_COLUMN
        );
        assert_eq!(
            parse("CREATE TABLE t (a INT PRIMARY KEY, b INT, PRIMARY KEY (b))")
                .expect_err("two pks")
                .code,
            INVALID_TABLE_DEFINITION
        );
        assert_eq!(
            parse("CREATE TABLE t (a GEOMETRY)").expect_err("type").code,
            code::FEATURE_NOT_SUPPORTED
        );
    }
}

//! Enough of `pg_catalog` and `information_schema` for drivers and `psql` (`\dt`, `\d`):
//! virtual tables built from the session's catalog when a query reads them.

use crate::datum::Datum;
use crate::expr::SessionInfo;

/// PostgreSQL type oids of roach's types.
pub mod oid {
    pub const BOOL: i64 = 16;
    pub const BYTEA: i64 = 17;
    pub const INT8: i64 = 20;
    pub const INT4: i64 = 23;
    pub const TEXT: i64 = 25;
    pub const OID: i64 = 26;
    pub const FLOAT8: i64 = 701;
    pub const VARCHAR: i64 = 1043;
    pub const DATE: i64 = 1082;
    pub const TIMESTAMP: i64 = 1114;
    pub const TIMESTAMPTZ: i64 = 1184;
    pub const INTERVAL: i64 = 1186;
    pub const NUMERIC: i64 = 1700;
    pub const UUID: i64 = 2950;
    pub const JSONB: i64 = 3802;
    pub const NAME: i64 = 19;
    pub const CHAR: i64 = 18;
}

/// `format_type(oid, typmod)`.
pub fn format_type(type_oid: i64) -> String {
    match type_oid {
        oid::BOOL => "boolean",
        oid::BYTEA => "bytea",
        oid::INT8 => "bigint",
        oid::INT4 => "integer",
        oid::TEXT => "text",
        oid::OID => "oid",
        oid::FLOAT8 => "double precision",
        oid::VARCHAR => "character varying",
        oid::DATE => "date",
        oid::TIMESTAMP => "timestamp without time zone",
        oid::TIMESTAMPTZ => "timestamp with time zone",
        oid::INTERVAL => "interval",
        oid::NUMERIC => "numeric",
        oid::UUID => "uuid",
        oid::JSONB => "jsonb",
        oid::NAME => "name",
        oid::CHAR => "\"char\"",
        _ => "unknown",
    }
    .to_string()
}

/// `pg_get_indexdef(oid)` and friends: the definition recorded when the catalog was read.
pub fn definition(session: &SessionInfo, _function: &str, object: i64) -> Datum {
    match session.definitions.lock() {
        Ok(defs) => defs
            .get(&object)
            .cloned()
            .map_or(Datum::Null, Datum::String),
        Err(_) => Datum::Null,
    }
}

use crate::descriptors::{self, SqlType, TableDesc};
use crate::error::SqlResult;
use crate::query::Ctx;

/// Namespace oids.
const PUBLIC_NS: i64 = 2200;
const PG_CATALOG_NS: i64 = 11;
const INFORMATION_SCHEMA_NS: i64 = 13_000;
/// The btree access method.
const BTREE_AM: i64 = 403;

/// The oid of index `index` of table `table`.
pub fn index_oid(table: u64, index: u32) -> i64 {
    1_000_000 + table as i64 * 100 + index as i64
}

/// The oid of the constraint backed by index `index` of table `table`.
pub fn constraint_oid(table: u64, index: u32) -> i64 {
    2_000_000_000 + table as i64 * 100 + index as i64
}

fn text() -> SqlType {
    SqlType::String { max_len: None }
}

/// The type oid of a column type.
pub fn type_oid(t: &SqlType) -> i64 {
    match t {
        SqlType::Int => oid::INT8,
        SqlType::Float => oid::FLOAT8,
        SqlType::Decimal => oid::NUMERIC,
        SqlType::String { max_len: None } => oid::TEXT,
        SqlType::String { max_len: Some(_) } => oid::VARCHAR,
        SqlType::Bytes => oid::BYTEA,
        SqlType::Bool => oid::BOOL,
        SqlType::Uuid => oid::UUID,
        SqlType::Timestamp => oid::TIMESTAMP,
        SqlType::TimestampTz => oid::TIMESTAMPTZ,
        SqlType::Date => oid::DATE,
        SqlType::Interval => oid::INTERVAL,
        SqlType::Jsonb => oid::JSONB,
    }
}

const TABLES: &[(&str, &[(&str, char)])] = &[
    (
        "pg_catalog.pg_namespace",
        &[
            ("oid", 'i'),
            ("nspname", 's'),
            ("nspowner", 'i'),
            ("nspacl", 's'),
        ],
    ),
    (
        "pg_catalog.pg_class",
        &[
            ("oid", 'i'),
            ("relname", 's'),
            ("relnamespace", 'i'),
            ("reltype", 'i'),
            ("reloftype", 'i'),
            ("relowner", 'i'),
            ("relam", 'i'),
            ("relfilenode", 'i'),
            ("reltablespace", 'i'),
            ("relpages", 'i'),
            ("reltuples", 'f'),
            ("relallvisible", 'i'),
            ("reltoastrelid", 'i'),
            ("relhasindex", 'b'),
            ("relisshared", 'b'),
            ("relpersistence", 's'),
            ("relkind", 's'),
            ("relnatts", 'i'),
            ("relchecks", 'i'),
            ("relhasrules", 'b'),
            ("relhastriggers", 'b'),
            ("relhassubclass", 'b'),
            ("relrowsecurity", 'b'),
            ("relforcerowsecurity", 'b'),
            ("relispopulated", 'b'),
            ("relreplident", 's'),
            ("relispartition", 'b'),
            ("relrewrite", 'i'),
            ("relfrozenxid", 'i'),
            ("relminmxid", 'i'),
            ("relacl", 's'),
            ("reloptions", 's'),
            ("relpartbound", 's'),
        ],
    ),
    (
        "pg_catalog.pg_attribute",
        &[
            ("attrelid", 'i'),
            ("attname", 's'),
            ("atttypid", 'i'),
            ("attstattarget", 'i'),
            ("attlen", 'i'),
            ("attnum", 'i'),
            ("attndims", 'i'),
            ("attcacheoff", 'i'),
            ("atttypmod", 'i'),
            ("attbyval", 'b'),
            ("attalign", 's'),
            ("attstorage", 's'),
            ("attcompression", 's'),
            ("attnotnull", 'b'),
            ("atthasdef", 'b'),
            ("atthasmissing", 'b'),
            ("attidentity", 's'),
            ("attgenerated", 's'),
            ("attisdropped", 'b'),
            ("attislocal", 'b'),
            ("attinhcount", 'i'),
            ("attcollation", 'i'),
            ("attacl", 's'),
            ("attoptions", 's'),
            ("attfdwoptions", 's'),
        ],
    ),
    (
        "pg_catalog.pg_type",
        &[
            ("oid", 'i'),
            ("typname", 's'),
            ("typnamespace", 'i'),
            ("typowner", 'i'),
            ("typlen", 'i'),
            ("typbyval", 'b'),
            ("typtype", 's'),
            ("typcategory", 's'),
            ("typispreferred", 'b'),
            ("typisdefined", 'b'),
            ("typdelim", 's'),
            ("typrelid", 'i'),
            ("typelem", 'i'),
            ("typarray", 'i'),
            ("typinput", 's'),
            ("typoutput", 's'),
            ("typreceive", 's'),
            ("typsend", 's'),
            ("typbasetype", 'i'),
            ("typtypmod", 'i'),
            ("typndims", 'i'),
            ("typcollation", 'i'),
            ("typnotnull", 'b'),
        ],
    ),
    (
        "pg_catalog.pg_index",
        &[
            ("indexrelid", 'i'),
            ("indrelid", 'i'),
            ("indnatts", 'i'),
            ("indnkeyatts", 'i'),
            ("indisunique", 'b'),
            ("indnullsnotdistinct", 'b'),
            ("indisprimary", 'b'),
            ("indisexclusion", 'b'),
            ("indimmediate", 'b'),
            ("indisclustered", 'b'),
            ("indisvalid", 'b'),
            ("indcheckxmin", 'b'),
            ("indisready", 'b'),
            ("indislive", 'b'),
            ("indisreplident", 'b'),
            ("indkey", 's'),
            ("indcollation", 's'),
            ("indclass", 's'),
            ("indoption", 's'),
            ("indexprs", 's'),
            ("indpred", 's'),
        ],
    ),
    (
        "pg_catalog.pg_attrdef",
        &[
            ("oid", 'i'),
            ("adrelid", 'i'),
            ("adnum", 'i'),
            ("adbin", 's'),
        ],
    ),
    (
        "pg_catalog.pg_constraint",
        &[
            ("oid", 'i'),
            ("conname", 's'),
            ("connamespace", 'i'),
            ("contype", 's'),
            ("condeferrable", 'b'),
            ("condeferred", 'b'),
            ("convalidated", 'b'),
            ("conrelid", 'i'),
            ("contypid", 'i'),
            ("conindid", 'i'),
            ("conparentid", 'i'),
            ("confrelid", 'i'),
            ("confupdtype", 's'),
            ("confdeltype", 's'),
            ("confmatchtype", 's'),
            ("conislocal", 'b'),
            ("coninhcount", 'i'),
            ("connoinherit", 'b'),
            ("conkey", 's'),
            ("confkey", 's'),
            ("conbin", 's'),
        ],
    ),
    (
        "pg_catalog.pg_am",
        &[
            ("oid", 'i'),
            ("amname", 's'),
            ("amhandler", 's'),
            ("amtype", 's'),
        ],
    ),
    (
        "pg_catalog.pg_roles",
        &[
            ("oid", 'i'),
            ("rolname", 's'),
            ("rolsuper", 'b'),
            ("rolinherit", 'b'),
            ("rolcreaterole", 'b'),
            ("rolcreatedb", 'b'),
            ("rolcanlogin", 'b'),
            ("rolreplication", 'b'),
            ("rolconnlimit", 'i'),
            ("rolpassword", 's'),
            ("rolvaliduntil", 's'),
            ("rolbypassrls", 'b'),
            ("rolconfig", 's'),
        ],
    ),
    (
        "pg_catalog.pg_user",
        &[
            ("usename", 's'),
            ("usesysid", 'i'),
            ("usecreatedb", 'b'),
            ("usesuper", 'b'),
        ],
    ),
    (
        "pg_catalog.pg_database",
        &[
            ("oid", 'i'),
            ("datname", 's'),
            ("datdba", 'i'),
            ("encoding", 'i'),
            ("datcollate", 's'),
            ("datctype", 's'),
            ("datistemplate", 'b'),
            ("datallowconn", 'b'),
            ("datconnlimit", 'i'),
            ("dattablespace", 'i'),
            ("datacl", 's'),
        ],
    ),
    (
        "pg_catalog.pg_inherits",
        &[
            ("inhrelid", 'i'),
            ("inhparent", 'i'),
            ("inhseqno", 'i'),
            ("inhdetachpending", 'b'),
        ],
    ),
    (
        "pg_catalog.pg_publication",
        &[
            ("oid", 'i'),
            ("pubname", 's'),
            ("puballtables", 'b'),
            ("pubinsert", 'b'),
            ("pubupdate", 'b'),
            ("pubdelete", 'b'),
            ("pubtruncate", 'b'),
            ("pubviaroot", 'b'),
        ],
    ),
    (
        "pg_catalog.pg_publication_rel",
        &[
            ("oid", 'i'),
            ("prpubid", 'i'),
            ("prrelid", 'i'),
            ("prqual", 's'),
            ("prattrs", 's'),
        ],
    ),
    (
        "pg_catalog.pg_publication_namespace",
        &[("oid", 'i'), ("pnpubid", 'i'), ("pnnspid", 'i')],
    ),
    (
        "pg_catalog.pg_policy",
        &[
            ("oid", 'i'),
            ("polname", 's'),
            ("polrelid", 'i'),
            ("polcmd", 's'),
            ("polpermissive", 'b'),
            ("polroles", 's'),
            ("polqual", 's'),
            ("polwithcheck", 's'),
        ],
    ),
    (
        "pg_catalog.pg_trigger",
        &[
            ("oid", 'i'),
            ("tgrelid", 'i'),
            ("tgparentid", 'i'),
            ("tgname", 's'),
            ("tgenabled", 's'),
            ("tgisinternal", 'b'),
        ],
    ),
    (
        "pg_catalog.pg_rewrite",
        &[("oid", 'i'), ("rulename", 's'), ("ev_class", 'i')],
    ),
    (
        "pg_catalog.pg_statistic_ext",
        &[
            ("oid", 'i'),
            ("stxrelid", 'i'),
            ("stxname", 's'),
            ("stxnamespace", 'i'),
            ("stxkind", 's'),
            ("stxstattarget", 'i'),
            ("stxkeys", 's'),
        ],
    ),
    (
        "pg_catalog.pg_collation",
        &[("oid", 'i'), ("collname", 's'), ("collnamespace", 'i')],
    ),
    (
        "pg_catalog.pg_description",
        &[
            ("objoid", 'i'),
            ("classoid", 'i'),
            ("objsubid", 'i'),
            ("description", 's'),
        ],
    ),
    (
        "pg_catalog.pg_tablespace",
        &[("oid", 'i'), ("spcname", 's')],
    ),
    (
        "pg_catalog.pg_foreign_table",
        &[("ftrelid", 'i'), ("ftserver", 'i'), ("ftoptions", 's')],
    ),
    (
        "pg_catalog.pg_partitioned_table",
        &[("partrelid", 'i'), ("partstrat", 's')],
    ),
    ("pg_catalog.pg_sequence", &[("seqrelid", 'i')]),
    (
        "pg_catalog.pg_settings",
        &[
            ("name", 's'),
            ("setting", 's'),
            ("unit", 's'),
            ("category", 's'),
            ("short_desc", 's'),
        ],
    ),
    (
        "pg_catalog.pg_extension",
        &[("oid", 'i'), ("extname", 's'), ("extversion", 's')],
    ),
    (
        "pg_catalog.pg_proc",
        &[
            ("oid", 'i'),
            ("proname", 's'),
            ("pronamespace", 'i'),
            ("prokind", 's'),
        ],
    ),
    (
        "pg_catalog.pg_enum",
        &[
            ("oid", 'i'),
            ("enumtypid", 'i'),
            ("enumsortorder", 'f'),
            ("enumlabel", 's'),
        ],
    ),
    (
        "pg_catalog.pg_range",
        &[("rngtypid", 'i'), ("rngsubtype", 'i')],
    ),
    (
        "pg_catalog.pg_stat_activity",
        &[
            ("datname", 's'),
            ("pid", 'i'),
            ("usename", 's'),
            ("application_name", 's'),
            ("state", 's'),
            ("query", 's'),
        ],
    ),
    (
        "information_schema.tables",
        &[
            ("table_catalog", 's'),
            ("table_schema", 's'),
            ("table_name", 's'),
            ("table_type", 's'),
            ("is_insertable_into", 's'),
        ],
    ),
    (
        "information_schema.columns",
        &[
            ("table_catalog", 's'),
            ("table_schema", 's'),
            ("table_name", 's'),
            ("column_name", 's'),
            ("ordinal_position", 'i'),
            ("column_default", 's'),
            ("is_nullable", 's'),
            ("data_type", 's'),
            ("character_maximum_length", 'i'),
            ("udt_name", 's'),
        ],
    ),
    (
        "information_schema.schemata",
        &[
            ("catalog_name", 's'),
            ("schema_name", 's'),
            ("schema_owner", 's'),
        ],
    ),
];

/// Whether an unqualified name is a `pg_catalog` table.
pub fn is_virtual(name: &str) -> bool {
    name.starts_with("pg_") && columns(&format!("pg_catalog.{name}")).is_some()
}

/// The columns of virtual table `name` (`schema.table`).
pub fn columns(name: &str) -> Option<Vec<(&'static str, SqlType)>> {
    TABLES.iter().find(|(n, _)| *n == name).map(|(_, cols)| {
        cols.iter()
            .map(|(c, t)| {
                (
                    *c,
                    match t {
                        'i' => SqlType::Int,
                        'b' => SqlType::Bool,
                        'f' => SqlType::Float,
                        _ => text(),
                    },
                )
            })
            .collect()
    })
}

/// Builds rows by column name; unnamed columns are NULL.
struct Builder {
    cols: Vec<&'static str>,
    rows: Vec<Vec<Datum>>,
}

impl Builder {
    fn new(name: &str) -> Builder {
        Builder {
            cols: columns(name)
                .unwrap_or_default()
                .into_iter()
                .map(|(c, _)| c)
                .collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, values: &[(&str, Datum)]) {
        let mut r = vec![Datum::Null; self.cols.len()];
        for (n, v) in values {
            if let Some(i) = self.cols.iter().position(|c| c == n) {
                r[i] = v.clone();
            }
        }
        self.rows.push(r);
    }
}

fn s(v: impl Into<String>) -> Datum {
    Datum::String(v.into())
}

fn i(v: i64) -> Datum {
    Datum::Int(v)
}

fn b(v: bool) -> Datum {
    Datum::Bool(v)
}

fn index_def(t: &TableDesc, idx: &descriptors::IndexDesc) -> (String, String) {
    let cols: Vec<String> = idx
        .columns
        .iter()
        .map(|(id, d)| {
            let name = t
                .columns
                .iter()
                .find(|c| c.id == *id)
                .map_or("?".to_string(), |c| c.name.clone());
            if *d == descriptors::IndexDirection::Desc {
                format!("{name} DESC")
            } else {
                name
            }
        })
        .collect();
    let unique = if idx.unique { "UNIQUE " } else { "" };
    (
        format!(
            "CREATE {unique}INDEX {} ON public.{} USING btree ({})",
            idx.name,
            t.name,
            cols.join(", ")
        ),
        cols.join(", "),
    )
}

/// The rows of virtual table `name` for the session's database.
pub async fn rows(ctx: &mut Ctx<'_>, name: &str) -> SqlResult<Vec<Vec<Datum>>> {
    let mut out = Builder::new(name);
    let tables = descriptors::list_tables(ctx.txn, ctx.db.id).await?;
    let dbname = ctx.db.name.clone();
    match name {
        "pg_catalog.pg_namespace" => {
            for (oid, n) in [
                (PUBLIC_NS, "public"),
                (PG_CATALOG_NS, "pg_catalog"),
                (INFORMATION_SCHEMA_NS, "information_schema"),
            ] {
                out.row(&[("oid", i(oid)), ("nspname", s(n)), ("nspowner", i(1))]);
            }
        }
        "pg_catalog.pg_class" => {
            for t in &tables {
                let visible = t.columns.iter().filter(|c| !c.hidden).count();
                out.row(&[
                    ("oid", i(t.id as i64)),
                    ("relname", s(&t.name)),
                    ("relnamespace", i(PUBLIC_NS)),
                    ("relowner", i(1)),
                    ("relam", i(0)),
                    ("reltablespace", i(0)),
                    ("reltoastrelid", i(0)),
                    ("reloftype", i(0)),
                    ("relhasindex", b(true)),
                    ("relisshared", b(false)),
                    ("relpersistence", s("p")),
                    ("relkind", s("r")),
                    ("relnatts", i(visible as i64)),
                    ("relchecks", i(0)),
                    ("relhasrules", b(false)),
                    ("relhastriggers", b(false)),
                    ("relhassubclass", b(false)),
                    ("relrowsecurity", b(false)),
                    ("relforcerowsecurity", b(false)),
                    ("relispopulated", b(true)),
                    ("relreplident", s("d")),
                    ("relispartition", b(false)),
                    ("reltuples", Datum::Float(-1.0)),
                ]);
                for idx in std::iter::once(&t.primary_index).chain(&t.secondary_indexes) {
                    out.row(&[
                        ("oid", i(index_oid(t.id, idx.id))),
                        ("relname", s(&idx.name)),
                        ("relnamespace", i(PUBLIC_NS)),
                        ("relowner", i(1)),
                        ("relam", i(BTREE_AM)),
                        ("reltablespace", i(0)),
                        ("reltoastrelid", i(0)),
                        ("reloftype", i(0)),
                        ("relhasindex", b(false)),
                        ("relpersistence", s("p")),
                        ("relkind", s("i")),
                        ("relnatts", i(idx.columns.len() as i64)),
                        ("relchecks", i(0)),
                        ("relhasrules", b(false)),
                        ("relhastriggers", b(false)),
                        ("relrowsecurity", b(false)),
                        ("relforcerowsecurity", b(false)),
                        ("relreplident", s("n")),
                        ("relispartition", b(false)),
                    ]);
                }
            }
        }
        "pg_catalog.pg_attribute" => {
            for t in &tables {
                for c in &t.columns {
                    out.row(&[
                        ("attrelid", i(t.id as i64)),
                        ("attname", s(&c.name)),
                        ("atttypid", i(type_oid(&c.typ))),
                        ("attnum", i(c.id as i64)),
                        ("attlen", i(-1)),
                        (
                            "atttypmod",
                            i(match c.typ {
                                SqlType::String { max_len: Some(n) } => n as i64 + 4,
                                _ => -1,
                            }),
                        ),
                        ("attnotnull", b(!c.nullable)),
                        ("atthasdef", b(c.default_expr.is_some())),
                        ("attidentity", s("")),
                        ("attgenerated", s("")),
                        ("attisdropped", b(c.hidden)),
                        ("attislocal", b(true)),
                        ("attcollation", i(0)),
                        ("attstorage", s("x")),
                    ]);
                }
                for idx in std::iter::once(&t.primary_index).chain(&t.secondary_indexes) {
                    for (n, (cid, _)) in idx.columns.iter().enumerate() {
                        if let Some(c) = t.columns.iter().find(|c| c.id == *cid) {
                            out.row(&[
                                ("attrelid", i(index_oid(t.id, idx.id))),
                                ("attname", s(&c.name)),
                                ("atttypid", i(type_oid(&c.typ))),
                                ("attnum", i(n as i64 + 1)),
                                ("atttypmod", i(-1)),
                                ("attnotnull", b(false)),
                                ("atthasdef", b(false)),
                                ("attisdropped", b(false)),
                                ("attidentity", s("")),
                                ("attgenerated", s("")),
                            ]);
                        }
                    }
                }
            }
        }
        "pg_catalog.pg_type" => {
            for (oid, n) in [
                (oid::BOOL, "bool"),
                (oid::BYTEA, "bytea"),
                (oid::INT8, "int8"),
                (oid::INT4, "int4"),
                (oid::TEXT, "text"),
                (oid::OID, "oid"),
                (oid::FLOAT8, "float8"),
                (oid::VARCHAR, "varchar"),
                (oid::DATE, "date"),
                (oid::TIMESTAMP, "timestamp"),
                (oid::TIMESTAMPTZ, "timestamptz"),
                (oid::INTERVAL, "interval"),
                (oid::NUMERIC, "numeric"),
                (oid::UUID, "uuid"),
                (oid::JSONB, "jsonb"),
                (oid::NAME, "name"),
                (oid::CHAR, "char"),
            ] {
                out.row(&[
                    ("oid", i(oid)),
                    ("typname", s(n)),
                    ("typnamespace", i(PG_CATALOG_NS)),
                    ("typtype", s("b")),
                    ("typrelid", i(0)),
                    ("typelem", i(0)),
                    ("typbasetype", i(0)),
                    ("typtypmod", i(-1)),
                    ("typnotnull", b(false)),
                ]);
            }
        }
        "pg_catalog.pg_index" => {
            for t in &tables {
                for (primary, idx) in std::iter::once((true, &t.primary_index))
                    .chain(t.secondary_indexes.iter().map(|x| (false, x)))
                {
                    if primary
                        && t.columns
                            .iter()
                            .any(|c| c.hidden && c.id == idx.columns[0].0)
                    {
                        // The hidden rowid key is not shown.
                        continue;
                    }
                    let indkey: Vec<String> =
                        idx.columns.iter().map(|(c, _)| c.to_string()).collect();
                    let (def, _) = index_def(t, idx);
                    if let Ok(mut d) = ctx.session.definitions.lock() {
                        d.insert(index_oid(t.id, idx.id), def);
                    }
                    out.row(&[
                        ("indexrelid", i(index_oid(t.id, idx.id))),
                        ("indrelid", i(t.id as i64)),
                        ("indnatts", i(idx.columns.len() as i64)),
                        ("indnkeyatts", i(idx.columns.len() as i64)),
                        ("indisunique", b(idx.unique)),
                        ("indnullsnotdistinct", b(false)),
                        ("indisprimary", b(primary)),
                        ("indisexclusion", b(false)),
                        ("indimmediate", b(true)),
                        ("indisclustered", b(false)),
                        ("indisvalid", b(true)),
                        ("indcheckxmin", b(false)),
                        ("indisready", b(true)),
                        ("indislive", b(true)),
                        ("indisreplident", b(false)),
                        ("indkey", s(indkey.join(" "))),
                    ]);
                }
            }
        }
        "pg_catalog.pg_attrdef" => {
            for t in &tables {
                for c in &t.columns {
                    if let Some(d) = &c.default_expr {
                        out.row(&[
                            ("oid", i(3_000_000_000 + t.id as i64 * 1000 + c.id as i64)),
                            ("adrelid", i(t.id as i64)),
                            ("adnum", i(c.id as i64)),
                            ("adbin", s(d)),
                        ]);
                    }
                }
            }
        }
        "pg_catalog.pg_constraint" => {
            for t in &tables {
                for (primary, idx) in std::iter::once((true, &t.primary_index))
                    .chain(t.secondary_indexes.iter().map(|x| (false, x)))
                {
                    if !idx.unique
                        || (primary
                            && t.columns
                                .iter()
                                .any(|c| c.hidden && c.id == idx.columns[0].0))
                    {
                        continue;
                    }
                    let (_, cols) = index_def(t, idx);
                    let oid = constraint_oid(t.id, idx.id);
                    let def = format!(
                        "{} ({cols})",
                        if primary { "PRIMARY KEY" } else { "UNIQUE" }
                    );
                    if let Ok(mut d) = ctx.session.definitions.lock() {
                        d.insert(oid, def);
                    }
                    out.row(&[
                        ("oid", i(oid)),
                        ("conname", s(&idx.name)),
                        ("connamespace", i(PUBLIC_NS)),
                        ("contype", s(if primary { "p" } else { "u" })),
                        ("condeferrable", b(false)),
                        ("condeferred", b(false)),
                        ("convalidated", b(true)),
                        ("conrelid", i(t.id as i64)),
                        ("conindid", i(index_oid(t.id, idx.id))),
                        ("conparentid", i(0)),
                        ("confrelid", i(0)),
                        ("conislocal", b(true)),
                    ]);
                }
            }
        }
        "pg_catalog.pg_am" => {
            out.row(&[
                ("oid", i(BTREE_AM)),
                ("amname", s("btree")),
                ("amtype", s("i")),
            ]);
        }
        "pg_catalog.pg_roles" | "pg_catalog.pg_user" => {
            // The same visibility as SHOW USERS: admins and CREATEROLE holders see every
            // user, anyone else only itself (oids stay those of the full list).
            let users = crate::catalog::list_users(ctx.txn).await?;
            let me = ctx.session.user.clone();
            let sees_all = users.iter().any(|u| u.name == me && u.has("CREATEROLE"));
            for (n, u) in users.iter().enumerate() {
                if !sees_all && u.name != me {
                    continue;
                }
                out.row(&[
                    ("oid", i(n as i64 + 1)),
                    ("rolname", s(&u.name)),
                    ("usename", s(&u.name)),
                    ("usesysid", i(n as i64 + 1)),
                    ("rolsuper", b(u.admin)),
                    ("usesuper", b(u.admin)),
                    ("rolinherit", b(true)),
                    ("rolcreaterole", b(u.admin)),
                    ("rolcreatedb", b(u.admin)),
                    ("usecreatedb", b(u.admin)),
                    ("rolcanlogin", b(true)),
                    ("rolreplication", b(false)),
                    ("rolconnlimit", i(-1)),
                    ("rolbypassrls", b(false)),
                ]);
            }
        }
        "pg_catalog.pg_database" => {
            for d in descriptors::list_databases(ctx.txn).await? {
                out.row(&[
                    ("oid", i(d.id as i64)),
                    ("datname", s(&d.name)),
                    ("datdba", i(1)),
                    ("encoding", i(6)),
                    ("datcollate", s("en_US.utf8")),
                    ("datctype", s("en_US.utf8")),
                    ("datistemplate", b(false)),
                    ("datallowconn", b(true)),
                    ("datconnlimit", i(-1)),
                ]);
            }
        }
        "pg_catalog.pg_settings" => {
            for (n, v) in [("server_version", "13.0.0"), ("search_path", "public")] {
                out.row(&[("name", s(n)), ("setting", s(v))]);
            }
        }
        "information_schema.tables" => {
            for t in &tables {
                out.row(&[
                    ("table_catalog", s(&dbname)),
                    ("table_schema", s("public")),
                    ("table_name", s(&t.name)),
                    ("table_type", s("BASE TABLE")),
                    ("is_insertable_into", s("YES")),
                ]);
            }
        }
        "information_schema.columns" => {
            for t in &tables {
                for (n, c) in t.columns.iter().filter(|c| !c.hidden).enumerate() {
                    out.row(&[
                        ("table_catalog", s(&dbname)),
                        ("table_schema", s("public")),
                        ("table_name", s(&t.name)),
                        ("column_name", s(&c.name)),
                        ("ordinal_position", i(n as i64 + 1)),
                        (
                            "column_default",
                            c.default_expr.clone().map_or(Datum::Null, Datum::String),
                        ),
                        ("is_nullable", s(if c.nullable { "YES" } else { "NO" })),
                        ("data_type", s(format_type(type_oid(&c.typ)))),
                        (
                            "character_maximum_length",
                            match c.typ {
                                SqlType::String { max_len: Some(n) } => i(n as i64),
                                _ => Datum::Null,
                            },
                        ),
                        ("udt_name", s(crate::ddl::type_name(&c.typ).to_lowercase())),
                    ]);
                }
            }
        }
        "information_schema.schemata" => {
            for n in ["public", "pg_catalog", "information_schema"] {
                out.row(&[
                    ("catalog_name", s(&dbname)),
                    ("schema_name", s(n)),
                    ("schema_owner", s("root")),
                ]);
            }
        }
        // The rest exist so that tools' queries work; roach has nothing to list in them.
        _ => {}
    }
    Ok(out.rows)
}

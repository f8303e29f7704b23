//! The SQL catalog of a virtual cluster: database and table descriptors, stored as KVs in the
//! virtual cluster's own keyspace (so replication of a tenant span carries its schema).
//!
//! Layout (tenant keys): `/catalog/desc/<id: 8 bytes BE>` → descriptor,
//! `/catalog/name/<parent id: 8 bytes BE>/<name>` → id (parent 0 for databases),
//! `/catalog/next-id` → the next descriptor id. Ids are never reused. Rows of table T's index
//! I live under `/t/<T: 8 bytes BE>/<I: 4 bytes BE>/` (see [`index_prefix`]).

use crate::error::{SqlError, SqlResult, code};
use crate::keycodec::Direction;
use serde::{Deserialize, Serialize};
use storage::Span;
use tenant::TenantTxn;

const DESC_PREFIX: &[u8] = b"/catalog/desc/";
const NAME_PREFIX: &[u8] = b"/catalog/name/";
const NEXT_ID_KEY: &[u8] = b"/catalog/next-id";
const ROW_PREFIX: &[u8] = b"/t/";
/// The database every virtual cluster has.
pub const DEFAULT_DATABASE: &str = "defaultdb";
/// Descriptors a listing reads at most.
const LIST_LIMIT: usize = 100_000;

/// A column's SQL type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqlType {
    Int,
    Float,
    Decimal,
    String { max_len: Option<u32> },
    Bytes,
    Bool,
    Uuid,
    Timestamp,
    TimestampTz,
    Date,
    Interval,
    Jsonb,
}

/// A column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDesc {
    pub id: u32,
    pub name: String,
    pub typ: SqlType,
    pub nullable: bool,
    /// The default expression's SQL text.
    pub default_expr: Option<String>,
    /// The hidden `rowid` of a table without a primary key.
    pub hidden: bool,
}

/// An index: the primary one (holding the rows) or a secondary one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDesc {
    pub id: u32,
    pub name: String,
    pub unique: bool,
    /// Key columns by id, with their direction.
    pub columns: Vec<(u32, IndexDirection)>,
}

/// [`Direction`] in a serializable form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexDirection {
    Asc,
    Desc,
}

impl From<IndexDirection> for Direction {
    fn from(d: IndexDirection) -> Self {
        match d {
            IndexDirection::Asc => Direction::Asc,
            IndexDirection::Desc => Direction::Desc,
        }
    }
}

/// A table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDesc {
    pub id: u64,
    pub database_id: u64,
    pub name: String,
    pub columns: Vec<ColumnDesc>,
    pub primary_index: IndexDesc,
    pub secondary_indexes: Vec<IndexDesc>,
    pub next_column_id: u32,
    pub next_index_id: u32,
    /// Bumped by every schema change.
    pub version: u64,
}

/// A database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseDesc {
    pub id: u64,
    pub name: String,
}

/// A catalog entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Descriptor {
    Database(DatabaseDesc),
    Table(TableDesc),
}

/// The key prefix of the rows of `index` of `table`.
pub fn index_prefix(table: u64, index: u32) -> Vec<u8> {
    let mut k = ROW_PREFIX.to_vec();
    k.extend_from_slice(&table.to_be_bytes());
    k.push(b'/');
    k.extend_from_slice(&index.to_be_bytes());
    k.push(b'/');
    k
}

/// Every row key of `table` (all its indexes).
pub fn table_span(table: u64) -> Span {
    let mut k = ROW_PREFIX.to_vec();
    k.extend_from_slice(&table.to_be_bytes());
    k.push(b'/');
    Span::prefix(&k)
}

fn desc_key(id: u64) -> Vec<u8> {
    let mut k = DESC_PREFIX.to_vec();
    k.extend_from_slice(&id.to_be_bytes());
    k
}

fn name_key(parent: u64, name: &str) -> Vec<u8> {
    let mut k = NAME_PREFIX.to_vec();
    k.extend_from_slice(&parent.to_be_bytes());
    k.push(b'/');
    k.extend_from_slice(name.as_bytes());
    k
}

fn corrupt(e: impl std::fmt::Display) -> SqlError {
    SqlError::internal(format!("corrupt catalog entry: {e}"))
}

fn decode_id(bytes: &[u8]) -> SqlResult<u64> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| corrupt("id is not 8 bytes"))?;
    Ok(u64::from_be_bytes(arr))
}

/// Checks a database or table name: 1 to 63 characters, not starting with a digit.
pub fn validate_object_name(kind: &str, name: &str) -> SqlResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !name.contains('/');
    if ok {
        Ok(())
    } else {
        Err(SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            format!(
                "invalid {kind} name {name:?}: use 1 to 63 characters, not starting with a digit, without '/'"
            ),
        ))
    }
}

/// Allocates a descriptor id.
pub async fn allocate_id(txn: &mut TenantTxn) -> SqlResult<u64> {
    let next = match txn.get(NEXT_ID_KEY).await? {
        Some(b) => decode_id(&b)?,
        // Ids below 100 are reserved for system descriptors.
        None => 100,
    };
    txn.put(NEXT_ID_KEY, (next + 1).to_be_bytes().to_vec())?;
    Ok(next)
}

/// The descriptor `id`.
pub async fn get(txn: &mut TenantTxn, id: u64) -> SqlResult<Option<Descriptor>> {
    let d = crate::catalog_cache::read(txn, &desc_key(id), |b| {
        postcard::from_bytes::<Descriptor>(b).map_err(corrupt)
    })
    .await?;
    Ok(d.map(|d| (*d).clone()))
}

/// Writes a descriptor and its name entry.
fn put(txn: &mut TenantTxn, parent: u64, name: &str, id: u64, desc: &Descriptor) -> SqlResult<()> {
    txn.note_cached_write();
    let bytes = postcard::to_allocvec(desc).map_err(|e| SqlError::internal(e.to_string()))?;
    txn.put(&desc_key(id), bytes)?;
    txn.put(&name_key(parent, name), id.to_be_bytes().to_vec())?;
    Ok(())
}

async fn lookup(txn: &mut TenantTxn, parent: u64, name: &str) -> SqlResult<Option<u64>> {
    let id = crate::catalog_cache::read(txn, &name_key(parent, name), decode_id).await?;
    Ok(id.map(|id| *id))
}

/// The database named `name`.
pub async fn database_by_name(txn: &mut TenantTxn, name: &str) -> SqlResult<Option<DatabaseDesc>> {
    let Some(id) = lookup(txn, 0, name).await? else {
        return Ok(None);
    };
    match get(txn, id).await? {
        Some(Descriptor::Database(d)) => Ok(Some(d)),
        _ => Err(corrupt(format!("name {name:?} points at a non-database"))),
    }
}

/// Creates a database; `Ok(None)` if it exists and `if_not_exists`.
pub async fn create_database(
    txn: &mut TenantTxn,
    name: &str,
    if_not_exists: bool,
) -> SqlResult<Option<DatabaseDesc>> {
    validate_object_name("database", name)?;
    if database_by_name(txn, name).await?.is_some() {
        if if_not_exists {
            return Ok(None);
        }
        return Err(SqlError::new(
            code::DUPLICATE_DATABASE,
            format!("database {name:?} already exists"),
        ));
    }
    let id = allocate_id(txn).await?;
    let desc = DatabaseDesc {
        id,
        name: name.to_string(),
    };
    put(txn, 0, name, id, &Descriptor::Database(desc.clone()))?;
    Ok(Some(desc))
}

/// Creates `defaultdb` if missing (every virtual cluster has it).
pub async fn ensure_default_database(txn: &mut TenantTxn) -> SqlResult<()> {
    create_database(txn, DEFAULT_DATABASE, true).await?;
    Ok(())
}

/// Every database, by name.
pub async fn list_databases(txn: &mut TenantTxn) -> SqlResult<Vec<DatabaseDesc>> {
    let mut prefix = NAME_PREFIX.to_vec();
    prefix.extend_from_slice(&0u64.to_be_bytes());
    prefix.push(b'/');
    let page = txn.scan(&Span::prefix(&prefix), LIST_LIMIT).await?;
    let mut out = Vec::with_capacity(page.rows.len());
    for row in page.rows {
        if let Some(Descriptor::Database(d)) = get(txn, decode_id(&row.value)?).await? {
            out.push(d);
        }
    }
    Ok(out)
}

/// The table `name` in database `database_id`.
pub async fn table_by_name(
    txn: &mut TenantTxn,
    database_id: u64,
    name: &str,
) -> SqlResult<Option<TableDesc>> {
    let Some(id) = lookup(txn, database_id, name).await? else {
        return Ok(None);
    };
    match get(txn, id).await? {
        Some(Descriptor::Table(t)) => Ok(Some(t)),
        _ => Err(corrupt(format!("name {name:?} points at a non-table"))),
    }
}

/// Creates a table from `desc` (its id is allocated here; other fields as given).
pub async fn create_table(txn: &mut TenantTxn, mut desc: TableDesc) -> SqlResult<TableDesc> {
    validate_object_name("table", &desc.name)?;
    if table_by_name(txn, desc.database_id, &desc.name)
        .await?
        .is_some()
    {
        return Err(SqlError::new(
            code::DUPLICATE_TABLE,
            format!("relation {:?} already exists", desc.name),
        ));
    }
    desc.id = allocate_id(txn).await?;
    put(
        txn,
        desc.database_id,
        &desc.name.clone(),
        desc.id,
        &Descriptor::Table(desc.clone()),
    )?;
    Ok(desc)
}

/// Every table of database `database_id`, by name.
pub async fn list_tables(txn: &mut TenantTxn, database_id: u64) -> SqlResult<Vec<TableDesc>> {
    let mut prefix = NAME_PREFIX.to_vec();
    prefix.extend_from_slice(&database_id.to_be_bytes());
    prefix.push(b'/');
    let page = txn.scan(&Span::prefix(&prefix), LIST_LIMIT).await?;
    let mut out = Vec::with_capacity(page.rows.len());
    for row in page.rows {
        if let Some(Descriptor::Table(t)) = get(txn, decode_id(&row.value)?).await? {
            out.push(t);
        }
    }
    Ok(out)
}

/// Stores a changed table descriptor (bumping its version).
pub fn update_table(txn: &mut TenantTxn, desc: &mut TableDesc) -> SqlResult<()> {
    desc.version += 1;
    put(
        txn,
        desc.database_id,
        &desc.name.clone(),
        desc.id,
        &Descriptor::Table(desc.clone()),
    )
}

/// Renames a table.
pub async fn rename_table(txn: &mut TenantTxn, desc: &mut TableDesc, to: &str) -> SqlResult<()> {
    validate_object_name("table", to)?;
    if table_by_name(txn, desc.database_id, to).await?.is_some() {
        return Err(SqlError::new(
            code::DUPLICATE_TABLE,
            format!("relation {to:?} already exists"),
        ));
    }
    txn.note_cached_write();
    txn.delete(&name_key(desc.database_id, &desc.name))?;
    desc.name = to.to_string();
    update_table(txn, desc)
}

/// Deletes a table's descriptor and name (its rows are deleted by the caller).
pub fn delete_table(txn: &mut TenantTxn, desc: &TableDesc) -> SqlResult<()> {
    txn.note_cached_write();
    txn.delete(&name_key(desc.database_id, &desc.name))?;
    txn.delete(&desc_key(desc.id))?;
    Ok(())
}

/// Deletes a database's descriptor and name.
pub fn delete_database(txn: &mut TenantTxn, desc: &DatabaseDesc) -> SqlResult<()> {
    txn.note_cached_write();
    txn.delete(&name_key(0, &desc.name))?;
    txn.delete(&desc_key(desc.id))?;
    Ok(())
}

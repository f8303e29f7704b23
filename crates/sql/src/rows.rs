//! Rows as KVs: one KV per primary-index row and one per secondary-index entry, all under
//! the table's prefix in the virtual cluster's keyspace.
//!
//! - Primary index: key `/t/<table>/<1>/` + the key encoding of the primary key columns (in
//!   their directions); value `0x01` + for each other non-NULL column its id (4 bytes BE)
//!   and its ascending key encoding.
//! - Secondary index: key `/t/<table>/<index>/` + the index columns' encodings, then the
//!   primary key columns' encodings unless the index is unique and no index column is NULL
//!   (so a unique index maps each value to one KV); value `0x01` + the primary key columns'
//!   ascending encodings.

use crate::datum::Datum;
use crate::descriptors::{IndexDesc, TableDesc, index_prefix};
use crate::error::{SqlError, SqlResult};
use crate::keycodec::{self, Direction};

const VALUE_VERSION: u8 = 0x01;

/// A row: one value per column of the table, in the order of `TableDesc::columns`.
pub type Row = Vec<Datum>;

/// Where each column id sits in a row.
pub fn column_position(table: &TableDesc, id: u32) -> SqlResult<usize> {
    table
        .columns
        .iter()
        .position(|c| c.id == id)
        .ok_or_else(|| SqlError::internal(format!("table {} has no column id {id}", table.name)))
}

fn encode_columns(
    out: &mut Vec<u8>,
    table: &TableDesc,
    cols: &[(u32, crate::descriptors::IndexDirection)],
    row: &[Datum],
    force_asc: bool,
) -> SqlResult<bool> {
    let mut any_null = false;
    for (id, dir) in cols {
        let v = &row[column_position(table, *id)?];
        any_null |= v.is_null();
        let d = if force_asc {
            Direction::Asc
        } else {
            (*dir).into()
        };
        keycodec::encode(out, &v.to_key(), d);
    }
    Ok(any_null)
}

/// The primary-index key of `row`.
pub fn primary_key(table: &TableDesc, row: &[Datum]) -> SqlResult<Vec<u8>> {
    let mut k = index_prefix(table.id, table.primary_index.id);
    encode_columns(&mut k, table, &table.primary_index.columns, row, false)?;
    Ok(k)
}

/// The primary-index value of `row`.
pub fn primary_value(table: &TableDesc, row: &[Datum]) -> Vec<u8> {
    let mut v = vec![VALUE_VERSION];
    for (c, d) in table.columns.iter().zip(row) {
        if d.is_null()
            || table
                .primary_index
                .columns
                .iter()
                .any(|(id, _)| *id == c.id)
        {
            continue;
        }
        v.extend_from_slice(&c.id.to_be_bytes());
        keycodec::encode(&mut v, &d.to_key(), Direction::Asc);
    }
    v
}

/// Decodes a primary-index KV into a row.
pub fn decode_row(table: &TableDesc, key: &[u8], value: &[u8]) -> SqlResult<Row> {
    let mut row = vec![Datum::Null; table.columns.len()];
    let prefix_len = index_prefix(table.id, table.primary_index.id).len();
    let mut rest = key
        .get(prefix_len..)
        .ok_or_else(|| SqlError::internal("row key shorter than its prefix"))?;
    for (id, dir) in &table.primary_index.columns {
        let pos = column_position(table, *id)?;
        let (k, r) = keycodec::decode(rest, (*dir).into())?;
        row[pos] = Datum::from_key(k, &table.columns[pos].typ);
        rest = r;
    }
    let mut rest = match value.split_first() {
        Some((&VALUE_VERSION, r)) => r,
        _ => return Err(SqlError::internal("row value has an unknown version")),
    };
    while !rest.is_empty() {
        let id_bytes: [u8; 4] = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SqlError::internal("truncated row value"))?;
        let id = u32::from_be_bytes(id_bytes);
        let (k, r) = keycodec::decode(&rest[4..], Direction::Asc)?;
        rest = r;
        // A column dropped since the row was written is skipped.
        if let Ok(pos) = column_position(table, id) {
            row[pos] = Datum::from_key(k, &table.columns[pos].typ);
        }
    }
    Ok(row)
}

/// The entry of `row` in secondary index `index`.
pub fn index_entry(
    table: &TableDesc,
    index: &IndexDesc,
    row: &[Datum],
) -> SqlResult<(Vec<u8>, Vec<u8>)> {
    let mut k = index_prefix(table.id, index.id);
    let any_null = encode_columns(&mut k, table, &index.columns, row, false)?;
    if !index.unique || any_null {
        encode_columns(&mut k, table, &table.primary_index.columns, row, false)?;
    }
    let mut v = vec![VALUE_VERSION];
    encode_columns(&mut v, table, &table.primary_index.columns, row, true)?;
    Ok((k, v))
}

/// The primary-index key an index entry's value points at.
pub fn primary_key_from_index_value(table: &TableDesc, value: &[u8]) -> SqlResult<Vec<u8>> {
    let mut rest = match value.split_first() {
        Some((&VALUE_VERSION, r)) => r,
        _ => return Err(SqlError::internal("index value has an unknown version")),
    };
    let mut k = index_prefix(table.id, table.primary_index.id);
    for (_, dir) in &table.primary_index.columns {
        let (v, r) = keycodec::decode(rest, Direction::Asc)?;
        keycodec::encode(&mut k, &v, (*dir).into());
        rest = r;
    }
    Ok(k)
}

/// The key prefix for `values` of the first columns of `index` (a point or prefix lookup).
pub fn index_key_prefix(table: &TableDesc, index: &IndexDesc, values: &[Datum]) -> Vec<u8> {
    let mut k = index_prefix(table.id, index.id);
    for ((_, dir), v) in index.columns.iter().zip(values) {
        keycodec::encode(&mut k, &v.to_key(), (*dir).into());
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptors::{ColumnDesc, IndexDirection, SqlType};

    fn table() -> TableDesc {
        let col = |id, name: &str, typ| ColumnDesc {
            id,
            name: name.into(),
            typ,
            nullable: true,
            default_expr: None,
            hidden: false,
        };
        TableDesc {
            id: 104,
            database_id: 100,
            name: "t".into(),
            columns: vec![
                col(1, "a", SqlType::Int),
                col(2, "b", SqlType::String { max_len: None }),
                col(3, "c", SqlType::TimestampTz),
            ],
            primary_index: IndexDesc {
                id: 1,
                name: "t_pkey".into(),
                unique: true,
                columns: vec![(2, IndexDirection::Desc), (1, IndexDirection::Asc)],
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

    // Goal: a row survives its primary KV, and index entries point back at its key.
    #[test]
    fn row_round_trip() {
        let t = table();
        let row = vec![
            Datum::Int(7),
            Datum::String("x\0y".into()),
            Datum::TimestampTz(123),
        ];
        let k = primary_key(&t, &row).expect("key");
        let v = primary_value(&t, &row);
        assert_eq!(decode_row(&t, &k, &v).expect("decode"), row);
        let (ik, iv) = index_entry(&t, &t.secondary_indexes[0], &row).expect("entry");
        assert!(ik.starts_with(&index_prefix(104, 2)));
        assert_eq!(primary_key_from_index_value(&t, &iv).expect("pk"), k);
        // A NULL in a unique index column makes the entry carry the primary key too.
        let mut with_null = row.clone();
        with_null[2] = Datum::Null;
        let (nk, _) = index_entry(&t, &t.secondary_indexes[0], &with_null).expect("entry");
        assert!(nk.len() > ik.len() - 8);
        let v = primary_value(&t, &with_null);
        assert_eq!(decode_row(&t, &k, &v).expect("decode"), with_null);
    }
}

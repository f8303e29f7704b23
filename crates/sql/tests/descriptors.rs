//! The SQL catalog over a real single-node KV (in process): descriptors, name lookup, id
//! allocation, and that every virtual cluster has its own catalog.

use sql::descriptors::{
    self, ColumnDesc, DEFAULT_DATABASE, IndexDesc, IndexDirection, SqlType, TableDesc,
};
use tenant::{TenantId, TenantKv};

fn users_table(database_id: u64) -> TableDesc {
    TableDesc {
        id: 0,
        database_id,
        name: "users".into(),
        columns: vec![
            ColumnDesc {
                id: 1,
                name: "id".into(),
                typ: SqlType::Uuid,
                nullable: false,
                default_expr: Some("gen_random_uuid()".into()),
                hidden: false,
            },
            ColumnDesc {
                id: 2,
                name: "name".into(),
                typ: SqlType::String { max_len: Some(64) },
                nullable: true,
                default_expr: None,
                hidden: false,
            },
        ],
        primary_index: IndexDesc {
            id: 1,
            name: "users_pkey".into(),
            unique: true,
            columns: vec![(1, IndexDirection::Asc)],
        },
        secondary_indexes: vec![IndexDesc {
            id: 2,
            name: "users_name_idx".into(),
            unique: false,
            columns: vec![(2, IndexDirection::Desc)],
        }],
        next_column_id: 3,
        next_index_id: 3,
        version: 1,
    }
}

// Goal: tables are stored with their columns and indexes, found by name within their
// database, listed, never duplicated, and given fresh ids; another virtual cluster's catalog
// is separate (same names, no shared tables).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_per_virtual_cluster() {
    let dir = tempfile::tempdir().expect("dir");
    let node = kv::testing::must_start_single_node(dir.path()).await;
    let app = TenantKv::new(node.clone(), TenantId(3));
    let mut txn = app.begin().expect("begin");
    descriptors::ensure_default_database(&mut txn)
        .await
        .expect("defaultdb");
    descriptors::ensure_default_database(&mut txn)
        .await
        .expect("idempotent");
    let db = descriptors::database_by_name(&mut txn, DEFAULT_DATABASE)
        .await
        .expect("get")
        .expect("defaultdb exists");
    let created = descriptors::create_table(&mut txn, users_table(db.id))
        .await
        .expect("create");
    assert!(created.id > db.id, "fresh id");
    let dup = descriptors::create_table(&mut txn, users_table(db.id))
        .await
        .expect_err("duplicate");
    assert_eq!(dup.code, "42P07");
    txn.commit().await.expect("commit");

    let mut txn = app.begin().expect("begin");
    let found = descriptors::table_by_name(&mut txn, db.id, "users")
        .await
        .expect("get")
        .expect("found");
    assert_eq!(found, created);
    assert_eq!(
        descriptors::list_tables(&mut txn, db.id)
            .await
            .expect("list"),
        vec![created.clone()]
    );
    let other = descriptors::create_database(&mut txn, "other", false)
        .await
        .expect("db")
        .expect("new");
    assert!(
        descriptors::table_by_name(&mut txn, other.id, "users")
            .await
            .expect("get")
            .is_none()
    );
    txn.commit().await.expect("commit");

    // Tenant 4 has its own catalog: no defaultdb until created, then no tables.
    let t4 = TenantKv::new(node.clone(), TenantId(4));
    let mut txn = t4.begin().expect("begin");
    assert!(
        descriptors::list_databases(&mut txn)
            .await
            .expect("list")
            .is_empty()
    );
    descriptors::ensure_default_database(&mut txn)
        .await
        .expect("defaultdb");
    let db4 = descriptors::database_by_name(&mut txn, DEFAULT_DATABASE)
        .await
        .expect("get")
        .expect("exists");
    assert!(
        descriptors::list_tables(&mut txn, db4.id)
            .await
            .expect("list")
            .is_empty()
    );
    txn.commit().await.expect("commit");

    // Row key prefixes of different indexes and tables never overlap.
    let a = descriptors::index_prefix(created.id, 1);
    let b = descriptors::index_prefix(created.id, 2);
    assert!(!a.starts_with(&b) && !b.starts_with(&a));
    assert!(descriptors::table_span(created.id).contains(&a));
    assert!(!descriptors::table_span(created.id + 1).contains(&a));
}

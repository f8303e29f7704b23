//! The registry and tenant-scoped clients on a real single-node KV cluster (in process).

use kv::Store;
use std::sync::Arc;
use storage::Span;
use tenant::{DataState, ServiceMode, TenantError, TenantId, TenantKv, registry};

async fn must_node(dir: &tempfile::TempDir) -> Arc<Store> {
    kv::testing::must_start_single_node(dir.path()).await
}

// Goal: records can be created, found, listed, renamed and removed; names are validated and
// unique; ids are never reused, even after a removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_lifecycle() {
    let dir = tempfile::tempdir().expect("dir");
    let node = must_node(&dir).await;
    let now = node.now();
    let mut txn = node.begin().expect("begin");
    registry::create_with_id(
        &mut txn,
        TenantId::SYSTEM,
        "system",
        DataState::Ready,
        ServiceMode::Shared,
        now,
    )
    .await
    .expect("system");
    let app = registry::create(
        &mut txn,
        "application",
        DataState::Ready,
        ServiceMode::Shared,
        now,
    )
    .await
    .expect("app");
    assert_eq!(app.id, TenantId(2));
    assert!(matches!(
        registry::create(
            &mut txn,
            "application",
            DataState::Add,
            ServiceMode::None,
            now
        )
        .await,
        Err(TenantError::AlreadyExists(_))
    ));
    assert!(matches!(
        registry::create(&mut txn, "Bad Name", DataState::Add, ServiceMode::None, now).await,
        Err(TenantError::InvalidName { .. })
    ));
    txn.commit().await.expect("commit");

    let mut txn = node.begin().expect("begin");
    let names: Vec<_> = registry::list(&mut txn)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["system", "application"]);
    registry::rename(&mut txn, "application", "main")
        .await
        .expect("rename");
    assert!(
        registry::get_by_name(&mut txn, "application")
            .await
            .expect("get")
            .is_none()
    );
    let main = registry::must_get_by_name(&mut txn, "main")
        .await
        .expect("main");
    assert_eq!(main.id, TenantId(2));
    registry::remove(&mut txn, main.id).await.expect("remove");
    let again = registry::create(&mut txn, "main", DataState::Add, ServiceMode::None, now)
        .await
        .expect("recreate");
    assert_eq!(again.id, TenantId(3), "ids are never reused");
    assert!(matches!(
        registry::create_with_id(
            &mut txn,
            TenantId(2),
            "old",
            DataState::Add,
            ServiceMode::None,
            now
        )
        .await,
        Err(TenantError::IdInUse(_))
    ));
    txn.commit().await.expect("commit");
}

/// Keys at and around every tenant boundary, written through the raw (unscoped) KV.
fn boundary_keys() -> Vec<Vec<u8>> {
    let mut keys = vec![
        b"system-key".to_vec(),
        vec![0xfd, 0xff, 0xff],
        vec![0xfe],
        vec![0xfe, 0x00],
        vec![0xff],
        vec![0xff, 0xff, 0xff],
    ];
    for id in [2u64, 3, 4] {
        let p = TenantId(id).prefix();
        keys.push(p.clone());
        let mut k = p.clone();
        k.push(0x00);
        keys.push(k);
        let mut k = p.clone();
        k.extend_from_slice(&[0xff; 12]);
        keys.push(k);
    }
    keys
}

// Goal: a tenant-scoped client of tenant 3 sees exactly tenant 3's keys, whatever it asks
// for, and every write it makes lands inside tenant 3 (hostile keys that spell out other
// tenants' prefixes included); the system client cannot touch any tenant's keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_clients_stay_inside_their_keyspace() {
    let dir = tempfile::tempdir().expect("dir");
    let node = must_node(&dir).await;
    let mut raw = node.begin().expect("begin");
    for k in boundary_keys() {
        raw.put(k.clone(), b"raw".to_vec());
    }
    raw.commit().await.expect("commit");

    let t3 = TenantKv::new(node.clone(), TenantId(3));
    let mut txn = t3.begin().expect("begin");
    let all = txn.scan(&Span::all(), 1000).await.expect("scan");
    let seen: Vec<Vec<u8>> = all.rows.iter().map(|r| r.key.clone()).collect();
    assert_eq!(
        seen,
        vec![vec![], vec![0x00], vec![0xff; 12]],
        "only tenant 3's keys, unprefixed"
    );
    // Hostile keys: other tenants' full keys, system keys, extreme bytes.
    let hostile: Vec<Vec<u8>> = boundary_keys()
        .into_iter()
        .chain([vec![], vec![0xff; 40]])
        .collect();
    for k in &hostile {
        txn.put(k, b"t3".to_vec())
            .expect("any local key maps inside");
    }
    txn.commit().await.expect("commit");

    let mut check = node.begin().expect("begin");
    for k in boundary_keys()
        .into_iter()
        .filter(|k| !TenantId(3).span().contains(k))
    {
        assert_eq!(
            check.get(&k).await.expect("get").as_deref(),
            Some(&b"raw"[..]),
            "raw key {k:?} untouched"
        );
    }
    let everything = check.scan(&Span::all(), 10_000).await.expect("scan");
    for row in everything.rows.iter().filter(|r| r.value == b"t3") {
        assert!(
            TenantId(3).span().contains(&row.key),
            "write escaped tenant 3: {:?}",
            row.key
        );
    }
    assert_eq!(
        everything.rows.iter().filter(|r| r.value == b"t3").count(),
        hostile.len()
    );

    let t2 = TenantKv::new(node.clone(), TenantId(2));
    let mut txn = t2.begin().expect("begin");
    let rows = txn.scan(&Span::all(), 1000).await.expect("scan").rows;
    assert!(
        rows.iter().all(|r| r.value == b"raw"),
        "tenant 2 sees none of tenant 3's writes"
    );
    assert_eq!(rows.len(), 3);

    let sys = TenantKv::new(node.clone(), TenantId::SYSTEM);
    let mut txn = sys.begin().expect("begin");
    for k in [vec![0xfe], TenantId(3).prefix(), vec![0xfe, 0xff, 0xff]] {
        assert!(matches!(
            txn.get(&k).await,
            Err(TenantError::OutsideTenant { .. })
        ));
        assert!(matches!(
            txn.put(&k, b"x".to_vec()),
            Err(TenantError::OutsideTenant { .. })
        ));
    }
    assert!(matches!(
        txn.scan(&Span::all(), 10).await,
        Err(TenantError::OutsideTenant { .. })
    ));
    assert!(matches!(
        txn.scan(&Span::from_key(vec![0xff]), 10)
            .await
            .map(|p| p.rows.len()),
        Ok(2)
    ));
    let low = txn
        .scan(&Span::new(b"".to_vec(), vec![0xfe]), 100)
        .await
        .expect("scan below tenants");
    assert!(low.rows.iter().all(|r| r.key.first() != Some(&0xfe)));
}

// issue 14 item 9: a partitioned ingestion processor could write into a virtual cluster after
// its cutover's revert. Goal: the ingestion fence admits the current job and epoch only, and
// nothing once closed (cutover, cancel, removal). Method: open the fence for job 7, ingest
// under epoch 1; advance it (a new coordinator) and show an epoch-1 ingest writes nothing
// while epoch 2 writes; close it (cutover) and show that an ingest under the last epoch writes
// nothing and that the fence cannot be advanced again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_fence_refuses_stale_epochs_and_everything_after_cutover() {
    use tenant::ingest_fence;
    let dir = tempfile::tempdir().expect("dir");
    let node = must_node(&dir).await;
    let id = TenantId(3);
    let key = |k: &str| [id.prefix(), k.as_bytes().to_vec()].concat();
    let old = hlc::Timestamp::new(node.now().wall_time_ns - 1_000_000_000, 0);
    let version = |k: &str| vec![storage::MvccVersion::put(key(k), old, "v")];
    let mut txn = node.begin().expect("begin");
    let e1 = ingest_fence::open(&mut txn, id, 7);
    txn.commit().await.expect("commit");
    assert_eq!(e1.epoch, 1);
    node.ingest_fenced(e1.fence(id), version("a"))
        .await
        .expect("the current epoch ingests");

    let mut txn = node.begin().expect("begin");
    assert_eq!(
        ingest_fence::advance(&mut txn, id, 8)
            .await
            .expect("advance"),
        None
    );
    let e2 = ingest_fence::advance(&mut txn, id, 7)
        .await
        .expect("advance")
        .expect("the job's fence is open");
    txn.commit().await.expect("commit");
    assert_eq!(e2.epoch, 2);
    assert!(matches!(
        node.ingest_fenced(e1.fence(id), version("b")).await,
        Err(kv::KvError::IngestFenced { .. })
    ));
    assert_eq!(node.get(&key("b"), node.now()).await.expect("get"), None);
    node.ingest_fenced(e2.fence(id), version("c"))
        .await
        .expect("the new epoch ingests");

    let mut txn = node.begin().expect("begin");
    ingest_fence::close(&mut txn, id);
    txn.commit().await.expect("commit");
    assert!(matches!(
        node.ingest_fenced(e2.fence(id), version("d")).await,
        Err(kv::KvError::IngestFenced { .. })
    ));
    assert_eq!(node.get(&key("d"), node.now()).await.expect("get"), None);
    assert_eq!(
        node.get(&key("c"), node.now()).await.expect("get"),
        Some(b"v".to_vec())
    );
    let mut txn = node.begin().expect("begin");
    assert_eq!(
        ingest_fence::advance(&mut txn, id, 7)
            .await
            .expect("advance"),
        None
    );
    assert_eq!(
        ingest_fence::current(&mut txn, id).await.expect("read"),
        None
    );
}

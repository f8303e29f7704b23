//! The secrets of replication jobs at rest, on a real single-node KV cluster (in process).

use hlc::Timestamp;
use replication::client::SourceConn;
use replication::consumer::{self, IngestionDetails};
use replication::secrets::JobSecret;
use replication::spec::StreamToken;
use replication::uri::StandbySecurity;
use storage::{Engine, ExportMode, Span};

const PASSWORD: &str = "pw-Secret-4711";
const TOKEN: &str = "token-Secret-0815";

/// Every version of every key in the store (all revisions, tombstones included) that holds
/// `needle`, as `(key, ts)`.
fn must_find_everywhere(node: &kv::Store, needle: &str) -> Vec<(String, Timestamp)> {
    let all = Span {
        start: Vec::new(),
        end: None,
    };
    node.engine()
        .export(
            &all,
            Timestamp::ZERO,
            Timestamp::MAX,
            ExportMode::AllRevisions,
        )
        .expect("export")
        .map(|v| v.expect("version"))
        .filter(|v| {
            let hay = [v.key.as_slice(), v.value.as_deref().unwrap_or_default()].concat();
            hay.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .map(|v| (tenant::pretty_key(&v.key), v.ts))
        .collect()
}

// issue 14 item 4: the source URI's password and the stream token were stored in plain text in
// the job record, replicated and kept after the job ended. Goal: the job record never holds
// them (nor its Debug output), the job's secret record does while the job runs, and once the
// job ends (here: canceled, as DROP does) no version of either is left anywhere in the
// keyspace. Method: create a job the way CREATE VIRTUAL CLUSTER does, scan every revision of
// every key for the password and token bytes, cancel, scan again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_password_and_token_live_only_in_its_secret_until_it_ends() {
    let dir = tempfile::tempdir().expect("dir");
    let node = kv::testing::must_start_single_node(dir.path()).await;
    let conn = SourceConn::from_uri(
        &format!("postgresql://repl:{PASSWORD}@127.0.0.1:1?sslmode=disable"),
        StandbySecurity::Insecure,
    )
    .expect("a source URI");
    assert!(!conn.uri.contains(PASSWORD), "{}", conn.uri);
    let secret = JobSecret {
        password: conn.password.clone(),
        token: StreamToken::from(TOKEN.to_string()),
    };
    let details = IngestionDetails {
        source: conn,
        source_tenant_name: "application".into(),
        source_tenant_id: 3,
        dest_tenant_id: 4,
        dest_name: "standby".into(),
        stream_id: 9,
        start_time: node.now(),
        retention_ns: 3_600_000_000_000,
    };
    for shown in [format!("{details:?}"), format!("{secret:?}")] {
        assert!(
            !shown.contains(PASSWORD) && !shown.contains(TOKEN),
            "{shown}"
        );
    }
    let mut txn = node.begin().expect("begin");
    let job_id = consumer::create_job(&mut txn, details, &secret, "a test job".into())
        .await
        .expect("create the job");
    txn.commit().await.expect("commit");

    let mut txn = node.begin().expect("begin");
    let job = consumer::load(&mut txn, job_id).await.expect("load");
    assert!(
        !job.record.details.contains(PASSWORD),
        "{}",
        job.record.details
    );
    assert!(
        !job.record.details.contains(TOKEN),
        "{}",
        job.record.details
    );
    drop(txn);
    for needle in [PASSWORD, TOKEN] {
        let found = must_find_everywhere(&node, needle);
        assert_eq!(
            found.len(),
            1,
            "only the secret record holds {needle}: {found:?}"
        );
        assert!(found[0].0.contains("job-secret"), "{found:?}");
    }

    let (_, had) = consumer::cancel(&node, job_id)
        .await
        .expect("cancel")
        .expect("the job was running");
    assert_eq!(had, Some(secret), "cancel hands the secret back once");
    for needle in [PASSWORD, TOKEN] {
        let found = must_find_everywhere(&node, needle);
        assert!(
            found.is_empty(),
            "{needle} is still in the keyspace after the job ended: {found:?}"
        );
    }
}

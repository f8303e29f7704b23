//! Physical cluster replication as an operator meets it: the CockroachDB tutorial "Set Up
//! Physical Cluster Replication" with `roach` in its place, on a 3-node primary and a 3-node
//! standby (real processes on 127.0.0.1, TLS, one CA per cluster) with a kv workload running;
//! then the same with a primary node and, separately, a standby node killed by SIGKILL while
//! streaming; and DROP of a replicating virtual cluster. Every bad-input error of CREATE is
//! the roachtest `c2c/bad-input` (quick suite, part of the test command).

mod common;

use common::{ProcCluster, poll_async};
use roachtests::pair::{self, ReplStatus, assignments};
use roachtests::sql::{self, Row, query};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// Each scenario runs six nodes and a workload: one at a time on a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

const REPL_PASSWORD: &str = "repl-secret";

/// A primary and a standby cluster, started with the replication profiles, and an optional
/// workload process on the primary (killed by PID when dropped).
struct Pair {
    primary: ProcCluster,
    standby: ProcCluster,
    workload: Option<Child>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        if let Some(mut w) = self.workload.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// `roach sql` as root on `cluster`'s node `node`, virtual cluster `vc`: stdout (TSV), or the
/// error output.
fn roach_sql(
    cluster: &ProcCluster,
    node: usize,
    vc: &str,
    stmts: &[&str],
) -> Result<String, String> {
    let mode = if cluster.certs.is_some() {
        "verify-full"
    } else {
        "disable"
    };
    let url = format!(
        "postgresql://root@{}/defaultdb?options=-ccluster%3D{vc}&sslmode={mode}",
        cluster.nodes[node].rpc_addr
    );
    let mut cmd = Command::new(common::ROACH);
    cmd.args(["sql", "--url", &url, "--format", "tsv"]);
    match &cluster.certs {
        Some(c) => cmd.arg("--certs-dir").arg(c),
        None => cmd.arg("--insecure"),
    };
    for s in stmts {
        cmd.args(["-e", s]);
    }
    let out = cmd
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .expect("run roach sql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

fn must_sql(cluster: &ProcCluster, vc: &str, stmts: &[&str]) -> String {
    roach_sql(cluster, 0, vc, stmts).unwrap_or_else(|e| panic!("{stmts:?}: {e}"))
}

/// A driver connection to `vc` on node `node`: as `operator` (an admin with a password) on a
/// secure cluster, as root on an insecure one.
async fn connect(cluster: &ProcCluster, node: usize, vc: &str) -> Client {
    match cluster.certs {
        Some(_) => common::connect(cluster, node, vc, "operator", Some("operator-secret")).await,
        None => common::connect(cluster, node, vc, "root", None).await,
    }
}

async fn must_rows(c: &Client, sql: &str) -> Vec<Row> {
    query(c, sql).await.unwrap_or_else(|e| panic!("{e:#}"))
}

/// The error text (with its SQLSTATE) of a statement that must fail.
async fn must_fail(c: &Client, sql: &str) -> String {
    match query(c, sql).await {
        Ok(rows) => panic!("{sql} succeeded: {rows:?}"),
        Err(e) => e.to_string(),
    }
}

fn col<'a>(row: &'a Row, name: &str) -> Option<&'a str> {
    sql::col(row, name).unwrap_or_else(|e| panic!("{e}: {row:?}"))
}

async fn repl_status(c: &Client) -> ReplStatus {
    pair::repl_status(c).await.expect("replication status")
}

/// Polls until the status is `replicating` and `replicated_time` is later than `after`.
async fn must_replicate_past(c: &Client, after: Option<&str>, within: Duration) -> ReplStatus {
    poll_async(
        &format!("replicated_time to pass {after:?}"),
        within,
        || async {
            let s = repl_status(c).await;
            let t = s.replicated.as_deref()?;
            (s.status == "replicating" && after.is_none_or(|a| t > a)).then_some(s)
        },
    )
    .await
}

/// `SHOW JOBS` rows of one job type: (status, running_status, error).
async fn jobs(c: &Client, job_type: &str) -> Vec<(String, String, String)> {
    pair::jobs(c, job_type)
        .await
        .expect("SHOW JOBS")
        .into_iter()
        .map(|[_, status, running, _, error]| (status, running, error))
        .collect()
}

async fn virtual_cluster_names(c: &Client) -> Vec<String> {
    must_rows(c, "SHOW VIRTUAL CLUSTERS")
        .await
        .iter()
        .filter_map(|r| col(r, "name").map(str::to_string))
        .collect()
}

/// The fingerprint of `application` on a cluster as of `at`, optionally from `start`.
async fn fingerprint(c: &Client, at: &str, start: Option<&str>) -> String {
    pair::fingerprint(c, at, start)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// The workload's URL on the primary's `application`.
fn workload_url(cluster: &ProcCluster, node: usize) -> String {
    let addr = &cluster.nodes[node].rpc_addr;
    match &cluster.certs {
        Some(c) => {
            let c = c.display();
            format!(
                "postgresql://root@{addr}/defaultdb?options=-ccluster%3Dapplication&sslmode=verify-full&sslrootcert={c}/ca.crt&sslcert={c}/client.root.crt&sslkey={c}/client.root.key"
            )
        }
        None => format!(
            "postgresql://root@{addr}/defaultdb?options=-ccluster%3Dapplication&sslmode=disable"
        ),
    }
}

impl Pair {
    /// Starts both clusters (`n` nodes each), creates the users of the tutorial, and, with
    /// `load`, starts a kv workload on the primary's `application`.
    fn must_start(n: usize, secure: bool, load: bool) -> Pair {
        let primary =
            ProcCluster::must_start_with(n, secure, &["--config-profile", "replication-source"]);
        let standby =
            ProcCluster::must_start_with(n, secure, &["--config-profile", "replication-target"]);
        if let (Some(p), Some(s)) = (&primary.certs, &standby.certs) {
            assert_ne!(
                std::fs::read(p.join("ca.crt")).expect("primary ca"),
                std::fs::read(s.join("ca.crt")).expect("standby ca"),
                "each cluster has its own CA"
            );
            std::fs::copy(p.join("ca.crt"), s.join("ca_primary.crt")).expect("copy ca");
            std::fs::copy(s.join("ca.crt"), p.join("ca_standby.crt")).expect("copy ca");
        }
        let pw = |user: &str, pw: &str| {
            if secure {
                format!("CREATE USER {user} WITH PASSWORD '{pw}'")
            } else {
                format!("CREATE USER {user}")
            }
        };
        must_sql(
            &primary,
            "system",
            &[
                &pw("repl", REPL_PASSWORD),
                "GRANT SYSTEM REPLICATION TO repl",
                &pw("operator", "operator-secret"),
                "GRANT admin TO operator",
            ],
        );
        // Users belong to a virtual cluster; the application's come along with its data.
        must_sql(
            &primary,
            "application",
            &[
                &pw("operator", "operator-secret"),
                "GRANT admin TO operator",
            ],
        );
        must_sql(
            &standby,
            "system",
            &[
                &pw("operator", "operator-secret"),
                "GRANT admin TO operator",
            ],
        );
        let mut pair = Pair {
            primary,
            standby,
            workload: None,
        };
        if load {
            pair.must_start_workload();
        }
        pair
    }

    fn must_start_workload(&mut self) {
        let url = workload_url(&self.primary, 0);
        let out = common::roach(&["workload", "init", "kv", &url]);
        assert!(
            out.status.success(),
            "workload init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = std::fs::File::create(self.primary.dir.path().join("workload.log"))
            .expect("workload log");
        let child = Command::new(common::ROACH)
            .args([
                "workload",
                "run",
                "kv",
                "--concurrency",
                "2",
                "--max-rate",
                "100",
                "--duration",
                "0",
                "--tolerate-errors",
                &url,
            ])
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn workload");
        self.workload = Some(child);
    }

    /// The replication URI for the standby's CREATE statement, as `user:password`.
    fn uri(&self, userinfo: &str, rootcert: &str) -> String {
        let addr = &self.primary.nodes[0].rpc_addr;
        match &self.standby.certs {
            Some(c) => format!(
                "postgresql://{userinfo}@{addr}?options=-ccluster=system&sslmode=verify-full&sslrootcert={}",
                c.join(rootcert).display()
            ),
            None => {
                format!("postgresql://{userinfo}@{addr}?options=-ccluster%3Dsystem&sslmode=disable")
            }
        }
    }

    /// The tutorial's CREATE statement, through `roach sql` on the standby.
    fn must_create(&self) {
        let uri = self.uri(&format!("repl:{REPL_PASSWORD}"), "ca_primary.crt");
        let out = must_sql(
            &self.standby,
            "system",
            &[&roachtests::pair::Pair::create_statement(
                "application",
                &uri,
            )],
        );
        assert!(out.contains("CREATE VIRTUAL CLUSTER"), "{out}");
    }

    /// Waits until rows written on the primary reach the workload's table.
    async fn must_have_load(&self) {
        let app = connect(&self.primary, 0, "application").await;
        poll_async("the workload to write", Duration::from_secs(60), || async {
            let rows = query(&app, "SELECT count(*) AS n FROM kv.kv").await.ok()?;
            let n: u64 = col(&rows[0], "n")?.parse().ok()?;
            (n >= 20).then_some(())
        })
        .await;
    }
}

/// Cuts over to `to`, waits until the standby's `application` is ready, and returns the
/// cutover time.
async fn must_cut_over(standby: &Client, to: &str) -> String {
    let rows = must_rows(
        standby,
        &format!("ALTER VIRTUAL CLUSTER application COMPLETE REPLICATION TO {to}"),
    )
    .await;
    let cutover = col(&rows[0], "cutover_time")
        .expect("cutover_time")
        .to_string();
    let s = poll_async(
        "the cutover to finish",
        Duration::from_secs(120),
        || async {
            let s = repl_status(standby).await;
            (s.status == "ready").then_some(s)
        },
    )
    .await;
    assert_eq!(s.cutover.as_deref(), Some(cutover.as_str()), "{s:?}");
    cutover
}

/// The standby's fingerprint of `application` equals the primary's as of `at` (all
/// revisions, and the revisions since `start`), and is not that of an empty keyspace.
async fn must_match_fingerprints(pair: &Pair, at: &str, start: &str) {
    let p = connect(&pair.primary, 0, "system").await;
    let s = connect(&pair.standby, 0, "system").await;
    let (fp, fs) = (
        fingerprint(&p, at, None).await,
        fingerprint(&s, at, None).await,
    );
    assert_eq!(fp, fs, "fingerprints as of {at}");
    assert_ne!(fp, "0", "the primary held data");
    let (fp, fs) = (
        fingerprint(&p, at, Some(start)).await,
        fingerprint(&s, at, Some(start)).await,
    );
    assert_eq!(fp, fs, "fingerprints as of {at} from {start}");
}

/// START SERVICE SHARED, then a client writes to the standby's `application` and reads back
/// what the workload wrote on the primary.
async fn must_serve_promoted(pair: &Pair, node: usize) {
    let s = connect(&pair.standby, node, "system").await;
    must_rows(&s, "ALTER VIRTUAL CLUSTER application START SERVICE SHARED").await;
    let vcs = must_rows(&s, "SHOW VIRTUAL CLUSTERS").await;
    let app = vcs
        .iter()
        .find(|r| col(r, "name") == Some("application"))
        .expect("application");
    assert_eq!(col(app, "data_state"), Some("ready"));
    assert_eq!(col(app, "service_mode"), Some("shared"));
    let app = connect(&pair.standby, node, "application").await;
    let n: u64 = col(
        &must_rows(&app, "SELECT count(*) AS n FROM kv.kv").await[0],
        "n",
    )
    .expect("count")
    .parse()
    .expect("number");
    assert!(n > 0, "the replicated rows are there");
    must_rows(&app, "INSERT INTO kv.kv (k, v) VALUES (-424242, '\\x01')").await;
    let rows = must_rows(&app, "SELECT v FROM kv.kv WHERE k = -424242").await;
    assert_eq!(rows.len(), 1, "the write on the standby is readable");
}

#[test]
fn tutorial_flow_on_tls_with_a_workload() {
    let _serial = serial();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let pair = Pair::must_start(3, true, true);
        pair.must_have_load().await;

        let created = Instant::now();
        pair.must_create();
        let s = connect(&pair.standby, 0, "system").await;

        // Within 60 s the status is `replicating` and replicated_time advances.
        let first = must_replicate_past(&s, None, Duration::from_secs(60)).await;
        let st =
            must_replicate_past(&s, first.replicated.as_deref(), Duration::from_secs(30)).await;
        assert!(
            st.uri.contains("redacted") && !st.uri.contains(REPL_PASSWORD),
            "{st:?}"
        );
        assert!(st.retained.is_some(), "{st:?}");
        let vcs = must_rows(&s, "SHOW VIRTUAL CLUSTERS").await;
        let app = vcs
            .iter()
            .find(|r| col(r, "name") == Some("application"))
            .expect("application on the standby");
        assert_eq!(col(app, "data_state"), Some("replicating"));
        assert_eq!(col(app, "service_mode"), Some("none"));

        // Partitions from all 3 primary nodes, ingested by at least 2 standby nodes.
        poll_async(
            "partitions over both clusters",
            Duration::from_secs(30),
            || async {
                let jobs = jobs(&s, "REPLICATION STREAM INGESTION").await;
                let a = assignments(&jobs.first()?.1);
                let sources: std::collections::BTreeSet<_> = a.iter().map(|p| p.0).collect();
                let sinks: std::collections::BTreeSet<_> = a.iter().map(|p| p.1).collect();
                (sources.len() == 3 && sinks.len() >= 2).then_some(())
            },
        )
        .await;
        let p = connect(&pair.primary, 0, "system").await;
        let producers = jobs(&p, "REPLICATION STREAM PRODUCER").await;
        assert_eq!(producers.len(), 1, "{producers:?}");
        assert_eq!(producers[0].0, "running", "{producers:?}");

        // A cutover before retained_time is refused, naming the earliest allowed time, and
        // changes nothing.
        let e = must_fail(
            &s,
            "ALTER VIRTUAL CLUSTER application COMPLETE REPLICATION TO SYSTEM TIME '-1h'",
        )
        .await;
        assert!(e.contains("22023") && e.contains("retained time"), "{e}");
        must_replicate_past(&s, st.replicated.as_deref(), Duration::from_secs(30)).await;

        // PAUSE stops replicated_time; RESUME moves it again.
        must_rows(&s, "ALTER VIRTUAL CLUSTER application PAUSE REPLICATION").await;
        let paused = poll_async("the job to pause", Duration::from_secs(30), || async {
            let s = repl_status(&s).await;
            (s.status == "replication paused").then_some(s)
        })
        .await;
        // A write on the primary while paused; for 3 s (a window in which nothing may
        // change) replicated_time stays where the pause left it.
        let app = connect(&pair.primary, 0, "application").await;
        must_rows(&app, "UPSERT INTO kv.kv (k, v) VALUES (-1, '\\x02')").await;
        let hold = Instant::now();
        while hold.elapsed() < Duration::from_secs(3) {
            let still = repl_status(&s).await;
            assert_eq!(still.status, "replication paused");
            assert_eq!(still.replicated, paused.replicated, "moved while paused");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        must_rows(&s, "ALTER VIRTUAL CLUSTER application RESUME REPLICATION").await;
        let resumed =
            must_replicate_past(&s, paused.replicated.as_deref(), Duration::from_secs(60)).await;

        // The retained window must reach 10 s back before the tutorial's cutover.
        poll_async(
            "10 s of replicated history",
            Duration::from_secs(60),
            || async { (created.elapsed() > Duration::from_secs(12)).then_some(()) },
        )
        .await;
        let cutover = must_cut_over(&s, "SYSTEM TIME '-10s'").await;
        must_match_fingerprints(
            &pair,
            &cutover,
            resumed
                .retained
                .as_deref()
                .expect("retained_time, before the cutover time"),
        )
        .await;

        // The primary's producer job completed.
        poll_async(
            "the producer job to finish",
            Duration::from_secs(30),
            || async {
                let j = jobs(&p, "REPLICATION STREAM PRODUCER").await;
                (j.first()?.0 == "succeeded").then_some(())
            },
        )
        .await;
        must_serve_promoted(&pair, 1).await;
    });
}

/// A scenario with one node of `victim` killed by SIGKILL while streaming.
async fn replication_survives_a_killed_node(kill_primary: bool) {
    let mut pair = Pair::must_start(3, true, true);
    pair.must_have_load().await;
    pair.must_create();
    let s = connect(&pair.standby, 0, "system").await;
    let st = must_replicate_past(&s, None, Duration::from_secs(60)).await;
    let st = must_replicate_past(&s, st.replicated.as_deref(), Duration::from_secs(30)).await;

    // Node 3 of the victim cluster streams a partition; then it dies.
    let on_victim = |a: &(usize, usize)| if kill_primary { a.0 } else { a.1 } == 3;
    poll_async("a partition on node 3", Duration::from_secs(30), || async {
        let jobs = jobs(&s, "REPLICATION STREAM INGESTION").await;
        assignments(&jobs.first()?.1)
            .iter()
            .any(on_victim)
            .then_some(())
    })
    .await;
    if kill_primary {
        pair.primary.nodes[2].kill9();
    } else {
        pair.standby.nodes[2].kill9();
    }
    // The job re-plans over the live nodes and replicates again.
    poll_async("a plan without node 3", Duration::from_secs(60), || async {
        let jobs = jobs(&s, "REPLICATION STREAM INGESTION").await;
        let a = assignments(&jobs.first()?.1);
        (!a.is_empty() && !a.iter().any(on_victim)).then_some(())
    })
    .await;
    // Written on the primary after the kill; the cutover time is after it.
    let app = connect(&pair.primary, 0, "application").await;
    must_rows(&app, "UPSERT INTO kv.kv (k, v) VALUES (-7, '\\x03')").await;
    let now = must_rows(&app, "SELECT now()::STRING AS t").await;
    let after_kill = col(&now[0], "t").expect("now").to_string();

    // Replication continues: the job waits for replicated_time to pass the time after the
    // kill, then cuts over there.
    let cutover = must_cut_over(&s, &format!("SYSTEM TIME '{after_kill}'")).await;
    must_match_fingerprints(&pair, &cutover, st.replicated.as_deref().expect("time")).await;
    let ingest = jobs(&s, "REPLICATION STREAM INGESTION").await;
    assert_eq!(
        ingest.first().map(|j| j.0.as_str()),
        Some("succeeded"),
        "{ingest:?}"
    );
    must_serve_promoted(&pair, 1).await;
    let promoted = connect(&pair.standby, 0, "application").await;
    let rows = must_rows(&promoted, "SELECT v FROM kv.kv WHERE k = -7").await;
    assert_eq!(
        rows.len(),
        1,
        "the row written after the kill was replicated"
    );
}

#[test]
fn a_primary_node_killed_while_streaming() {
    let _serial = serial();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(replication_survives_a_killed_node(true));
}

#[test]
fn a_standby_node_killed_while_streaming() {
    let _serial = serial();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(replication_survives_a_killed_node(false));
}

#[test]
fn disabled_replication_is_refused_a_disk_reserve_pauses_and_drop_cancels() {
    let _serial = serial();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut pair = Pair::must_start(1, false, false);
        let s = connect(&pair.standby, 0, "system").await;

        // With physical_replication.enabled off, CREATE is refused and leaves nothing.
        must_rows(
            &s,
            "SET CLUSTER SETTING physical_replication.enabled = false",
        )
        .await;
        let uri = pair.uri(&format!("repl:{REPL_PASSWORD}"), "ca_primary.crt");
        let e = must_fail(
            &s,
            &roachtests::pair::Pair::create_statement("application", &uri),
        )
        .await;
        assert!(e.contains("55000") && e.contains("disabled"), "{e}");
        assert!(
            !virtual_cluster_names(&s)
                .await
                .contains(&"application".to_string())
        );
        must_rows(
            &s,
            "SET CLUSTER SETTING physical_replication.enabled = true",
        )
        .await;

        pair.must_create();
        let st = must_replicate_past(&s, None, Duration::from_secs(60)).await;

        // A store with less free space than the reserve: ingestion stops before writing, the
        // job says why and pauses; with the reserve back, RESUME continues where it was.
        must_rows(
            &s,
            "SET CLUSTER SETTING physical_replication.consumer.min_free_disk_bytes = '1000 TiB'",
        )
        .await;
        // The reserve is read again within 10 s: keep writing until ingestion meets it.
        let app = connect(&pair.primary, 0, "application").await;
        must_rows(
            &app,
            "CREATE TABLE after_reserve (k INT PRIMARY KEY, n INT)",
        )
        .await;
        let n = std::sync::atomic::AtomicU64::new(0);
        let paused = poll_async(
            "the job to pause on the disk reserve",
            Duration::from_secs(60),
            || async {
                let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                must_rows(&app, &format!("UPSERT INTO after_reserve VALUES (1, {i})")).await;
                let j = jobs(&s, "REPLICATION STREAM INGESTION").await;
                let j = j.first()?.clone();
                (j.0 == "paused").then_some(j)
            },
        )
        .await;
        assert!(
            paused.1.contains("nearly out of disk")
                && paused.2.contains("min_free_disk_bytes")
                && paused.2.contains("RESUME REPLICATION"),
            "{paused:?}"
        );
        let held = repl_status(&s).await;
        must_rows(
            &s,
            "SET CLUSTER SETTING physical_replication.consumer.min_free_disk_bytes = DEFAULT",
        )
        .await;
        must_rows(&s, "ALTER VIRTUAL CLUSTER application RESUME REPLICATION").await;
        must_replicate_past(
            &s,
            held.replicated.or(st.replicated).as_deref(),
            Duration::from_secs(60),
        )
        .await;
        let p = connect(&pair.primary, 0, "system").await;
        assert_eq!(
            jobs(&p, "REPLICATION STREAM PRODUCER")
                .await
                .first()
                .map(|j| j.0.clone()),
            Some("running".to_string())
        );

        // The profile makes dropping a deliberate act.
        let e = must_fail(&s, "DROP VIRTUAL CLUSTER application").await;
        assert!(e.contains("42501") && e.contains("disabled"), "{e}");
        must_rows(
            &s,
            "SET CLUSTER SETTING sql.drop_virtual_cluster.enabled = true",
        )
        .await;
        must_rows(&s, "DROP VIRTUAL CLUSTER application").await;

        assert!(
            !virtual_cluster_names(&s)
                .await
                .contains(&"application".to_string())
        );
        let ingest = jobs(&s, "REPLICATION STREAM INGESTION").await;
        assert_eq!(
            ingest.first().map(|j| j.0.as_str()),
            Some("canceled"),
            "{ingest:?}"
        );
        // DROP returned once the coordinator had let go of the job: nothing writes for it.
        let raw = pair::jobs(&s, "REPLICATION STREAM INGESTION")
            .await
            .expect("SHOW JOBS");
        assert_eq!(
            raw.first().map(|j| j[3].as_str()),
            Some(""),
            "the dropped job still has a coordinator: {raw:?}"
        );
        // Completed as not ingested: the primary's job ends canceled and releases its
        // protected timestamp.
        poll_async(
            "the producer job to complete",
            Duration::from_secs(30),
            || async {
                let j = jobs(&p, "REPLICATION STREAM PRODUCER").await;
                (j.first()?.0 == "canceled").then_some(())
            },
        )
        .await;

        // issue 14 item 4: the source URI's password stayed in the job record (replicated,
        // kept after the job ended). Method: DROP has returned, so the job's secret is
        // deleted and purged; stop the standby's nodes and read every revision of every key
        // of their stores: the password is nowhere, while the job record (its URI without the
        // password) is found, so the scan does read the data.
        for (i, node) in pair.standby.nodes.iter_mut().enumerate() {
            must_stop(node);
            let found = must_scan_store(&node.store.join("data"), REPL_PASSWORD.as_bytes());
            assert!(
                found.is_empty(),
                "standby node {}: the password is still stored: {found:?}",
                i + 1
            );
            let job = must_scan_store(&node.store.join("data"), b"postgresql://repl@");
            assert!(
                !job.is_empty(),
                "standby node {}: the scan found no job record",
                i + 1
            );
        }
    });
}

/// Stops a node with SIGTERM (a clean shutdown, so its store is complete on disk) and waits
/// for it to exit.
fn must_stop(node: &mut common::ProcNode) {
    let Some(mut child) = node.child.take() else {
        return;
    };
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "the node did not stop within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The keys of every version (all revisions, tombstones included) in the stopped store at
/// `dir` whose key or value holds `needle`.
fn must_scan_store(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    use storage::Engine;
    let engine = storage::FjallEngine::open(dir).expect("open the stopped store");
    let all = storage::Span {
        start: Vec::new(),
        end: None,
    };
    engine
        .export(
            &all,
            hlc::Timestamp::ZERO,
            hlc::Timestamp::MAX,
            storage::ExportMode::AllRevisions,
        )
        .expect("export")
        .map(|v| v.expect("a version"))
        .filter(|v| {
            let hay = [v.key.as_slice(), v.value.as_deref().unwrap_or_default()].concat();
            hay.windows(needle.len()).any(|w| w == needle)
        })
        .map(|v| format!("{}", v.key.escape_ascii()))
        .collect()
}

/// The sum over `cluster`'s running nodes of every sample of the metric `name` (all label
/// sets), from `/_status/vars`.
fn must_metric_sum(cluster: &ProcCluster, name: &str) -> f64 {
    let mut sum = 0.0;
    for node in cluster.nodes.iter().filter(|n| n.child.is_some()) {
        let (code, body) = node.http_get("/_status/vars");
        assert_eq!(code, 200, "{body}");
        sum += body
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    sum
}

// issue 15 item 5: MVCC GC with protected timestamps, end to end. Goal: with the source
// virtual cluster's gc.ttl at 3s and the GC queue running every 500ms, a replication stream
// paused for longer than the TTL while the workload keeps writing resumes from its
// checkpoints (no rescan: the standby ingests far fewer bytes after the resume than the
// history written before the stream) and cuts over with the standby's fingerprint equal to
// the primary's; meanwhile the primary really collected (its GC runs, and a read below the
// recorded GC threshold fails with 72000). Without the producer's protected timestamp
// holding GC back, the resumed catch-up starts below the GC threshold and is refused, and
// the cutover never completes. Method: 1+1 insecure nodes with a kv workload; 3 MB of rows
// written before the stream; pause, poll until the pause has outlasted the TTL and the
// primary ran GC three more times, resume, fingerprint the primary as of a time after the
// resume (from a time after the initial scan: GC before the stream may have collected older
// history on the primary, which the standby copied), cut over there and compare.
#[test]
fn a_stream_paused_longer_than_the_gc_ttl_resumes_without_a_rescan() {
    let _serial = serial();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let pair = Pair::must_start(1, false, true);
        let ttl = Duration::from_secs(3);
        must_sql(
            &pair.primary,
            "system",
            &[
                "SET CLUSTER SETTING kv.gc.interval = '500ms'",
                "ALTER VIRTUAL CLUSTER application SET CLUSTER SETTING gc.ttl = '3s'",
            ],
        );
        pair.must_have_load().await;
        let app = connect(&pair.primary, 0, "application").await;
        const BLOB_ROWS: usize = 30;
        const BLOB_BYTES: usize = 100_000;
        let blob = format!("'\\x{}'", "ab".repeat(BLOB_BYTES));
        for i in 0..BLOB_ROWS {
            must_rows(
                &app,
                &format!(
                    "UPSERT INTO kv.kv (k, v) VALUES ({}, {blob})",
                    -1_000_000 - i as i64
                ),
            )
            .await;
        }
        pair.must_create();
        let s = connect(&pair.standby, 0, "system").await;
        let st = must_replicate_past(&s, None, Duration::from_secs(120)).await;
        let initial = must_metric_sum(&pair.standby, "physical_replication_logical_bytes_total");
        assert!(
            initial >= (BLOB_ROWS * BLOB_BYTES) as f64,
            "the initial scan ingested {initial} bytes"
        );
        let st = must_replicate_past(&s, st.replicated.as_deref(), Duration::from_secs(30)).await;
        let start = st.replicated.expect("replicated_time");

        must_rows(&s, "ALTER VIRTUAL CLUSTER application PAUSE REPLICATION").await;
        poll_async("the job to pause", Duration::from_secs(30), || async {
            let j = jobs(&s, "REPLICATION STREAM INGESTION").await;
            (j.first()?.0 == "paused").then_some(())
        })
        .await;
        let paused_at = Instant::now();
        let runs_at_pause = must_metric_sum(&pair.primary, "kv_gc_runs_total");
        poll_async(
            "the pause to outlast gc.ttl with the primary's GC running",
            Duration::from_secs(60),
            || async {
                let runs = must_metric_sum(&pair.primary, "kv_gc_runs_total");
                (paused_at.elapsed() > ttl + Duration::from_secs(1) && runs >= runs_at_pause + 3.0)
                    .then_some(())
            },
        )
        .await;
        // The primary recorded a GC threshold on the virtual cluster: a read below it fails.
        let e = must_fail(
            &app,
            "SELECT count(*) AS n FROM kv.kv AS OF SYSTEM TIME '-1h'",
        )
        .await;
        assert!(e.contains("72000") && e.contains("GC threshold"), "{e}");

        let before_resume =
            must_metric_sum(&pair.standby, "physical_replication_logical_bytes_total");
        must_rows(&s, "ALTER VIRTUAL CLUSTER application RESUME REPLICATION").await;
        let now = must_rows(&app, "SELECT now()::STRING AS t").await;
        let at = col(&now[0], "t").expect("now").to_string();
        let p = connect(&pair.primary, 0, "system").await;
        // Taken while the stream still protects the history since `start` (the cutover
        // releases the protection, and GC may then collect it).
        let fp_primary = fingerprint(&p, &at, Some(&start)).await;
        let cutover = must_cut_over(&s, &format!("SYSTEM TIME '{at}'")).await;
        let fp_standby = fingerprint(&s, &cutover, Some(&start)).await;
        assert_eq!(
            fp_primary, fp_standby,
            "fingerprints from {start} as of {at}"
        );
        assert_ne!(fp_primary, "0", "the workload wrote during the stream");
        let after = must_metric_sum(&pair.standby, "physical_replication_logical_bytes_total");
        assert!(
            after - before_resume < (BLOB_ROWS * BLOB_BYTES) as f64 / 2.0,
            "the resumed stream ingested {} bytes: a rescan",
            after - before_resume
        );
    });
}

//! `roach workload` as an operator runs it: the built binary against a real single-node
//! insecure roach cluster started with the `replication-source` profile, through the
//! `application` virtual cluster (as in the replication tutorial).
//!
//! The SQL runs on the application SQL engine (tables, DML, SELECT, transactions).

mod common;

use common::{ProcCluster, roach};

/// A one-node insecure cluster whose `application` virtual cluster serves SQL.
fn must_start_cluster() -> ProcCluster {
    ProcCluster::must_start_with(1, false, &["--config-profile", "replication-source"])
}

/// The URL of the cluster's application virtual cluster.
fn app_url(cluster: &ProcCluster) -> String {
    format!(
        "postgresql://root@{}/defaultdb?options=-ccluster=application&sslmode=disable",
        cluster.nodes[0].rpc_addr
    )
}

/// Runs `roach workload ARGS URL`, asserts exit status 0, and returns stdout.
fn must_workload(args: &[&str], url: &str) -> String {
    let mut all = vec!["workload"];
    all.extend_from_slice(args);
    all.push(url);
    let out = roach(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "roach {all:?} exited with {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The values of the `summary:` line, asserting it is followed only by the two benchmark
/// figure lines (`<workload>_ops_per_s`, `<workload>_p99_ms`) and has every field.
fn must_summary(stdout: &str) -> (u64, u64) {
    let lines: Vec<&str> = stdout.lines().collect();
    let n = lines.len();
    assert!(n >= 3, "{stdout}");
    assert!(
        lines[n - 2].contains("_ops_per_s: ") && lines[n - 2].ends_with(" ops/s"),
        "{stdout}"
    );
    assert!(
        lines[n - 1].contains("_p99_ms: ") && lines[n - 1].ends_with(" ms"),
        "{stdout}"
    );
    let last = lines[n - 3];
    let fields: Vec<(&str, &str)> = last
        .strip_prefix("summary: ")
        .unwrap_or_else(|| panic!("last line is not the summary: {last:?}\n{stdout}"))
        .split(' ')
        .map(|f| f.split_once('=').expect("key=value"))
        .collect();
    let keys: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        ["ops", "ops/s", "p50", "p95", "p99", "errors"],
        "{last}"
    );
    let number = |key: &str| -> u64 {
        fields
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("{key} in {last}"))
    };
    (number("ops"), number("errors"))
}

// Goal: bank's money is conserved through concurrent transfers on roach: init loads 200
// accounts, a 3 s run with two workers completes transfers without errors (40001 retries are
// allowed), and check finds 200 accounts holding 200 000. Method: the built binary against a
// real one-node cluster.
#[test]
fn bank_init_run_check() {
    let cluster = must_start_cluster();
    let url = app_url(&cluster);
    let init = must_workload(&["init", "bank", "--rows", "200"], &url);
    assert!(init.contains("loaded 200 rows into bank"), "{init}");
    let run = must_workload(
        &[
            "run",
            "bank",
            "--rows",
            "200",
            "--duration",
            "3s",
            "--concurrency",
            "2",
        ],
        &url,
    );
    let (ops, errors) = must_summary(&run);
    assert!(ops > 0, "no transfer completed:\n{run}");
    assert_eq!(errors, 0, "{run}");
    let check = must_workload(&["check", "bank", "--rows", "200"], &url);
    assert!(
        check.contains("bank check ok: 200 accounts, total balance 200000"),
        "{check}"
    );
}

// Goal: kv runs a 50/50 read/write mix against roach: init creates the table and loads 100
// keys, and a 3 s run completes operations of both kinds without errors.
#[test]
fn kv_init_run_mixed() {
    let cluster = must_start_cluster();
    let url = app_url(&cluster);
    must_workload(&["init", "kv", "--insert-count", "100"], &url);
    let run = must_workload(
        &[
            "run",
            "kv",
            "--read-percent",
            "50",
            "--duration",
            "3s",
            "--concurrency",
            "2",
            "--cycle-length",
            "1000",
        ],
        &url,
    );
    let (ops, errors) = must_summary(&run);
    assert!(ops > 0, "{run}");
    assert_eq!(errors, 0, "{run}");
    for op in [" read\n", " write\n"] {
        assert!(run.contains(op), "no {op:?} line:\n{run}");
    }
}

// Goal: movr's schema (UUID keys, composite primary keys, secondary indexes, TIMESTAMP,
// DECIMAL, JSONB) loads on roach with small counts, a second init is a no-op, and a short run
// of the read/write mix has no errors.
#[test]
fn movr_init_small_and_run() {
    let cluster = must_start_cluster();
    let url = app_url(&cluster);
    let counts = [
        "--num-users",
        "10",
        "--num-vehicles",
        "5",
        "--num-rides",
        "30",
        "--num-promo-codes",
        "5",
    ];
    let init = must_workload(&[&["init", "movr"][..], &counts].concat(), &url);
    for table in [
        "users",
        "vehicles",
        "rides",
        "promo_codes",
        "user_promo_codes",
    ] {
        assert!(init.contains(&format!("into {table} ")), "{table}: {init}");
    }
    let again = must_workload(&[&["init", "movr"][..], &counts].concat(), &url);
    assert!(again.contains("not loading"), "{again}");
    let run = must_workload(
        &["run", "movr", "--duration", "2s", "--concurrency", "2"],
        &url,
    );
    let (ops, errors) = must_summary(&run);
    assert!(ops > 0, "{run}");
    assert_eq!(errors, 0, "{run}");
}

// Goal: a node that cannot be reached fails with exit code 1, the target and a hint, and
// never shows the password of the URL. Method: a port that was bound and closed again.
#[test]
fn unreachable_node_fails_without_showing_password() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let url = format!("postgresql://bob:s3cret-pw@127.0.0.1:{port}/defaultdb?sslmode=disable");
    for args in [
        &["workload", "init", "bank", &url][..],
        &["workload", "run", "kv", "--duration", "1s", &url],
        &["workload", "check", "bank", &url],
    ] {
        let out = roach(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
        assert!(stderr.contains("HINT:"), "{stderr}");
        assert!(stderr.contains("bob:****@"), "{stderr}");
        assert!(
            !stderr.contains("s3cret") && !stdout.contains("s3cret"),
            "{stderr}"
        );
    }
}

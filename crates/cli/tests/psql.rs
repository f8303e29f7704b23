//! The SQL front end as an operator meets it: plain `psql` against a 3-node TLS cluster
//! started with a configuration profile (the replication tutorial's first steps).

mod common;

use common::ProcCluster;
use std::process::Command;

/// Runs psql with `url` and `-c` statements; returns (success, stdout, stderr).
fn psql(url: &str, password: Option<&str>, statements: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new("psql");
    cmd.arg(url).args([
        "-X",
        "-A",
        "-F",
        " ",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-v",
        "VERBOSITY=verbose",
    ]);
    for s in statements {
        cmd.args(["-c", s]);
    }
    match password {
        Some(p) => cmd.env("PGPASSWORD", p),
        None => cmd.env_remove("PGPASSWORD"),
    };
    let out = cmd
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql is installed (Debian package postgresql-client)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn url(
    cluster: &ProcCluster,
    node: usize,
    user: &str,
    options: Option<&str>,
    client_cert: bool,
) -> String {
    let certs = cluster
        .certs
        .as_ref()
        .expect("secure")
        .display()
        .to_string();
    let mut u = format!(
        "postgresql://{user}@{}/defaultdb?sslmode=verify-full&sslrootcert={certs}/ca.crt",
        cluster.nodes[node].rpc_addr
    );
    if let Some(o) = options {
        // libpq needs the '=' inside options percent-encoded.
        u.push_str(&format!("&options={}", o.replace('=', "%3D")));
    }
    if client_cert {
        u.push_str(&format!(
            "&sslcert={certs}/client.{user}.crt&sslkey={certs}/client.{user}.key"
        ));
    }
    u
}

// Goal: with --config-profile replication-source, psql (certificate login as root, through any
// node, on the shared RPC/SQL port) lists exactly the profile's three virtual clusters; a
// password user with SYSTEM REPLICATION logs in, a wrong password is refused (28P01), the user
// may not create virtual clusters (42501); without options a connection lands on application;
// template is refused with a message naming it.
#[test]
fn replication_source_profile_through_psql() {
    let cluster =
        ProcCluster::must_start_with(3, true, &["--config-profile", "replication-source"]);
    let system = url(&cluster, 1, "root", Some("-ccluster=system"), true);
    let (ok, out, err) = psql(&system, None, &["SHOW VIRTUAL CLUSTERS"]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        "1 system ready shared\n2 template ready none\n3 application ready shared"
    );

    let (ok, _, err) = psql(
        &system,
        None,
        &[
            "CREATE USER repl WITH PASSWORD 'x'",
            "GRANT SYSTEM REPLICATION TO repl",
        ],
    );
    assert!(ok, "{err}");
    let repl = url(&cluster, 2, "repl", Some("-ccluster=system"), false);
    let (ok, out, err) = psql(&repl, Some("x"), &["SELECT current_user"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "repl");
    let (ok, _, err) = psql(&repl, Some("wrong"), &["SELECT 1"]);
    assert!(!ok);
    assert!(
        err.contains("password authentication failed for user repl"),
        "{err}"
    );
    let (ok, _, err) = psql(&repl, Some("x"), &["CREATE VIRTUAL CLUSTER foo"]);
    assert!(!ok);
    assert!(err.contains("42501"), "{err}");

    let default = url(&cluster, 0, "root", None, true);
    let (ok, out, err) = psql(&default, None, &["SHOW virtual_cluster_name"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "application");
    // The same list through roach's own shell (certificates from --certs-dir; the shell goes
    // to the system virtual cluster by default).
    let certs = cluster
        .certs
        .as_ref()
        .expect("secure")
        .display()
        .to_string();
    let out = common::roach(&[
        "sql",
        "--certs-dir",
        &certs,
        "--host",
        &cluster.nodes[0].rpc_addr,
        "-e",
        "SHOW VIRTUAL CLUSTERS",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for row in [
        "1  | system      | ready      | shared",
        "2  | template    | ready      | none",
        "3  | application | ready      | shared",
        "(3 rows)",
    ] {
        assert!(text.contains(row), "missing {row:?} in:\n{text}");
    }

    let template = url(&cluster, 0, "root", Some("-ccluster=template"), true);
    let (ok, _, err) = psql(&template, None, &["SELECT 1"]);
    assert!(!ok);
    assert!(
        err.contains("virtual cluster \"template\" is not serving SQL"),
        "{err}"
    );
}

/// Connects with tokio-postgres as `user` with `password` to the system virtual cluster,
/// over TLS verified against the cluster CA, or without TLS; returns the SQLSTATE of a failure.
fn driver_login(
    cluster: &ProcCluster,
    user: &str,
    password: &str,
    tls: bool,
) -> Result<(), String> {
    let (host, port) = cluster.nodes[0]
        .rpc_addr
        .split_once(':')
        .expect("host:port");
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port.parse().expect("port"))
        .user(user)
        .password(password)
        .dbname("defaultdb")
        .options("-ccluster=system");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let sqlstate = |e: tokio_postgres::Error| {
        e.as_db_error()
            .map(|d| d.code().code().to_string())
            .unwrap_or_else(|| format!("no SQLSTATE: {e}"))
    };
    runtime.block_on(async {
        if !tls {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            return config
                .connect(tokio_postgres::NoTls)
                .await
                .map(|_| ())
                .map_err(sqlstate);
        }
        let ca = cluster.certs.as_ref().expect("secure").join("ca.crt");
        let tls_config = common::driver_tls(&ca);
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
        let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls_config);
        config
            .connect(connector)
            .await
            .map(|_| ())
            .map_err(sqlstate)
    })
}

// Goal: through a driver, a password login over TLS succeeds, a wrong password fails with
// SQLSTATE 28P01, and a password login without TLS is refused (28000) on a secure cluster.
#[test]
fn password_logins_through_a_driver() {
    let cluster =
        ProcCluster::must_start_with(1, true, &["--config-profile", "replication-source"]);
    let system = url(&cluster, 0, "root", Some("-ccluster=system"), true);
    let (ok, _, err) = psql(&system, None, &["CREATE USER repl WITH PASSWORD 'x'"]);
    assert!(ok, "{err}");
    assert_eq!(driver_login(&cluster, "repl", "x", true), Ok(()));
    assert_eq!(
        driver_login(&cluster, "repl", "wrong", true),
        Err("28P01".to_string())
    );
    assert_eq!(
        driver_login(&cluster, "nobody", "x", true),
        Err("28P01".to_string())
    );
    assert_eq!(
        driver_login(&cluster, "repl", "x", false),
        Err("28000".to_string())
    );
}

// Goal: with --config-profile replication-target, only system and template exist.
#[test]
fn replication_target_profile_through_psql() {
    let cluster =
        ProcCluster::must_start_with(3, true, &["--config-profile", "replication-target"]);
    let system = url(&cluster, 0, "root", Some("-ccluster=system"), true);
    let (ok, out, err) = psql(&system, None, &["SHOW VIRTUAL CLUSTERS"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "1 system ready shared\n2 template ready none");
}

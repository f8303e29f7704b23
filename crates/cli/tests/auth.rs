//! Logins and user management as an attacker meets them (issue 14 items 1 and 10): a real
//! secure single-node cluster (`roach start` with certificates), drivers connecting over TLS
//! with passwords, root with its client certificate.

mod common;

use common::{Login, ProcCluster, try_connect};
use tokio_postgres::Client;

/// A password (or password-less) login over TLS without a client certificate.
async fn try_login(
    cluster: &ProcCluster,
    vc: &str,
    user: &str,
    password: Option<&str>,
) -> Result<Client, tokio_postgres::Error> {
    try_connect(cluster, 0, vc, user, Login::Password(password)).await
}

/// Root with its client certificate (no password).
async fn root_login(cluster: &ProcCluster, vc: &str) -> anyhow::Result<Client> {
    let certs = cluster.certs.as_ref().expect("secure cluster");
    roachtests::sql::connect(&cluster.nodes[0].rpc_addr, vc, certs).await
}

/// (SQLSTATE, message, hint) of a server error; fails the test on a client-side error.
fn server_error(e: &tokio_postgres::Error, what: &str) -> (String, String, String) {
    let db = e
        .as_db_error()
        .unwrap_or_else(|| panic!("{what}: not a server error: {e}"));
    (
        db.code().code().to_string(),
        db.message().to_string(),
        db.hint().unwrap_or_default().to_string(),
    )
}

/// The value of the metric line `name` (with its labels) on the node's `/_status/vars`.
fn metric(cluster: &ProcCluster, name: &str) -> f64 {
    let (code, body) = cluster.nodes[0].http_get("/_status/vars");
    assert_eq!(code, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

// issue 14 item 1: the reproduced attack. Goal: mallory, holding SYSTEM CREATEROLE and
// logged in with her password, cannot set root's password (42501), so she cannot log in as
// root; root's logins keep working. Method: the exact statements from the issue against a
// secure node, then password logins as root with mallory's password (refused, 28P01) and a
// certificate login as root (works, still admin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn createrole_cannot_set_roots_password() {
    let cluster = ProcCluster::must_start(1, true);
    let root = root_login(&cluster, "system").await.expect("root");
    root.batch_execute(
        "CREATE USER mallory WITH PASSWORD 'mallory-secret'; GRANT SYSTEM CREATEROLE TO mallory",
    )
    .await
    .expect("setup");
    let mallory = try_login(&cluster, "system", "mallory", Some("mallory-secret"))
        .await
        .expect("mallory logs in");
    let err = mallory
        .batch_execute("ALTER USER root WITH PASSWORD 'x'")
        .await
        .expect_err("mallory must not set root's password");
    let (code, message, hint) = server_error(&err, "ALTER USER root");
    assert_eq!(code, "42501", "{message}");
    assert!(message.contains("must be an admin"), "{message}");
    assert!(!hint.is_empty());
    let err = try_login(&cluster, "system", "root", Some("x"))
        .await
        .expect_err("root has no password mallory knows");
    assert_eq!(server_error(&err, "root with x").0, "28P01");
    let root = root_login(&cluster, "system")
        .await
        .expect("root still logs in");
    let rows = root
        .simple_query("SHOW GRANTS FOR root")
        .await
        .expect("grants");
    assert!(
        rows.iter().any(|m| matches!(m,
            tokio_postgres::SimpleQueryMessage::Row(r) if r.get(1) == Some("ALL"))),
        "root is still an admin"
    );
}

// issue 14 item 10: before authentication a login reveals neither whether the user nor
// whether the virtual cluster exists, nor its state; after authentication the precise
// reason is given; failed logins from an address are throttled, and counted in metrics.
// Method: password logins that fail for every reason (wrong password, unknown user, user
// without password, unknown virtual cluster, stopped virtual cluster) must return the same
// SQLSTATE, message (up to the user name) and hint, and without a password the server must
// ask for one in every case (the client fails, not the server); root's certificate login
// then gets the precise reasons; with the limit set to 3, the 4th login from 127.0.0.1 is
// refused even with the right password, while root's certificate login still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_reveal_nothing_before_authentication() {
    let cluster = ProcCluster::must_start(1, true);
    let root = root_login(&cluster, "system").await.expect("root");
    root.batch_execute(
        "CREATE USER alice WITH PASSWORD 'right'; CREATE USER nopass; \
         CREATE VIRTUAL CLUSTER stopped; \
         SET CLUSTER SETTING server.auth.failed_login_limit = 0",
    )
    .await
    .expect("setup");

    let failing = [
        ("system", "alice", "wrong"),
        ("system", "ghost", "right"),
        ("system", "nopass", "right"),
        ("system", "root", "right"),
        ("nope", "alice", "right"),
        ("stopped", "root", "right"),
        ("stopped", "ghost", "right"),
    ];
    let mut seen = Vec::new();
    for (vc, user, password) in failing {
        let what = format!("{user}@{vc} with {password}");
        let err = try_login(&cluster, vc, user, Some(password))
            .await
            .expect_err(&what);
        let (code, message, hint) = server_error(&err, &what);
        seen.push((code, message.replace(user, "USER"), hint));
    }
    let first = seen[0].clone();
    assert_eq!(first.0, "28P01");
    assert_eq!(first.1, "password authentication failed for user USER");
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(*s, first, "{:?} differs from a wrong password", failing[i]);
    }
    // Without a password, the server asks for one whoever the user is.
    for (vc, user) in [("system", "alice"), ("system", "ghost"), ("nope", "root")] {
        let err = try_login(&cluster, vc, user, None)
            .await
            .expect_err("no password");
        assert!(
            err.as_db_error().is_none(),
            "{user}@{vc}: the server answered before asking for a password: {err}"
        );
    }
    // After authentication, the precise reason.
    let err = root_login(&cluster, "stopped")
        .await
        .expect_err("stopped does not serve");
    assert!(format!("{err:#}").contains("is not serving SQL"), "{err:#}");
    let err = root_login(&cluster, "nope")
        .await
        .expect_err("no such cluster");
    assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
    try_login(&cluster, "system", "alice", Some("right"))
        .await
        .expect("alice logs in");
    assert!(metric(&cluster, "sql_login_failures_total") >= failing.len() as f64);

    // The throttle: three failures from this address, then even the right password is
    // refused for a minute; certificate logins are not throttled.
    root.batch_execute(
        "SET CLUSTER SETTING server.auth.failed_login_limit = 3; \
         SET CLUSTER SETTING server.auth.failed_login_backoff = '1m'",
    )
    .await
    .expect("settings");
    for _ in 0..3 {
        let err = try_login(&cluster, "system", "guesser", Some("guess"))
            .await
            .expect_err("guess");
        assert_eq!(server_error(&err, "guess").0, "28P01");
    }
    let err = try_login(&cluster, "system", "alice", Some("right"))
        .await
        .expect_err("the address is throttled");
    let (code, message, _) = server_error(&err, "throttled");
    assert_eq!(code, "28000");
    assert!(
        message.contains("too many failed login attempts from 127.0.0.1"),
        "{message}"
    );
    assert!(metric(&cluster, "sql_login_throttled_total{scope=\"address\"}") >= 1.0);
    root_login(&cluster, "system")
        .await
        .expect("certificate logins are not throttled");
}

// issue 14 item 10 (with item 7's handshake timeout): a user name that waits after failed
// logins is only delayed from other addresses, never locked out. Goal: with a backoff (1
// minute) longer than server.handshake_timeout (10 s), the right password from a second
// address still logs in, delayed by at most half the handshake timeout, instead of having its
// connection closed by the handshake deadline (what happened before the delay was capped).
// Method: a secure node; one failed login of alice from 127.0.0.1 (limit 1) throttles the
// address and the user name; alice then logs in from 127.0.0.2 (a socket bound to that
// loopback address, handed to tokio-postgres) and must succeed, counted as a user delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_user_name_is_delayed_not_locked_out() {
    let cluster = ProcCluster::must_start(1, true);
    let root = root_login(&cluster, "system").await.expect("root");
    root.batch_execute(
        "CREATE USER alice WITH PASSWORD 'right'; \
         SET CLUSTER SETTING server.auth.failed_login_limit = 1; \
         SET CLUSTER SETTING server.auth.failed_login_backoff = '1m'; \
         SET CLUSTER SETTING server.auth.failed_login_max_backoff = '1m'",
    )
    .await
    .expect("setup");
    let err = try_login(&cluster, "system", "alice", Some("wrong"))
        .await
        .expect_err("wrong password");
    assert_eq!(server_error(&err, "wrong password").0, "28P01");

    // The same user name from another address: delayed, then admitted.
    let addr: std::net::SocketAddr = cluster.nodes[0].rpc_addr.parse().expect("rpc addr");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let stream = socket.connect(addr).await.expect("connect from 127.0.0.2");
    let certs = cluster.certs.as_ref().expect("secure cluster");
    let mut make =
        tokio_postgres_rustls::MakeRustlsConnect::new(common::driver_tls(&certs.join("ca.crt")));
    let tls = tokio_postgres::tls::MakeTlsConnect::<tokio::net::TcpStream>::make_tls_connect(
        &mut make,
        &addr.ip().to_string(),
    )
    .expect("tls connector");
    let mut config = tokio_postgres::Config::new();
    config
        .user("alice")
        .password("right")
        .dbname("defaultdb")
        .options("-ccluster=system")
        .ssl_mode(tokio_postgres::config::SslMode::Require);
    let (client, conn) = config
        .connect_raw(stream, tls)
        .await
        .expect("alice from 127.0.0.2 is delayed, not refused or cut off");
    tokio::spawn(conn);
    let row = client
        .query_one("SELECT current_user", &[])
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), "alice");
    assert!(metric(&cluster, "sql_login_throttled_total{scope=\"user\"}") >= 1.0);
}

//! Connection routing to virtual clusters and privilege checks, over real pgwire connections
//! to an in-process node (insecure mode: users must exist but present no credentials).

mod common;

use common::{SqlTestServer, message, sqlstate};

async fn cluster_name(client: &tokio_postgres::Client) -> String {
    let rows = client
        .query("SHOW virtual_cluster_name", &[])
        .await
        .expect("show");
    rows[0].get(0)
}

// Goal: `options=-ccluster=NAME` routes, else a `cluster:NAME/db` database, else the
// `server.controller.default_target_cluster` setting (application on the source profile);
// a non-serving virtual cluster is refused, after authentication, with a message naming it;
// an unknown one like an unknown user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_route_to_virtual_clusters() {
    let server = SqlTestServer::must_start("replication-source").await;
    let system = server
        .connect("root", Some("-ccluster=system"))
        .await
        .expect("system");
    assert_eq!(cluster_name(&system).await, "system");
    let default = server.connect("root", None).await.expect("default");
    assert_eq!(cluster_name(&default).await, "application");

    let (host, port) = server.addr.split_once(':').expect("addr");
    let mut config = tokio_postgres::Config::new();
    config
        .host(host)
        .port(port.parse().expect("port"))
        .user("root")
        .dbname("cluster:system/defaultdb");
    let (client, conn) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("cluster: database form");
    tokio::spawn(conn);
    assert_eq!(cluster_name(&client).await, "system");
    let db: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .expect("db")
        .get(0);
    assert_eq!(db, "defaultdb");

    let err = server
        .connect("root", Some("-ccluster=template"))
        .await
        .expect_err("template is not served");
    assert_eq!(sqlstate(&err), "08004");
    assert!(
        message(&err).contains("\"template\"") && message(&err).contains("service_mode none"),
        "{}",
        message(&err)
    );
    // issue 14 item 10: an unknown virtual cluster fails like an unknown user (no
    // authentication has happened, so neither may be told apart).
    let err = server
        .connect("root", Some("-ccluster=nope"))
        .await
        .expect_err("unknown");
    assert_eq!(sqlstate(&err), "28000");
    assert_eq!(message(&err), "authentication failed for user root");
    let err = server
        .connect("ghost", Some("-ccluster=system"))
        .await
        .expect_err("unknown user");
    assert_eq!(sqlstate(&err), "28000");
    assert_eq!(message(&err), "authentication failed for user ghost");

    // Changing the default target re-routes new connections.
    system
        .batch_execute("SET CLUSTER SETTING server.controller.default_target_cluster = 'system'")
        .await
        .expect("set");
    let default = server.connect("root", None).await.expect("default");
    assert_eq!(cluster_name(&default).await, "system");
}

// Goal: a user with only SYSTEM REPLICATION may not manage virtual clusters (42501); users
// and their grants are per virtual cluster; administrative statements are refused outside the
// system virtual cluster; the extended protocol with `$1` parameters works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileges_and_extended_protocol() {
    let server = SqlTestServer::must_start("replication-source").await;
    let root = server
        .connect("root", Some("-ccluster=system"))
        .await
        .expect("root");
    root.batch_execute("CREATE USER repl WITH PASSWORD 'x'; GRANT SYSTEM REPLICATION TO repl")
        .await
        .expect("create repl");
    let repl = server
        .connect("repl", Some("-ccluster=system"))
        .await
        .expect("repl");
    let err = repl
        .batch_execute("CREATE VIRTUAL CLUSTER foo")
        .await
        .expect_err("no privilege");
    assert_eq!(sqlstate(&err), "42501");
    assert!(message(&err).contains("MANAGEVIRTUALCLUSTER"));
    let err = repl
        .batch_execute("SET CLUSTER SETTING kv.rangefeed.enabled = false")
        .await
        .expect_err("no privilege");
    assert_eq!(sqlstate(&err), "42501");

    // repl exists only in the system virtual cluster.
    let err = server
        .connect("repl", Some("-ccluster=application"))
        .await
        .expect_err("not in application");
    assert_eq!(sqlstate(&err), "28000");
    let app = server
        .connect("root", Some("-ccluster=application"))
        .await
        .expect("app root");
    let err = app
        .batch_execute("SHOW VIRTUAL CLUSTERS")
        .await
        .expect_err("system only");
    assert_eq!(sqlstate(&err), "42501");
    let users: Vec<String> = app
        .query("SHOW USERS", &[])
        .await
        .expect("users")
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    assert_eq!(users, vec!["root"]);

    // Extended protocol: parameters and a prepared statement.
    let stmt = root
        .prepare("SHOW VIRTUAL CLUSTER application")
        .await
        .expect("prepare");
    let row = root.query_one(&stmt, &[]).await.expect("query");
    assert_eq!(row.get::<_, i64>(0), 3);
    root.execute("CREATE USER ops WITH PASSWORD $1", &[&"secret"])
        .await
        .expect("param");
    let grants = root
        .query("SHOW GRANTS FOR ops", &[])
        .await
        .expect("grants");
    assert!(grants.is_empty());
    let users: Vec<String> = root
        .query("SHOW USERS", &[])
        .await
        .expect("users")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(users, vec!["ops", "repl", "root"]);
    let one: i64 = root
        .query_one("SELECT 1", &[])
        .await
        .expect("select")
        .get(0);
    assert_eq!(one, 1);
}

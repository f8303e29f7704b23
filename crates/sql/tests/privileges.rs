//! Privilege escalation through user management (issue 14 item 1), over real pgwire
//! connections to an in-process node (insecure mode: each test user connects as itself
//! without credentials, so every statement runs with that user's privileges).

mod common;

use common::{SqlTestServer, message, sqlstate};
use tokio_postgres::Client;

/// Runs `sql` as `client` and fails the test unless it is refused with 42501 and a message
/// containing `fragment`.
async fn must_be_refused(client: &Client, sql: &str, fragment: &str) {
    let err = client
        .batch_execute(sql)
        .await
        .expect_err(&format!("{sql} must be refused"));
    assert_eq!(sqlstate(&err), "42501", "{sql}: {}", message(&err));
    assert!(
        message(&err).contains(fragment),
        "{sql}: {:?} lacks {fragment:?}",
        message(&err)
    );
}

async fn column0(client: &Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

// issue 14 item 1: a CREATEROLE user must not take over the cluster. Goal: mallory, holding
// only SYSTEM CREATEROLE, can neither change the password of nor drop root or any admin, nor
// a user holding a privilege she lacks (system or object), nor grant admin or privileges,
// nor demote root; she still manages plain users. Method: statements as mallory, each
// checked for 42501 and its message, then root's record is checked unchanged (still admin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn createrole_cannot_take_over_admins() {
    let server = SqlTestServer::must_start("replication-source").await;
    let root = server
        .connect("root", Some("-ccluster=system"))
        .await
        .expect("root");
    root.batch_execute(
        "CREATE USER mallory; GRANT SYSTEM CREATEROLE TO mallory; \
         CREATE USER ops; GRANT admin TO ops; \
         CREATE USER repl; GRANT SYSTEM REPLICATION TO repl; \
         CREATE USER reader; CREATE TABLE secrets (k INT PRIMARY KEY); \
         GRANT SELECT ON TABLE secrets TO reader",
    )
    .await
    .expect("setup");
    let mallory = server
        .connect("mallory", Some("-ccluster=system"))
        .await
        .expect("mallory");

    // The reproduced attack, and the same shape on every statement that takes over a user.
    must_be_refused(
        &mallory,
        "ALTER USER root WITH PASSWORD 'x'",
        "must be an admin to change the password of the admin user root",
    )
    .await;
    must_be_refused(
        &mallory,
        "ALTER USER ops WITH PASSWORD 'x'",
        "admin user ops",
    )
    .await;
    must_be_refused(
        &mallory,
        "DROP USER ops",
        "must be an admin to drop the admin user ops",
    )
    .await;
    must_be_refused(
        &mallory,
        "ALTER USER repl WITH PASSWORD 'x'",
        "repl holds the system privilege REPLICATION, which mallory does not",
    )
    .await;
    must_be_refused(&mallory, "DROP USER repl", "REPLICATION").await;
    must_be_refused(
        &mallory,
        "ALTER USER reader WITH PASSWORD 'x'",
        "reader holds SELECT on the table with id",
    )
    .await;
    must_be_refused(&mallory, "GRANT admin TO mallory", "must be an admin").await;
    must_be_refused(
        &mallory,
        "GRANT SYSTEM MODIFYCLUSTERSETTING TO mallory",
        "must be an admin",
    )
    .await;
    must_be_refused(
        &mallory,
        "GRANT SELECT ON TABLE secrets TO mallory",
        "must be an admin",
    )
    .await;
    must_be_refused(&mallory, "REVOKE admin FROM ops", "must be an admin").await;

    // Nobody demotes or drops root, admins included.
    must_be_refused(
        &root,
        "REVOKE admin FROM root",
        "root cannot be removed from the admin role",
    )
    .await;
    let err = root
        .batch_execute("DROP USER root")
        .await
        .expect_err("root is built in");
    assert_eq!(sqlstate(&err), "22023");

    // What CREATEROLE is for still works: plain users.
    mallory
        .batch_execute(
            "CREATE USER temp; ALTER USER temp WITH PASSWORD 'y'; DROP USER temp; \
             ALTER USER mallory WITH PASSWORD 'mine'",
        )
        .await
        .expect("CREATEROLE manages plain users");
    let grants = column0(&root, "SHOW GRANTS FOR root").await;
    assert_eq!(grants, vec!["root"], "root keeps ALL");
    let admins: Vec<String> = root
        .query("SHOW USERS", &[])
        .await
        .expect("users")
        .iter()
        .filter(|r| r.get::<_, String>(2) == "{admin}")
        .map(|r| r.get(0))
        .collect();
    assert_eq!(admins, vec!["ops", "root"]);
}

// issue 14 item 1: DROP USER removes the user's grants everywhere. Goal: a new user created
// with a dropped user's name inherits nothing: no system privilege, no admin membership, no
// privilege on databases or tables. Method: grant all three kinds, drop, re-create, then
// read the table as the new user (42501) and list its grants (none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_user_removes_its_grants() {
    let server = SqlTestServer::must_start("replication-source").await;
    let root = server
        .connect("root", Some("-ccluster=application"))
        .await
        .expect("root");
    root.batch_execute(
        "CREATE TABLE t (k INT PRIMARY KEY); INSERT INTO t VALUES (1); \
         CREATE USER bob; CREATE USER bob2; \
         GRANT SELECT ON TABLE t TO bob; GRANT ALL ON DATABASE defaultdb TO bob; \
         GRANT SELECT ON TABLE t TO bob2; \
         GRANT SYSTEM VIEWJOB TO bob; GRANT admin TO bob",
    )
    .await
    .expect("setup");
    root.batch_execute("DROP USER bob; CREATE USER bob")
        .await
        .expect("drop and re-create");
    let bob = server
        .connect("bob", Some("-ccluster=application"))
        .await
        .expect("bob");
    let err = bob
        .query("SELECT k FROM t", &[])
        .await
        .expect_err("the new bob inherits no object privilege");
    assert_eq!(sqlstate(&err), "42501", "{}", message(&err));
    assert!(column0(&root, "SHOW GRANTS FOR bob").await.is_empty());
    // bob2's grants (a name with bob as a prefix) are untouched.
    let bob2 = server
        .connect("bob2", Some("-ccluster=application"))
        .await
        .expect("bob2");
    let k: i64 = bob2
        .query_one("SELECT k FROM t", &[])
        .await
        .expect("bob2 keeps SELECT")
        .get(0);
    assert_eq!(k, 1);
}

// issue 14 item 1: SHOW JOBS needs VIEWJOB (or admin); SHOW USERS needs CREATEROLE (or
// admin); SHOW GRANTS and pg_catalog.pg_roles show a plain user only its own rows. Method: the statements as a
// plain user (refused or filtered), then again after the grants that allow them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_follows_privileges() {
    let server = SqlTestServer::must_start("replication-source").await;
    let root = server
        .connect("root", Some("-ccluster=system"))
        .await
        .expect("root");
    root.batch_execute(
        "CREATE USER plain; GRANT SYSTEM VIEWCLUSTERSETTING TO plain; \
         CREATE USER repl; GRANT SYSTEM REPLICATION TO repl",
    )
    .await
    .expect("setup");
    let plain = server
        .connect("plain", Some("-ccluster=system"))
        .await
        .expect("plain");
    must_be_refused(&plain, "SHOW JOBS", "VIEWJOB privilege to view jobs").await;
    must_be_refused(&plain, "SHOW USERS", "CREATEROLE privilege to list users").await;
    must_be_refused(
        &plain,
        "SHOW GRANTS FOR repl",
        "may only see its own grants",
    )
    .await;
    let rows = plain.query("SHOW GRANTS", &[]).await.expect("own grants");
    let seen: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(seen, vec![("plain".into(), "VIEWCLUSTERSETTING".into())]);

    root.batch_execute("GRANT SYSTEM VIEWJOB, CREATEROLE TO plain")
        .await
        .expect("grant");
    plain.query("SHOW JOBS", &[]).await.expect("VIEWJOB allows");
    assert_eq!(
        column0(&plain, "SHOW USERS").await,
        vec!["plain", "repl", "root"]
    );
    assert_eq!(column0(&plain, "SHOW GRANTS FOR repl").await, vec!["repl"]);
    assert_eq!(
        column0(
            &plain,
            "SELECT rolname FROM pg_catalog.pg_roles ORDER BY rolname"
        )
        .await,
        vec!["plain", "repl", "root"]
    );
}

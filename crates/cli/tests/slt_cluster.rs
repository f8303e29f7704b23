//! The application-SQL sqllogictest files of `crates/sql/testdata/` against a real 3-node
//! cluster: the `application` virtual cluster of a replication-source profile, each file in
//! its own database, each connection of a file on the next node.

mod common;
#[path = "../../sql/tests/slt_runner/mod.rs"]
mod slt_runner;

use common::ProcCluster;

/// Files about tables, rows and transactions (the others describe cluster-wide state that a
/// shared cluster does not start from).
const FILES: &[&str] = &[
    "tables.slt",
    "dml.slt",
    "select.slt",
    "transactions.slt",
    "schema.slt",
    "point_gets.slt",
];

// Goal: the application SQL statement files pass unchanged on three nodes, with the
// connections of a file spread over the nodes (so 40001 conflicts and reads cross nodes).
#[test]
fn sqllogictest_files_on_three_nodes() {
    let cluster =
        ProcCluster::must_start_with(3, false, &["--config-profile", "replication-source"]);
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.rpc_addr.clone()).collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let (host, port) = addrs[0].split_once(':').expect("host:port");
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port.parse().expect("port"))
            .user("root")
            .dbname("defaultdb")
            .options("-ccluster=application");
        let (setup, conn) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        for f in FILES {
            let db = format!("slt_{}", f.trim_end_matches(".slt"));
            setup
                .batch_execute(&format!("CREATE DATABASE {db}"))
                .await
                .expect("create database");
            let path = format!("{}/../sql/testdata/{f}", env!("CARGO_MANIFEST_DIR"));
            println!("running {path} on {} nodes", addrs.len());
            slt_runner::run_file(
                std::path::Path::new(&path),
                addrs.clone(),
                "application",
                &db,
            )
            .await;
        }
    });
}

//! Runs the sqllogictest files under `testdata/` against an in-process node (replication-source
//! profile), connected as root to the system virtual cluster through tokio-postgres.

mod common;
mod slt_runner;

use common::SqlTestServer;

// Goal: every statement file under testdata/ passes: the administrative statements return
// exactly the rows and errors (SQLSTATE and message) written there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files() {
    let dir = format!("{}/testdata", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .slt files in {dir}");
    for file in files {
        println!("running {}", file.display());
        let server = SqlTestServer::must_start("replication-source").await;
        slt_runner::run_file(&file, vec![server.addr.clone()], "system", "defaultdb").await;
    }
}

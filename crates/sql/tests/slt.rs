//! Runs the sqllogictest files under `testdata/` against an in-process node (replication-source
//! profile), connected as root to the system virtual cluster through tokio-postgres.

mod common;

use common::SqlTestServer;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};
use std::time::Duration;
use tokio_postgres::SimpleQueryMessage;

/// An error as the test files see it: `SQLSTATE: message (hint)`.
#[derive(Debug)]
struct PgError(String);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PgError {}

fn describe(e: tokio_postgres::Error) -> PgError {
    match e.as_db_error() {
        Some(db) => PgError(format!(
            "{}: {}{}",
            db.code().code(),
            db.message(),
            db.hint()
                .map(|h| format!(" (hint: {h})"))
                .unwrap_or_default()
        )),
        None => PgError(e.to_string()),
    }
}

struct Conn(tokio_postgres::Client);

#[async_trait::async_trait]
impl AsyncDB for Conn {
    type Error = PgError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, PgError> {
        let messages = self.0.simple_query(sql).await.map_err(describe)?;
        let mut columns = None;
        let mut rows = Vec::new();
        let mut count = 0;
        for m in messages {
            match m {
                SimpleQueryMessage::RowDescription(cols) => columns = Some(cols.len()),
                SimpleQueryMessage::Row(r) => {
                    columns.get_or_insert(r.len());
                    rows.push(
                        (0..r.len())
                            .map(|i| match r.get(i) {
                                None => "NULL".to_string(),
                                Some("") => "(empty)".to_string(),
                                Some(v) => v.to_string(),
                            })
                            .collect(),
                    );
                }
                SimpleQueryMessage::CommandComplete(n) => count = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(count),
        })
    }

    async fn shutdown(&mut self) {}

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await;
    }
}

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
        let addr = server.addr.clone();
        let connect = move || {
            let addr = addr.clone();
            async move {
                let (host, port) = addr.split_once(':').expect("host:port");
                let mut config = tokio_postgres::Config::new();
                config
                    .host(host)
                    .port(port.parse().expect("port"))
                    .user("root")
                    .dbname("defaultdb")
                    .options("-ccluster=system");
                let (client, conn) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(describe)?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(Conn(client))
            }
        };
        let mut runner = Runner::new(connect);
        runner.with_column_validator(|_, _| true);
        runner
            .run_file_async(&file)
            .await
            .unwrap_or_else(|e| panic!("{}: {}", file.display(), e.display(true)));
    }
}

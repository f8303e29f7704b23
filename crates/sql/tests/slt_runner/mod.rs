//! A sqllogictest database over tokio-postgres's simple protocol, shared by the in-process
//! run (`crates/sql/tests/slt.rs`) and the 3-node run (`crates/cli/tests/slt_cluster.rs`).
#![allow(dead_code)]

use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};
use std::path::Path;
use std::time::Duration;
use tokio_postgres::SimpleQueryMessage;

/// An error as the test files see it: `SQLSTATE: message (hint)`.
#[derive(Debug)]
pub struct PgError(String);

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

pub struct Conn(pub tokio_postgres::Client);

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

/// Runs one file; every new connection (`connection x` records) goes to the next address
/// in `addrs`, as `root` to database `db` of virtual cluster `cluster`.
pub async fn run_file(file: &Path, addrs: Vec<String>, cluster: &str, db: &str) {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (cluster, db) = (cluster.to_string(), db.to_string());
    let connect = move || {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let addr = addrs[i % addrs.len()].clone();
        let (cluster, db) = (cluster.clone(), db.clone());
        async move {
            let (host, port) = addr.split_once(':').expect("host:port");
            let mut config = tokio_postgres::Config::new();
            config
                .host(host)
                .port(port.parse().expect("port"))
                .user("root")
                .dbname(&db)
                .options(format!("-ccluster={cluster}"));
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
        .run_file_async(file)
        .await
        .unwrap_or_else(|e| panic!("{}: {}", file.display(), e.display(true)));
}

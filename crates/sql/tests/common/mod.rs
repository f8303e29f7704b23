//! An in-process node serving SQL over pgwire on 127.0.0.1 (insecure), for SQL tests.
#![allow(dead_code)]

use kv::{Store, filled_slot};
use sql::bootstrap::Profile;
use sql::{PgHandlers, SqlServer};
use std::sync::Arc;
use tempfile::TempDir;
use tokio::net::TcpListener;

/// A running single-node cluster with its SQL port.
pub struct SqlTestServer {
    pub addr: String,
    pub node: Arc<Store>,
    /// The node's SQL layer (its metrics and caches).
    pub sql: Arc<SqlServer>,
    _dir: TempDir,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for SqlTestServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Loads a profile from `profiles/`.
pub fn profile(name: &str) -> Profile {
    let path = format!("{}/../../profiles/{name}.toml", env!("CARGO_MANIFEST_DIR"));
    toml::from_str(&std::fs::read_to_string(&path).expect("profile file")).expect("profile parses")
}

impl SqlTestServer {
    /// Starts a node initialised with `profile` and serves SQL on an OS-assigned port.
    pub async fn must_start(profile_name: &str) -> SqlTestServer {
        let dir = tempfile::tempdir().expect("dir");
        let node = kv::testing::must_start_single_node(dir.path()).await;
        sql::bootstrap::apply(&node, &profile(profile_name))
            .await
            .expect("profile");
        let sql_server = Arc::new(SqlServer::new(filled_slot(node.clone()), true));
        let handlers = Arc::new(PgHandlers::new(sql_server.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let accept = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let handlers = handlers.clone();
                tokio::spawn(async move {
                    let _ = sql::pgconn::serve(sock, None, handlers).await;
                });
            }
        });
        SqlTestServer {
            addr,
            node,
            sql: sql_server,
            _dir: dir,
            accept,
        }
    }

    /// A tokio-postgres connection as `user` with startup `options`.
    pub async fn connect(
        &self,
        user: &str,
        options: Option<&str>,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (host, port) = self.addr.split_once(':').expect("host:port");
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port.parse().expect("port"))
            .user(user)
            .dbname("defaultdb");
        if let Some(o) = options {
            config.options(o);
        }
        let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }
}

/// The SQLSTATE of a failed statement or login (a marker text when the server sent none).
pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| format!("no db error: {e}"))
}

/// The server's message of a failed statement or login (the client error otherwise).
pub fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

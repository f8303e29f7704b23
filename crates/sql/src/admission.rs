//! Admission of connections to a node: the count of open SQL sessions against
//! `server.max_connections_per_gateway`, and the handshake deadline of the node's listeners
//! (`server.handshake_timeout`).
//!
//! The handshake timeout is needed at every accept, also of node-to-node connections, so it
//! is read from the cluster settings by a background task ([`SqlServer::spawn_admission_refresh`])
//! and accepts only read an atomic: an accept never waits on KV. The connection limit is read
//! when a SQL session has authenticated (the SQL path needs KV anyway), so a change applies to
//! the next login on every node at once.
//!
//! A SQL connection counts from the moment it has authenticated until it closes; connections
//! still in TLS, startup or authentication do not count, they are bounded by the handshake
//! timeout instead. Admins (root included) are admitted beyond the limit, as in CockroachDB, so
//! an operator can always log in to raise it.

use crate::error::{SqlError, SqlResult, code};
use crate::exec::SqlServer;
use crate::pgserver::PgHandlers;
use pgwire::api::PgWireServerHandlers;
use pgwire::api::auth::StartupHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tenant::TenantId;
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// The setting limiting SQL connections per node; negative means unlimited.
pub const MAX_CONNECTIONS_SETTING: &str = "server.max_connections_per_gateway";
/// The setting bounding how long a new connection may take to identify itself and finish its
/// TLS handshake (and, for SQL, startup and authentication; for HTTP, the request headers).
pub const HANDSHAKE_TIMEOUT_SETTING: &str = "server.handshake_timeout";
/// The default of [`HANDSHAKE_TIMEOUT_SETTING`] (also used until the setting can be read).
pub const HANDSHAKE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// The shortest handshake timeout honoured, whatever the setting says: shorter would cut off
/// node-to-node connections on a slow network, and with them the cluster.
pub const HANDSHAKE_TIMEOUT_MIN: Duration = Duration::from_millis(500);
/// How often the background task re-reads the handshake timeout.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// How long one background read may take before it is abandoned (the old value stays).
const REFRESH_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// A node's connection admission state, shared by its listeners.
#[derive(Debug)]
pub struct Admission {
    /// Authenticated SQL sessions now open on this node.
    open_sql: AtomicU64,
    /// The handshake timeout in milliseconds, as last read.
    handshake_timeout_ms: AtomicU64,
    /// SQL logins refused because of the connection limit.
    refused_total: AtomicU64,
    /// Connections closed because their handshake outlived the timeout.
    handshake_timeouts_total: AtomicU64,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            open_sql: AtomicU64::new(0),
            handshake_timeout_ms: AtomicU64::new(HANDSHAKE_TIMEOUT_DEFAULT.as_millis() as u64),
            refused_total: AtomicU64::new(0),
            handshake_timeouts_total: AtomicU64::new(0),
        }
    }
}

impl Admission {
    /// The handshake timeout every listener applies now (at least [`HANDSHAKE_TIMEOUT_MIN`]).
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms.load(Ordering::Relaxed))
            .max(HANDSHAKE_TIMEOUT_MIN)
    }

    /// Authenticated SQL sessions now open on this node.
    pub fn open_sql_connections(&self) -> u64 {
        self.open_sql.load(Ordering::Relaxed)
    }

    /// SQL logins refused so far because of `server.max_connections_per_gateway`.
    pub fn refused_total(&self) -> u64 {
        self.refused_total.load(Ordering::Relaxed)
    }

    /// Connections on the shared port closed so far because their first byte or handshake
    /// (SQL: also startup and authentication) did not arrive within the handshake timeout.
    pub fn handshake_timeouts_total(&self) -> u64 {
        self.handshake_timeouts_total.load(Ordering::Relaxed)
    }

    /// Counts one connection closed for outliving the handshake timeout.
    pub fn count_handshake_timeout(&self) {
        self.handshake_timeouts_total
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a slot unconditionally.
    fn take(self: &Arc<Self>) -> SqlSlot {
        self.open_sql.fetch_add(1, Ordering::AcqRel);
        SqlSlot {
            admission: self.clone(),
        }
    }

    /// Takes a slot if the count stays within `limit` (negative: unlimited).
    fn try_take(self: &Arc<Self>, limit: i64) -> Option<SqlSlot> {
        // The count after this slot, as one atomic step: two racing logins never both get the
        // last slot. A refused slot is given back when `slot` drops.
        let open = self.open_sql.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = SqlSlot {
            admission: self.clone(),
        };
        (limit < 0 || open <= limit as u64).then_some(slot)
    }
}

/// One admitted SQL session; gives its slot back when dropped (the connection closed).
#[derive(Debug)]
pub struct SqlSlot {
    admission: Arc<Admission>,
}

impl Drop for SqlSlot {
    fn drop(&mut self) {
        self.admission.open_sql.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The admission state of one SQL connection: whether it has authenticated, and its slot.
#[derive(Debug, Default)]
pub struct ConnAdmission {
    authenticated: Notify,
    slot: std::sync::Mutex<Option<SqlSlot>>,
}

impl ConnAdmission {
    /// Records that the connection was admitted with `slot` and ends its handshake deadline.
    fn admitted(&self, slot: SqlSlot) {
        if let Ok(mut s) = self.slot.lock() {
            *s = Some(slot);
        }
        self.authenticated.notify_one();
    }
}

impl SqlServer {
    /// Admits an authenticated SQL session of `user` in `tenant` under
    /// `server.max_connections_per_gateway`, or refuses it with 53300. Admins are admitted
    /// beyond the limit.
    pub(crate) async fn admit_sql_connection(
        &self,
        conn: &ConnAdmission,
        tenant: TenantId,
        user: &str,
    ) -> SqlResult<()> {
        let limit: i64 = self
            .setting(MAX_CONNECTIONS_SETTING)
            .await?
            .parse()
            .map_err(|_| {
                SqlError::internal(format!("{MAX_CONNECTIONS_SETTING} is not an integer"))
            })?;
        let admission = self.admission();
        let slot = match admission.try_take(limit) {
            Some(slot) => slot,
            // Admins are admitted beyond the limit; only then is admin-ness looked up (a KV
            // read).
            None if self.user_is_admin(tenant, user).await? => admission.take(),
            None => {
                admission.refused_total.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    user,
                    tenant_id = tenant.0,
                    limit,
                    "refused a SQL connection: too many connections on this node"
                );
                return Err(SqlError::new(
                    code::TOO_MANY_CONNECTIONS,
                    format!(
                        "sorry, too many clients already: this node admits {limit} SQL connections ({MAX_CONNECTIONS_SETTING})"
                    ),
                )
                .with_hint(
                    "retry later or connect to another node; an admin (who may connect beyond the limit) can raise the setting with SET CLUSTER SETTING",
                ));
            }
        };
        conn.admitted(slot);
        Ok(())
    }

    async fn user_is_admin(&self, tenant: TenantId, user: &str) -> SqlResult<bool> {
        Ok(self.user(tenant, user).await?.is_some_and(|u| u.admin))
    }

    /// Re-reads the handshake timeout now; on failure keeps the previous value.
    pub async fn refresh_admission_settings(&self) {
        let read = tokio::time::timeout(
            REFRESH_READ_TIMEOUT,
            self.setting(HANDSHAKE_TIMEOUT_SETTING),
        )
        .await;
        if let Ok(Ok(text)) = read
            && let Some(timeout) = crate::settings::parse_duration(&text)
        {
            self.admission()
                .handshake_timeout_ms
                .store(timeout.as_millis() as u64, Ordering::Relaxed);
        }
    }

    /// Keeps the handshake timeout current: re-reads it every second until aborted.
    pub fn spawn_admission_refresh(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.refresh_admission_settings().await;
            }
        })
    }
}

/// The handlers of one SQL connection: the node's handlers plus this connection's admission
/// state, so that its startup handler can end the handshake deadline.
struct PgConnection {
    handlers: Arc<PgHandlers>,
    conn: Arc<ConnAdmission>,
}

impl PgWireServerHandlers for PgConnection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handlers.simple_query_handler()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.handlers.extended_query_handler()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.handlers.startup(self.conn.clone())
    }
}

/// Serves one SQL connection (its first byte already seen): TLS, startup and authentication
/// must be done by `deadline`, or the connection is closed; after that it runs until the
/// client leaves.
pub async fn serve_connection(
    handlers: Arc<PgHandlers>,
    socket: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    deadline: tokio::time::Instant,
) -> std::io::Result<()> {
    let admission = handlers.admission().clone();
    let conn = Arc::new(ConnAdmission::default());
    let serve = crate::pgconn::serve(
        socket,
        tls,
        PgConnection {
            handlers,
            conn: conn.clone(),
        },
    );
    let expired = async {
        if tokio::time::timeout_at(deadline, conn.authenticated.notified())
            .await
            .is_ok()
        {
            // Authenticated in time: the session runs as long as the client wants.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = serve => result,
        () = expired => Err({
            admission.count_handshake_timeout();
            std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "TLS, startup and authentication did not finish within server.handshake_timeout",
        )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal (issue 14 item 7): the slot count admits exactly `limit` sessions, gives a slot back
    // when a session (or a refused attempt) drops, and a negative limit means unlimited; the
    // handshake timeout never goes below its floor.
    // Method: slots taken and dropped by hand.
    #[test]
    fn slots_follow_the_limit() {
        let admission = Arc::new(Admission::default());
        let first = admission.try_take(2).expect("first");
        let second = admission.try_take(2).expect("second");
        assert!(admission.try_take(2).is_none(), "third is over the limit");
        assert_eq!(
            admission.open_sql_connections(),
            2,
            "a refusal holds no slot"
        );
        drop(first);
        let third = admission.try_take(2).expect("a slot was given back");
        let unlimited: Vec<_> = (0..5).map(|_| admission.try_take(-1)).collect();
        assert!(unlimited.iter().all(Option::is_some));
        assert_eq!(admission.open_sql_connections(), 7);
        drop((second, third, unlimited));
        assert_eq!(admission.open_sql_connections(), 0);

        admission.handshake_timeout_ms.store(1, Ordering::Relaxed);
        assert_eq!(admission.handshake_timeout(), HANDSHAKE_TIMEOUT_MIN);
        assert_eq!(
            Admission::default().handshake_timeout(),
            HANDSHAKE_TIMEOUT_DEFAULT
        );
    }
}

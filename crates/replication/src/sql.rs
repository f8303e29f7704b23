//! The replication statements, executed for the SQL layer (registered as its
//! [`ReplicationHooks`]).

use crate::client::{PgStreamClient, SourceConn, StreamClient};
use crate::consumer::{self, IngestionDetails, IngestionService, JobRunner};
use crate::producer;
use crate::secrets::JobSecret;
use crate::uri::{StandbySecurity, redact};
use crate::with_retries;
use ::sql::error::{SqlError, SqlResult, code};
use ::sql::exec::{ColType, Column, QueryResult, Session, SqlServer};
use ::sql::hooks::ReplicationHooks;
use ::sql::parser::{ReplicationAction, Statement, Value};
use hlc::Timestamp;
use kv::Store;
use proto::replication as pb;
use std::sync::Arc;
use std::time::Duration;
use tenant::{DataState, ServiceMode, TenantRecord, registry};

/// Bytes of a virtual cluster's key prefix (`/Tenant/<id>/`), left out of fingerprints so that
/// a virtual cluster fingerprints the same under another id.
/// How long completing a source stream may take when a replication is abandoned.
const COMPLETE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long DROP waits for the job's coordinator to let go: a lease, and some slack.
const RELEASE_WAIT: Duration = Duration::from_secs(consumer::LEASE.as_secs() + 2);

/// The replication layer of a node.
#[derive(Debug)]
pub struct Replication {
    runner: Arc<JobRunner>,
    ingest: IngestionService,
}

impl Replication {
    pub fn new(runner: Arc<JobRunner>, ingest: IngestionService) -> Self {
        Replication { runner, ingest }
    }
}

fn column(name: &str, typ: ColType) -> Column {
    Column {
        name: name.to_string(),
        typ,
    }
}

fn resolve(v: &Value, params: &[Option<String>]) -> SqlResult<Option<String>> {
    match v {
        Value::Text(s) => Ok(Some(s.clone())),
        Value::Null | Value::Default => Ok(None),
        Value::Placeholder(n) => params.get(n - 1).cloned().ok_or_else(|| {
            SqlError::new(
                code::INVALID_PARAMETER_VALUE,
                format!("no value for placeholder ${n}"),
            )
        }),
    }
}

fn required(v: &Value, params: &[Option<String>], what: &str) -> SqlResult<String> {
    resolve(v, params)?.ok_or_else(|| {
        SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            format!("{what} must not be NULL"),
        )
    })
}

fn stream_id(v: &Value, params: &[Option<String>]) -> SqlResult<u64> {
    let text = required(v, params, "the stream id")?;
    text.trim().parse().map_err(|_| {
        SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            format!("stream id {text:?} is not a number"),
        )
    })
}

fn one_text(name: &str, value: String) -> QueryResult {
    QueryResult::Rows {
        columns: vec![column(name, ColType::Text)],
        rows: vec![vec![Some(value)]],
    }
}

fn command(tag: &str) -> QueryResult {
    QueryResult::Command {
        tag: tag.to_string(),
        rows: None,
    }
}

/// A retention interval: `4h`, `90m`, `'1 hour'`, ...
fn parse_retention(text: &str) -> SqlResult<Duration> {
    let d = match ::sql::settings::parse_duration(text.trim()) {
        Some(d) => d,
        None => {
            let iv = ::sql::datum::parse_interval(text).map_err(|_| {
                SqlError::new(
                    code::INVALID_PARAMETER_VALUE,
                    format!("RETENTION {text:?} is not an interval (for example '4h')"),
                )
            })?;
            Duration::from_micros(u64::try_from(iv.total_micros()).unwrap_or(0))
        }
    };
    if d.is_zero() {
        return Err(SqlError::new(
            code::INVALID_PARAMETER_VALUE,
            format!("RETENTION {text:?} must be positive"),
        )
        .with_hint("the retention is how far back one can cut over, for example '4h'"));
    }
    Ok(d)
}

/// `HH:MM:SS.ffffff`, as PostgreSQL prints an interval.
fn interval_text(ns: u64) -> String {
    let micros = ns / 1000;
    let secs = micros / 1_000_000;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        micros % 1_000_000
    )
}

/// A time as the status shows it: TIMESTAMPTZ text, truncated down to the microsecond.
fn time_text(ts: Timestamp) -> Option<String> {
    (!ts.is_zero()).then(|| ts.to_timestamptz_string())
}

impl Replication {
    async fn stop_everywhere(&self, node: &Arc<Store>, job_id: u64) {
        let me = node.id();
        for (id, addr) in node.live_members(Duration::from_secs(2)).await {
            if id == me {
                self.ingest.stop_job(job_id).await;
                continue;
            }
            if let Ok(ch) = node.channel(&addr) {
                let mut c = pb::ingestion_client::IngestionClient::new(ch);
                let _ = tokio::time::timeout(
                    Duration::from_secs(35),
                    c.stop_ingestion(pb::StopIngestionRequest { job_id }),
                )
                .await;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        server: &SqlServer,
        session: &Session,
        name: &str,
        if_not_exists: bool,
        like: Option<&str>,
        source: &str,
        uri: &str,
        retention: Option<String>,
    ) -> SqlResult<QueryResult> {
        server.require_manage(session).await?;
        if server.setting("physical_replication.enabled").await? != "true" {
            return Err(SqlError::new(
                code::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "physical cluster replication is disabled on this cluster",
            )
            .with_hint("SET CLUSTER SETTING physical_replication.enabled = true allows it"));
        }
        let node = server.node()?;
        tenant::validate_name(name)?;
        {
            let mut txn = node.begin()?;
            if registry::get_by_name(&mut txn, name).await?.is_some() {
                if if_not_exists {
                    return Ok(command("CREATE VIRTUAL CLUSTER"));
                }
                return Err(tenant::TenantError::AlreadyExists(name.to_string()).into());
            }
            if let Some(t) = like {
                registry::get_by_name(&mut txn, t).await?.ok_or_else(|| {
                    SqlError::new(
                        code::UNDEFINED_OBJECT,
                        format!("template virtual cluster {t:?} does not exist"),
                    )
                })?;
            }
        }
        let retention = match retention {
            Some(r) => parse_retention(&r)?,
            None => {
                let text = server
                    .setting("physical_replication.consumer.retention")
                    .await?;
                parse_retention(&text)?
            }
        };
        let standby = if server.insecure() {
            StandbySecurity::Insecure
        } else {
            StandbySecurity::Secure
        };
        let mut conn = SourceConn::from_uri(uri, standby)?;
        let client = PgStreamClient::new(conn.clone());
        let handle = client.start_stream(source).await?;
        // From here on a failure ends the stream again, so nothing is left on either side.
        let abandon = |e: SqlError| async {
            let _ =
                tokio::time::timeout(COMPLETE_TIMEOUT, client.complete(handle.stream_id, false))
                    .await;
            e
        };
        let spec = match client.plan(handle.stream_id).await {
            Ok(s) => s,
            Err(e) => return Err(abandon(e.into()).await),
        };
        conn.fallback_addrs = spec.partitions.iter().map(|p| p.addr.clone()).collect();
        let description = format!(
            "CREATE VIRTUAL CLUSTER {name}{} FROM REPLICATION OF {source} ON '{}'",
            like.map(|t| format!(" LIKE {t}")).unwrap_or_default(),
            redact(uri)
        );
        let created: SqlResult<u64> = async {
            let mut txn = node.begin()?;
            let mut rec = registry::create(
                &mut txn,
                name,
                DataState::Add,
                ServiceMode::None,
                node.now(),
            )
            .await?;
            let details = IngestionDetails {
                source: conn.clone(),
                source_tenant_name: handle.source_tenant_name.clone(),
                source_tenant_id: handle.source_tenant_id,
                dest_tenant_id: rec.id.0,
                dest_name: name.to_string(),
                stream_id: handle.stream_id,
                start_time: handle.start_time,
                retention_ns: retention.as_nanos() as u64,
            };
            let secret = JobSecret {
                password: conn.password.clone(),
                token: handle.token.clone(),
            };
            let job_id =
                consumer::create_job(&mut txn, details, &secret, description.clone()).await?;
            tenant::ingest_fence::open(&mut txn, rec.id, job_id);
            rec.replication_job_id = Some(job_id);
            registry::update(&mut txn, &rec).await?;
            txn.commit().await?;
            Ok(job_id)
        }
        .await;
        let job_id = match created {
            Ok(id) => id,
            Err(e) => return Err(abandon(e).await),
        };
        // The standby's clock must not be behind the versions it is about to ingest.
        let _ = node.clock().update(handle.start_time);
        tracing::info!(job_id, virtual_cluster = name, source = %redact(uri), "started replication");
        self.runner.poke();
        Ok(command("CREATE VIRTUAL CLUSTER"))
    }

    async fn job_of(&self, node: &Arc<Store>, name: &str) -> SqlResult<u64> {
        let mut txn = node.begin()?;
        let rec = registry::must_get_by_name(&mut txn, name).await?;
        rec.replication_job_id.ok_or_else(|| {
            SqlError::new(
                code::OBJECT_IN_USE,
                format!("virtual cluster {name:?} is not the target of a replication stream"),
            )
            .with_hint("replication statements apply to virtual clusters created with CREATE VIRTUAL CLUSTER ... FROM REPLICATION OF ...")
        })
    }

    async fn alter(
        &self,
        server: &SqlServer,
        session: &Session,
        name: &str,
        action: &ReplicationAction,
        params: &[Option<String>],
    ) -> SqlResult<QueryResult> {
        server.require_manage(session).await?;
        let node = server.node()?;
        let job_id = self.job_of(&node, name).await?;
        match action {
            ReplicationAction::Pause => {
                with_retries(|| consumer::pause(&node, name, job_id)).await?;
                Ok(command("ALTER VIRTUAL CLUSTER"))
            }
            ReplicationAction::Resume => {
                with_retries(|| consumer::resume(&node, name, job_id)).await?;
                self.runner.poke();
                Ok(command("ALTER VIRTUAL CLUSTER"))
            }
            ReplicationAction::CompleteToLatest | ReplicationAction::CompleteToSystemTime(_) => {
                let to = match action {
                    ReplicationAction::CompleteToSystemTime(v) => {
                        let text = required(v, params, "the cutover time")?;
                        Some(::sql::session::parse_as_of(&text, node.now())?)
                    }
                    _ => None,
                };
                let t = with_retries(|| consumer::request_cutover(&node, name, job_id, to)).await?;
                self.runner.poke();
                Ok(QueryResult::Rows {
                    columns: vec![column("cutover_time", ColType::Text)],
                    rows: vec![vec![Some(t.to_string())]],
                })
            }
        }
    }

    async fn show_status(
        &self,
        server: &SqlServer,
        session: &Session,
        name: Option<&str>,
    ) -> SqlResult<QueryResult> {
        server.require_manage(session).await?;
        let node = server.node()?;
        let mut txn = node.begin()?;
        let records = match name {
            Some(n) => vec![registry::must_get_by_name(&mut txn, n).await?],
            None => registry::list(&mut txn).await?,
        };
        let now = node.clock().physical_now_ns();
        let mut rows = Vec::new();
        for r in records {
            let mut row = vec![Some(r.id.to_string()), Some(r.name.clone())];
            let job = match r.replication_job_id {
                Some(id) => Some(consumer::load(&mut txn, id).await?),
                None => None,
            };
            match job {
                Some(j) => {
                    let p = &j.progress;
                    let active = j.is_active();
                    row.push(Some(j.details.source_tenant_name.clone()));
                    row.push(Some(redact(&j.details.source.uri)));
                    row.push(if active {
                        time_text(p.retained_time)
                    } else {
                        None
                    });
                    row.push(if active {
                        time_text(p.replicated_time)
                    } else {
                        None
                    });
                    row.push(if active && !p.replicated_time.is_zero() {
                        Some(interval_text(
                            now.saturating_sub(p.replicated_time.wall_time_ns),
                        ))
                    } else {
                        None
                    });
                    row.push(p.cutover_time.map(|t| t.to_string()));
                    row.push(Some(if active {
                        j.shown_status()
                    } else {
                        r.data_state.to_string()
                    }));
                }
                None => {
                    row.extend([None, None, None, None, None, None]);
                    row.push(Some(r.data_state.to_string()));
                }
            }
            rows.push(row);
        }
        Ok(QueryResult::Rows {
            columns: SqlServer::result_columns(&Statement::ShowReplicationStatus {
                name: name.map(str::to_string),
            }),
            rows,
        })
    }

    async fn fingerprints(
        &self,
        server: &SqlServer,
        session: &Session,
        name: &str,
        start: Option<String>,
        as_of: Option<&str>,
        columns: Option<&[String]>,
    ) -> SqlResult<QueryResult> {
        server.require_manage(session).await?;
        let node = server.node()?;
        let mut txn = node.begin()?;
        let rec = registry::must_get_by_name(&mut txn, name).await?;
        if rec.id.is_system() {
            return Err(SqlError::new(
                code::FEATURE_NOT_SUPPORTED,
                "fingerprints are for application virtual clusters",
            ));
        }
        let now = node.now();
        let end = match as_of {
            Some(t) => ::sql::session::parse_as_of(t, now)?,
            None => now,
        };
        let start = match start {
            Some(t) => ::sql::session::parse_as_of(&t, now)?,
            None => Timestamp::ZERO,
        };
        if start > end {
            return Err(SqlError::new(
                code::INVALID_PARAMETER_VALUE,
                format!("START TIMESTAMP {start} is after the end time {end}"),
            ));
        }
        let fp = node
            .fingerprint_stripped(&rec.id.span(), tenant::PREFIX_LEN, start, end)
            .await?;
        // The columns Describe announced; the parser admits no other names.
        let columns = SqlServer::result_columns(&Statement::ShowFingerprints {
            name: name.to_string(),
            start: None,
            as_of: None,
            columns: columns.map(<[String]>::to_vec),
        });
        let row = columns
            .iter()
            .map(|c| match c.name.as_str() {
                "tenant_name" => Some(rec.name.clone()),
                "end_ts" => Some(end.to_string()),
                _ => Some((fp as i64).to_string()),
            })
            .collect();
        Ok(QueryResult::Rows {
            columns,
            rows: vec![row],
        })
    }

    async fn require_replication(
        &self,
        server: &SqlServer,
        session: &Session,
    ) -> SqlResult<Arc<Store>> {
        if !session.tenant.id.is_system() {
            return Err(SqlError::privilege(
                "replication streams are served by the system virtual cluster (options=-ccluster=system)",
            ));
        }
        server
            .current_user(session)
            .await?
            .require("REPLICATION", "stream a virtual cluster's data")?;
        server.node()
    }
}

#[async_trait::async_trait]
impl ReplicationHooks for Replication {
    async fn execute(
        &self,
        server: &SqlServer,
        session: &Session,
        stmt: &Statement,
        params: &[Option<String>],
    ) -> SqlResult<QueryResult> {
        match stmt {
            Statement::CreateReplicationStream {
                name,
                if_not_exists,
                like,
                source,
                uri,
                retention,
            } => {
                let uri = required(uri, params, "the source URI")?;
                let retention = match retention {
                    Some(v) => resolve(v, params)?,
                    None => None,
                };
                self.create(
                    server,
                    session,
                    name,
                    *if_not_exists,
                    like.as_deref(),
                    source,
                    &uri,
                    retention,
                )
                .await
            }
            Statement::AlterReplication { name, action } => {
                self.alter(server, session, name, action, params).await
            }
            Statement::ShowReplicationStatus { name } => {
                self.show_status(server, session, name.as_deref()).await
            }
            Statement::ShowFingerprints {
                name,
                start,
                as_of,
                columns,
            } => {
                let start = match start {
                    Some(v) => resolve(v, params)?,
                    None => None,
                };
                self.fingerprints(
                    server,
                    session,
                    name,
                    start,
                    as_of.as_deref(),
                    columns.as_deref(),
                )
                .await
            }
            Statement::StartReplicationStream { tenant } => {
                let node = self.require_replication(server, session).await?;
                let tenant = required(tenant, params, "the virtual cluster name")?;
                let handle = producer::start_stream(&node, &tenant).await?;
                Ok(one_text(
                    "start_replication_stream",
                    serde_json::to_string(&handle).expect("serializes"),
                ))
            }
            Statement::ReplicationStreamSpec { stream_id: id } => {
                let node = self.require_replication(server, session).await?;
                let spec = producer::plan(&node, stream_id(id, params)?).await?;
                Ok(one_text(
                    "replication_stream_spec",
                    serde_json::to_string(&spec).expect("serializes"),
                ))
            }
            Statement::ReplicationStreamProgress { stream_id: id, ts } => {
                let node = self.require_replication(server, session).await?;
                let text = required(ts, params, "the timestamp")?;
                let ts = Timestamp::parse_decimal(text.trim())
                    .map_err(|e| SqlError::new(code::INVALID_PARAMETER_VALUE, e.to_string()))?;
                let st = producer::heartbeat(&node, stream_id(id, params)?, ts).await?;
                Ok(one_text(
                    "replication_stream_progress",
                    serde_json::to_string(&st).expect("serializes"),
                ))
            }
            Statement::CompleteReplicationStream {
                stream_id: id,
                successful,
            } => {
                let node = self.require_replication(server, session).await?;
                let ok = required(successful, params, "successful")?;
                let ok = matches!(ok.trim().to_ascii_lowercase().as_str(), "true" | "t" | "1");
                producer::complete(&node, stream_id(id, params)?, ok).await?;
                Ok(one_text("complete_replication_stream", "true".into()))
            }
            other => Err(SqlError::internal(format!(
                "{} is not a replication statement",
                other.tag()
            ))),
        }
    }

    async fn data_state(&self, server: &SqlServer, tenant: &TenantRecord) -> Option<String> {
        let job_id = tenant.replication_job_id?;
        let node = server.node().ok()?;
        let mut txn = node.begin().ok()?;
        let job = consumer::load(&mut txn, job_id).await.ok()?;
        job.is_active().then(|| job.shown_status())
    }

    async fn before_drop(&self, server: &SqlServer, tenant: &TenantRecord) -> SqlResult<()> {
        let Some(job_id) = tenant.replication_job_id else {
            return Ok(());
        };
        let node = server.node()?;
        let Some((job, secret)) = with_retries(|| consumer::cancel(&node, job_id)).await? else {
            return Ok(());
        };
        // A coordinator that had just read the job as running may still start processors:
        // wait until it has seen the cancel and released the job (or its lease ran out), then
        // make sure no standby node writes for it.
        if !consumer::wait_released(&node, job_id, RELEASE_WAIT).await {
            tracing::warn!(
                job_id,
                "the replication job's coordinator did not release it in time"
            );
        }
        self.stop_everywhere(&node, job_id).await;
        let Some(secret) = secret else {
            tracing::warn!(
                job_id,
                "the replication job had no secret; the source's stream expires on its own"
            );
            return Ok(());
        };
        let client = job.source_client(&secret);
        if tokio::time::timeout(
            COMPLETE_TIMEOUT,
            client.complete(job.details.stream_id, false),
        )
        .await
        .is_err()
        {
            tracing::warn!(
                job_id,
                "could not complete the source's stream; it expires on its own"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_retention() {
        assert_eq!(interval_text(1_500_000_000), "00:00:01.500000");
        assert_eq!(interval_text(3_723_000_000_000), "01:02:03.000000");
        assert_eq!(
            parse_retention("4h").expect("ok"),
            Duration::from_secs(4 * 3600)
        );
        assert!(parse_retention("soon").is_err());
        assert_eq!(
            parse_retention("01:30:00").expect("an interval"),
            Duration::from_secs(5400)
        );
        // A zero or negative window leaves nothing to cut over to but the latest time.
        for zero in ["0s", "0", "00:00:00", "-1h"] {
            let e = parse_retention(zero).expect_err(zero);
            assert!(
                e.message.contains("must be positive") || e.message.contains("not an interval"),
                "{zero}: {e:?}"
            );
        }
    }
}

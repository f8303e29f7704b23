//! The HTTP listener: health checks and Prometheus metrics. Each connection must deliver a
//! request's headers within `server.handshake_timeout` (hyper's header read timeout), so a
//! client that opens connections and trickles bytes cannot hold them open.

use crate::node::Shared;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prometheus::{Encoder, TextEncoder};
use sql::admission::Admission;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves the routes on `listener` until aborted.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, admission: Arc<Admission>) {
    let app = router(shared);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accepting an HTTP connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        let header_timeout = admission.handshake_timeout();
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            if let Err(e) = builder
                .serve_connection(TokioIo::new(socket), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

/// The routes: `/health`, `/health?ready=1`, `/_status/vars`.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/_status/vars", get(vars))
        .with_state(shared)
}

async fn health(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let wants_ready = q
        .get("ready")
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if !wants_ready {
        return (StatusCode::OK, "ok\n".to_string());
    }
    match shared.not_ready_reason() {
        None => (StatusCode::OK, "ready\n".to_string()),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn vars(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let encoder = TextEncoder::new();
    let mut out = Vec::new();
    match encoder.encode(&shared.registry.gather(), &mut out) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoder.format_type().to_string())],
            out,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_string())],
            format!("encoding metrics: {e}\n").into_bytes(),
        ),
    }
}

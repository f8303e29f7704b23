//! The HTTP listener: health checks and Prometheus metrics.

use crate::node::Shared;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};
use std::collections::HashMap;
use std::sync::Arc;

/// The routes: `/health`, `/health?ready=1`, `/_status/vars`.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
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

//! The REST API (`/v1`), health endpoints and Prometheus metrics. Each module owns its router;
//! [`app`] puts them together and is testable without a socket.

pub mod auth;
pub mod error;
mod events;
pub mod extract;
mod health;
mod instances;
mod openapi;
mod tasks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Secret;
use crate::engine::Engine;

pub use openapi::ApiDoc;

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub admin_token: Secret,
    pub metrics: Option<PrometheusHandle>,
    pub gateway: std::sync::Arc<crate::gateway::Gateway>,
}

pub fn app(state: AppState) -> Router {
    let limit = state.engine.configs().root.server.body_limit_bytes;
    let v1 = Router::new()
        .merge(instances::router())
        .merge(tasks::router())
        .merge(events::router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .nest("/v1", v1)
        // Webhooks carry their own signatures (no bearer token) and their own body limits.
        .merge(crate::gateway::router().layer(DefaultBodyLimit::disable()))
        .merge(openapi::router())
        .merge(health::router())
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

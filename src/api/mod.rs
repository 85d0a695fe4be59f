//! The REST API (`/v1`), health endpoints and Prometheus metrics. Each module owns its router;
//! [`router`] puts them together and is testable without a socket. The webhook endpoints are
//! not the API's: `server::app` serves both, and the gateway answers in this module's errors.

pub mod auth;
mod deliveries;
pub mod error;
mod events;
mod executors;
pub mod extract;
mod health;
mod instances;
mod memory;
mod openapi;
mod routing;
mod tasks;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Secret;
use crate::engine::Engine;
use crate::inbound::Sources;

pub use openapi::ApiDoc;

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub admin_token: Secret,
    pub metrics: Option<PrometheusHandle>,
    /// The inbound sources, for replaying events (the webhook gateway serves the same ones).
    pub sources: Arc<Sources>,
}

/// `/v1` (behind the bearer token), the OpenAPI document, health and metrics. Body limits and
/// request tracing are the whole app's, set where the routers are merged (`server::app`).
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .merge(instances::router())
        .merge(tasks::router())
        .merge(routing::router())
        .merge(events::router())
        .merge(memory::router())
        .merge(deliveries::router())
        .merge(executors::router())
        .merge(tokens::router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .nest("/v1", v1)
        .merge(openapi::router())
        .merge(health::router())
        .with_state(state)
}

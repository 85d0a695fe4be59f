//! Streamable HTTP: `/mcp` on `hopper serve`'s port, and on `integrations.mcp.port` too when
//! set. The bearer token is the one `/v1` takes, resolved by the same function
//! (`api::auth::resolve`) for every request; the tools then check it route by route.
//!
//! Stateless, JSON answers: no tool sends anything before its answer, so there is no session
//! to keep (or to hijack with another token), no stream holding shutdown up, and every request
//! stands alone. The `Host` allowlist rmcp sets against DNS rebinding is lifted: a rebound
//! browser page has no bearer token, and Hopper is served under whatever name it is given.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;

use super::HopperMcp;
use crate::api::AppState;
use crate::config::ToggleConfig;

/// The path MCP clients are pointed at.
pub const PATH: &str = "/mcp";

/// MCP is on unless the configuration turns it off (`integrations.mcp.enabled: false`).
fn enabled(mcp: Option<&ToggleConfig>) -> bool {
    mcp.is_none_or(|m| m.enabled)
}

/// `/mcp` behind the bearer token (an empty router when MCP is turned off).
pub fn router(state: AppState) -> Router {
    let root = &state.engine.configs().root;
    if !enabled(root.integrations.mcp.as_ref()) {
        return Router::new();
    }
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .disable_allowed_hosts()
        .with_max_request_body_bytes(root.server.body_limit_bytes);
    let engine = state.engine.clone();
    let service = StreamableHttpService::new(
        move || Ok(HopperMcp::http(engine.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .route_service(PATH, service)
        .route_layer(middleware::from_fn_with_state(state, authenticate))
}

async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match crate::api::auth::resolve(&state, req.headers()).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// The listener for `integrations.mcp.port` (on `server.bind`'s host), when one is set and is
/// not the main port; it serves only `/mcp`.
pub async fn own_port(state: &AppState) -> std::io::Result<Option<(TcpListener, Router)>> {
    let root = &state.engine.configs().root;
    let Some(port) = root
        .integrations
        .mcp
        .as_ref()
        .filter(|m| m.enabled)
        .and_then(|m| m.port)
    else {
        return Ok(None);
    };
    let host = root
        .server
        .bind
        .rsplit_once(':')
        .map_or("127.0.0.1", |(h, _)| h);
    let addr = format!("{host}:{port}");
    if addr == root.server.bind {
        return Ok(None);
    }
    let listener = TcpListener::bind(&addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("binding integrations.mcp.port {addr}: {e}"),
        )
    })?;
    tracing::info!(addr = %addr, "MCP listening on its own port");
    let app = router(state.clone())
        .layer(axum::extract::DefaultBodyLimit::max(
            root.server.body_limit_bytes,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http());
    Ok(Some((listener, app)))
}

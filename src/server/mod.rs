//! Running a server: `run` takes an already-bound listener and a cancellation token, so tests
//! bind port 0 and stop it when they are done; one token stops the HTTP server, the sweeper and outbound delivery.
//! [`app`] is where the REST API and the webhook gateway meet: neither imports the other's
//! router (the gateway only borrows the API's error type).

mod http;

pub use http::serve as serve_router;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::AppState;
use crate::config::{ConfigSet, Secret};
use crate::engine::{Engine, spawn_indexer, spawn_sweeper};
use crate::error::{HopperError, Result};
use crate::gateway::Gateway;

/// The whole HTTP app: the API's routes and the webhook gateway's, over the same engine.
pub fn app(state: AppState, gateway: Arc<Gateway>) -> Router {
    let limit = state.engine.configs().root.server.body_limit_bytes;
    let webhooks = crate::gateway::router(state.engine.clone(), gateway);
    Router::new()
        .merge(crate::mcp::http::router(state.clone()))
        .merge(crate::ui::router(state.clone()))
        .merge(crate::api::router(state))
        // Webhooks carry their own signatures (no bearer token) and their own body limits.
        .merge(webhooks.layer(DefaultBodyLimit::disable()))
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// The process-wide Prometheus recorder (a recorder can be installed only once per process).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|_| handle)
        })
        .clone()
}

/// The admin token: from config / `HOPPER_ADMIN_TOKEN`, else the one stored in the data dir,
/// else a new one written there with mode 0600.
pub fn admin_token(configs: &ConfigSet) -> Result<(Secret, Option<std::path::PathBuf>)> {
    if let Some(t) = &configs.root.server.admin_token
        && !t.is_empty()
    {
        return Ok((t.clone(), None));
    }
    let dir = Path::new(&configs.root.server.data_dir);
    let path = dir.join("admin_token");
    let io = |e: std::io::Error| HopperError::Invalid(format!("{}: {e}", path.display()));
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let t = existing.trim().to_owned();
        if !t.is_empty() {
            return Ok((Secret::new(t), Some(path)));
        }
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let token: String = {
        use rand::Rng;
        let bytes: [u8; 32] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    write_private(&path, &token).map_err(io)?;
    Ok((Secret::new(token), Some(path)))
}

#[cfg(unix)]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    std::fs::write(path, content)
}

/// Serves the API on `listener` until `shutdown` is cancelled, then drains and closes.
pub async fn run(
    engine: Engine,
    admin_token: Secret,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let gateway = Gateway::from_configs(engine.configs()).map_err(std::io::Error::other)?;
    let state = AppState {
        engine: engine.clone(),
        admin_token,
        metrics: metrics_handle(),
        sources: gateway.sources().clone(),
    };
    if let Some(addr) = crate::gateway::smtp::start(&engine, shutdown.clone()).await? {
        tracing::info!(%addr, "SMTP listener started");
        eprintln!("SMTP listening on {addr}");
    }
    let sweeper = spawn_sweeper(engine.clone(), shutdown.clone());
    let indexer = spawn_indexer(engine.clone(), shutdown.clone());
    let consolidation = crate::memory::job::spawn(engine.clone(), shutdown.clone())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let outbound = crate::outbound::spawn(engine.clone(), shutdown.clone())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let header_timeout = engine.configs().root.server.header_read_timeout();
    let mcp = crate::mcp::http::own_port(&state)
        .await?
        .map(|(l, mcp_app)| {
            tokio::spawn(http::serve(l, mcp_app, header_timeout, shutdown.clone()))
        });
    let app = app(state, Arc::new(gateway));
    http::serve(listener, app, header_timeout, shutdown.clone()).await;
    shutdown.cancel();
    if let Some(m) = mcp {
        let _ = m.await;
    }
    let _ = sweeper.await;
    let _ = indexer.await;
    if let Some(c) = consolidation {
        let _ = c.await;
    }
    if let Some(o) = outbound {
        o.join().await;
    }
    engine.close().await;
    Ok(())
}

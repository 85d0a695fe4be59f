//! The webhook gateway: `POST /webhooks/{source path}`, the HTTP door onto the inbound
//! sources of [`crate::inbound`] (`smtp` is the other door). It has the source check what the
//! headers alone can show, reads the body within the source's limit and the memory budget,
//! has the source verify the raw bytes and interpret them, and hands the result to
//! [`Engine::ingest`], which commits the event and its task before anything is answered.
//!
//! It answers in the API's JSON errors ([`crate::api::error`], the one place errors become
//! statuses); the API does not know the gateway: `server` puts the two routers together.

mod body;
mod budget;
pub mod smtp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body as RequestBody;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hopper_integration_api::{
    Action, InboundError, InboundHeaders, InboundRequest, InboundSource, Interpretation,
};

use crate::api::error::{ApiError, ApiResult};
use crate::config::{ConfigError, ConfigSet, ServerConfig};
use crate::engine::{Engine, Ingest};
use crate::inbound::{Sources, instance_of, kept_headers};

/// The HTTP door: the sources it serves, and what bounds the bodies it reads for them.
#[derive(Clone, Default)]
pub struct Gateway {
    sources: Arc<Sources>,
    /// Webhook body bytes in memory at once, across requests and per address.
    body_budget: Arc<budget::Budget>,
    /// How long a body may take to arrive (`None`: no limit).
    body_deadline: Option<Duration>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("paths", &self.paths())
            .finish()
    }
}

impl Gateway {
    /// The door for `sources`, with the body limits of the `server:` section.
    pub fn new(sources: Arc<Sources>, server: &ServerConfig) -> Self {
        let total = server.max_inflight_body_bytes;
        let per_peer = server
            .max_inflight_body_bytes_per_peer
            .unwrap_or_else(|| budget::default_per_peer(total, sources.largest_body() as u64));
        Self {
            sources,
            body_budget: Arc::new(budget::Budget::new(total, per_peer)),
            body_deadline: server.body_read_timeout(),
        }
    }

    /// The door for the sources of the root config (see [`Sources::from_configs`]).
    pub fn from_configs(configs: &ConfigSet) -> Result<Self, ConfigError> {
        let env = |k: &str| std::env::var(k).ok();
        Self::build(configs, &env)
    }

    /// As [`Gateway::from_configs`], with the environment given (tests).
    pub fn build(
        configs: &ConfigSet,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Self, ConfigError> {
        let sources = Sources::build(configs, env)?;
        Ok(Self::new(Arc::new(sources), &configs.root.server))
    }

    /// The sources it serves (the API's replay reads events with the same ones).
    pub fn sources(&self) -> &Arc<Sources> {
        &self.sources
    }

    pub fn paths(&self) -> Vec<String> {
        self.sources.paths()
    }
}

/// What the webhook handler works with.
#[derive(Clone)]
struct Door {
    engine: Engine,
    gateway: Arc<Gateway>,
}

/// `POST /webhooks/{*path}`, with its own state, so it merges into any app: `server` puts it
/// beside the API's routes.
pub fn router<S>(engine: Engine, gateway: Arc<Gateway>) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    axum::Router::new()
        .route("/webhooks/{*path}", axum::routing::post(receive))
        .with_state(Door { engine, gateway })
}

/// The headers a source may look at, as (name, value) pairs; values that are not text are
/// dropped (no source reads them).
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

fn rejected(source: &str, e: InboundError) -> ApiError {
    let reason = match e {
        InboundError::Unauthorized => "signature",
        InboundError::NotConfigured => "not_configured",
        InboundError::Malformed(_) => "malformed",
        InboundError::UnsupportedMediaType(_) => "media_type",
        InboundError::Refused(_) => "refused",
    };
    count_rejection(source, reason);
    e.into()
}

/// `hopper_inbound_seconds{source}`: from the request's headers to its answer, whatever the
/// answer (senders' deadlines are 3 s for Slack, 10 s for GitHub).
struct Timer {
    source: String,
    started: std::time::Instant,
}

impl Timer {
    fn start(source: &str) -> Self {
        Self {
            source: source.to_owned(),
            started: std::time::Instant::now(),
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let source = std::mem::take(&mut self.source);
        metrics::histogram!("hopper_inbound_seconds", "source" => source)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// `hopper_inbound_rejected_total{source, reason}`: what senders (or impostors) got wrong.
fn count_rejection(source: &str, reason: &'static str) {
    metrics::counter!("hopper_inbound_rejected_total", "source" => source.to_owned(), "reason" => reason)
        .increment(1);
}

async fn receive(
    State(door): State<Door>,
    Path(path): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: RequestBody,
) -> ApiResult<Response> {
    let source = door.gateway.sources.source(&path).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no inbound source at /webhooks/{path}"),
        )
    })?;
    let _timer = Timer::start(source.kind());
    let pairs = header_pairs(&headers);
    // A credential carried in a header is checked before the body is read, so an impostor
    // holds neither memory nor the budget (and a client waiting on `Expect: 100-continue`
    // never sends its body).
    source
        .precheck(InboundHeaders { headers: &pairs })
        .map_err(|e| rejected(source.kind(), e))?;
    let limits = body::Limits {
        max_bytes: source.max_body_bytes(),
        deadline: door.gateway.body_deadline,
    };
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    // The reservation lasts until the answer: the body stays in memory until it is committed.
    let mut reserved = door.gateway.body_budget.reservation(peer);
    let bytes = body::read(body, &headers, &limits, &mut reserved)
        .await
        .inspect_err(|e| count_rejection(source.kind(), e.code))?;
    let request = InboundRequest {
        headers: &pairs,
        body: &bytes,
    };
    let verified = source
        .verify(request)
        .map_err(|e| rejected(source.kind(), e))?;
    let interpretation = source
        .interpret(&verified)
        .map_err(|e| rejected(source.kind(), e))?;
    deliver(&door.engine, source.as_ref(), &pairs, bytes, interpretation).await
}

/// Turns an interpretation into a stored event and the answer for the sender.
async fn deliver(
    engine: &Engine,
    source: &dyn InboundSource,
    headers: &[(String, String)],
    body: bytes::Bytes,
    interpretation: Interpretation,
) -> ApiResult<Response> {
    if let Action::Reply { body } = &interpretation.action {
        return Ok((StatusCode::OK, Json(body.clone())).into_response());
    }
    let instance = instance_of(source).map_err(ApiError::bad_request)?;
    let receipt = engine
        .ingest(Ingest {
            source: source.kind().to_owned(),
            endpoint: source.path().to_owned(),
            instance,
            headers: kept_headers(headers),
            body,
            interpretation,
            replay_of: None,
        })
        .await?;
    let status = if receipt.status == "accepted" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let body = source.acknowledge(&receipt).unwrap_or_else(|| {
        serde_json::json!({
            "event_id": receipt.event_id,
            "status": receipt.status,
            "task_id": receipt.task_id,
        })
    });
    Ok((status, Json(body)).into_response())
}

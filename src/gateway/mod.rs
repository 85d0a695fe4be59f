//! The webhook gateway: `POST /webhooks/{source path}`. It has the source check what the
//! headers alone can show, reads the body within the source's limit and the memory budget,
//! has the source verify the raw bytes and interpret them, and hands the result to
//! [`Engine::ingest`], which commits the event and its task before anything is answered.

mod body;
mod budget;
mod registry;
pub mod smtp;

use std::collections::HashMap;
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
    SourceSettings,
};

use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult};
use crate::config::{ConfigError, ConfigSet};
use crate::domain::{IngestReceipt, InstanceId};
use crate::engine::{Engine, Ingest};

/// Headers never stored with an event: credentials and signatures.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-gitlab-token",
    "x-slack-signature",
    "webhook-signature",
];

/// Every configured inbound endpoint, by path.
#[derive(Clone, Default)]
pub struct Gateway {
    by_path: HashMap<String, Arc<dyn InboundSource>>,
    /// Webhook body bytes in memory at once, across requests and per address.
    body_budget: Arc<budget::Budget>,
    /// How long a body may take to arrive (`None`: no limit).
    body_deadline: Option<Duration>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut paths: Vec<_> = self.by_path.keys().collect();
        paths.sort();
        f.debug_struct("Gateway").field("paths", &paths).finish()
    }
}

impl Gateway {
    /// Builds every source from the root config's `inbound:` section (and the environment,
    /// for secrets). Every registered source gets an endpoint; one without a secret answers
    /// 503. An unknown section or a bad key fails with the file, key and reason.
    pub fn from_configs(configs: &ConfigSet) -> Result<Self, ConfigError> {
        let env = |k: &str| std::env::var(k).ok();
        Self::build(configs, &env)
    }

    pub fn build(
        configs: &ConfigSet,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Self, ConfigError> {
        let file = configs
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(defaults)".into());
        let plugins = registry::plugins();
        let inbound = &configs.root.inbound;
        if let Some(unknown) = inbound
            .keys()
            .find(|k| !plugins.iter().any(|p| p.name == *k))
        {
            let known: Vec<_> = plugins.iter().map(|p| p.name).collect();
            return Err(ConfigError::new(
                &file,
                format!("inbound.{unknown}"),
                format!("unknown source (known: {})", known.join(", ")),
            ));
        }
        let mut by_path: HashMap<String, Arc<dyn InboundSource>> = HashMap::new();
        let null = serde_json::Value::Null;
        for plugin in plugins {
            let section = inbound.get(plugin.name).unwrap_or(&null);
            let settings = SourceSettings { section, env };
            let sources = (plugin.build)(&settings).map_err(|reason| {
                let (key, reason) = match reason.split_once(": ") {
                    Some((k, r)) if !k.contains(' ') => {
                        (format!("inbound.{}.{k}", plugin.name), r.to_owned())
                    }
                    _ => (format!("inbound.{}", plugin.name), reason),
                };
                ConfigError::new(&file, key, reason)
            })?;
            for s in sources {
                if let Some(instance) = s.instance()
                    && let Err(e) = InstanceId::parse(instance)
                {
                    return Err(ConfigError::new(
                        &file,
                        format!("inbound.{}.instance", plugin.name),
                        e,
                    ));
                }
                by_path.insert(s.path().to_owned(), Arc::from(s));
            }
        }
        let server = &configs.root.server;
        let total = server.max_inflight_body_bytes;
        let per_peer = server.max_inflight_body_bytes_per_peer.unwrap_or_else(|| {
            let largest = by_path.values().map(|s| s.max_body_bytes()).max();
            budget::default_per_peer(total, largest.unwrap_or(0) as u64)
        });
        Ok(Self {
            by_path,
            body_budget: Arc::new(budget::Budget::new(total, per_peer)),
            body_deadline: server.body_read_timeout(),
        })
    }

    pub fn source(&self, path: &str) -> Option<Arc<dyn InboundSource>> {
        self.by_path.get(path.trim_matches('/')).cloned()
    }

    pub fn paths(&self) -> Vec<String> {
        let mut p: Vec<_> = self.by_path.keys().cloned().collect();
        p.sort();
        p
    }
}

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/webhooks/{*path}", axum::routing::post(receive))
}

/// The headers a source may look at, as (name, value) pairs; values that are not text are
/// dropped (no source reads them).
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect()
}

fn kept_headers(pairs: &[(String, String)]) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .filter(|(k, _)| !SECRET_HEADERS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::Value::Object(map)
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
    State(state): State<AppState>,
    Path(path): Path<String>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: RequestBody,
) -> ApiResult<Response> {
    let source = state.gateway.source(&path).ok_or_else(|| {
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
        deadline: state.gateway.body_deadline,
    };
    let peer = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    // The reservation lasts until the answer: the body stays in memory until it is committed.
    let mut reserved = state.gateway.body_budget.reservation(peer);
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
    deliver(
        &state.engine,
        source.as_ref(),
        &pairs,
        bytes,
        interpretation,
        None,
    )
    .await
}

/// Turns an interpretation into a stored event and the answer for the sender. Shared by the
/// HTTP gateway, the SMTP listener and `events replay`.
pub async fn deliver(
    engine: &Engine,
    source: &dyn InboundSource,
    headers: &[(String, String)],
    body: bytes::Bytes,
    interpretation: Interpretation,
    replay_of: Option<String>,
) -> ApiResult<Response> {
    if let Action::Reply { body } = &interpretation.action {
        return Ok((StatusCode::OK, Json(body.clone())).into_response());
    }
    let instance = source
        .instance()
        .map(InstanceId::parse)
        .transpose()
        .map_err(ApiError::bad_request)?;
    let receipt = engine
        .ingest(Ingest {
            source: source.kind().to_owned(),
            endpoint: source.path().to_owned(),
            instance,
            headers: kept_headers(headers),
            body,
            interpretation,
            replay_of,
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

/// Reads a stored event again with today's configuration (after fixing a mapping, say) and
/// records the result as a new event that points back at it. The signature was checked when
/// the event first arrived; it is not checked again (Slack's, for one, would have expired).
pub async fn replay(
    engine: &Engine,
    gateway: &Gateway,
    id: &str,
) -> crate::error::Result<IngestReceipt> {
    let original = engine.get_event(id).await?;
    let mut headers = original.header_pairs();
    let path = if original.endpoint == "smtp" {
        // An SMTP message is re-read by the email source, with its envelope recipients.
        for r in original.smtp_recipients() {
            headers.push(("x-original-to".into(), r));
        }
        headers.push(("content-type".into(), "message/rfc822".into()));
        "email".to_owned()
    } else {
        original.endpoint.clone()
    };
    let source = gateway.source(&path).ok_or_else(|| {
        crate::error::HopperError::Conflict(format!(
            "the source `{path}` of event {id} is not configured any more"
        ))
    })?;
    let body = bytes::Bytes::from(original.body.clone());
    let request = InboundRequest {
        headers: &headers,
        body: &body,
    };
    let mut interpretation = source
        .interpret(&hopper_integration_api::Verified::vouch(request))
        .map_err(|e| crate::error::HopperError::Invalid(format!("cannot replay {id}: {e}")))?;
    if matches!(interpretation.action, Action::Reply { .. }) {
        return Err(crate::error::HopperError::Invalid(format!(
            "event {id} is not one that makes tasks"
        )));
    }
    // A replay is a new delivery, not a duplicate of the original.
    interpretation.delivery_id = None;
    let receipt = engine
        .ingest(Ingest {
            source: original.source.clone(),
            endpoint: original.endpoint.clone(),
            instance: source
                .instance()
                .map(InstanceId::parse)
                .transpose()
                .map_err(crate::error::HopperError::Invalid)?,
            headers: kept_headers(&headers),
            body,
            interpretation,
            replay_of: Some(original.id.clone()),
        })
        .await?;
    Ok(IngestReceipt {
        event_id: receipt.event_id,
        status: receipt.status.to_owned(),
        task_id: receipt.task_id,
    })
}

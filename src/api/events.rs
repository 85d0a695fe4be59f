//! Inbound events: inspect what senders delivered and replay it.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::AppState;
use super::error::ApiResult;
use super::extract::Query;
use crate::domain::{EventFilter, InboundEventView, IngestReceipt};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/events", get(list_events))
        .route("/events/{id}", get(get_event))
        .route("/events/{id}/replay", post(replay_event))
}

/// Stored inbound events, newest first (bodies left out).
#[utoipa::path(get, path = "/v1/events", params(EventFilter), responses((status = 200, body = [InboundEventView])))]
pub async fn list_events(
    State(s): State<AppState>,
    Query(f): Query<EventFilter>,
) -> ApiResult<Json<Vec<InboundEventView>>> {
    let limit = f.limit.unwrap_or(100).clamp(1, 1000);
    let events = s
        .engine
        .list_events(f.source.as_deref(), f.status.as_deref(), limit)
        .await?;
    Ok(Json(events.iter().map(|e| e.view(false)).collect()))
}

/// One event with its raw body.
#[utoipa::path(get, path = "/v1/events/{id}", responses((status = 200, body = InboundEventView), (status = 404)))]
pub async fn get_event(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<InboundEventView>> {
    Ok(Json(s.engine.get_event(&id).await?.view(true)))
}

/// Reads an event again with the current configuration; the result is a new event. 409 when
/// its source is not configured any more; 422 when the source will not read it.
#[utoipa::path(post, path = "/v1/events/{id}/replay", responses((status = 200, body = IngestReceipt), (status = 404), (status = 409), (status = 422)))]
pub async fn replay_event(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<IngestReceipt>> {
    Ok(Json(
        crate::inbound::replay(&s.engine, &s.sources, &id).await?,
    ))
}

//! Memory: search the episodes routing learns from.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;
use super::error::ApiResult;
use super::extract::Query;
use crate::domain::{MemoryHit, MemoryQuery};

pub fn router() -> Router<AppState> {
    Router::new().route("/memory/search", get(search))
}

/// Episodes (routing decisions, corrections, outcomes) ranked by full-text match, with snippets.
#[utoipa::path(get, path = "/v1/memory/search", params(MemoryQuery), responses((status = 200, body = [MemoryHit]), (status = 422)))]
pub async fn search(
    State(s): State<AppState>,
    Query(q): Query<MemoryQuery>,
) -> ApiResult<Json<Vec<MemoryHit>>> {
    Ok(Json(s.engine.search_memory(&q).await?))
}

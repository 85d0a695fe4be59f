//! `/v1/executors`: registration and administration of executors. Admin only, except that an
//! executor token may read its own record (`GET /v1/executors/{its id or name}`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Query};
use crate::domain::Executor;
use crate::engine::{ExecutorUpdate, Registered, Registration, Rotated};
use crate::store::ExecutorEvent;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/executors", post(register).get(list))
        .route("/executors/{id}", get(show).patch(update).delete(remove))
        .route("/executors/{id}/rotate-secret", post(rotate_secret))
        .route("/executors/{id}/disable", post(disable))
        .route("/executors/{id}/enable", post(enable))
        .route("/executors/{id}/events", get(events))
}

/// Register an executor. The answer holds its signing `secret` and an executor `token`; both
/// are shown only here.
#[utoipa::path(post, path = "/v1/executors", request_body = Registration, responses((status = 201, body = Registered), (status = 404), (status = 409), (status = 422)))]
pub async fn register(
    State(s): State<AppState>,
    Body(reg): Body<Registration>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.engine.register_executor(reg).await?),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Only executors serving this project (`sark` or `hopper-sark`).
    project: Option<String>,
}

/// Executors (never their secrets).
#[utoipa::path(get, path = "/v1/executors", params(ListQuery), responses((status = 200, body = [Executor])))]
pub async fn list(
    State(s): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<Executor>>> {
    Ok(Json(s.engine.list_executors(q.project.as_deref()).await?))
}

/// One executor, by id or name. An executor token may read its own.
#[utoipa::path(get, path = "/v1/executors/{id}", responses((status = 200, body = Executor), (status = 403), (status = 404)))]
pub async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Executor>> {
    if let Caller::Executor(own) = &caller
        && id != own.name
        && id != own.id.as_str()
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "an executor token may read only its own executor (`{}`)",
                own.name
            ),
        ));
    }
    Ok(Json(s.engine.get_executor(&id).await?))
}

/// Change an executor: absent fields stay; `webhook_url` is checked again.
#[utoipa::path(patch, path = "/v1/executors/{id}", request_body = ExecutorUpdate, responses((status = 200, body = Executor), (status = 404), (status = 422)))]
pub async fn update(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(up): Body<ExecutorUpdate>,
) -> ApiResult<Json<Executor>> {
    Ok(Json(s.engine.update_executor(&id, up).await?))
}

/// Remove an executor and revoke its tokens; answers what was removed.
#[utoipa::path(delete, path = "/v1/executors/{id}", responses((status = 200, body = Executor), (status = 404)))]
pub async fn remove(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Executor>> {
    Ok(Json(s.engine.remove_executor(&id).await?))
}

/// A new signing secret, shown once; the previous one also signs for
/// `outbound.rotation_grace_seconds`.
#[utoipa::path(post, path = "/v1/executors/{id}/rotate-secret", responses((status = 201, body = Rotated), (status = 404)))]
pub async fn rotate_secret(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Rotated>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.engine.rotate_executor_secret(&id).await?),
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    #[serde(default)]
    reason: Option<String>,
}

/// Stop delivering to an executor (it can still pull).
#[utoipa::path(post, path = "/v1/executors/{id}/disable", request_body = DisableRequest, responses((status = 200, body = Executor), (status = 404)))]
pub async fn disable(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(b): Body<DisableRequest>,
) -> ApiResult<Json<Executor>> {
    Ok(Json(
        s.engine.disable_executor(&id, b.reason.as_deref()).await?,
    ))
}

/// Deliver to an executor again.
#[utoipa::path(post, path = "/v1/executors/{id}/enable", responses((status = 200, body = Executor), (status = 404)))]
pub async fn enable(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Executor>> {
    Ok(Json(s.engine.enable_executor(&id).await?))
}

/// What happened to an executor, oldest first.
#[utoipa::path(get, path = "/v1/executors/{id}/events", responses((status = 200, body = [ExecutorEvent]), (status = 404)))]
pub async fn events(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<ExecutorEvent>>> {
    Ok(Json(s.engine.executor_events(&id).await?))
}

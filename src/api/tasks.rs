use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::{Caller, acting_as, actor, check_task};
use super::error::ApiResult;
use super::extract::{Body, task_id};
use crate::domain::{Actor, Feedback, Task, TaskEvent};
use crate::engine::LeaseRequest;
use crate::error::HopperError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks/{id}", get(get_task))
        .route("/tasks/{id}/claim", post(claim))
        .route("/tasks/{id}/heartbeat", post(heartbeat))
        .route("/tasks/{id}/complete", post(complete))
        .route("/tasks/{id}/fail", post(fail))
        .route("/tasks/{id}/release", post(release))
        .route("/tasks/{id}/cancel", post(cancel))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskWithHistory {
    #[serde(flatten)]
    task: Task,
    history: Vec<TaskEvent>,
}

/// A task with its full event history.
#[utoipa::path(get, path = "/v1/tasks/{id}", responses((status = 200, body = TaskWithHistory), (status = 404)))]
pub async fn get_task(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TaskWithHistory>> {
    let id = task_id(&id)?;
    check_task(&s.engine, &caller, &id).await?;
    let task = s.engine.get_task(&id).await?;
    let history = s.engine.task_history(&id).await?;
    Ok(Json(TaskWithHistory { task, history }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// Who claims; with an executor token, that executor (the default).
    #[serde(default)]
    executor: Option<String>,
    /// Seconds the claim holds without a heartbeat (default `tasks.lease_seconds`, at most
    /// `tasks.max_lease_seconds`).
    #[serde(default)]
    lease_seconds: Option<u64>,
}

/// Claim a specific task (pending, or one whose lease has run out). The answer carries the
/// claim's `lease_id`.
#[utoipa::path(post, path = "/v1/tasks/{id}/claim", request_body = ClaimRequest, responses((status = 200, body = Task), (status = 409)))]
pub async fn claim(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<ClaimRequest>,
) -> ApiResult<Json<Task>> {
    let id = task_id(&id)?;
    check_task(&s.engine, &caller, &id).await?;
    let executor = acting_as(&caller, b.executor)?
        .ok_or_else(|| HopperError::Invalid("`executor` is required: who claims".into()))?;
    let lease = LeaseRequest {
        seconds: b.lease_seconds,
    };
    Ok(Json(s.engine.claim_with(&id, &executor, lease).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// With an executor token, that executor (the default).
    #[serde(default)]
    executor: Option<String>,
    lease_id: String,
    /// A new length for the lease, from now (default: `tasks.lease_seconds`).
    #[serde(default)]
    lease_seconds: Option<u64>,
}

/// Extend the lease on a claimed task; 409 `lease_lost` when `lease_id` is not current.
#[utoipa::path(post, path = "/v1/tasks/{id}/heartbeat", request_body = HeartbeatRequest, responses((status = 200, body = Task), (status = 409)))]
pub async fn heartbeat(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<HeartbeatRequest>,
) -> ApiResult<Json<Task>> {
    let id = task_id(&id)?;
    check_task(&s.engine, &caller, &id).await?;
    let actor = Actor::Executor {
        name: acting_as(&caller, b.executor)?
            .ok_or_else(|| HopperError::Invalid("`executor` is required".into()))?,
        lease: b.lease_id,
    };
    let lease = LeaseRequest {
        seconds: b.lease_seconds,
    };
    Ok(Json(s.engine.heartbeat(&id, &actor, lease).await?))
}

/// Who acts: an executor under the lease its claim returned, or (with neither) the admin
/// holding the token.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorRequest {
    #[serde(default)]
    executor: Option<String>,
    #[serde(default)]
    lease_id: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    #[serde(default)]
    executor: Option<String>,
    #[serde(default)]
    lease_id: Option<String>,
    #[serde(default)]
    feedback: Option<Feedback>,
}

/// Complete a task. A retry under the same lease answers the first result; any other
/// completion of a finished task is 409, and a lease that is not current is 409 `lease_lost`.
#[utoipa::path(post, path = "/v1/tasks/{id}/complete", request_body = CompleteRequest, responses((status = 200, body = Task), (status = 403), (status = 409)))]
pub async fn complete(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<CompleteRequest>,
) -> ApiResult<Json<Task>> {
    let id = task_id(&id)?;
    check_task(&s.engine, &caller, &id).await?;
    let actor = actor(&caller, b.executor, b.lease_id)?;
    Ok(Json(s.engine.complete(&id, &actor, b.feedback).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    #[serde(default)]
    executor: Option<String>,
    #[serde(default)]
    lease_id: Option<String>,
    reason: String,
}

#[utoipa::path(post, path = "/v1/tasks/{id}/fail", request_body = FailRequest, responses((status = 200, body = Task)))]
pub async fn fail(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<FailRequest>,
) -> ApiResult<Json<Task>> {
    let id = task_id(&id)?;
    check_task(&s.engine, &caller, &id).await?;
    Ok(Json(
        s.engine
            .fail(&id, &actor(&caller, b.executor, b.lease_id)?, &b.reason)
            .await?,
    ))
}

/// Give a claimed task back to its queue.
#[utoipa::path(post, path = "/v1/tasks/{id}/release", request_body = ActorRequest, responses((status = 200, body = Task)))]
pub async fn release(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<ActorRequest>,
) -> ApiResult<Json<Task>> {
    let id = task_id(&id)?;
    check_task(&s.engine, &caller, &id).await?;
    Ok(Json(
        s.engine
            .release(&id, &actor(&caller, b.executor, b.lease_id)?)
            .await?,
    ))
}

/// Cancel a task and whatever it delegated.
#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", request_body = ActorRequest, responses((status = 200, body = Task)))]
pub async fn cancel(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<ActorRequest>,
) -> ApiResult<Json<Task>> {
    Ok(Json(
        s.engine
            .cancel(&task_id(&id)?, &actor(&caller, b.executor, b.lease_id)?)
            .await?,
    ))
}

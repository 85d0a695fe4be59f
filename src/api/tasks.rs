use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiResult;
use super::extract::{Body, task_id};
use crate::domain::{Actor, Feedback, Task, TaskEvent};

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
    Path(id): Path<String>,
) -> ApiResult<Json<TaskWithHistory>> {
    let id = task_id(&id)?;
    let task = s.engine.get_task(&id).await?;
    let history = s.engine.task_history(&id).await?;
    Ok(Json(TaskWithHistory { task, history }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecutorRequest {
    executor: String,
}

/// Claim a specific pending task.
#[utoipa::path(post, path = "/v1/tasks/{id}/claim", request_body = ExecutorRequest, responses((status = 200, body = Task), (status = 409)))]
pub async fn claim(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(b): Body<ExecutorRequest>,
) -> ApiResult<Json<Task>> {
    Ok(Json(s.engine.claim(&task_id(&id)?, &b.executor).await?))
}

/// Extend the lease on a claimed task.
#[utoipa::path(post, path = "/v1/tasks/{id}/heartbeat", request_body = ExecutorRequest, responses((status = 200, body = Task), (status = 403)))]
pub async fn heartbeat(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(b): Body<ExecutorRequest>,
) -> ApiResult<Json<Task>> {
    Ok(Json(s.engine.heartbeat(&task_id(&id)?, &b.executor).await?))
}

/// Who acts: an executor, or (with no `executor`) the admin holding the token.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActorRequest {
    #[serde(default)]
    executor: Option<String>,
}

fn actor(executor: Option<String>) -> Actor {
    executor.map(Actor::Executor).unwrap_or(Actor::Admin)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    #[serde(default)]
    executor: Option<String>,
    #[serde(default)]
    feedback: Option<Feedback>,
}

/// Complete a task (idempotent: a second call returns the first result).
#[utoipa::path(post, path = "/v1/tasks/{id}/complete", request_body = CompleteRequest, responses((status = 200, body = Task), (status = 403), (status = 409)))]
pub async fn complete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(b): Body<CompleteRequest>,
) -> ApiResult<Json<Task>> {
    Ok(Json(
        s.engine
            .complete(&task_id(&id)?, &actor(b.executor), b.feedback)
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    #[serde(default)]
    executor: Option<String>,
    reason: String,
}

#[utoipa::path(post, path = "/v1/tasks/{id}/fail", request_body = FailRequest, responses((status = 200, body = Task)))]
pub async fn fail(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(b): Body<FailRequest>,
) -> ApiResult<Json<Task>> {
    Ok(Json(
        s.engine
            .fail(&task_id(&id)?, &actor(b.executor), &b.reason)
            .await?,
    ))
}

/// Give a claimed task back to its queue.
#[utoipa::path(post, path = "/v1/tasks/{id}/release", request_body = ActorRequest, responses((status = 200, body = Task)))]
pub async fn release(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(b): Body<ActorRequest>,
) -> ApiResult<Json<Task>> {
    Ok(Json(
        s.engine.release(&task_id(&id)?, &actor(b.executor)).await?,
    ))
}

/// Cancel a task and whatever it delegated.
#[utoipa::path(post, path = "/v1/tasks/{id}/cancel", request_body = ActorRequest, responses((status = 200, body = Task)))]
pub async fn cancel(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(b): Body<ActorRequest>,
) -> ApiResult<Json<Task>> {
    Ok(Json(
        s.engine.cancel(&task_id(&id)?, &actor(b.executor)).await?,
    ))
}

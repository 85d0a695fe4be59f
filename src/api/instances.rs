use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::auth::{Caller, acting_as, check_instance};
use super::error::{ApiError, ApiResult};
use super::extract::{Body, Query, instance_id};
use crate::domain::{
    Instance, InstanceFilter, InstanceStats, InstanceTree, Scope, Task, TaskDraft, TaskFilter,
    TaskStatus,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/instances", get(list_instances).post(create_instance))
        .route("/instances/tree", get(tree))
        .route(
            "/instances/{id}",
            get(get_instance).delete(archive_instance),
        )
        .route("/instances/{id}/stats", get(stats))
        .route("/instances/{id}/children/{child}", post(get_child))
        .route("/instances/{id}/tasks", post(add_task).get(list_tasks))
        .route("/instances/{id}/next", post(next))
        .route("/instances/{id}/notify", post(notify))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListInstancesQuery {
    scope: Option<Scope>,
    parent: Option<String>,
    #[serde(default)]
    include_archived: bool,
}

/// List instances, optionally by scope or parent.
#[utoipa::path(get, path = "/v1/instances", params(ListInstancesQuery), responses((status = 200, body = [Instance])))]
pub async fn list_instances(
    State(s): State<AppState>,
    Query(q): Query<ListInstancesQuery>,
) -> ApiResult<Json<Vec<Instance>>> {
    let filter = InstanceFilter {
        scope: q.scope,
        parent: q.parent.as_deref().map(instance_id).transpose()?,
        include_archived: q.include_archived,
    };
    Ok(Json(s.engine.list_instances(&filter).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstance {
    /// Child name: `czarina` under the global instance becomes `hopper-czarina`.
    name: String,
    /// Defaults to the root instance.
    #[serde(default)]
    parent: Option<String>,
    /// What a project registers: capabilities, webhook_url, executor_type, ...
    #[serde(default)]
    #[schema(value_type = Object)]
    metadata: Option<serde_json::Value>,
}

/// Create (register) a child instance; returns the existing one if it is already there.
#[utoipa::path(post, path = "/v1/instances", request_body = CreateInstance, responses((status = 201, body = Instance)))]
pub async fn create_instance(
    State(s): State<AppState>,
    Body(body): Body<CreateInstance>,
) -> ApiResult<(StatusCode, Json<Instance>)> {
    let parent = match body.parent {
        Some(p) => instance_id(&p)?,
        None => s.engine.root().clone(),
    };
    if body.metadata.as_ref().is_some_and(|m| !m.is_object()) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "metadata must be an object",
        ));
    }
    let node = s.engine.child(&parent, &body.name, body.metadata).await?;
    Ok((StatusCode::CREATED, Json(node.instance.clone())))
}

/// The whole instance hierarchy.
#[utoipa::path(get, path = "/v1/instances/tree", responses((status = 200, body = InstanceTree)))]
pub async fn tree(State(s): State<AppState>) -> ApiResult<Json<InstanceTree>> {
    Ok(Json(s.engine.tree().await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceDetails {
    #[serde(flatten)]
    instance: Instance,
    /// Absent for archived instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<InstanceStats>,
}

/// One instance with its task statistics.
#[utoipa::path(get, path = "/v1/instances/{id}", responses((status = 200, body = InstanceDetails), (status = 404)))]
pub async fn get_instance(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<InstanceDetails>> {
    let id = instance_id(&id)?;
    let instance = s.engine.get_instance(&id).await?;
    let stats = s.engine.stats(&id).await.ok();
    Ok(Json(InstanceDetails { instance, stats }))
}

/// Archive an orchestration instance: summary kept, ephemeral tasks deleted.
#[utoipa::path(delete, path = "/v1/instances/{id}", responses((status = 200, description = "the archived summary"), (status = 409)))]
pub async fn archive_instance(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let id = instance_id(&id)?;
    Ok(Json(s.engine.archive_and_delete(&id).await?))
}

#[utoipa::path(get, path = "/v1/instances/{id}/stats", responses((status = 200, body = InstanceStats)))]
pub async fn stats(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<InstanceStats>> {
    Ok(Json(s.engine.stats(&instance_id(&id)?).await?))
}

/// The design's `get_child_hopper`: get or create.
#[utoipa::path(post, path = "/v1/instances/{id}/children/{child}", responses((status = 200, body = Instance)))]
pub async fn get_child(
    State(s): State<AppState>,
    Path((id, child)): Path<(String, String)>,
) -> ApiResult<Json<Instance>> {
    let node = s.engine.child(&instance_id(&id)?, &child, None).await?;
    Ok(Json(node.instance.clone()))
}

/// Add a task; the instance's scope decides what happens to it.
#[utoipa::path(post, path = "/v1/instances/{id}/tasks", params(AddTaskQuery), request_body = TaskDraft, responses((status = 201, body = Task), (status = 422)))]
pub async fn add_task(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<AddTaskQuery>,
    Body(draft): Body<TaskDraft>,
) -> ApiResult<(StatusCode, Json<Task>)> {
    let mut draft = draft;
    // Where a task came from is what reports back to GitHub, Slack or a mailbox will trust:
    // only ingest sets it, or an import that says so.
    let self_declared = draft
        .source
        .as_ref()
        .is_none_or(|src| matches!(src.kind.as_str(), "api" | "cli"));
    if !self_declared && !q.import {
        return Err(crate::error::HopperError::Invalid(
            "`source` other than `api`/`cli` is set by inbound sources; to import tasks with their source, add ?import=true"
                .into(),
        )
        .into());
    }
    if draft.source.is_none() {
        draft.source = Some(crate::domain::SourceRef {
            kind: "api".into(),
            ..Default::default()
        });
    }
    let task = s.engine.add_task(&instance_id(&id)?, draft).await?;
    Ok((StatusCode::CREATED, Json(task)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct AddTaskQuery {
    /// Keep the `source` the body names (importing tasks from elsewhere).
    #[serde(default)]
    import: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListTasksQuery {
    status: Option<TaskStatus>,
    #[serde(default)]
    hierarchy: bool,
    limit: Option<i64>,
    /// The last task id of the previous page (keyset pagination, in id order).
    after: Option<String>,
}

/// Tasks of an instance (with `hierarchy=true`, of its descendants too).
#[utoipa::path(get, path = "/v1/instances/{id}/tasks", params(ListTasksQuery), responses((status = 200, body = [Task])))]
pub async fn list_tasks(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ListTasksQuery>,
) -> ApiResult<Json<Vec<Task>>> {
    let id = instance_id(&id)?;
    check_instance(&s.engine, &caller, &id).await?;
    let filter = TaskFilter {
        status: q.status,
        hierarchy: q.hierarchy,
        limit: q.limit,
        after: q
            .after
            .as_deref()
            .map(super::extract::task_id)
            .transpose()?,
    };
    Ok(Json(s.engine.list_tasks(&id, &filter).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NextRequest {
    /// Who claims; with an executor token, that executor (the default).
    #[serde(default)]
    executor: Option<String>,
    /// Seconds the claim holds without a heartbeat (default `tasks.lease_seconds`, at most
    /// `tasks.max_lease_seconds`).
    #[serde(default)]
    lease_seconds: Option<u64>,
}

/// Atomically claim the next task for an executor: 200 with the task, 204 when none.
#[utoipa::path(post, path = "/v1/instances/{id}/next", request_body = NextRequest, responses((status = 200, body = Task), (status = 204)))]
pub async fn next(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(body): Body<NextRequest>,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let id = instance_id(&id)?;
    check_instance(&s.engine, &caller, &id).await?;
    let executor = acting_as(&caller, body.executor)?.ok_or_else(|| {
        crate::error::HopperError::Invalid("`executor` is required: who claims".into())
    })?;
    match s
        .engine
        .get_next_with(
            &id,
            &executor,
            crate::engine::LeaseRequest {
                seconds: body.lease_seconds,
            },
        )
        .await?
    {
        Some(task) => Ok(Json(task).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyRequest {
    kind: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

/// The design's `notify_parent`: record an event on the task this instance was delegated.
#[utoipa::path(post, path = "/v1/instances/{id}/notify", request_body = NotifyRequest, responses((status = 204)))]
pub async fn notify(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body<NotifyRequest>,
) -> ApiResult<StatusCode> {
    s.engine
        .notify_parent(&instance_id(&id)?, &body.kind, body.detail)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

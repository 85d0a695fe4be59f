//! Routing decisions, explained and corrected: `GET /v1/tasks/{id}/routing`,
//! `POST /v1/tasks/{id}/route`, and the decomposition plan `GET /v1/tasks/{id}/plan`.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::AppState;
use super::auth::{Caller, check_task};
use super::error::ApiResult;
use super::extract::{Body, task_id};
use crate::domain::{Actor, Task};
use crate::engine::{Plan, RerouteRequest, RoutingReport};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tasks/{id}/routing", get(explain))
        .route("/tasks/{id}/route", post(reroute))
        .route("/tasks/{id}/plan", get(plan))
}

/// How the task was routed: every decision down its delegation path, each with the provider
/// chain as it ran (who decided, who abstained and why, alternatives, the LLM's prompt and
/// answer) and any corrections.
#[utoipa::path(get, path = "/v1/tasks/{id}/routing", responses((status = 200, body = RoutingReport), (status = 404)))]
pub async fn explain(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<RoutingReport>> {
    let id = task_id(&id)?;
    check_task(&s.engine, &caller, &id).await?;
    Ok(Json(s.engine.explain_routing(&id).await?))
}

/// Re-route a pending task, or a routed one nobody has claimed: its delegated copy is
/// cancelled, a new one made in `project`, and the correction recorded. 409 when the copy is
/// claimed or finished.
#[utoipa::path(post, path = "/v1/tasks/{id}/route", request_body = RerouteRequest, responses((status = 200, body = Task), (status = 409), (status = 422)))]
pub async fn reroute(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Body(b): Body<RerouteRequest>,
) -> ApiResult<Json<Task>> {
    let id = task_id(&id)?;
    Ok(Json(s.engine.reroute(&id, &b, &Actor::Admin).await?))
}

/// The orchestration plan this task would run with: the LLM's phases and tasks when
/// `intelligence.decompose` is `llm` (falling back to the template, saying why), else the
/// template. Nothing is created.
#[utoipa::path(get, path = "/v1/tasks/{id}/plan", responses((status = 200, body = Plan), (status = 404)))]
pub async fn plan(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Plan>> {
    let id = task_id(&id)?;
    check_task(&s.engine, &caller, &id).await?;
    Ok(Json(s.engine.plan_for(&id).await?))
}

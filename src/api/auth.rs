//! Bearer-token authentication and scopes for `/v1`.
//!
//! The middleware resolves the caller once: the configured admin token (compared in constant
//! time) is [`Caller::Admin`]; any other token is looked up by its SHA-256 among the minted
//! ones (`Engine::resolve_token`). Then the route decides, before any handler runs:
//! - admin: everything;
//! - read: `GET` only;
//! - executor: only the routes in [`EXECUTOR_ROUTES`]. The list is an allowlist on purpose: a
//!   route added later is closed to executor tokens until it is listed here.
//!
//! Handlers on those routes then check the resource (the task's or instance's project must be
//! the executor's, see [`check_instance`], [`check_task`]) and the acting executor
//! ([`acting_as`]): it comes from the token, never from the body.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, ApiResult};
use crate::domain::{InstanceId, TaskId};
pub use crate::engine::Caller;
use crate::engine::Engine;

/// What an executor token may call (method, route as matched). Everything else is 403.
pub const EXECUTOR_ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/instances/{id}/tasks"),
    ("POST", "/v1/instances/{id}/next"),
    ("GET", "/v1/tasks/{id}"),
    ("POST", "/v1/tasks/{id}/claim"),
    ("POST", "/v1/tasks/{id}/heartbeat"),
    ("POST", "/v1/tasks/{id}/complete"),
    ("POST", "/v1/tasks/{id}/fail"),
    ("POST", "/v1/tasks/{id}/release"),
    ("GET", "/v1/executors/{id}"),
];

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

pub async fn require_token(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let caller = match resolve(&state, req.headers()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    if let Err(e) = permitted(&caller, req.method(), &route) {
        return e.into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The caller a request's bearer token names: 401 without one Hopper knows. Also what the
/// MCP endpoint (`mcp::http`) authenticates with.
pub async fn resolve(state: &AppState, headers: &axum::http::HeaderMap) -> ApiResult<Caller> {
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let caller = match given {
        Some(token) => caller_for_token(state, token).await?,
        None => None,
    };
    caller.ok_or_else(|| {
        metrics::counter!("hopper_auth_failures_total").increment(1);
        ApiError::unauthorized()
    })
}

/// Who `token` is: the admin token (compared in constant time), a minted token (by its hash),
/// or nobody. The dashboard's sign-in (`ui::session`) resolves its cookie here too.
pub async fn caller_for_token(state: &AppState, token: &str) -> ApiResult<Option<Caller>> {
    if state.admin_token.matches(token) {
        return Ok(Some(Caller::Admin));
    }
    // Minted tokens all start so; anything else is not worth a database lookup.
    if token.starts_with("hop_") {
        return Ok(state.engine.resolve_token(token).await?);
    }
    Ok(None)
}

/// Whether `caller` may call `method route` at all (the resource is the handler's to check).
pub fn permitted(caller: &Caller, method: &Method, route: &str) -> ApiResult<()> {
    match caller {
        Caller::Admin => Ok(()),
        Caller::Read if method == Method::GET || method == Method::HEAD => Ok(()),
        Caller::Read => Err(forbidden("a read-only token may only GET")),
        Caller::Executor(e) => {
            if EXECUTOR_ROUTES
                .iter()
                .any(|(m, r)| *m == method.as_str() && *r == route)
            {
                Ok(())
            } else {
                Err(forbidden(format!(
                    "an executor token (executor `{}`) may only list, claim, heartbeat, complete, fail and release the tasks of the instances it serves and read its own record; not {method} {route}",
                    e.name
                )))
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // Set by `require_token` on every `/v1` route; a handler outside it has no caller.
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

/// An executor token may touch only the instances its executor serves.
pub async fn check_instance(
    engine: &Engine,
    caller: &Caller,
    instance: &InstanceId,
) -> ApiResult<()> {
    let Caller::Executor(e) = caller else {
        return Ok(());
    };
    // An unknown instance is the same answer as a foreign one: no probing.
    if matches!(engine.serves(e, instance).await, Ok(true)) {
        return Ok(());
    }
    Err(forbidden(format!(
        "executor `{}` serves `{}`, not `{instance}`",
        e.name, e.project
    )))
}

/// An executor token may touch only the tasks of the instances its executor serves.
pub async fn check_task(engine: &Engine, caller: &Caller, task: &TaskId) -> ApiResult<()> {
    let Caller::Executor(e) = caller else {
        return Ok(());
    };
    match engine.get_task(task).await {
        Ok(t) => check_instance(engine, caller, &t.instance_id).await,
        Err(_) => Err(forbidden(format!(
            "task `{task}` is not one executor `{}` may see",
            e.name
        ))),
    }
}

/// Who acts: for an executor token, its own executor (a body naming another is 403); for
/// admin and read tokens, whatever the body says.
pub fn acting_as(caller: &Caller, named: Option<String>) -> ApiResult<Option<String>> {
    match caller {
        Caller::Executor(e) => match named {
            Some(n) if n != e.name => Err(forbidden(format!(
                "this token acts as executor `{}`, not `{}`",
                e.name,
                crate::engine::log_str(&n)
            ))),
            _ => Ok(Some(e.name.clone())),
        },
        _ => Ok(named),
    }
}

/// Who acts on a claimed task: an executor under the lease its claim returned, or (with
/// neither) the admin holding the token. With an executor token the executor is the token's,
/// and acting as the admin (no lease) is not open to it.
pub fn actor(
    caller: &Caller,
    executor: Option<String>,
    lease_id: Option<String>,
) -> ApiResult<crate::domain::Actor> {
    use crate::domain::Actor;
    use crate::error::HopperError;
    let executor = acting_as(caller, executor)?;
    match (executor, lease_id) {
        (None, None) => Ok(Actor::Admin),
        (Some(name), Some(lease)) => Ok(Actor::Executor { name, lease }),
        (Some(_), None) => Err(HopperError::Invalid(
            "`lease_id` is required with `executor`: send the one the claim returned".into(),
        )
        .into()),
        (None, Some(_)) => {
            Err(HopperError::Invalid("`executor` is required with `lease_id`".into()).into())
        }
    }
}
